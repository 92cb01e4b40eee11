import numpy as np
import polars as pl
import pytest

import nbtrail as nt
from nbtrail.errors import InvalidInputError, NotFoundError

from .conftest import sample


def problems(report) -> dict[tuple[str, str], dict]:
    return {(row["column"], row["problem"]): row for row in report.to_polars().to_dicts()}


def test_clean_data_has_no_problem(trained):
    model_id, _ = trained
    report = nt.validate(sample(500, seed=7), against=model_id)
    assert report.ok and bool(report)
    assert report.to_polars().is_empty()
    assert "valid" in report._repr_html_()


def test_each_kind_of_problem_is_found_with_counts_and_examples(trained):
    model_id, _ = trained
    data = sample(1000, seed=8)
    data = data.drop(columns=["visits"]).assign(extra=1)        # missing + unexpected column
    data.loc[:9, "amount"] = np.nan                             # 10 nulls
    data.loc[10:12, "amount"] = [1e6, 2e6, -1e6]                # 3 out of range
    data.loc[20:24, "plan"] = "enterprise"                      # 5 unseen categories
    found = problems(nt.validate(data, against=model_id))
    assert set(found) == {("visits", "missing_column"), ("extra", "unexpected_column"),
                          ("amount", "nulls"), ("amount", "out_of_range"),
                          ("plan", "unseen_category")}
    assert found[("amount", "nulls")]["count"] == 10
    assert found[("amount", "out_of_range")]["count"] == 3
    assert "1000000.0" in found[("amount", "out_of_range")]["examples"]
    assert found[("plan", "unseen_category")]["count"] == 5
    assert found[("plan", "unseen_category")]["examples"] == "'enterprise'"
    assert found[("visits", "missing_column")]["count"] is None


def test_wrong_types_are_found(trained):
    model_id, _ = trained
    data = pl.from_pandas(sample(100, seed=9)).with_columns(
        pl.col("amount").cast(pl.String),                       # text where numbers belong
        (pl.col("visits") + 0.5).alias("visits"),               # fractions in an int column
    ).with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("n/a"))
                   .otherwise(pl.col("amount")).alias("amount"))
    found = problems(nt.validate(data, against=model_id))
    assert found[("amount", "type")]["count"] == 1
    assert found[("amount", "type")]["examples"] == "'n/a'"
    assert found[("visits", "type")]["count"] == 100
    assert "fractional" in found[("visits", "type")]["detail"]


def test_report_renders_escaped_html(trained):
    model_id, _ = trained
    data = sample(50, seed=3).assign(**{"<b>x</b>": 1})
    html = nt.validate(data, against=model_id)._repr_html_()
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert "<script" not in html


def test_against_a_frame_and_bad_references(trained, tmp_path):
    report = nt.validate(sample(200, seed=4, shift=500), against=sample(200, seed=5))
    assert {p.problem for p in report.problems} == {"out_of_range"}
    with pytest.raises(NotFoundError, match="no model"):
        nt.validate(sample(10, seed=1), against="mdl_nope")
    with pytest.raises(InvalidInputError, match="does not exist"):
        nt.validate(tmp_path / "missing.parquet", against=sample(10, seed=1))
    (tmp_path / "data.csv").write_text("a\n1\n")
    with pytest.raises(InvalidInputError, match="neither a prediction log"):
        nt.validate(tmp_path / "data.csv", against=sample(10, seed=1))


def test_a_prediction_log_is_validated_on_its_inputs(trained, tmp_path):
    from .conftest import write_log

    model_id, model = trained
    rows = sample(300, seed=6)
    rows.loc[0, "amount"] = 1e9
    write_log(tmp_path / "log", rows, model)
    report = nt.validate(tmp_path / "log", against=model_id)
    assert report.rows == 300
    assert [(p.column, p.problem, p.count) for p in report.problems] == [
        ("amount", "out_of_range", 1)]


def test_validate_and_drift_read_and_record_in_the_store_given(trained, home, tmp_path):
    model_id, _ = trained
    store = nt.open_store(home)
    elsewhere = tmp_path / "elsewhere"
    with nt.config(home=str(elsewhere)):  # the configured store knows no model
        with pytest.raises(NotFoundError):
            nt.validate(sample(50, seed=2), against=model_id)
        assert nt.validate(sample(500, seed=7), against=model_id, store=store).ok
        report = nt.drift(model_id, sample(500, seed=3), store=store)
    assert report.run_id is not None
    assert store.get_run(report.run_id).tags["model_id"] == model_id
    assert not elsewhere.exists()
