"""Git-branch experiments: every branch an experiment, compared side by side.

``branches`` lists the branches runs were made on, ``compare`` sets the best runs of
branches (or any runs) side by side, ``reproduce`` re-executes a run's notebook from its
code snapshot, and ``gitops`` makes experiment branches.
"""
