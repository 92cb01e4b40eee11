import pytest

from ._models import Trained, train_churn


@pytest.fixture
def trained(home) -> Trained:
    return train_churn()
