"""``nt.serve``: the model server on this machine, in the foreground or a background thread."""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _html
from ..errors import InvalidInputError, NbtrailError, ProcessError
from ..registry._refs import is_reference
from ..serving._app import ServeSettings, load_app
from ..serving._bundle import LINEAGE_FILE, SIGNATURE_FILE
from ..serving._server import serve as serve_folder
from ..serving._signature import RangePolicy
from ._api import Package, prepare
from ._context import write_model_folder

if TYPE_CHECKING:
    from ..store import Store

_START_TIMEOUT = 30.0
log = logging.getLogger("nbtrail.serving")


def model_folder(source: Package | str | Path, *, trusted: bool,
                 store: Store | None = None) -> Path:
    """The model folder to serve for a package, a context or model folder, or a model/run id.

    For an id, the model is written to a temporary folder first, checked exactly as
    :func:`nbtrail.package` checks it, from ``store`` (default: the configured store).
    """
    if isinstance(source, Package):
        return source.context / "model"
    path = Path(source)
    for candidate in (path, path / "model"):
        if (candidate / SIGNATURE_FILE).is_file():
            return candidate
    if path.exists():
        raise InvalidInputError(f"{path} is neither a package made by nt.package nor its "
                                "model folder (no signature.json in it)")
    if not isinstance(source, str):
        raise InvalidInputError(f"folder {path} does not exist")
    from ..tracking._tracker import store_or_configured

    model, model_bytes = prepare(store_or_configured(store), source, trusted=trusted)
    folder = Path(tempfile.mkdtemp(prefix=f"nbtrail-serve-{model.name}-")) / "model"
    write_model_folder(folder, source=model, model_bytes=model_bytes, package=None)
    return folder


@dataclass
class LocalServer:
    """A model server running in a background thread of this process."""

    url: str
    folder: Path
    _server: Any = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _repr_html_(self) -> str:
        running = self._thread.is_alive()
        return _html.mapping("model server", {
            "url": self.url, "status": "running" if running else "stopped",
            "model folder": str(self.folder), "predict": f"POST {self.url}/predict",
        })


def serve(
    source: Package | str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    background: bool = False,
    workers: int = 1,
    range_policy: RangePolicy = "warn",
    log_dir: str | Path | None = None,
    max_body_bytes: int = 10 << 20,
    trusted: bool = False,
    store: Store | None = None,
) -> LocalServer | None:
    """Serve a packaged model over HTTP (KServe V2 and ``POST /predict``).

    ``source`` is a :class:`Package`, a package or model folder, a model/run id or a
    registry reference (``churn@champion``; the deployment is then recorded in the
    registry's audit trail).
    With ``background=True`` the server runs in a thread of this process (``port=0``
    picks a free port) and a :class:`LocalServer` with its ``url`` and ``stop()`` is
    returned; otherwise this call serves until interrupted. ``log_dir`` keeps a prediction
    log; ``range_policy="reject"`` refuses values outside the training range. A model or
    run id is looked up in ``store`` (default: the configured store).

    Example:
        >>> server = nt.serve(pkg, port=0, background=True)    # doctest: +SKIP
        >>> requests.post(f"{server.url}/predict", json={"records": [...]})  # doctest: +SKIP
    """
    if range_policy not in ("warn", "reject"):
        raise InvalidInputError(f"range_policy must be 'warn' or 'reject', got {range_policy!r}")
    if max_body_bytes <= 0:
        raise InvalidInputError(f"max_body_bytes must be positive, got {max_body_bytes}")
    folder = model_folder(source, trusted=trusted, store=store)
    _record_deployment(source, folder, store, {
        "server": "nbtrail serve", "host": host, "port": port,
        "log_dir": None if log_dir is None else str(Path(log_dir).resolve())})
    settings = ServeSettings(range_policy=range_policy, max_body_bytes=max_body_bytes,
                             log_dir=None if log_dir is None else str(log_dir))
    if not background:
        serve_folder(folder, host=host, port=port, workers=workers, settings=settings,
                     trusted=trusted)
        return None
    if workers != 1:
        raise InvalidInputError("a background server runs in one thread: use workers=1, or "
                                "nbtrail serve for several worker processes")
    return start(load_app(folder, settings, trusted=trusted), folder, host=host, port=port)


def _record_deployment(source: object, folder: Path, store: Store | None,
                       details: dict[str, Any]) -> None:
    """Serving registered versions is a deployment: the audit trail says where it logs.

    A reference names its version; a package built from references holds several, which
    its ``package_built`` entries name (``nt.traffic`` finds the logs through these).
    """
    from ..registry._api import record_deployment, record_use
    from ..registry._state import DEPLOYED
    from ..tracking._tracker import store_or_configured

    if isinstance(source, str) and is_reference(source):
        record_use(store_or_configured(store), source, DEPLOYED, details)
        return
    try:
        lineage = json.loads((folder / LINEAGE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    package_id = (lineage.get("package") or {}).get("package_id")
    store = store_or_configured(store)
    if not isinstance(package_id, str) or not store.exists():
        return  # a package served where no store is: nothing to record it in
    try:
        record_deployment(store, package_id, details)
    except NbtrailError as exc:  # the model is served all the same
        log.warning("nbtrail: could not record the deployment of package %s in the store "
                    "at %s: %s", package_id, store.location, exc)


def start(app: Any, folder: Path, *, host: str = "127.0.0.1", port: int = 0) -> LocalServer:
    """Serve the ASGI ``app`` (of the model ``folder``) in a background thread."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, name="nbtrail-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ProcessError(f"the model server did not start on {host}:{port} (is the port "
                               "in use?); pick another port, or port=0 for any free one")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return LocalServer(url=f"http://{host}:{bound}", folder=folder, _server=server,
                       _thread=thread)
