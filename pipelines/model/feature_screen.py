"""The clock-feature screen: features that tell the snapshot date rather than the account are not trained on.

Split in two so that it runs where the rows are: :func:`snapshot_feature_stats` summarises the rows of one
or more snapshots (a Dask worker summarises its own snapshot), :func:`decide_clock_features` judges the
summaries of all training snapshots. :func:`screen_clock_features` is both on one frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from pipelines.config.model_definition import FeatureScreen

# (modal count, nulls) of each asked feature over the pooled training rows
PooledModal = Callable[[Sequence[str]], dict[str, tuple[int, int]]]


def _values(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.Float64).fill_nan(None)


def snapshot_feature_stats(training: pl.DataFrame, features: Sequence[str]) -> pl.DataFrame:
    """Per feature and snapshot date: ``rows, nulls, modal`` (the commonest non-null value's count),
    ``count, mean, var`` (of the non-null values). Frames of distinct dates may be computed apart and
    concatenated: nothing here mixes two dates."""
    frames = []
    for name in features:  # one group-by per feature column, not per row
        x = _values(name)
        frames.append(training.group_by("as_of_date").agg(
            rows=pl.len(),
            nulls=x.is_null().sum(),
            modal=x.drop_nulls().unique_counts().max().fill_null(0),
            count=x.count(),
            mean=x.mean(),
            var=x.var(ddof=0),
        ).select(pl.lit(name).alias("feature"), pl.all()))
    schema = {"feature": pl.String, "as_of_date": pl.Date, "rows": pl.UInt32, "nulls": pl.UInt32,
              "modal": pl.UInt32, "count": pl.UInt32, "mean": pl.Float64, "var": pl.Float64}
    return pl.concat([f.cast(schema) for f in frames]) if frames else pl.DataFrame(schema=schema)


def pooled_modal(training: pl.DataFrame, features: Sequence[str]) -> dict[str, tuple[int, int]]:
    """(the commonest non-null value's count, nulls) of each of ``features`` over all of ``training``."""
    out = {}
    for name in features:
        x = _values(name)
        row = training.select(x.drop_nulls().unique_counts().max().fill_null(0).alias("modal"),
                              x.null_count().alias("nulls")).row(0)
        out[name] = (int(row[0]), int(row[1]))
    return out


def decide_clock_features(
    stats: pl.DataFrame, features: Sequence[str], screen: FeatureScreen, pooled: PooledModal
) -> dict[str, str]:
    """The features :func:`screen_clock_features` excludes, from the per-snapshot ``stats`` of every training
    snapshot (:func:`snapshot_feature_stats`); ``pooled`` answers for the features near-constant at every
    snapshot (rare: only they need the pooled rows)."""
    excluded: dict[str, str] = {}
    snapshots = stats["as_of_date"].n_unique()
    height = int(stats.filter(pl.col("feature") == features[0])["rows"].sum()) if features else 0
    near_constant: list[str] = []
    shares: dict[str, tuple[float, float]] = {}
    for name in features:
        per = stats.filter(pl.col("feature") == name)
        rows = per["rows"].to_numpy().astype(np.float64)
        nulls = per["nulls"].to_numpy().astype(np.float64)
        modal_share = np.maximum(per["modal"].to_numpy(), nulls) / rows
        if modal_share.min() >= screen.max_modal_share:
            near_constant.append(name)
            continue
        value_share = _between_share(per["count"].to_numpy(), per["mean"].to_numpy(), per["var"].to_numpy())
        p = nulls / rows
        shares[name] = (value_share, _between_share(rows, p, p * (1.0 - p)))
    modal = pooled(near_constant) if near_constant else {}
    for name in features:  # in feature order
        if name in modal:
            if max(modal[name]) / height >= screen.max_modal_share:
                excluded[name] = (f"constant: at least {screen.max_modal_share:.1%} of accounts share one value in "
                                  "the whole training window, so it carries no information")
            else:
                excluded[name] = (f"a clock: at each of the {snapshots} training snapshots at least "
                                  f"{screen.max_modal_share:.1%} of accounts share one value, but the value "
                                  "differs between snapshots, so it only tells the snapshot date")
            continue
        value_share, null_share = shares[name]
        if value_share >= screen.max_date_share:
            excluded[name] = (f"a function of the snapshot date: {value_share:.1%} of its variance lies between "
                              "snapshot dates, almost none between accounts of one snapshot")
        elif null_share >= screen.max_date_share:
            excluded[name] = (f"a function of the snapshot date: whether it is null is {null_share:.1%} "
                              "explained by the snapshot date (missing until the lake holds its window)")
    return excluded


def screen_clock_features(
    training: pl.DataFrame, features: Sequence[str], screen: FeatureScreen
) -> dict[str, str]:
    """Features that tell the snapshot date rather than the account: ``{feature: why}``, in feature order.

    ``training`` is the pooled training snapshots (``as_of_date`` + features). A feature is excluded when

    * at every snapshot it is (near-)constant across accounts (``screen.max_modal_share`` of them on one
      value, null counting as a value): whatever it varies with, it is not the account; or
    * at least ``screen.max_date_share`` of its variance lies between snapshot dates (the correlation
      ratio eta^2 of the values on the date), or of its null indicator's (null before N days of history):
      within a snapshot it says almost nothing, across snapshots it says which snapshot it is.

    Only training rows are screened (never OOT): which features a model has is a training decision.
    """
    return decide_clock_features(snapshot_feature_stats(training, features), features, screen,
                                 lambda names: pooled_modal(training, names))


def _between_share(count: np.ndarray, mean: np.ndarray, var: np.ndarray) -> float:
    """Correlation ratio eta^2: between-group sum of squares / total, from per-group count, mean, variance."""
    ok = (np.asarray(count, dtype=np.float64) > 0) & ~np.isnan(np.asarray(mean, dtype=np.float64))
    n, m, v = (np.asarray(a, dtype=np.float64)[ok] for a in (count, mean, var))
    if n.sum() == 0:
        return 0.0
    grand = float((n * m).sum() / n.sum())
    between = float((n * (m - grand) ** 2).sum())
    within = float((n * np.nan_to_num(v)).sum())
    total = between + within
    return between / total if total > 0 else 0.0
