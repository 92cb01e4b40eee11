"""Loading a logged model back into Python."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import InvalidInputError, NotFoundError
from ._tracker import store_or_configured

if TYPE_CHECKING:
    from ..store import Store


def load_model(model_id: str, *, trusted: bool | Sequence[str] = False,
               store: Store | None = None) -> object:
    """Load a logged model by its id (``mdl_…``) or registry reference (``churn@champion``).

    skops files load only types from scikit-learn, numpy and scipy unless you trust
    more with ``trusted=[...]``; pickled models need ``trusted=True`` because
    unpickling runs code. ``store`` holds the model (default: the configured store).

    Example:
        >>> model = nt.load_model("mdl_01J…")   # doctest: +SKIP
    """
    from .._modelio import deserialize_model
    from ..registry._refs import model_id_of

    store = store_or_configured(store)
    if isinstance(model_id, str):
        model_id = model_id_of(store, model_id)
    if not isinstance(model_id, str) or not model_id.startswith("mdl_"):
        raise InvalidInputError(
            f"{model_id!r} is not a model id; model ids start with 'mdl_' "
            "(see nt.get_run(run_id).models), references read churn@champion or churn/3"
        )
    found = store.models(model_id=model_id)
    if found.is_empty():
        raise NotFoundError(f"no model {model_id!r} in the store at {store.location}")
    data = store.blob_path(found["sha256"][0]).read_bytes()
    return deserialize_model(data, found["format"][0], trusted=trusted)
