import json

import numpy as np
import polars as pl
import pytest

import nbtrail as nt
from nbtrail import cli
from nbtrail.errors import InvalidInputError
from nbtrail.monitor import Thresholds

from .conftest import FEATURES, sample, write_log


def rows(report) -> dict[str, dict]:
    return {row["feature"]: row for row in report.to_polars().to_dicts()}


def test_a_fresh_sample_of_the_same_distribution_does_not_drift(trained):
    model_id, model = trained
    fresh = sample(3000, seed=2)
    report = nt.drift(model_id, fresh.assign(prediction=model.predict(fresh)))
    assert report.drifted == []
    assert not report.has_drift
    assert report.prediction is not None and not report.prediction.drifted
    table = report.to_polars()
    assert table["feature"].to_list() == [*FEATURES, "prediction"]
    assert table.columns == ["feature", "kind", "test", "statistic", "p_value", "psi",
                             "psi_threshold", "p_threshold", "drifted", "reason",
                             "n_reference", "n_current"]
    assert table["psi"].max() < 0.05


@pytest.mark.parametrize(("change", "drifted"), [
    ({"shift": 12.0}, ["amount"]),                                            # mean shift
    ({"plans": ("basic", "plus", "pro", "trial"), "shares": (0.4, 0.25, 0.15, 0.2)},
     ["plan"]),                                                               # new category
    ({"shares": (0.2, 0.3, 0.5)}, ["plan"]),                                  # proportions
])
def test_shifted_data_drifts(trained, change, drifted):
    model_id, _ = trained
    report = nt.drift(model_id, sample(3000, seed=3, **change), log=False)
    assert report.drifted == drifted
    assert report.has_drift and report.verdict.startswith("drift")
    found = rows(report)[drifted[0]]
    assert found["psi"] >= 0.2 or (found["p_value"] < 0.05 and found["statistic"] >= 0.1)
    if "plans" in change:
        assert "new categories 'trial'" in found["reason"]


def test_ks_and_chi_square_agree_with_scipy_on_small_data(home):
    from scipy import stats

    reference, current = sample(400, seed=11), sample(300, seed=12, shift=3.0)
    report = nt.drift(reference, current)
    found = rows(report)
    # Both samples are counted at the reference's percentiles: the KS distance there is
    # within one percentile step of the exact two-sample one.
    exact = stats.ks_2samp(reference.amount, current.amount)
    assert found["amount"]["statistic"] == pytest.approx(exact.statistic, abs=0.02)
    table = pd_crosstab(reference.plan, current.plan)
    chi2 = stats.chi2_contingency(table, correction=False)
    assert found["plan"]["p_value"] == pytest.approx(chi2.pvalue, rel=1e-6)


def pd_crosstab(a, b):
    values = sorted(set(a) | set(b))
    return [[int((a == v).sum()) for v in values], [int((b == v).sum()) for v in values]]


def test_prediction_log_is_read_and_predictions_drift(trained, tmp_path):
    model_id, model = trained
    shifted = sample(2000, seed=4, shift=25.0)
    ids = write_log(tmp_path / "log", shifted, model, model_id=model_id, files=3)
    (tmp_path / "log" / "notes.txt").write_text("not a log file")
    report = nt.drift(model_id, tmp_path / "log")
    assert report.current == str(tmp_path / "log")
    assert [f.n_current for f in report.features] == [2000] * 3
    assert report.drifted == ["amount"]
    assert report.prediction is not None and report.prediction.drifted  # more "1" predicted
    labels = pl.DataFrame({"request_id": ids[::2],
                           "label": (shifted.amount > 100).astype(int).to_numpy()[::2]})
    with_labels = nt.drift(model_id, tmp_path / "log", labels=labels, log=False)
    assert with_labels.metric.name == "accuracy"
    assert with_labels.metric.rows == 1000
    assert with_labels.metric.reference == 0.97
    assert with_labels.metric.reference_key == "val_accuracy"
    assert 0.5 < with_labels.metric.current <= 1.0


