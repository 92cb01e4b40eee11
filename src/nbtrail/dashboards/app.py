"""The dashboard as a Panel script, for ``panel serve``.

Serve it with ``panel serve $(python -c 'import nbtrail.dashboards as d; print(d.APP_FILE)')``;
the store comes from ``NBTRAIL_HOME`` (or the current folder).

``nbtrail dashboard`` is the same app with authentication options.
"""

from nbtrail.dashboards import read_only_store
from nbtrail.dashboards._app import TITLE, build, session_args

build(read_only_store(), session_args()).servable(title=TITLE)
