"""The model registry: versions, aliases, governed promotions and the audit trail.

Its state is its audit trail (``nbtrail.store._audit``): every change is an entry, and
models, versions, aliases and requests are what the entries say. See docs/registry.md.
"""

from ._api import ModelVersion, PromotionRequest
from ._policy import Policy
from ._refs import Reference, is_reference, model_id_of, resolve

__all__ = ["ModelVersion", "Policy", "PromotionRequest", "Reference", "is_reference",
           "model_id_of", "resolve"]
