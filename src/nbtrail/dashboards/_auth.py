"""Access control of the served dashboard: HTTP basic authentication or a token.

A Bokeh ``AuthProvider``: every page, websocket and export of the app asks ``get_user``,
which accepts the credentials from an ``Authorization`` header (``Basic`` or ``Bearer``),
a ``?token=`` argument, or the signed cookie set after one of those succeeded (browsers do
not send headers on the app's websocket). A request without them is redirected to
``/auth``, which answers 401 (with a ``WWW-Authenticate`` challenge for basic auth, so a
browser asks for the password). Once the credentials pass, ``/auth`` sends the browser on
to ``?next=``, which must be a path of this dashboard (see :func:`safe_next`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import urllib.parse
from typing import Any

from bokeh.server.auth_provider import AuthProvider
from tornado.web import RequestHandler

COOKIE = "nbtrail_dashboard"
LOGIN_URL = "/auth"


class Credentials:
    """What a request must carry: a user and password, or a token."""

    def __init__(self, *, basic_auth: tuple[str, str] | None = None,
                 token: str | None = None) -> None:
        if (basic_auth is None) == (token is None):
            raise ValueError("give exactly one of basic_auth or token")
        self.basic_auth = basic_auth
        self.token = token

    def check(self, handler: RequestHandler) -> bool:
        """Whether the request carries valid credentials (and remember it in a cookie)."""
        if handler.get_signed_cookie(COOKIE) == b"ok":
            return True
        if self._header_ok(handler.request.headers.get("Authorization", "")) or (
                self.token is not None and
                _same(handler.get_query_argument("token", ""), self.token)):
            # Not on a websocket upgrade: its response headers are already committed.
            if handler.request.headers.get("Upgrade", "").lower() != "websocket":
                handler.set_signed_cookie(COOKIE, "ok", httponly=True, samesite="Strict",
                                          expires_days=None)
            return True
        return False

    def _header_ok(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if self.token is not None:
            return scheme.lower() == "bearer" and _same(value.strip(), self.token)
        if scheme.lower() != "basic" or self.basic_auth is None:
            return False
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return _same(user, self.basic_auth[0]) & _same(password, self.basic_auth[1])

    def challenge(self) -> str | None:
        """The ``WWW-Authenticate`` header of a 401 answer."""
        return 'Basic realm="nbtrail dashboard", charset="UTF-8"' if self.basic_auth else \
            'Bearer realm="nbtrail dashboard"'


def safe_next(target: str) -> bool:
    r"""Whether ``target`` is a path of this server, so that redirecting to it stays here.

    Browsers read ``//host``, ``/\host`` and ``\\host`` as another site, drop tabs and
    newlines inside URLs (``/<tab>/host`` is ``//host``), and follow any scheme. So only
    ``/`` followed by anything but a slash or backslash, without control characters,
    backslashes, scheme or host, passes, and again after each percent-decoding.
    """
    seen: set[str] = set()
    while target not in seen:
        seen.add(target)
        if (not target.startswith("/") or target[1:2] in ("/", "\\") or "\\" in target
                or any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in target)):
            return False
        parts = urllib.parse.urlsplit(target)
        if parts.scheme or parts.netloc:
            return False
        target = urllib.parse.unquote(target)
    return True


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def provider(credentials: Credentials) -> AuthProvider:
    """The Bokeh auth provider enforcing ``credentials`` on every request."""

    class Login(RequestHandler):
        def get(self) -> None:
            if credentials.check(self):
                target = self.get_query_argument("next", "/")
                if safe_next(target):
                    self.redirect(target)
                else:
                    self._text(400, f"nbtrail dashboard: ?next={target!r} is not a path of "
                               "this dashboard; open / instead\n")
                return
            challenge = credentials.challenge()
            if challenge:
                self.set_header("WWW-Authenticate", challenge)
            self._text(401, "nbtrail dashboard: authentication required ("
                       + ("user and password" if credentials.basic_auth else
                          "open the link with ?token=…, or send Authorization: Bearer …")
                       + ")\n")

        def _text(self, status: int, message: str) -> None:
            self.set_status(status)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(message)

    class Provider(AuthProvider):
        @property
        def get_user(self) -> Any:
            return lambda handler: "viewer" if credentials.check(handler) else None

        @property
        def login_url(self) -> str:
            return LOGIN_URL

        @property
        def login_handler(self) -> type[RequestHandler]:
            return Login

    return Provider()
