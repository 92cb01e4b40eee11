"""``python -m nbtrail.cli``: the ``nbtrail`` command."""

from . import main

raise SystemExit(main())
