"""The example notebooks under nbval."""

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Run by hand, the notebooks record into the project's store (the sidebar shows it);
    # nbval starts their kernels with this environment, so under the tests each uses a
    # store of its own and its saved outputs stay comparable.
    os.environ["NBTRAIL_THROWAWAY_STORE"] = "1"
