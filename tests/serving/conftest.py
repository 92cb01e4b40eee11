import pytest

import nbtrail as nt
from nbtrail.serving import ModelBundle

from ..packaging._models import train_churn


@pytest.fixture
def folder(home, tmp_path):
    """The model folder of a packaged churn model."""
    trained = train_churn()
    return nt.package(trained.model_id, name="churn", output=tmp_path / "ctx",
                      build=False).context / "model"


@pytest.fixture
def bundle(folder):
    return ModelBundle.load(folder)
