"""A sweep behaves exactly like the Optuna code it wraps: its defaults, the user's trials
left untouched, the sweep's run ended in the callback form, constraints respected."""

import optuna
import pytest

import nbtrail as nt
from nbtrail.sweeps import read_sweep

from .helpers import assert_store_matches_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


def quadratic(trial):
    x = trial.suggest_float("x", -3, 3)
    return (x - 1) ** 2


def test_the_default_direction_is_optuna_s_minimize(store):
    sampler = optuna.samplers.RandomSampler(seed=0)
    sweep = nt.sweep(quadratic, n_trials=10, name="ported", sampler=sampler, progress=False)
    plain = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    plain.optimize(quadratic, n_trials=10)

    assert [d.name for d in sweep.study.directions] == ["MINIMIZE"]
    assert [t.value for t in sweep.study.trials] == [t.value for t in plain.trials]
    assert sweep.study.best_value == plain.best_value
    assert nt.get_run(sweep.run.run_id).metrics["best_value"] == plain.best_value
    assert sweep.best_run.metrics["value"] == plain.best_value


def test_an_exception_is_not_caught_by_default(store):
    def failing(trial):
        if trial.number == 1:
            raise ZeroDivisionError("as in Optuna")
        return trial.suggest_float("x", 0, 1)

    with pytest.raises(ZeroDivisionError, match="as in Optuna"):
        nt.sweep(failing, n_trials=5, name="strict-default", progress=False)
    frame = nt.runs(where="tags.sweep = 'strict-default'", order_by="start_time")
    assert frame.height == 3  # the sweep's run and two trials: it stopped at the failure
    assert frame["status"].to_list() == ["failed", "finished", "failed"]


def test_track_study_leaves_the_user_s_trials_alone(store):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    sweep = nt.track_study(study)
    sweep.optimize(quadratic, n_trials=3, progress=False)
    study.optimize(quadratic, n_trials=2, callbacks=[sweep])

    assert [t.user_attrs for t in study.trials] == [{}] * 5
    assert "user_attrs_nbtrail" not in study.trials_dataframe().columns
    assert study.best_trial.user_attrs == {}
    assert len(assert_store_matches_study(sweep)) == 5


def test_the_callback_form_ends_the_sweep_run_with_the_best(store):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    sweep = nt.track_study(study)
    study.optimize(quadratic, n_trials=4, callbacks=[sweep])
    nt.sync()
    run = nt.get_run(sweep.run.run_id)
    assert run.status == "finished"
    assert run.metrics["best_value"] == study.best_value
    assert run.tags["best_trial"] == str(study.best_trial.number)
    first_end = run.end_time

    # More trials of the same loop move the end and the best on; the run stays one run.
    study.optimize(lambda t: 0.0 if t.number == 6 else quadratic(t), n_trials=4,
                   callbacks=[sweep])
    nt.sync()
    run = nt.get_run(sweep.run.run_id)
    assert run.status == "finished" and run.end_time >= first_end
    assert run.metrics["best_value"] == study.best_value == 0.0
    assert run.tags["best_trial"] == "6"
    assert len(run.children) == 8
    assert nt.runs(where="tags.sweep_role = 'sweep'").height == 1


def constrained(trial):
    x = trial.suggest_float("x", 0, 1)
    trial.set_constraint("x_at_least_half", 0.5 - x)
    return x  # minimised: the smallest x is infeasible, the best is the smallest x >= 0.5


def test_a_constrained_study_s_best_is_feasible_and_constraints_are_recorded(store):
    if not hasattr(optuna.trial.Trial, "set_constraint"):
        pytest.skip("trial.set_constraint needs Optuna 5")
    sweep = nt.sweep(constrained, n_trials=12, name="constrained", progress=False,
                     sampler=optuna.samplers.RandomSampler(seed=0))
    study = sweep.study
    values = [t.value for t in study.trials]
    assert min(values) < 0.5 < study.best_value  # the best overall is infeasible

    session = nt.get_run(sweep.run.run_id)
    assert session.metrics["best_value"] == study.best_value
    assert session.tags["best_trial"] == str(study.best_trial.number)
    assert f"best {study.best_value:.6g} (trial {study.best_trial.number})" in repr(sweep)
    best = read_sweep(sweep.sweep_id).best()
    assert (best.trial, best.value) == (study.best_trial.number, study.best_value)
    assert sweep.best_run.metrics["value"] == study.best_value
    for trial in study.trials:
        run = nt.get_run(sweep.trials().filter(
            sweep.trials()["trial"] == trial.number)["run_id"][0])
        assert run.metrics["constraint_x_at_least_half"] == trial.constraints["x_at_least_half"]
        assert run.tags["feasible"] == str(trial.value >= 0.5).lower()
