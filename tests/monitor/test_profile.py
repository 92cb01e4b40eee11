import math

import numpy as np
import polars as pl
import pytest

from nbtrail.monitor._profile import Binner, profile_frame, scan
from nbtrail.tracking._datasets import percentile_bins


@pytest.mark.parametrize("values", [
    np.random.default_rng(0).normal(size=50_000),
    np.random.default_rng(1).poisson(3, 50_000).astype(float),       # every value on an edge
    np.random.default_rng(2).lognormal(0, 2, 50_000),                # skewed
    np.r_[np.random.default_rng(3).normal(size=1000), [math.inf, -math.inf, 1e300]],
])
def test_binner_counts_exactly_like_a_binary_search(values):
    edges = sorted(set(np.quantile(values[np.isfinite(values)], np.linspace(0.01, 0.99, 99),
                                   method="lower")))
    probe = np.r_[values, edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)]
    expected = np.bincount(np.searchsorted(edges, probe, side="left"), minlength=len(edges) + 1)
    assert Binner(edges).count(probe).tolist() == expected.tolist()


def test_scan_matches_the_stored_profile_and_samples_evenly():
    values = np.random.default_rng(4).normal(size=1_200_000)
    frame = pl.DataFrame({"x": values, "c": np.where(values > 0, "pos", "neg")})
    bins = percentile_bins(values)
    profiles, sample = scan(frame.lazy(), {"x": "numeric", "c": "categorical"},
                            edges={"x": bins["percentiles"]}, sample_rows=100_000)
    assert list(profiles["x"].counts) == bins["counts"]  # batches add up to the whole
    assert profiles["c"].categories == {"pos": int((values > 0).sum()),
                                        "neg": int((values <= 0).sum())}
    assert sample is not None and sample.height == 100_000
    assert sample["x"].to_list() == values[::12].tolist()


def test_profile_frame_keeps_free_text_out_of_drift():
    frame = pl.DataFrame({"id": [f"user-{i}" for i in range(500)], "n": list(range(500))})
    profiles = profile_frame(frame.lazy())
    assert profiles["id"].kind == "other"
    assert profiles["n"].kind == "numeric" and sum(profiles["n"].counts) == 500


def test_binner_for_integer_columns_is_exact_beyond_the_edges():
    values = np.random.default_rng(5).poisson(4, 20_000).astype(float)
    edges = sorted(set(np.quantile(values, np.linspace(0.01, 0.99, 99), method="lower")))
    probe = np.r_[values, np.arange(-5.0, 40.0)]
    expected = np.bincount(np.searchsorted(edges, probe, side="left"), minlength=len(edges) + 1)
    assert Binner(edges, integers=True).count(probe).tolist() == expected.tolist()