def test_labels_of_requests_with_several_rows_need_their_position(trained, tmp_path):
    model_id, model = trained
    rows = sample(300, seed=4)
    truth = (rows.amount > 100).astype(int).to_numpy()
    write_log(tmp_path / "log", rows, model, rows_per_request=10)
    request_ids = [f"req_{i // 10:06d}" for i in range(300)]
    labels = pl.DataFrame({"request_id": request_ids, "label": truth})
    with pytest.raises(InvalidInputError, match="add a 'row' column"):
        nt.drift(model_id, tmp_path / "log", labels=labels, log=False)
    labels = labels.with_columns(row=pl.Series([i % 10 for i in range(300)]))
    report = nt.drift(model_id, tmp_path / "log", labels=labels, log=False)
    assert report.metric.rows == 300
    assert report.metric.current == pytest.approx((model.predict(rows) == truth).mean())


def test_degraded_metric_is_part_of_the_verdict(trained):
    model_id, model = trained
    fresh = sample(1000, seed=5)
    wrong = 1 - (fresh.amount > 100).astype(int).to_numpy()
    report = nt.drift(model_id, fresh.assign(prediction=model.predict(fresh)), labels=wrong,
                      log=False)
    assert report.drifted == [] and report.metric.degraded and report.has_drift
    with pytest.raises(InvalidInputError, match="3 labels for 1000 rows"):
        nt.drift(model_id, fresh.assign(prediction=model.predict(fresh)), labels=[1, 0, 1])
    with pytest.raises(InvalidInputError, match="no predictions"):
        nt.drift(model_id, fresh, labels=wrong)


def test_log_larger_than_one_batch_streams(trained, tmp_path):
    model_id, model = trained
    big = sample(30_000, seed=6)
    write_log(tmp_path / "log", big, model, files=4)
    report = nt.drift(model_id, tmp_path / "log", log=False)
    assert report.features[0].n_current == 30_000
    assert report.drifted == []


def test_bad_logs_are_clear_errors(trained, tmp_path):
    model_id, _ = trained
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="no prediction log in"):
        nt.drift(model_id, tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "predictions-20261123T120000Z-1.jsonl").write_text('{"a": 1}\n')
    with pytest.raises(InvalidInputError, match="does not hold prediction logs"):
        nt.drift(model_id, tmp_path / "other")
    with pytest.raises(InvalidInputError, match="does not exist"):
        nt.drift(model_id, tmp_path / "typo")
    with pytest.raises(InvalidInputError, match="none of the reference's columns"):
        nt.drift(model_id, pl.DataFrame({"z": [1, 2]}))


def test_report_is_stored_as_a_monitoring_run_linked_to_the_model(trained, tmp_path):
    model_id, _ = trained
    report = nt.drift(model_id, sample(1000, seed=7, shift=20.0))
    assert report.run_id is not None
    run = nt.get_run(report.run_id)
    assert run.experiment == "monitoring"
    assert run.tags["nbtrail.kind"] == "monitoring" and run.tags["verdict"] == "drift"
    assert run.tags["model_id"] == model_id
    assert run.metrics["drifted_features"] == 1 and run.metrics["psi.amount"] >= 0.2
    assert {a["name"] for a in run.artifacts} == {"drift.html", "drift.json"}
    down = nt.lineage(model_id, direction="down")
    assert (model_id, report.run_id, "monitored") in down.edges.rows()
    stored = nt.artifact_path(report.run_id, "drift.html").read_text()
    assert report.run_id in stored and "amount" in stored
    assert json.loads(nt.artifact_path(report.run_id, "drift.json").read_text())["drifted"] == [
        "amount"]


