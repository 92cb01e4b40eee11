"""Bringing runs over from other trackers: ``nt.import_mlflow``.

Each importer reads its source only through that tool's own client and writes nbtrail's
typed records, so the runs arrive with their original times and ids kept as tags.
"""

from ._mlflow import ImportResult, import_mlflow

__all__ = ["ImportResult", "import_mlflow"]
