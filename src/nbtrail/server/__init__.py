"""The Jupyter server extension: nbtrail's store over REST for the JupyterLab sidebar.

This sub-package is the only place that imports tornado and jupyter_server; the handlers
call the same library functions as ``nt.runs``, ``nt.compare`` and ``nt.package``.
Enabled on install by ``jupyter-config/server-config/nbtrail.json`` in the wheel. Routes
are listed in ``_routes.ROUTES`` and in docs/jupyterlab.md.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from traitlets import Int, Unicode
from traitlets.config import Configurable

from .._config import config
from ._package import Jobs
from ._routes import handlers
from ._stores import Stores

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp


class NbtrailServer(Configurable):
    """Settings of nbtrail's server extension (``c.NbtrailServer.store_path = ...``)."""

    store_path = Unicode(
        "",
        help="The store the sidebar reads: a folder or a team store URL "
        "(postgresql://...). Empty: what nt would use from the server's root folder "
        "($NBTRAIL_STORE, else $NBTRAIL_HOME, else .nbtrail at the git root of the root "
        "folder, else .nbtrail in it). A relative path is taken from the root folder.",
    ).tag(config=True)

    read_threads = Int(
        4, help="Threads that answer store reads, so the server's event loop never waits.",
    ).tag(config=True)


def store_home(settings: NbtrailServer, root_dir: Path) -> Path | str:
    """The store the server reads by default: a folder, or a team store's URL."""
    if "://" in settings.store_path:
        return settings.store_path
    if settings.store_path:
        return (root_dir / Path(settings.store_path).expanduser()).resolve()
    return config.current.store or config.current.resolve_home(cwd=root_dir)


def _load_jupyter_server_extension(serverapp: ServerApp) -> None:
    """Build the store once and register the REST handlers (called by jupyter_server)."""
    settings = NbtrailServer(parent=serverapp)
    root_dir = Path(serverapp.root_dir).expanduser().resolve()
    home = store_home(settings, root_dir)
    jobs = Jobs()
    web_app = serverapp.web_app
    web_app.settings.update(
        nbtrail_stores=Stores(home),
        nbtrail_root=root_dir,
        nbtrail_executor=ThreadPoolExecutor(max_workers=settings.read_threads,
                                            thread_name_prefix="nbtrail-read"),
        nbtrail_jobs=jobs,
    )
    web_app.add_handlers(".*$", handlers(web_app.settings["base_url"]))
    serverapp.log.info("nbtrail: the sidebar reads the store at %s", home)
