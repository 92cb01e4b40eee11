"""Optuna sweeps tracked as runs: ``nt.sweep``, ``nt.track_study`` and ``Sweep``.

Optuna is an optional dependency (``pip install 'nbtrail[sweeps]'``), imported only when
a sweep starts.
"""

from ._api import sweep, track_study
from ._sweep import Sweep

__all__ = ["Sweep", "sweep", "track_study"]
