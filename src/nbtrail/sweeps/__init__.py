"""Optuna sweeps tracked as runs: ``nt.sweep``, ``nt.track_study`` and ``Sweep``.

Optuna is an optional dependency (``pip install 'nbtrail[sweeps]'``), imported only when
a sweep starts (or importances are computed). Reading sweeps back from a store —
:func:`list_sweeps`, :func:`read_sweep` — needs no Optuna: the sidebar and the dashboard
show sweeps through them.
"""

from ._api import sweep, track_study
from ._sweep import Sweep
from ._trials import BestTrial, SweepSummary, SweepTrials, list_sweeps, read_sweep

__all__ = ["BestTrial", "Sweep", "SweepSummary", "SweepTrials", "list_sweeps", "read_sweep",
           "sweep", "track_study"]
