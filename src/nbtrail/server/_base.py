"""The base handler every nbtrail endpoint derives from.

It requires login on every verb, maps nbtrail's own errors to HTTP statuses (the table in
``nbtrail.errors``) with a ``{"message": ..., "error": ...}`` body, answers a malformed,
deep or huge JSON body with a 400, runs store calls off the event loop, and turns
query arguments into checked values (a malformed one is a 400 naming it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from jupyter_server.base.handlers import APIHandler
from tornado import web

from .._json import dumps
from ..errors import InvalidInputError, NbtrailError, outcome

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from ..store import Store
    from ._stores import Stores

T = TypeVar("T")

# The API's bodies are a few fields (a run id, a name); a bigger one is a mistake or an
# attack, and is refused before it is parsed.
MAX_BODY_BYTES = 64 << 10


class ArgumentError(InvalidInputError):
    """A query argument or request body field of an API call is malformed."""


class BaseHandler(APIHandler):
    """Common ground of the nbtrail handlers (each verb still needs ``@web.authenticated``)."""

    @property
    def stores(self) -> Stores:
        """The stores this server reads, built once at load time."""
        return self.settings["nbtrail_stores"]

    @property
    def store(self) -> Store:
        """The store this request reads: the ``store`` argument, else the configured one."""
        return self.stores.get(self.get_argument("store", None) or None)

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a (blocking) store call on the worker threads; the event loop keeps serving."""
        executor: Executor = self.settings["nbtrail_executor"]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, lambda: function(*args, **kwargs))

    def reply(self, data: Any, status: int = 200) -> None:
        """Send ``data`` as JSON (dates as ISO text, NaN and infinities as null)."""
        self.set_status(status)
        self.finish(dumps(data, nonfinite="null"))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Send nbtrail's own errors with their status and message as they are."""
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if isinstance(error, NbtrailError):
            self.clear()
            self.set_status(outcome(error).http_status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"message": str(error), "error": type(error).__name__}))
            return
        if isinstance(error, web.HTTPError) or error is None:
            super().write_error(status_code, **kwargs)
            return
        # Unexpected: logged with its traceback by tornado; the panel gets a sentence.
        self.set_status(500)
        self.finish(json.dumps({
            "message": f"nbtrail's server extension failed: {type(error).__name__}: {error}",
            "error": "InternalError",
        }))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Expected mistakes are not worth a traceback in the server log."""
        if isinstance(value, NbtrailError):
            self.log.info("nbtrail: %s %s -> %s", self.request.method, self.request.uri, value)
            return
        super().log_exception(typ, value, tb)

    # -- query arguments -------------------------------------------------------------------

    def text_arg(self, name: str, default: str | None = None) -> str | None:
        """A text argument; empty counts as missing."""
        value = self.get_argument(name, None)
        return value if value else default

    def list_arg(self, name: str) -> list[str]:
        """A comma-separated argument (repeating the argument works too)."""
        return [item.strip() for value in self.get_arguments(name)
                for item in value.split(",") if item.strip()]

    def int_arg(self, name: str, default: int, *, low: int = 0, high: int | None = None) -> int:
        """An integer argument within ``[low, high]``."""
        value = self.get_argument(name, None)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise ArgumentError(f"{name} must be an integer, got {value!r}") from None
        if number < low or (high is not None and number > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ArgumentError(f"{name} must be {bound}, got {number}")
        return number

    def bool_arg(self, name: str, default: bool) -> bool:
        """A boolean argument: true/false, 1/0, yes/no."""
        value = self.get_argument(name, None)
        if value is None or value == "":
            return default
        lowered = value.lower()
        if lowered in ("1", "true", "yes"):
            return True
        if lowered in ("0", "false", "no"):
            return False
        raise ArgumentError(f"{name} must be true or false, got {value!r}")

    def choice_arg(self, name: str, choices: tuple[str, ...], default: str) -> str:
        """One of ``choices``."""
        value = self.get_argument(name, None) or default
        if value not in choices:
            raise ArgumentError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def json_body(self) -> dict[str, Any]:
        """The request body, which must be a JSON object; anything else is a 400 saying why."""
        raw = self.request.body or b"{}"
        if len(raw) > MAX_BODY_BYTES:
            raise ArgumentError(f"the request body is {len(raw)} bytes; nbtrail's API takes at "
                                f"most {MAX_BODY_BYTES} bytes of JSON")
        try:
            body = json.loads(raw)
        except RecursionError:
            raise ArgumentError("the request body nests JSON too deeply; send a JSON object "
                                "of plain fields") from None
        except ValueError as exc:  # also bytes that are not UTF-8, and over-long integers
            raise ArgumentError(f"the request body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ArgumentError("the request body must be a JSON object, got "
                                f"{type(body).__name__}")
        return body