def test_html_is_static_and_saved_standalone(trained, tmp_path):
    model_id, _ = trained
    report = nt.drift(model_id, sample(500, seed=8, shift=20.0), log=False)
    html = report._repr_html_()
    for banned in ("<script", "<iframe", "http://", "https://"):
        assert banned not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<svg" in html  # a chart of the drifted feature
    page = report.save_html(tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and report.verdict in page


def test_thresholds_change_the_verdict(home):
    reference, current = sample(2000, seed=1), sample(2000, seed=2, shift=3.0)
    assert nt.drift(reference, current).drifted == []
    strict = nt.drift(reference, current, thresholds=Thresholds(psi=0.02))
    assert strict.drifted == ["amount"]
    with pytest.raises(InvalidInputError, match="p_value must be in"):
        Thresholds(p_value=0)
    with pytest.raises(InvalidInputError, match="psi must be a number"):
        Thresholds(psi=-1)


def test_parquet_reference_and_current(home, tmp_path):
    sample(5000, seed=1).to_parquet(tmp_path / "ref.parquet")
    sample(5000, seed=2, shift=10.0).to_parquet(tmp_path / "cur.parquet")
    report = nt.drift(tmp_path / "ref.parquet", tmp_path / "cur.parquet")
    assert report.drifted == ["amount"] and report.run_id is None


# -- the command line -----------------------------------------------------------------------


def test_cli_exit_codes(trained, tmp_path, capsys):
    model_id, model = trained
    write_log(tmp_path / "same", sample(1500, seed=9), model)
    write_log(tmp_path / "shifted", sample(1500, seed=9, shift=20.0), model)
    store = ["--store", str(nt.config.current.resolve_home())]
    assert cli.main(["drift", model_id, str(tmp_path / "same"), "--fail-on-drift", *store]) == 0
    assert "no drift" in capsys.readouterr().out
    assert cli.main(["drift", model_id, str(tmp_path / "shifted"), *store]) == 0
    assert cli.main(["drift", model_id, str(tmp_path / "shifted"), "--fail-on-drift",
                     "--html", str(tmp_path / "r.html"), *store]) == 1
    out = capsys.readouterr().out
    assert "amount" in out and "recorded as monitoring run" in out
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert cli.main(["drift", model_id, str(tmp_path / "shifted"), "--json", "--no-log",
                     *store]) == 0
    assert json.loads(capsys.readouterr().out)["drifted"] == ["amount"]
    for bad in (["drift", "mdl_unknown", str(tmp_path / "same")],
                ["drift", model_id, str(tmp_path / "nowhere")],
                ["drift", model_id, str(tmp_path / "same"), "--psi", "-1"]):
        assert cli.main([*bad, *store]) == 2
        err = capsys.readouterr().err
        assert err.startswith("nbtrail: error:") and err.count("\n") == 1, err


def test_cli_validate(trained, tmp_path, capsys):
    model_id, _ = trained
    store = ["--store", str(nt.config.current.resolve_home())]
    data = sample(100, seed=1)
    data.loc[0, "plan"] = "gold"
    data.to_parquet(tmp_path / "new.parquet")
    assert cli.main(["validate", model_id, str(tmp_path / "new.parquet"), *store]) == 0
    assert "unseen_category" in capsys.readouterr().out
    assert cli.main(["validate", model_id, str(tmp_path / "new.parquet"), "--fail-on-problems",
                     "--json", *store]) == 1
    assert json.loads(capsys.readouterr().out)["problems"][0]["examples"] == "'gold'"
    np.testing.assert_equal(cli.main(["validate", "mdl_x", "nope.parquet", *store]), 2)


def test_log_written_by_the_serving_runtime_is_read(trained, tmp_path):
    from nbtrail.serving._predlog import PredictionLog

    model_id, model = trained
    rows = sample(3000, seed=12, shift=20.0)
    log = PredictionLog(tmp_path / "served", max_bytes=100_000)  # rotates into many files
    for start in range(0, len(rows), 50):
        part = rows.iloc[start:start + 50]
        log.append(request_id=f"req_{start}", model="churn", model_id=model_id,
                   model_sha256="ab" * 32, columns={c: part[c].tolist() for c in part},
                   predictions=model.predict(part).tolist(),
                   probabilities=[{"0": 1 - p, "1": p} for p in model.predict_proba(part)[:, 1]])
    log.close()
    assert len(list((tmp_path / "served").glob("predictions-*.jsonl"))) > 3
    report = nt.drift(model_id, tmp_path / "served", log=False)
    assert [f.n_current for f in report.features] == [3000] * 3
    assert report.drifted == ["amount"] and report.prediction.drifted
