import tempfile

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

import nbtrail as nt
from nbtrail.serving import ModelBundle

from ..conftest import isolate_git
from ..packaging._models import train_churn

# Hypothesis (and schemathesis on it) caches under the current folder, the checkout when
# pytest starts: keep it out.
set_hypothesis_home_dir(f"{tempfile.gettempdir()}/nbtrail-hypothesis")


@pytest.fixture
def folder(home, tmp_path):
    """The model folder of a packaged churn model."""
    trained = train_churn()
    return nt.package(trained.model_id, name="churn", output=tmp_path / "ctx",
                      build=False).context / "model"


@pytest.fixture
def bundle(folder):
    return ModelBundle.load(folder)


@pytest.fixture(scope="module")
def shared_folder(tmp_path_factory):
    """One packaged churn model for a whole module of tests that do not change it."""
    root = tmp_path_factory.mktemp("shared-model")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # runs capture git state from the current folder: not the repo's
        isolate_git(mp)
        with nt.config(home=str(root / "store")):
            trained = train_churn()
            return nt.package(trained.model_id, name="churn", output=root / "ctx",
                              build=False).context / "model"
