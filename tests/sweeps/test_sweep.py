"""nt.sweep in one process: every trial a run, equal to Optuna's study."""

import itertools
import math

import optuna
import pytest

import nbtrail as nt
from nbtrail.errors import InvalidInputError, NbtrailError

from .helpers import assert_store_matches_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


def objective_with_everything(trial):
    """Prunes some trials, fails one, returns NaN once, logs its own metric."""
    x = trial.suggest_float("x", -4, 4)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    nt.log_metric("own_metric", x * 10)
    if trial.number == 3:
        raise ValueError("bad luck at trial 3")
    if trial.number == 4:
        return float("nan")
    for step in range(4):
        trial.report(-(x - 1) ** 2 - step, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return -(x - 1) ** 2 + (0.5 if kind == "a" else 0)


def test_trials_are_runs_equal_to_the_study(store):
    sweep = nt.sweep(objective_with_everything, n_trials=25, name="everything",
                     direction="maximize", catch=(ValueError,),
                     sampler=optuna.samplers.RandomSampler(seed=1),
                     pruner=optuna.pruners.MedianPruner(n_startup_trials=5), progress=False)
    frame = assert_store_matches_study(sweep)
    states = frame["state"].to_list()
    assert len(states) == 25
    assert {"complete", "pruned", "fail"} <= set(states)

    # The failure keeps its message; the NaN value is kept in nbtrail, failed in Optuna.
    failed = nt.get_run(frame.filter(frame["trial"] == 3)["run_id"][0])
    assert failed.status == "failed" and failed.error == "ValueError: bad luck at trial 3"
    nan_run = nt.get_run(frame.filter(frame["trial"] == 4)["run_id"][0])
    assert nan_run.status == "failed" and math.isnan(nan_run.metrics["value"])
    assert "nan" in nan_run.error and sweep.study.trials[4].state.name == "FAIL"

    # What the objective logged lands on its trial's run; trials are children of the sweep.
    session = sweep.run
    for trial, run_id in zip(frame["trial"], frame["run_id"], strict=True):
        run = nt.get_run(run_id)
        assert run.metrics["own_metric"] == sweep.study.trials[trial].params["x"] * 10
        assert run.parent_id == session.run_id
        assert run.tags["sweep"] == "everything" and run.name == f"trial-{trial}"
        assert run.duration is not None and run.duration >= 0
    parent = nt.get_run(session.run_id)
    assert parent.status == "finished" and len(parent.children) == 25
    assert parent.metrics["best_value"] == sweep.study.best_value
    assert parent.params["sampler"] == "RandomSampler"

    best = sweep.best_run
    assert best.tags["trial"] == str(sweep.study.best_trial.number)
    assert best.metrics["value"] == sweep.study.best_value
    importances = sweep.importances()
    assert set(importances) == {"x", "kind"} and math.isclose(sum(importances.values()), 1)


def test_multi_objective(store):
    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        return x, 1 - x * x

    sweep = nt.sweep(objective, n_trials=12, directions=["minimize", "maximize"],
                     name="pareto", progress=False)
    frame = assert_store_matches_study(sweep)
    assert {"values_0", "values_1"} <= set(frame.columns)
    front = {r.tags["trial"] for r in sweep.best_runs}
    assert front == {str(t.number) for t in sweep.study.best_trials}
    with pytest.raises(InvalidInputError, match="best_runs"):
        _ = sweep.best_run
    assert set(sweep.importances(target="values_1")) == {"x"}


def test_metric_names_of_the_study_name_the_value_columns(store):
    study = optuna.create_study(directions=["maximize", "minimize"])
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        study.set_metric_names(["acc", "latency"])
    sweep = nt.track_study(study)
    sweep.optimize(lambda t: (t.suggest_float("x", 0, 1), 2.0), n_trials=3, progress=False)
    assert {"acc", "latency"} <= set(assert_store_matches_study(sweep).columns)


def test_an_error_not_in_catch_ends_the_sweep_like_optuna(store):
    def objective(trial):
        if trial.number == 2:
            raise KeyError("not caught")
        if trial.number == 1:
            raise ValueError("caught")
        return trial.suggest_float("x", 0, 1)

    with pytest.raises(KeyError, match="not caught"):
        nt.sweep(objective, n_trials=10, name="strict", catch=(ValueError,), progress=False)
    study = optuna.load_study(study_name="strict",
                              storage=optuna.storages.JournalStorage(
                                  optuna.storages.journal.JournalFileBackend(
                                      str(store / "sweeps" / "strict.journal"))))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "FAIL"]
    runs = nt.runs(where="tags.sweep = 'strict'", order_by="start_time")
    assert runs["status"].to_list() == ["failed", "finished", "failed", "failed"]  # sweep first
    assert runs["error"][0] == "KeyError: 'not caught'"
    # Resuming with the same name goes on from there.
    sweep = nt.sweep(lambda t: t.suggest_float("x", 0, 1), n_trials=2, name="strict",
                     progress=False)
    assert len(sweep.study.trials) == 5
    assert_store_matches_study(sweep)


