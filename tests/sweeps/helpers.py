"""Checks shared by the sweep tests: the store must equal Optuna's study, trial for trial."""

import math

import nbtrail as nt

STATUS = {"complete": "finished", "pruned": "finished", "fail": "failed"}


def same(a, b):
    return (a is None and b is None) or a == b or (
        isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def assert_store_matches_study(sweep, statuses=None):
    """Every trial once, with Optuna's state, values, params and reports."""
    trials = sweep.study.get_trials()
    frame = sweep.trials()
    assert frame["trial"].to_list() == [t.number for t in trials]
    names = sweep._value_names()
    for row, trial in zip(frame.iter_rows(named=True), trials, strict=True):
        state = trial.state.name.lower()
        assert row["state"] == state
        expected_status = (statuses or {}).get(trial.number, STATUS[state])
        assert row["status"] == expected_status, (trial.number, row)
        if trial.values is not None:
            assert [row[n] for n in names] == trial.values
        for key, value in trial.params.items():
            assert row[f"params.{key}"] == value
        if trial.intermediate_values:
            history = nt.metric_history(row["run_id"], "intermediate_value")
            assert dict(zip(history["step"], history["value"], strict=True)) == \
                trial.intermediate_values
    return frame
