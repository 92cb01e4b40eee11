"""``nt.staleness`` and ``nbtrail stale``: a champion on a concept shift, old, drifted, beaten."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import nbtrail as nt
from nbtrail.errors import InvalidInputError, NotFoundError
from nbtrail.registry._staleness import StalenessThresholds
from nbtrail.store import Store

from ..test_cli import assert_one_error_line, call, strict_json

FEATURES = ["x1", "x2", "x3"]  # x3 is noise the labels never depend on


def _rows(seed: int, n: int = 600, *, rule: str = "trained",
          shift: dict[str, float] | None = None) -> pl.DataFrame:
    """Synthetic rows; ``rule="changed"`` labels the same inputs by another rule."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    for i, name in enumerate(FEATURES):
        x[:, i] += (shift or {}).get(name, 0.0)
    y = x[:, 0] + 0.5 * x[:, 1] > 0 if rule == "trained" else x[:, 1] - x[:, 0] > 0
    return pl.DataFrame({**{name: x[:, i] for i, name in enumerate(FEATURES)},
                         "y": y.astype(np.int64)})


def _prices(seed: int, n: int = 600, *, slope: float = 3.0) -> pl.DataFrame:
    """Rows whose numeric target is ``slope * x1 + x2`` plus noise of deviation 0.5."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return pl.DataFrame({**{name: x[:, i] for i, name in enumerate(FEATURES)},
                         "y": slope * x[:, 0] + x[:, 1] + rng.normal(scale=0.5, size=n)})


@dataclass(frozen=True)
class Registry:
    path: Path
    registered_at: dt.datetime  # of churn/1, the champion


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """churn/1 (@champion, @prod) trained on the rule; churn/2 retrained after it changed.

    @prod's policy names roc_auc, which the metrics snapshot lacks. price/1 is a regressor.
    """
    from sklearn.linear_model import LinearRegression, LogisticRegression

    from nbtrail._config import Settings

    base = tmp_path_factory.mktemp("staleness")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(base)
        tracker = nt.Tracker(nt.open_store(base / "store"),
                             Settings(capture_git=False, capture_environment=False))
        for seed, rule in ((0, "trained"), (1, "changed")):
            train, valid = _rows(seed, rule=rule), _rows(seed + 100, rule=rule)
            run = tracker.start_run(name=f"churn-{rule}")
            run.log_dataset(train, name="train", role="train")
            model = LogisticRegression().fit(train.select(FEATURES), train["y"])
            run.log_metric("val_accuracy", model.score(valid.select(FEATURES), valid["y"]))
            model_id = run.log_model(model, "clf", input_example=train.select(FEATURES).head(5))
            run.end()
            nt.register(model_id, name="churn", store=tracker.store)
        price = _prices(0)
        run = tracker.start_run(name="price")
        run.log_dataset(price, name="train", role="train")
        regressor = LinearRegression().fit(price.select(FEATURES), price["y"])
        run.log_metric("val_rmse", 0.5)  # the noise of _prices: what a good fit scores
        model_id = run.log_model(regressor, "reg", input_example=price.select(FEATURES).head(5))
        run.end()
        nt.register(model_id, name="price", store=tracker.store)
        nt.set_alias("churn", "champion", 1, store=tracker.store)
        nt.set_alias("churn", "prod", 1, store=tracker.store)
        nt.set_policy("churn", "prod", metric="roc_auc", data="holdout.parquet", target="y",
                      require_approval=False, store=tracker.store)
        registered_at = nt.model_version("churn/1", store=tracker.store).registered_at
        tracker.store.close()
    return Registry(base / "store", registered_at)


@pytest.fixture
def store(registry: Registry) -> Iterator[Store]:
    opened = nt.open_store(registry.path)
    yield opened
    opened.close()


def soon(registry: Registry) -> dt.datetime:
    return registry.registered_at + dt.timedelta(days=1)


def fired(report: nt.StalenessReport) -> dict[str, bool]:
    return {c.name: c.fired for c in report.criteria}


# -- the criteria ---------------------------------------------------------------------------


def test_fresh_sample_of_the_same_distribution_is_not_stale(store: Store,
                                                            registry: Registry) -> None:
    report = nt.staleness("churn@champion", data=_rows(7), labels="y", now=soon(registry),
                          store=store)
    assert not report.stale and report.reasons == []
    assert report.version == "churn/1" and report.metric == "accuracy"
    assert report.metric_source == "default for a classifier"
    assert report.registered_source == "metrics snapshot 'val_accuracy'"
    assert report.current > 0.9 and report.rows == 600
    assert fired(report) == {"metric_drop": False, "age_days": False,
                             "important_feature_drift": False, "overall_drift": False}
    assert report.verdict.startswith("churn/1 is fresh")
    # The model's predictions on the recent rows are compared with those on its training rows.
    assert report.drift.prediction is not None and not report.drift.prediction.drifted


def test_concept_shift_is_stale_by_its_metric(store: Store, registry: Registry) -> None:
    # Same inputs, labels by another rule: no input drift, yet the model is wrong now.
    report = nt.staleness("churn@champion", data=_rows(7, rule="changed"), labels="y",
                          now=soon(registry), store=store)
    assert report.stale
    drop = next(c for c in report.criteria if c.name == "metric_drop")
    assert drop.fired and drop.value is not None and drop.value > 0.3
    assert drop.threshold == 0.05
    assert fired(report)["important_feature_drift"] is False
    assert report.reasons == [drop.detail] and "accuracy" in drop.detail


def test_relative_threshold_and_training_sample_fallback(store: Store,
                                                         registry: Registry) -> None:
    # The snapshot has no balanced_accuracy: it is recomputed on the training sample.
    report = nt.staleness("churn/1", data=_rows(7), labels="y", metric="balanced_accuracy",
                          thresholds=StalenessThresholds(metric_drop=0.5, relative=True),
                          now=soon(registry), store=store)
    assert report.metric_source == "metric= given"
    assert "recomputed on the training sample" in report.registered_source
    assert report.registered is not None and report.registered > 0.9
    drop = next(c for c in report.criteria if c.name == "metric_drop")
    assert drop.threshold == 0.5 and not drop.fired and "relative" in drop.detail


def test_the_alias_policy_names_the_default_metric(store: Store, registry: Registry) -> None:
    report = nt.staleness("churn@prod", data=_rows(7, rule="changed"), labels="y",
                          now=soon(registry), store=store)
    assert (report.metric, report.metric_source) == ("roc_auc", "the policy of @prod")
    assert report.registered is not None and report.registered > 0.95
    assert report.registered_source.startswith("the metrics snapshot at registration has no "
                                               "'roc_auc': recomputed on the training sample")
    assert report.current < 0.5 and report.reasons[0].startswith("roc_auc ")


def test_a_regressor_is_checked_by_its_rmse(store: Store, registry: Registry) -> None:
    relative = StalenessThresholds(metric_drop=0.5, relative=True)
    fresh = nt.staleness("price/1", data=_prices(7), labels="y", thresholds=relative,
                         now=soon(registry), store=store)
    assert (fresh.metric, fresh.metric_source) == ("rmse", "default for a regressor")
    assert fresh.registered == 0.5 and fresh.current == pytest.approx(0.5, abs=0.1)
    assert not fresh.stale
    shifted = nt.staleness("price/1", data=_prices(7, slope=-3.0), labels="y",
                           thresholds=relative, now=soon(registry), store=store)
    drop = next(c for c in shifted.criteria if c.name == "metric_drop")
    assert shifted.stale and drop.fired and drop.value is not None and drop.value > 5
    text = _prices(7).with_columns(pl.col("y").cast(pl.String))
    with pytest.raises(InvalidInputError, match=r"holds String, but the model needs numbers"):
        nt.staleness("price/1", data=text, labels="y", store=store)


def test_age_fires_after_the_threshold(store: Store, registry: Registry) -> None:
    late = registry.registered_at + dt.timedelta(days=181)
    report = nt.staleness("churn@champion", data=_rows(7), labels="y", now=late, store=store)
    age = next(c for c in report.criteria if c.name == "age_days")
    assert report.stale and age.fired and age.threshold == 180
    assert age.value == pytest.approx(181)
    assert report.reasons == [age.detail]
    younger = nt.staleness("churn@champion", data=_rows(7), labels="y", now=late,
                           thresholds=StalenessThresholds(max_age_days=365), store=store)
    assert not younger.stale


def test_against_a_retrained_challenger(store: Store, registry: Registry) -> None:
    changed = _rows(7, rule="changed")
    report = nt.staleness("churn@champion", data=changed, labels="y", against="churn/2",
                          now=soon(registry), store=store)
    gain = next(c for c in report.criteria if c.name == "challenger_gain")
    assert gain.fired and report.against_value is not None
    assert report.against_value > report.current + 0.3
    assert "churn/2" in gain.detail
    # On data of the old rule the challenger is no better: the criterion stays quiet.
    old = nt.staleness("churn@champion", data=_rows(7), labels="y", against="churn/2",
                       now=soon(registry), store=store)
    assert not old.stale and fired(old)["challenger_gain"] is False


def test_drift_of_an_important_feature_fires_and_of_noise_does_not(
        store: Store, registry: Registry) -> None:
    moved = nt.staleness("churn@champion", data=_rows(7, shift={"x1": 2.0}), labels="y",
                         now=soon(registry), store=store)
    important = next(c for c in moved.criteria if c.name == "important_feature_drift")
    assert important.fired and "x1" in important.detail
    assert moved.drift.drifted == ["x1"] and moved.stale
    noise = nt.staleness("churn@champion", data=_rows(7, shift={"x3": 2.0}), labels="y",
                         now=soon(registry), store=store)
    assert noise.drift.drifted == ["x3"]
    assert fired(noise) == {"metric_drop": False, "age_days": False,
                            "important_feature_drift": False, "overall_drift": False}
    overall = next(c for c in noise.criteria if c.name == "overall_drift")
    assert overall.value == pytest.approx(1 / 3) and overall.threshold == 0.5
    everything = nt.staleness("churn@champion", labels="y", now=soon(registry), store=store,
                              data=_rows(7, shift={"x1": 2.0, "x2": 2.0, "x3": 2.0}))
    assert fired(everything)["overall_drift"]


# -- display and conversions ----------------------------------------------------------------


def test_report_renders_and_converts(store: Store, registry: Registry,
                                     tmp_path: Path) -> None:
    path = tmp_path / "recent.parquet"
    recent = _rows(7, rule="changed").with_columns(
        y=pl.when(pl.int_range(pl.len()) < 5).then(None).otherwise(pl.col("y")))
    recent.write_parquet(path)
    report = nt.staleness("churn@champion", data=path, labels="y", now=soon(registry),
                          store=store)
    assert report.rows == 595 and "5 recent row(s) without a label were left out" in \
        report.notes
    frame = report.to_polars()
    assert frame.columns == ["criterion", "value", "threshold", "fired", "detail"]
    assert frame.filter(pl.col("fired"))["criterion"].to_list() == ["metric_drop"]
    out = json.loads(json.dumps(report.to_dict()))
    assert out["stale"] is True and out["reasons"] == report.reasons
    assert out["registered_at"] == registry.registered_at.isoformat()
    assert out["drift"]["verdict"] == report.drift.verdict
    html = report._repr_html_()
    assert "<script" not in html and "<iframe" not in html
    assert "stale" in html and "metric_drop" in html and "val_accuracy" in html


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(("ref", "error", "message"), [
    ("churn@nope", NotFoundError, "churn has no alias @nope"),
    ("nope@champion", NotFoundError, "no registered model 'nope'"),
    ("mdl_123", InvalidInputError, "is not a registry reference"),
])
def test_unknown_reference(store: Store, ref: str, error: type[Exception],
                           message: str) -> None:
    with pytest.raises(error, match=message):
        nt.staleness(ref, data=_rows(7), labels="y", store=store)


def test_bad_labels_and_thresholds(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="has no label column 'outcome'"):
        nt.staleness("churn@champion", data=_rows(7), labels="outcome", store=store)
    text = _rows(7).with_columns(pl.col("y").cast(pl.String))
    with pytest.raises(InvalidInputError, match=r"label column 'y' .* needs numeric class"):
        nt.staleness("churn@champion", data=text, labels="y", store=store)
    with pytest.raises(InvalidInputError, match="lacks the model's input column"):
        nt.staleness("churn@champion", data=_rows(7).drop("x2"), labels="y", store=store)
    with pytest.raises(InvalidInputError, match="metric 'auc' is not one nbtrail computes"):
        nt.staleness("churn@champion", data=_rows(7), labels="y", metric="auc", store=store)
    with pytest.raises(InvalidInputError, match="max_age_days must be a number"):
        StalenessThresholds(max_age_days=-1)
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        nt.staleness("churn@champion", data=_rows(7), labels="y", store=store,
                     now=dt.datetime(2026, 1, 1))  # naive: the mistake under test


# -- the command line -----------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, frame in (("fresh", _rows(7)), ("shifted", _rows(7, rule="changed")),
                        ("text", _rows(7).with_columns(pl.col("y").cast(pl.String)))):
        out[name] = tmp_path / f"{name}.parquet"
        frame.write_parquet(out[name])
    return out


def stale(capsys: pytest.CaptureFixture[str], registry: Registry, *argv: str
          ) -> tuple[int, str, str]:
    return call(capsys, "--store", str(registry.path), "stale", *argv)


def test_cli_exit_status(capsys: pytest.CaptureFixture[str], registry: Registry,
                         files: dict[str, Path]) -> None:
    code, out, _ = stale(capsys, registry, "churn@champion", str(files["fresh"]),
                         "--labels", "y", "--fail-if-stale")
    assert code == 0 and out.startswith("churn/1 is fresh") and "metric_drop" in out
    code, out, _ = stale(capsys, registry, "churn@champion", str(files["shifted"]),
                         "--labels", "y")
    assert code == 0 and out.startswith("churn/1 is stale: accuracy")
    code, out, _ = stale(capsys, registry, "churn@champion", str(files["shifted"]),
                         "--labels", "y", "--against", "churn/2", "--fail-if-stale",
                         "--json")
    report = strict_json(out)
    assert code == 1 and report["stale"] is True
    assert {c["name"] for c in report["criteria"] if c["fired"]} == {"metric_drop",
                                                                     "challenger_gain"}


@pytest.mark.parametrize(("argv", "message"), [
    (["churn@nope", "{fresh}", "--labels", "y"], "churn has no alias @nope"),
    (["churn@champion", "{fresh}", "--labels", "outcome"], "no label column 'outcome'"),
    (["churn@champion", "{text}", "--labels", "y"], "needs numeric class labels"),
    (["churn@champion", "missing.parquet", "--labels", "y"], "does not exist"),
    (["churn@champion", "{fresh}", "--labels", "y", "--metric", "auc"], "metric 'auc'"),
    (["churn@champion", "{fresh}"], "--labels"),
])
def test_cli_errors_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str],
                                            registry: Registry, files: dict[str, Path],
                                            argv: list[str], message: str) -> None:
    code, out, err = stale(capsys, registry, *(a.format(**files) for a in argv))
    assert (code, out) == (2, "")
    assert_one_error_line(err)
    assert message in err
