"""The team dashboard: a read-only Panel app over the store (``nbtrail[dashboard]``).

This package is the only place that imports Panel, and only when a dashboard is built:
``import nbtrail.dashboards`` stays cheap. ``nbtrail dashboard`` serves it; ``nt.dashboard()``
shows it in a notebook; ``panel serve`` can serve ``nbtrail/dashboards/app.py`` too. (The
package is plural so that importing it cannot hide the function ``nbtrail.dashboard``.)
"""

from __future__ import annotations

import os
import secrets
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MissingExtraError

if TYPE_CHECKING:
    from ..store import Store
    from ._views import View

INSTALL_HINT = "pip install 'nbtrail[dashboard]'"
APP_FILE = Path(__file__).with_name("app.py")


def _panel() -> Any:
    try:
        import panel
    except ImportError as exc:
        raise MissingExtraError(f"the dashboard needs Panel; run: {INSTALL_HINT}") from exc
    return panel


def read_only_store(home: Store | str | os.PathLike[str] | None = None) -> Store:
    """The store at ``home`` (default: the configured one), opened read-only; a store as is.

    Nothing needs to be logged there yet: until something is, the dashboard shows how to
    log a first run (as ``mlflow ui`` starts on an empty folder), and each new page looks
    again.
    """
    from ..store import Store, open_store

    if isinstance(home, Store):
        return home
    return open_store(home or None, read_only=True)


class Dashboard:
    """The dashboard in a notebook: live where Panel runs, a static snapshot elsewhere.

    The snapshot (the first view, as :meth:`export` writes it) is what GitHub, nbconvert
    and other viewers without a kernel show.
    """

    def __init__(self, store: Store, args: dict[str, str]) -> None:
        self.store = store
        self.args = args

    def app(self) -> Any:
        """The Panel layout (build it into your own Panel app, or ``.servable()`` it)."""
        _panel()
        from ._app import build

        return build(self.store, self.args)

    def export(self, view: View = "runs", path: str | os.PathLike[str] | None = None,
               **args: Any) -> str:
        """A view as standalone, script-free HTML; written to ``path`` when given.

        Example:
            >>> nt.dashboard().export("monitoring", "drift.html", model_id=mid)  # doctest: +SKIP
        """
        from ._views import export

        page = export(self.store, view, **args)
        if path is not None:
            Path(path).write_text(page, encoding="utf-8")
        return page

    def _static(self) -> str:
        from ._views import export

        page = export(self.store, "runs")
        start, end = page.index("<body"), page.rindex("</body>")
        return page[page.index(">", start) + 1:end]

    def _repr_html_(self) -> str:
        return self._static()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        found = self.app()._repr_mimebundle_(include, exclude)
        if not found:
            return {"text/html": self._static()}, {}
        data, metadata = found
        marker = f"nbtrail-static-{uuid.uuid4().hex}"
        data["text/html"] = (
            f'<div id="{marker}">{self._static()}</div>'
            f'<div id="{marker}-live">{data.get("text/html", "")}</div>'
            + _HIDE_WHEN_DRAWN.replace("MARKER", marker))
        return data, metadata


# The snapshot goes only once Panel has drawn the live view (Panel renames its root element
# "…-rendered" then). Where Panel's JavaScript does not run or cannot load — GitHub,
# nbconvert's HTML offline, a notebook opened without Panel's resources — it stays.
_HIDE_WHEN_DRAWN = """<script>(function () {
  var snapshot = document.getElementById("MARKER");
  var live = document.getElementById("MARKER-live");
  if (!snapshot || !live) return;
  function drawn() { return live.querySelector('[id$="-rendered"]') !== null; }
  function hideOnceDrawn(changes, observer) {
    if (!drawn()) return false;
    snapshot.style.display = "none";
    if (observer) observer.disconnect();
    return true;
  }
  if (!hideOnceDrawn()) {
    new MutationObserver(hideOnceDrawn).observe(
      live, {subtree: true, childList: true, attributes: true, attributeFilter: ["id"]});
  }
})();</script>"""


def dashboard(view: View | None = None, *, store: Store | str | os.PathLike[str] | None = None,
              **args: str) -> Dashboard:
    """The team dashboard inline in a notebook (needs ``nbtrail[dashboard]``).

    ``view`` opens a tab: runs, run, compare, branches, sweeps, lineage, monitoring,
    registry or serving; ``run=``, ``model=``, ``sweep=``, ``node=``, ``package=`` pick what
    it shows. It only reads the store. To share it with a team, serve it:
    ``nbtrail dashboard --token …``.

    Example:
        >>> nt.dashboard("monitoring", model="mdl_01J…")   # doctest: +SKIP
    """
    pn = _panel()
    if "ipykernel" in sys.modules:
        pn.extension("tabulator")  # loads Panel's JavaScript into the notebook page
    return Dashboard(read_only_store(store), {**args, **({"view": view} if view else {})})


def serve(home: Store | str | os.PathLike[str] | None = None, *, port: int = 5006,
          address: str = "127.0.0.1", basic_auth: tuple[str, str] | None = None,
          token: str | None = None, show: bool = False) -> None:
    """Serve the dashboard until interrupted (``nbtrail dashboard``).

    ``home`` is the store, or its folder (default: the configured one); it may be empty or
    not exist yet. With ``basic_auth=(user, password)`` or ``token``, every request must carry
    them; without either, anyone who reaches the address can read the store.
    """
    pn = _panel()
    from ._app import TITLE, build, session_args

    store = read_only_store(home)
    options: dict[str, Any] = {}
    if basic_auth is not None or token is not None:
        from ._auth import Credentials, provider

        options["auth_provider"] = provider(Credentials(basic_auth=basic_auth, token=token))
        options["cookie_secret"] = secrets.token_urlsafe(32)
    if address not in ("127.0.0.1", "localhost"):
        options["websocket_origin"] = "*"  # any host name the team reaches it by
    server = pn.serve(lambda: build(store, session_args()), port=port, address=address,
                      show=show, title=TITLE, start=False, verbose=False, **options)
    shown = "localhost" if address in ("127.0.0.1", "0.0.0.0") else address
    print(f"nbtrail dashboard of {store.location} at http://{shown}:{server.port}/"
          + (" (needs the password)" if basic_auth else " (needs ?token=…)" if token else ""),
          flush=True)
    if not store.exists():
        print("nothing is logged there yet: the page says how to log a first run, and shows "
              "the runs once there are some", flush=True)
    try:
        server.start()
        server.io_loop.start()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()

