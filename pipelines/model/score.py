"""Scoring: PD, score points, grade and reason codes for every active/frozen account on a date.

The pure part turns a feature snapshot and a booster into a score frame; :func:`reason_codes` is
exported on its own so the decisions stage can ask for exact reasons on exactly the accounts that get
an adverse action or a collections contact. Reasons are the features that raised this account's PD the
most (positive SHAP contributions on the log-odds scale), named by their feature-dictionary key, and only
those whose value for this account raises PD against the model's reference (:func:`reason_reference`: the
median account of its training sample, fixed with the model, so no other customer's data, faulty or not,
moves anyone's reasons): a feature constant across tonight's book, or one the dictionary does not allow as
a customer reason (the lender's own actions), is never a reason. PD is the trees' margin through the recalibration stored in
the model (:class:`PlattCalibration`), monotone, so grades and reasons keep the trees' ranking.

Cost: exact TreeSHAP (``pred_contribs``) is O(trees x leaves x depth^2) per account; Saabas
approximations (``approx_contribs``) one root-to-leaf walk per tree. Measured per 100k accounts with the
demo model (300 trees, depth 4, 47 features, nthread 2, on a busy 2-core machine): PD 0.8 s, approx
3.5 s, exact 22 s; approx names the same first reason as exact for only ~74% of accounts, so it is not
good enough to show a customer. ``model.reason_code_method: mixed`` therefore spends exact SHAP where a
reason is shown: the score stage decides first (actions never depend on reasons) and passes the accounts
acted on as ``acted_on`` (:func:`add_reasons`), plus where the definition expects an action; the
approximation elsewhere. The ``reason_method`` column says which was used; decide checks it.

Only :func:`run_scoring` at the bottom touches the disk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import polars as pl
import xgboost as xgb

from pipelines.config.model_definition import ModelDefinition
from pipelines.domain.feature_dictionary import KEY_COLUMNS, reason_features
from pipelines.model.pd import feature_matrix, model_features, score_pd

# SHAP matrices are rows x (features + 1) floats; batches bound the peak memory on a big book.
_BATCH_ROWS = 262_144

Method = Literal["exact", "approx", "mixed"]


Reference = Mapping[str, float | None]


def reason_reference(
    features: pl.DataFrame | pl.LazyFrame, names: Sequence[str], trained: Reference | None = None
) -> dict[str, float | None]:
    """The reference value of each feature a reason is judged against.

    Without ``trained``: what the middle account of ``features`` has: the lower median of the non-null
    values (an observed value: DPD 0, not 0.5), or None (null) when more than half has no value. Training
    stores this of its fit sample with the model (``metrics.json``, ``reason_reference``) and scoring
    passes it as ``trained``: reasons are then judged against a population fixed with the model, so one
    customer's faulty data cannot change another's reasons (a book median moves with every account).
    A feature constant across ``features`` (tonight's book) takes that constant as its reference either
    way: it equals its reference on every account, so it is nobody's reason. A feature missing from
    ``trained`` (a model registered before it was stored) falls back to the book's median. Scoring part of
    a book (a shard, the exact/approx split) must pass the whole book's reference.
    """
    if not names:
        return {}
    values = [pl.col(n).cast(pl.Float64).fill_nan(None) for n in names]
    row = features.lazy().select(
        pl.len().alias("_rows"),
        *(v.null_count().alias(f"_nulls_{i}") for i, v in enumerate(values)),
        *(v.drop_nulls().quantile(0.5, interpolation="lower").alias(f"_median_{i}") for i, v in enumerate(values)),
        *(v.n_unique().alias(f"_distinct_{i}") for i, v in enumerate(values)),
        *(v.first().alias(f"_first_{i}") for i, v in enumerate(values)),
    ).collect().row(0, named=True)
    out: dict[str, float | None] = {}
    for i, name in enumerate(names):
        if row[f"_distinct_{i}"] == 1:  # one value (nulls included) across tonight's book
            out[name] = row[f"_first_{i}"]
        elif trained is not None and name in trained:
            out[name] = trained[name]
        else:
            out[name] = None if 2 * row[f"_nulls_{i}"] > row["_rows"] else row[f"_median_{i}"]
    return out


def reason_codes(
    booster: xgb.Booster,
    frame: pl.DataFrame,
    count: int = 3,
    approx: bool = False,
    nthread: int = 1,
    reference: Reference | None = None,
) -> pl.DataFrame:
    """The ``count`` features that raised each account's PD the most: ``account_id, reason_1..count``.

    A feature is a reason for an account only when all of these hold (an adverse-action reason must be
    specific to the customer and accurate):

    * the feature dictionary allows it as a customer reason (``Feature.reason``: the customer's own
      behaviour or standing, not the lender's actions);
    * the account's value differs from the reference (:func:`reason_reference`: the model's, or the
      book's median): a feature with no variance in tonight's book is nobody's reason;
    * its TreeSHAP contribution is positive (it raised this account's PD), and
    * putting the reference value in its place lowers this account's PD (the value raises PD relative
      to the population's reference, checked on the model itself, one candidate at a time).

    Reasons come in falling SHAP order; an account with fewer than ``count`` gets nulls. Ties keep the
    model's feature order so the result is deterministic. ``approx=True`` uses Saabas contributions for
    the ranking (far cheaper, not exact attributions); the counterfactual check is exact either way.
    ``reference`` defaults to that of ``frame`` itself.
    """

    names = model_features(booster)
    features = np.asarray(names, dtype=object)
    if reference is None:
        reference = reason_reference(frame, names)
    ref = np.asarray([np.nan if reference.get(n) is None else reference[n] for n in names], dtype=np.float32)
    allowed = np.isin(features, list(reason_features()))
    booster.set_param({"nthread": nthread})
    columns: list[list[np.ndarray]] = [[] for _ in range(count)]
    for start in range(0, frame.height, _BATCH_ROWS):  # loops over batches, not rows
        part = frame.slice(start, _BATCH_ROWS)
        x = feature_matrix(part, names)
        chosen = _reasons_of_batch(booster, x, ref, allowed, count, approx, nthread)
        picked = np.where(chosen >= 0, features[np.maximum(chosen, 0)], None)
        for i in range(count):
            columns[i].append(picked[:, i])
    reasons = {
        f"reason_{i + 1}": pl.Series(
            f"reason_{i + 1}",
            np.concatenate(columns[i]).tolist() if columns[i] else [],
            dtype=pl.String,
        )
        for i in range(count)
    }
    return pl.DataFrame({"account_id": frame["account_id"], **reasons})


def _reasons_of_batch(
    booster: xgb.Booster,
    x: np.ndarray,
    ref: np.ndarray,
    allowed: np.ndarray,
    count: int,
    approx: bool,
    nthread: int,
) -> np.ndarray:
    """Column indices of each row's reasons (-1: none), see :func:`reason_codes`."""
    names = model_features(booster)
    rows = np.arange(x.shape[0])
    chosen = np.full((x.shape[0], count), -1, dtype=np.int64)
    if x.shape[0] == 0:
        return chosen

    def dmatrix(m: np.ndarray) -> xgb.DMatrix:
        return xgb.DMatrix(m, feature_names=names, missing=np.nan, nthread=nthread)

    contribs = booster.predict(dmatrix(x), pred_contribs=True, approx_contribs=approx)[:, :-1]  # last: bias
    at_reference = (x == ref) | (np.isnan(x) & np.isnan(ref))
    strength = np.where(allowed & ~at_reference & (contribs > 0.0), contribs, -np.inf)
    order = np.argsort(-strength, axis=1, kind="stable")
    margin = booster.predict(dmatrix(x), output_margin=True)
    found = np.zeros(x.shape[0], dtype=np.int64)
    # Candidates are tried best first, one per row per round; rows leave once they have `count` reasons
    # or no candidate left, so a round predicts only the rows still open (a few rounds in practice).
    for k in range(order.shape[1]):
        col = order[:, k]
        open_rows = rows[(found < count) & np.isfinite(strength[rows, col])]
        if open_rows.size == 0:
            break
        swapped = x[open_rows].copy()
        swapped[np.arange(open_rows.size), col[open_rows]] = ref[col[open_rows]]
        raises = margin[open_rows] - booster.predict(dmatrix(swapped), output_margin=True) > 0.0
        hit = open_rows[raises]
        chosen[hit, found[hit]] = col[hit]
        found[hit] += 1
    return chosen


def needs_exact_reasons(
    scored: pl.DataFrame, features: pl.DataFrame, definition: ModelDefinition, previous_pd: pl.DataFrame | None
) -> pl.Series:
    """Accounts that may get an adverse action or a collections contact, per the definition's policy.

    ``scored`` holds ``account_id, pd, grade``; ``features`` the snapshot (for e.g. the DPD feature);
    ``previous_pd`` the last scoring run's ``account_id, pd`` (a PD rise may trigger a limit decrease).
    """
    policy = definition.reason_codes
    frame = scored.select("account_id", "pd", "grade").join(
        features.select("account_id", *policy.exact_when_positive), on="account_id", how="left", maintain_order="left"
    )
    flag = pl.col("grade").is_in(list(policy.exact_for_grades))
    for name in policy.exact_when_positive:
        flag = flag | (pl.col(name).fill_null(0) > 0)
    rise = policy.exact_on_pd_rise_above
    if rise is not None and previous_pd is not None:
        frame = frame.join(
            previous_pd.select("account_id", pl.col("pd").alias("_previous_pd")),
            on="account_id",
            how="left",
            maintain_order="left",
        )
        flag = flag | (pl.col("pd") - pl.col("_previous_pd") > rise).fill_null(False)
    return frame.select(flag.alias("exact"))["exact"]


def score_pd_frame(
    booster: xgb.Booster, features: pl.DataFrame, definition: ModelDefinition, model_version: str
) -> pl.DataFrame:
    """PD, score and grade for every row of a feature snapshot, sorted by account_id; reasons still null.

    What the decide step needs to pick actions (reasons only word them), so the score stage can decide
    first and then spend exact reasons where a decision will be read (:func:`add_reasons`).
    """
    snapshot = features.sort("account_id")
    pd_, score, grade = score_pd(booster, snapshot, definition)
    return snapshot.select(*KEY_COLUMNS).with_columns(
        pl.Series("pd", pd_, dtype=pl.Float64), pl.Series("score", score, dtype=pl.Int32), grade,
        *(pl.lit(None, dtype=pl.String).alias(f"reason_{i + 1}") for i in range(definition.reason_codes.count)),
        pl.lit(None, dtype=pl.String).alias("reason_method"),
        pl.lit(model_version, dtype=pl.String).alias("model_version"),
    )


def add_reasons(
    booster: xgb.Booster,
    features: pl.DataFrame,
    scored: pl.DataFrame,
    definition: ModelDefinition,
    method: Method = "mixed",
    previous_pd: pl.DataFrame | None = None,
    reference: Reference | None = None,
    acted_on: pl.Series | None = None,
) -> pl.DataFrame:
    """``scored`` (:func:`score_pd_frame` of ``features``) with its reason codes and ``reason_method``.

    ``reference``: :func:`reason_reference` of the whole book with the model's stored reference; by
    default that of ``features`` alone (its median).

    ``mixed``: exact TreeSHAP for the accounts in ``acted_on`` (those tonight's decisions act on: see
    :func:`pipelines.domain.decide.accounts_acted_on`) and where :func:`needs_exact_reasons` says an action
    may follow; the approximation for the rest.
    """
    nthread = definition.hyperparameters.nthread
    snapshot = features.sort("account_id")
    if method == "mixed":
        exact = needs_exact_reasons(scored, snapshot, definition, previous_pd)
        if acted_on is not None:
            exact = exact | snapshot["account_id"].is_in(acted_on.implode())
    else:
        exact = pl.Series("exact", [method == "exact"] * snapshot.height, dtype=pl.Boolean)
    count = definition.reason_codes.count
    if reference is None:
        reference = reason_reference(snapshot, model_features(booster))
    parts = [
        reason_codes(booster, snapshot.filter(exact), count, approx=False, nthread=nthread, reference=reference),
        reason_codes(booster, snapshot.filter(~exact), count, approx=True, nthread=nthread, reference=reference),
    ]
    reasons = pl.concat(parts).sort("account_id")
    return scored.with_columns(
        *(reasons[f"reason_{i + 1}"] for i in range(count)),
        pl.when(exact).then(pl.lit("exact")).otherwise(pl.lit("approx")).alias("reason_method"),
    )


def score_accounts(
    booster: xgb.Booster,
    features: pl.DataFrame,
    definition: ModelDefinition,
    model_version: str,
    method: Method = "mixed",
    previous_pd: pl.DataFrame | None = None,
    reference: Reference | None = None,
    acted_on: pl.Series | None = None,
) -> pl.DataFrame:
    """PD, score, grade and reason codes for every row of a feature snapshot, sorted by account_id.

    Args:
        features: one row per account: ``account_id``, ``as_of_date`` and at least the model's features.
        method: ``exact`` / ``approx`` TreeSHAP for all, or ``mixed`` (see :func:`add_reasons`).
        previous_pd: the previous scoring run's ``account_id, pd``, for the PD-rise trigger.
        reference: the whole book's :func:`reason_reference` when ``features`` is part of it (a shard);
            by default that of ``features``.
        acted_on: accounts whose decision tonight is adverse, contacted or offered hardship: exact reasons.
    """
    scored = score_pd_frame(booster, features, definition, model_version)
    return add_reasons(booster, features, scored, definition, method, previous_pd, reference, acted_on)


def describe_reasons(scores: pl.DataFrame, phrases: dict[str, str]) -> pl.DataFrame:
    """Replace reason codes (feature names) by customer-facing phrases from the feature dictionary."""
    reason_cols = [c for c in scores.columns if c.startswith("reason_") and c != "reason_method"]
    missing = sorted({v for c in reason_cols for v in scores[c].drop_nulls().unique()} - set(phrases))
    if missing:
        raise KeyError(f"no customer-facing phrase for reason codes {missing}")
    return scores.with_columns(
        pl.col(c).cast(pl.String).replace_strict(phrases, default=None, return_dtype=pl.String) for c in reason_cols
    )


# --- I/O entry point ------------------------------------------------------------------------------


