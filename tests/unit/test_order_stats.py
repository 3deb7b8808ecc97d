"""Exact quantiles and AUC from per-partition summaries (pipelines/model/order_stats.py).

The expected values are numpy's, polars' and metrics.auc's own on the pooled rows: the Dask backend stores
these numbers with a model, and they must be the ones the local backend would store.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipelines.model import metrics
from pipelines.model import order_stats as order


def _column(seed: int, n: int) -> np.ndarray:
    """float32 with what features hold: ties (DPD 0), negatives, zeros of both signs, infinities, nulls."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1e4, n).astype(np.float32)
    x[rng.random(n) < 0.3] = 0.0
    x[rng.random(n) < 0.05] = -0.0
    x[rng.random(n) < 0.1] = np.nan
    x[:2] = [np.inf, -np.inf][:n]
    return x


def test_keys_sort_as_the_floats_do_and_give_them_back():
    x = order.present(_column(1, 5000))
    keys = order.sort_keys(x)
    # same order as the values (stable, so equal values keep their positions): sorting keys sorts the floats
    np.testing.assert_array_equal(x[np.argsort(keys, kind="stable")], np.sort(x, kind="stable"))
    back = np.array([order.key_value(k) for k in keys])
    np.testing.assert_array_equal(back, x.astype(np.float64))
    # -0.0 and 0.0 are one value (polars counts them as one in n_unique): one key
    assert order.sort_keys(np.array([-0.0, 0.0], dtype=np.float32)).tolist() == [order.sort_keys(np.zeros(1))[0]] * 2


@pytest.mark.parametrize("bins", [4, 10, 20])
def test_decile_ranks_are_numpys(bins):
    # np.quantile of 0..n-1 returns the rank itself, so this compares ranks with what numpy takes
    q = np.arange(1, bins) / bins
    for n in range(1, 400):
        expected = np.quantile(np.arange(n), q, method="inverted_cdf").astype(np.intp)
        np.testing.assert_array_equal(order.inverted_cdf_ranks(n, bins), expected, err_msg=f"n={n}")


def test_the_lower_median_rank_is_polars():
    for n in range(1, 300):
        x = np.random.default_rng(n).normal(size=n)
        assert pl.Series(x).quantile(0.5, interpolation="lower") == np.sort(x)[order.lower_median_rank(n)]


def test_values_of_any_rank_are_found_from_per_partition_counts():
    parts = [_column(seed, n) for seed, n in ((2, 3000), (3, 1), (4, 2500))]
    pooled = np.sort(np.concatenate([order.present(p) for p in parts]) + np.float32(0.0))
    high = sum(order.high_counts([p]) for p in parts)[0]
    assert high.sum() == pooled.size  # nulls are not counted
    ranks = [0, 1, pooled.size // 3, order.lower_median_rank(pooled.size), pooled.size - 2, pooled.size - 1]
    where = order.locate(high, ranks)
    wanted = {0: [b for b, _ in where]}
    low: order.LowCounts = {}
    for p in parts:  # partition by partition, merged as the workers merge them
        low = order.merge_low_counts(low, order.low_counts([p], wanted))
    found = [order.pick(low, 0, b, r) for b, r in where]
    assert found == [float(pooled[r]) for r in ranks]


def test_bin_counts_summed_over_partitions_are_bin_shares():
    parts = [_column(5, 1000), _column(6, 700)]
    pooled = np.concatenate(parts).astype(np.float64)
    edges = [-1e4, 0.0, 5e3]
    counts = sum(order.bin_counts(p, edges) for p in parts)
    np.testing.assert_array_equal(counts.astype(np.float64) / pooled.size, metrics.bin_shares(pooled, edges))


def test_auc_from_sorted_partitions_is_metrics_auc_to_the_bit():
    rng = np.random.default_rng(7)
    pd_ = np.round(rng.random(4000), 2)  # 101 distinct values: ties everywhere
    bad = (rng.random(4000) < pd_ * 0.3).astype(np.int8)
    order_ = np.argsort(pd_, kind="stable")
    p, y = pd_[order_], bad[order_]
    # cut between tie groups only, as a Dask sort does, with an empty partition for good measure
    cuts = [0, int(np.searchsorted(p, 0.3)), int(np.searchsorted(p, 0.3)), int(np.searchsorted(p, 0.71)), p.size]
    pairs = [order.auc_pairs(p[a:b], y[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    assert order.auc_from_pairs(pairs) == metrics.auc(bad, pd_)


def test_a_tie_group_split_between_partitions_is_miscounted():
    # why the sort must keep ties together: a good and a bad tied at 0.5 are one half pair, but split across
    # partitions the bad is counted as above the good
    parts = [order.auc_pairs(np.array([0.5]), np.array([0])), order.auc_pairs(np.array([0.5]), np.array([1]))]
    assert metrics.auc([0, 1], [0.5, 0.5]) == 0.5
    assert order.auc_from_pairs(parts) == 1.0
