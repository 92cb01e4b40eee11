"""Git-branch experiments: every branch an experiment, compared side by side.

``branches`` lists the branches runs were made on, ``compare`` sets the best runs of
branches (or any runs) side by side, ``reproduce`` re-executes a run's notebook from its
code snapshot, and ``new_experiment`` / ``restore_run`` make experiment branches.
"""

from ._api import branches, compare
from ._compare import Comparison
from ._gitops import ExperimentBranch, new_experiment, restore_run
from ._reproduce import Reproduction, reproduce

__all__ = ["Comparison", "ExperimentBranch", "Reproduction", "branches", "compare",
           "new_experiment", "reproduce", "restore_run"]
