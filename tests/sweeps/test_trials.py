"""The read model of sweeps: what every layer that shows a sweep reads."""

import math
import re
from pathlib import Path

import optuna
import pytest

import nbtrail as nt
from nbtrail.errors import NotFoundError
from nbtrail.sweeps import _trials, list_sweeps, read_sweep

optuna.logging.set_verbosity(optuna.logging.WARNING)


def objective(trial):
    x = trial.suggest_float("x", 1e-3, 10, log=True)
    kind = trial.suggest_categorical("kind", ["a", "b", "c"])
    depth = trial.suggest_int("depth", 1, 8)
    if trial.number == 2:
        raise optuna.TrialPruned()
    return -abs(math.log10(x)) + {"a": 0.0, "b": 0.5, "c": 1.0}[kind] + depth / 100


def test_summary_frame_and_best_are_the_study_s(store):
    sweep = nt.sweep(objective, n_trials=12, name="read", direction="maximize", progress=False,
                     sampler=optuna.samplers.RandomSampler(seed=3))
    nt.sweep(objective, n_trials=3, name="read", progress=False)  # a second session
    (summary,) = list_sweeps()
    trials = sweep.study.trials
    assert (summary.sweep_id, summary.name, summary.directions, summary.objectives) == \
        (sweep.sweep_id, "read", ("maximize",), ("value",))
    assert (summary.sessions, summary.trials, summary.complete, summary.pruned,
            summary.failed, summary.running) == (2, 15, 14, 1, 0, 0)
    found = read_sweep(sweep.sweep_id)
    assert found.frame.equals(sweep.trials())
    assert found.frame["trial"].to_list() == [t.number for t in trials]
    assert found.value_columns == ["value"]
    best = found.best()
    assert (best.trial, best.value) == (sweep.study.best_trial.number, sweep.study.best_value)
    assert best.params == sweep.study.best_trial.params
    assert best.run_id == sweep.best_run.run_id


def test_importances_from_the_store_are_optuna_s_from_the_study(store, capfd):
    sweep = nt.sweep(objective, n_trials=20, name="imp", progress=False,
                     sampler=optuna.samplers.RandomSampler(seed=0))
    expected = optuna.importance.get_param_importances(sweep.study)
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        assert read_sweep(sweep.sweep_id).importances() == pytest.approx(expected)
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    assert "study created" not in capfd.readouterr().err  # no line of Optuna's per call
    assert sweep.importances() == pytest.approx(expected)
    assert list(sweep.importances()) == list(expected)  # ordered the same, biggest first


@pytest.mark.filterwarnings("ignore:PedAnovaImportanceEvaluator computes")  # the expected
def test_importances_of_each_objective_with_metric_names(store):
    study = optuna.create_study(directions=["maximize", "minimize"])
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        study.set_metric_names(["acc", "latency"])
    sweep = nt.track_study(study)
    sweep.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)),
                   n_trials=10, progress=False)
    found = read_sweep(sweep.sweep_id)
    assert found.summary.objectives == ("acc", "latency")
    assert found.value_columns == ["acc", "latency"] and found.best() is None
    for target, index in (("acc", 0), ("latency", 1)):
        sign = -1 if index == 0 else 1  # Optuna reads a target as lower-is-better
        expected = optuna.importance.get_param_importances(
            study, target=lambda t, i=index, s=sign: s * t.values[i])
        assert found.importances(target) == pytest.approx(expected)
    with pytest.raises(nt.errors.InvalidInputError, match="no objective 'loss'"):
        found.importances("loss")


def test_a_store_without_recorded_distributions_still_has_importances(store):
    """Trials as nbtrail wrote them before it kept distributions and objective names."""
    with nt.run(name="old", tags={"sweep": "old", "sweep_id": "S1", "sweep_role": "sweep",
                                  "directions": "minimize"}) as session:
        for number in range(8):
            with nt.run(name=f"trial-{number}", parent=session,
                        tags={"sweep": "old", "sweep_id": "S1", "trial": number,
                              "trial_state": "complete"}) as trial:
                x, kind, flag = number / 7, "ab"[number % 2], number % 3 == 0
                trial.log_params({"x": x, "kind": kind, "flag": flag, "depth": number % 4})
                trial.log_metric("value", 10 * x + (kind == "b"))
    found = read_sweep("S1")
    assert found.summary.objectives == ("value",) and found.best().trial == 0
    scores = found.importances()
    assert set(scores) == {"x", "kind", "flag", "depth"}
    assert math.isclose(sum(scores.values()), 1) and max(scores, key=scores.get) == "x"


def test_an_unknown_or_hostile_sweep_id_is_not_found(store):
    nt.sweep(lambda t: t.suggest_float("x", 0, 1), n_trials=2, name="one", progress=False)
    for sweep_id in ("nope", "x' or '1' = '1", "\\"):
        with pytest.raises(NotFoundError, match=r"no sweep .*list_sweeps"):
            read_sweep(sweep_id)


def test_a_sweep_without_a_trial_has_an_empty_table(store):
    study = optuna.create_study()
    sweep = nt.track_study(study)
    sweep._session()  # the session run is there, no trial yet
    try:
        found = read_sweep(sweep.sweep_id)
        assert found.frame.is_empty() and found.best() is None and found.importances() == {}
    finally:
        sweep._end_session(None)  # else the open session stays this context's active run


def test_sweep_tag_keys_are_spelled_only_where_they_are_defined():
    source = Path(_trials.__file__).parents[1]
    keys = [_trials.SWEEP_ID, _trials.ROLE, _trials.STORAGE, _trials.TRIAL_STATE,
            _trials.DISTRIBUTIONS, _trials.WORKER_HOST, _trials.WORKER_RUN_ID,
            _trials.BEST_TRIAL, _trials.OBJECTIVES]
    # The ways a tag key is spelled: a column or filter, SQL, a dict of tags.
    pattern = re.compile("|".join(
        rf"""tags\.{key}\b|key\s*=\s*'{key}'|["']{key}["']\s*:""" for key in keys))
    spelled = [f"{path.relative_to(source)}:{n}" for path in source.rglob("*.py")
               if path.name != "_trials.py"
               for n, line in enumerate(path.read_text().splitlines(), 1)
               if pattern.search(line)]
    assert spelled == []