def test_track_study_records_old_trials_callbacks_and_optimize(store):
    study = optuna.create_study(direction="minimize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)  # before tracking
    sweep = nt.track_study(study)
    assert len(sweep.trials()) == 3  # recorded at once

    def reporting(trial):
        x = trial.suggest_float("x", 0, 1)
        trial.report(x, 0)
        return x

    study.optimize(reporting, n_trials=2, callbacks=[sweep])  # the user's own loop
    sweep.optimize(reporting, n_trials=2, progress=False)  # nbtrail's loop
    assert sweep.sync() == 0  # nothing left, nothing twice
    frame = assert_store_matches_study(sweep)
    assert len(frame) == 7
    assert nt.get_run(frame["run_id"][0]).tags["sweep_id"] == sweep.sweep_id


def test_background_returns_at_once_and_can_be_stopped(store):
    import threading

    gate = threading.Event()

    def objective(trial):
        gate.wait(10)
        return trial.suggest_float("x", 0, 1)

    sweep = nt.sweep(objective, n_trials=200, name="bg", background=True, progress=False)
    assert sweep.running
    gate.set()
    sweep.stop()
    sweep.wait(60)
    assert not sweep.running
    n = len(sweep.study.trials)
    assert 1 <= n < 200
    assert len(assert_store_matches_study(sweep)) == n
    assert nt.get_run(sweep.run.run_id).status == "finished"


def test_background_error_is_raised_by_wait(store):
    def objective(trial):
        raise KeyError("boom")

    sweep = nt.sweep(objective, n_trials=3, name="bg-error", background=True, catch=(),
                     progress=False)
    with pytest.raises(KeyError, match="boom"):
        sweep.wait(60)


def test_plots_draw_the_trials_with_matplotlib(store):
    import matplotlib

    matplotlib.use("Agg")
    sweep = nt.sweep(lambda t: t.suggest_float("x", 0, 1) + 3 * t.suggest_float("y", 0, 1),
                     n_trials=8, name="plots", direction="maximize", progress=False,
                     sampler=optuna.samplers.RandomSampler(seed=0))
    trials = sweep.study.trials
    history = sweep.plot_history()
    assert history.collections[0].get_offsets().tolist() == [[t.number, t.value]
                                                             for t in trials]
    assert history.lines[0].get_ydata().tolist() == list(
        itertools.accumulate((t.value for t in trials), max))  # best so far, maximizing
    coordinates = sweep.plot_parallel_coordinate()
    assert [t.get_text() for t in coordinates.get_xticklabels()] == ["Objective Value", "x",
                                                                     "y"]
    assert len(coordinates.collections[0].get_segments()) == len(trials)  # a line a trial
    bars = sweep.plot_importances()
    drawn = {label.get_text(): patch.get_width()
             for label, patch in zip(bars.get_yticklabels(), bars.patches, strict=True)}
    assert drawn == pytest.approx(sweep.importances())
    assert max(drawn, key=drawn.get) == "y"  # three times x's slope (seeded: 8 trials)


def test_plots_of_one_objective_of_several(store):
    import matplotlib

    matplotlib.use("Agg")
    sweep = nt.sweep(lambda t: (t.suggest_float("x", 0, 1), 2 * t.suggest_float("y", 0, 1)),
                     n_trials=6, directions=["minimize", "maximize"], name="plots-2",
                     progress=False)
    history = sweep.plot_history(target="values_1")
    assert history.collections[0].get_offsets()[:, 1].tolist() == [t.values[1] for t in
                                                                   sweep.study.trials]
    assert history.get_ylabel() == "values_1"
    with pytest.raises(InvalidInputError, match="no objective 'loss'; objectives: values_0"):
        sweep.plot_history(target="loss")


def test_script_progress_line(store, capsys):
    nt.sweep(lambda t: t.suggest_float("x", 0, 1), n_trials=5, name="script")
    err = capsys.readouterr().err
    assert "script: 5/5 trials · best" in err and "done" in err


def test_progress_html_is_static_and_escaped(store):
    sweep = nt.sweep(lambda t: t.suggest_float("x", 0, 1), n_trials=4,
                     name="<b onclick=x>", progress=False)
    html = sweep._repr_html_()
    assert "<script" not in html and "<iframe" not in html
    assert "&lt;b onclick=x&gt;" in html and "<svg" in html


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"objective": 3}, "objective must be a function"),
    ({"n_trials": 0}, "n_trials must be a whole number of 1 or more"),
    ({"n_trials": None}, "give n_trials or timeout"),
    ({"direction": "maximize", "directions": ["minimize"]}, "not both"),
    ({"direction": "up"}, "'up' is not 'minimize' or 'maximize'"),
    ({"storage": "redis://localhost"}, "unknown URL scheme 'redis'"),
    ({"storage": "postgres://x@y/z"}, "'postgresql://'"),
    ({"n_jobs": 0}, "n_jobs must be 1 or more"),
    ({"timeout": -1}, "timeout must be a positive number"),
    ({"sampler": "tpe"}, "sampler must be an instance of optuna.samplers"),
    ({"name": "a\nb"}, "sweep name"),
])
def test_bad_input_names_the_argument_and_the_fix(store, kwargs, message):
    arguments = {"objective": lambda t: 1.0, "n_trials": 2, "progress": False, **kwargs}
    with pytest.raises(InvalidInputError, match=message):
        nt.sweep(**arguments)


def test_resuming_with_another_direction_is_refused(store):
    nt.sweep(lambda t: 1.0, n_trials=1, name="dir", direction="minimize", progress=False)
    with pytest.raises(InvalidInputError, match=r"already exists .* direction"):
        nt.sweep(lambda t: 1.0, n_trials=1, name="dir", direction="maximize", progress=False)
    # Without a direction, the stored one is used.
    assert nt.sweep(lambda t: 1.0, n_trials=1, name="dir", progress=False) \
        .study.direction.name == "MINIMIZE"


def test_best_run_without_a_complete_trial(store):
    def failing(trial):
        raise ValueError("no")

    sweep = nt.sweep(failing, n_trials=2, name="nobest", catch=(ValueError,), progress=False)
    with pytest.raises(NbtrailError, match="no complete trial"):
        _ = sweep.best_run


def test_missing_optuna_names_the_extra(store):
    from ..conftest import run_python

    result = run_python(
        "import sys; sys.modules['optuna'] = None\n"
        "import nbtrail as nt\n"
        "try:\n    nt.sweep(lambda t: 1.0, n_trials=1)\n"
        "except ImportError as e:\n    print(e)\n")
    assert "pip install 'nbtrail[sweeps]'" in result.stdout, result.stderr
