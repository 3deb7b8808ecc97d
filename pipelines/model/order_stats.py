"""Exact quantiles and AUC of rows spread over many workers, from small summaries of each worker's rows.

Training stores numbers of its rows with every model: the fit sample's lower median of each feature
(reason codes are judged against it), the training window's decile bins (the PSI reference) and the fit
and early-stopping AUC. On a Dask cluster those rows never meet in one process, yet the numbers must be the
ones the local backend computes, to the bit: they are order statistics, so they are found by selection.

* Quantiles: a float32 value maps to a 32-bit key in the same order (:func:`sort_keys`). Each partition
  counts its keys' high 16 bits (:func:`high_counts`, 65,536 counts per feature); the summed counts say in
  which high-bit bin the k-th value lies and how deep (:func:`locate`). A second pass counts the low 16 bits
  of only the keys in those bins (:func:`low_counts`, sparse), which names the k-th value exactly
  (:func:`pick`). The ranks are those polars (:func:`lower_median_rank`) and numpy
  (:func:`inverted_cdf_ranks`) take.
* AUC: with the rows sorted by PD across partitions so that equal PDs share a partition (a Dask sort does),
  each partition's pairs (bad above good, ties one half) are counted inside it (:func:`auc_pairs`) and the
  pairs across partitions from the goods before each one (:func:`auc_from_pairs`). Counts of pairs are
  half-integers, exact in float64, so the AUC is the same rounding of the same fraction as
  ``metrics.auc``'s rank sum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

HIGH_BINS = 1 << 16
_SIGN = np.uint32(0x80000000)

# per (feature index, high bin): the distinct low 16 bits of the keys in that bin and their counts
LowCounts = dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]


def sort_keys(values: np.ndarray) -> np.ndarray:
    """uint32 keys in the order of the float32 ``values`` (no NaN); -0.0 is 0.0, as polars counts it."""
    x = np.asarray(values, dtype=np.float32) + np.float32(0.0)  # -0.0 + 0.0 == +0.0
    bits = x.view(np.uint32)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def key_value(key: int) -> float:
    """The float (float32, widened) a key of :func:`sort_keys` stands for."""
    k = np.uint32(key)
    bits = k & ~_SIGN if k & _SIGN else ~k
    return float(np.array([bits], dtype=np.uint32).view(np.float32)[0])


def present(column: np.ndarray) -> np.ndarray:
    """A float32 feature column's values, nulls (NaN in numpy) left out: what its quantiles are taken of."""
    x = np.asarray(column, dtype=np.float32)
    return x[~np.isnan(x)]


def high_counts(columns: Sequence[np.ndarray]) -> np.ndarray:
    """(features, 65536) counts of each column's present values by the high 16 bits of their key."""
    out = np.zeros((len(columns), HIGH_BINS), dtype=np.int64)
    for i, column in enumerate(columns):
        out[i] = np.bincount(sort_keys(present(column)) >> 16, minlength=HIGH_BINS)
    return out


def lower_median_rank(n: int) -> int:
    """The 0-based rank polars' ``quantile(0.5, interpolation="lower")`` takes of n sorted values."""
    return (n - 1) // 2


def inverted_cdf_ranks(n: int, bins: int) -> np.ndarray:
    """The 0-based ranks ``np.quantile(x, np.arange(1, bins) / bins, method="inverted_cdf")`` takes of n
    sorted values (numpy's own arithmetic: n q - 1, rounded up unless it is whole)."""
    virtual = n * (np.arange(1, bins) / bins) - 1
    previous = np.floor(virtual)
    ranks = np.where(virtual - previous == 0, previous, previous + 1).astype(np.intp)
    ranks[ranks < 0] = 0
    return ranks


def locate(counts: np.ndarray, ranks: Sequence[int]) -> list[tuple[int, int]]:
    """For each 0-based rank among the values ``counts`` (one feature's :func:`high_counts`) describes:
    (the high bin it lies in, its rank inside that bin)."""
    cumulative = np.cumsum(counts)
    found = []
    for rank in ranks:
        b = int(np.searchsorted(cumulative, rank, side="right"))
        found.append((b, int(rank - (cumulative[b] - counts[b]))))
    return found


def low_counts(columns: Sequence[np.ndarray], wanted: Mapping[int, Sequence[int]]) -> LowCounts:
    """For each feature index of ``wanted`` and each of its high bins: the distinct low 16 bits of the keys
    of the column's present values in that bin, with their counts (sorted)."""
    out: LowCounts = {}
    for i, bins in wanted.items():
        keys = sort_keys(present(columns[i]))
        high = keys >> 16
        for b in sorted(set(bins)):
            low, count = np.unique(keys[high == b] & 0xFFFF, return_counts=True)
            out[(i, b)] = (low.astype(np.uint32), count.astype(np.int64))
    return out


def merge_low_counts(a: LowCounts, b: LowCounts) -> LowCounts:
    """Two partitions' (or two sums') :func:`low_counts` as one."""
    out = dict(a)
    for key, (low, count) in b.items():
        if key not in out:
            out[key] = (low, count)
            continue
        both = np.concatenate([out[key][0], low])
        distinct, index = np.unique(both, return_inverse=True)
        out[key] = (distinct, np.bincount(index, weights=np.concatenate([out[key][1], count])).astype(np.int64))
    return out


def pick(counts: LowCounts, feature: int, high_bin: int, rank_in_bin: int) -> float:
    """The value of rank ``rank_in_bin`` inside a high bin, from the merged :func:`low_counts`."""
    low, count = counts[(feature, high_bin)]
    at = int(np.searchsorted(np.cumsum(count), rank_in_bin, side="right"))
    return key_value((high_bin << 16) | int(low[at]))


def bin_counts(column: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Counts of ``metrics.bin_shares``' bins (-inf, e1], ..., (ek, inf), missing, of one partition's column."""
    x = np.asarray(column, dtype=np.float64)
    missing = np.isnan(x)
    counts = np.bincount(np.searchsorted(np.asarray(edges, dtype=np.float64), x[~missing], side="left"),
                         minlength=len(edges) + 1)
    return np.r_[counts, missing.sum()].astype(np.int64)


def auc_pairs(pd_: np.ndarray, bad: np.ndarray) -> tuple[int, int, float]:
    """(goods, bads, pairs) of one partition: pairs counts each (bad, good) with the bad's PD above the good's
    as 1 and a tie as 1/2. Whole tie groups must lie in one partition (see the module docstring)."""
    values, index = np.unique(np.asarray(pd_, dtype=np.float64), return_inverse=True)
    rows = np.bincount(index, minlength=values.size)
    bads = np.bincount(index, weights=np.asarray(bad, dtype=np.float64), minlength=values.size)
    goods = rows - bads
    below = np.cumsum(goods) - goods
    return int(goods.sum()), int(bads.sum()), float((bads * (below + 0.5 * goods)).sum())


def auc_from_pairs(parts: Sequence[tuple[int, int, float]]) -> float:
    """The AUC of rows sorted by PD across partitions, from each partition's :func:`auc_pairs`, in order."""
    goods = np.array([p[0] for p in parts], dtype=np.float64)
    bads = np.array([p[1] for p in parts], dtype=np.float64)
    within = float(sum(p[2] for p in parts))
    across = float((bads * (np.cumsum(goods) - goods)).sum())
    return (within + across) / (bads.sum() * goods.sum())
