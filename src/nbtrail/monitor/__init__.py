"""Monitoring: validate new data against a model's training data, and measure drift.

``nt.validate(df, against=model_id)`` lists problems by column; ``nt.drift(reference=...,
current=...)`` compares distributions (KS and PSI for numbers, chi-square and PSI for
categories) and the model's predictions. Both stream data with polars, so prediction logs
larger than memory are fine.
"""

from ._api import drift, validate
from ._drift import DriftReport, FeatureDrift, MetricChange, Thresholds
from ._validate import Problem, ValidationReport

__all__ = ["DriftReport", "FeatureDrift", "MetricChange", "Problem", "Thresholds",
           "ValidationReport", "drift", "validate"]
