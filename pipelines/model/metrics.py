"""How good and how stable a PD model is: discrimination, calibration and population stability.

Pure numpy (sklearn is not a dependency): AUC via average ranks (ties count one half, as in the
Mann-Whitney statistic), KS as the largest gap between the cumulative bad and good distributions over
distinct score thresholds, PSI over reference-decile bins with a separate bin for missing values.
:func:`evaluate_oot` bundles the metrics stored as ``metrics.json`` next to every registered model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from pipelines.config.model_definition import ModelDefinition, Stability

# Empty PSI bins are floored at this share: ln(0) is undefined, and 1e-4 (one account in 10,000) keeps a
# bin that empties completely from dominating the index while still flagging it.
PSI_FLOOR = 1e-4
_EPS = 1e-15


class LeakageSuspectedError(RuntimeError):
    """The out-of-time AUC is too good to be true: a feature most likely carries the label."""


def _arrays(bad: Any, pd_: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(bad, dtype=np.float64)
    p = np.asarray(pd_, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels and predictions must be 1-d and of equal length, got {y.shape} and {p.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 (good) or 1 (bad)")
    if np.isnan(p).any():
        raise ValueError("predictions must not be NaN")
    return y, p


def _both_classes(y: np.ndarray) -> tuple[float, float]:
    n_bad = float(y.sum())
    n_good = float(y.size - n_bad)
    if n_bad == 0 or n_good == 0:
        raise ValueError("AUC/KS need at least one good and one bad account")
    return n_bad, n_good


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their positions (scipy's ``rankdata`` 'average')."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], ordered.size]
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
    return ranks


def auc(bad: Any, pd_: Any) -> float:
    """Area under the ROC curve: P(a random bad scores above a random good), ties counting one half."""
    y, p = _arrays(bad, pd_)
    n_bad, n_good = _both_classes(y)
    rank_sum = average_ranks(p)[y == 1].sum()
    return float((rank_sum - n_bad * (n_bad + 1) / 2.0) / (n_bad * n_good))


def ks_statistic(bad: Any, pd_: Any) -> float:
    """Max over thresholds t of |share of bads with pd >= t - share of goods with pd >= t|.

    Thresholds are the distinct predictions: tied accounts move together, so a tie never splits.
    """
    y, p = _arrays(bad, pd_)
    n_bad, n_good = _both_classes(y)
    order = np.argsort(-p, kind="stable")
    ordered = p[order]
    last_of_tie = np.r_[ordered[1:] != ordered[:-1], True]
    cum_bad = np.cumsum(y[order])[last_of_tie]
    cum_good = np.cumsum(1.0 - y[order])[last_of_tie]
    return float(np.max(np.abs(cum_bad / n_bad - cum_good / n_good)))


def brier_score(bad: Any, pd_: Any) -> float:
    y, p = _arrays(bad, pd_)
    return float(np.mean((p - y) ** 2))


def log_loss(bad: Any, pd_: Any) -> float:
    y, p = _arrays(bad, pd_)
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def calibration_by_decile(bad: Any, pd_: Any, bins: int = 10) -> list[dict[str, float | int]]:
    """Accounts ordered by PD and cut into ``bins`` equal-count groups: predicted vs observed bad rate.

    Equal-count groups (not equal-width PD ranges) keep every group big enough to estimate a bad rate;
    ties straddling a cut are split by row order, which the caller makes deterministic.
    """
    y, p = _arrays(bad, pd_)
    if y.size == 0:
        raise ValueError("calibration needs at least one account")
    order = np.argsort(p, kind="stable")
    group = (np.arange(y.size) * bins) // y.size
    out: list[dict[str, float | int]] = []
    for g in range(bins):  # loops over bins, not rows
        idx = order[group == g]
        if idx.size == 0:
            continue
        mean_pd = float(p[idx].mean())
        bad_rate = float(y[idx].mean())
        out.append({
            "decile": g + 1,
            "accounts": int(idx.size),
            "bads": int(y[idx].sum()),
            "mean_pd": mean_pd,
            "bad_rate": bad_rate,
            "abs_error": abs(mean_pd - bad_rate),
        })
    return out


def calibration_noise(bad: Any, pd_: Any, bins: int = 10) -> float:
    """The calibration error a *perfectly* calibrated PD would still show on these rows, from chance alone.

    In a group of n accounts with PDs p_i, the observed bad rate of a calibrated model deviates from the
    mean PD with standard deviation sd = sqrt(sum p_i (1 - p_i)) / n, so |mean PD - bad rate| averages
    sd x sqrt(2 / pi) (normal approximation). Account-weighted over the same groups as
    :func:`calibration_by_decile`. On 2,000 accounts at a 7% bad rate this is ~0.014, on 20,000 ~0.005:
    a fixed ceiling alone would fail a sound model on a small book.
    """
    y, p = _arrays(bad, pd_)
    if y.size == 0:
        raise ValueError("calibration needs at least one account")
    order = np.argsort(p, kind="stable")
    group = (np.arange(y.size) * bins) // y.size
    total = 0.0
    for g in range(bins):  # loops over bins, not rows
        idx = order[group == g]
        if idx.size:
            total += math.sqrt(float((p[idx] * (1.0 - p[idx])).sum())) * math.sqrt(2.0 / math.pi)
    return total / y.size


def calibration_error(calibration: Sequence[Mapping[str, float | int]]) -> float:
    """Account-weighted mean |predicted - observed| over the calibration groups (expected calibration error)."""
    total = sum(int(row["accounts"]) for row in calibration)
    return float(sum(int(row["accounts"]) * float(row["abs_error"]) for row in calibration) / total)


# --- population stability -----------------------------------------------------------------------


def reference_bins(values: Any, bins: int = 10) -> dict[str, list[float]]:
    """Interior decile edges of ``values`` and the share of values in each bin (+ a last, missing bin).

    Edges are observed values (inverted-CDF quantiles) and bins are right-closed, so a value repeated
    across several deciles (e.g. DPD 0 for most accounts) lands in one bin instead of being split.
    """
    x = np.asarray(values, dtype=np.float64)
    finite = x[~np.isnan(x)]
    if finite.size:
        quantiles = np.arange(1, bins) / bins  # not linspace: 0.30000000000000004 would skip a value
        edges = np.unique(np.quantile(finite, quantiles, method="inverted_cdf"))
    else:
        edges = np.empty(0)
    return {"edges": edges.tolist(), "shares": bin_shares(x, edges).tolist()}


def bin_shares(values: Any, edges: Any) -> np.ndarray:
    """Shares of ``values`` in the bins (-inf, e1], (e1, e2], ..., (ek, inf), missing."""
    x = np.asarray(values, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    if x.size == 0:
        raise ValueError("cannot bin an empty set of values")
    missing = np.isnan(x)
    counts = np.bincount(np.searchsorted(e, x[~missing], side="left"), minlength=e.size + 1)
    return np.r_[counts, missing.sum()].astype(np.float64) / x.size


def psi(expected_shares: Any, actual_shares: Any) -> float:
    """Population stability index: sum over bins of (actual - expected) * ln(actual / expected)."""
    e = np.maximum(np.asarray(expected_shares, dtype=np.float64), PSI_FLOOR)
    a = np.maximum(np.asarray(actual_shares, dtype=np.float64), PSI_FLOOR)
    if e.shape != a.shape:
        raise ValueError(f"PSI needs the same bins on both sides, got {e.shape} and {a.shape}")
    return float(np.sum((a - e) * np.log(a / e)))


def psi_against(reference: Mapping[str, Sequence[float]], values: Any) -> float:
    """PSI of ``values`` against a stored :func:`reference_bins` result."""
    return psi(reference["shares"], bin_shares(values, reference["edges"]))


def psi_band(value: float, bands: tuple[float, float]) -> str:
    """``stable`` below the first band, ``watch`` up to the second, ``shifted`` beyond (0.10 / 0.25 rule).

    The one reading of the PSI bands (``stability.psi_bands``): the gate, the registry and the report use it.
    """
    low, high = bands
    return "stable" if value < low else ("watch" if value < high else "shifted")


def psi_band_expr(psi: pl.Expr, bands: tuple[float, float]) -> pl.Expr:
    """:func:`psi_band` over a column."""
    low, high = bands
    return pl.when(psi < low).then(pl.lit("stable")).when(psi < high).then(pl.lit("watch")).otherwise(pl.lit("shifted"))


def feature_stability(
    expected: Mapping[str, Mapping[str, Sequence[float]]], actual: pl.DataFrame, features: Sequence[str],
    stability: Stability,
) -> dict[str, dict[str, float | str]]:
    """PSI of each feature, ``actual`` (the OOT snapshot) against ``expected``: each feature's
    :func:`reference_bins` over the training window (computed where the training rows are)."""
    out: dict[str, dict[str, float | str]] = {}
    for name in features:  # one vectorized pass per feature column
        value = psi_against(expected[name], actual[name].cast(pl.Float64).to_numpy())
        out[name] = {"psi": value, "band": psi_band(value, stability.psi_bands)}
    return out


# --- the bundle stored with a model ---------------------------------------------------------------


def bad_rate_by_grade(bad: Any, pd_: Any, grades: Sequence[str] | pl.Series, labels: Sequence[str]) -> list[dict]:
    y, p = _arrays(bad, pd_)
    frame = pl.DataFrame({"grade": pl.Series(grades, dtype=pl.String), "bad": y, "pd": p})
    stats = frame.group_by("grade").agg(
        pl.len().alias("accounts"), pl.col("bad").sum().alias("bads"), pl.col("pd").mean().alias("mean_pd")
    )
    by_grade = {row["grade"]: row for row in stats.iter_rows(named=True)}  # a handful of grades
    out = []
    for label in labels:
        row = by_grade.get(label)
        n = int(row["accounts"]) if row else 0
        bads = int(row["bads"]) if row else 0
        out.append({
            "grade": label,
            "accounts": n,
            "bads": bads,
            "bad_rate": bads / n if n else None,
            "mean_pd": float(row["mean_pd"]) if row else None,
        })
    return out


def discrimination_and_calibration(bad: Any, pd_: Any, bins: int = 10) -> dict[str, Any]:
    """The OOT metrics the promotion gate compares: AUC, Gini, KS, Brier, log-loss, calibration."""
    y, p = _arrays(bad, pd_)
    area = auc(y, p)
    calibration = calibration_by_decile(y, p, bins)
    return {
        "accounts": int(y.size),
        "bads": int(y.sum()),
        "bad_rate": float(y.mean()),
        "mean_pd": float(p.mean()),
        "auc": area,
        "gini": 2.0 * area - 1.0,
        "ks": ks_statistic(y, p),
        "brier": brier_score(y, p),
        "log_loss": log_loss(y, p),
        "calibration_error": calibration_error(calibration),
        "calibration_noise": calibration_noise(y, p, bins),
        "calibration": calibration,
    }


def evaluate_oot(
    bad: Any,
    pd_: Any,
    scores: Any,
    grades: Sequence[str] | pl.Series,
    definition: ModelDefinition,
) -> dict[str, Any]:
    """Everything known about a model on its out-of-time snapshot, plus the score reference for PSI later."""
    metrics = discrimination_and_calibration(bad, pd_, definition.stability.bins)
    metrics["by_grade"] = bad_rate_by_grade(bad, pd_, grades, definition.grades.labels)
    metrics["score_reference"] = reference_bins(scores, definition.stability.bins)
    return metrics


def single_feature_auc(bad: Any, frame: pl.DataFrame, features: Sequence[str]) -> dict[str, float]:
    """How well each feature alone separates bads from goods (max of AUC and 1 - AUC; missing ranks lowest)."""
    out = {}
    for name in features:
        x = frame[name].cast(pl.Float64).fill_nan(None)
        lowest = x.min()
        area = auc(bad, x.fill_null((lowest if lowest is not None else 0.0) - 1.0).to_numpy())  # type: ignore[operator]
        out[name] = max(area, 1.0 - area)
    return out


def check_leakage(oot_auc: float, ceiling: float, single_feature: Mapping[str, float] | None = None) -> None:
    """Fail the run when the OOT AUC is above ``ceiling``: behaviour data never separates that cleanly.

    ``single_feature`` (feature -> its AUC alone) names the likely culprits in the message.
    """
    if math.isfinite(oot_auc) and oot_auc <= ceiling:
        return
    suspects = sorted(((a, f) for f, a in (single_feature or {}).items()), reverse=True)[:3]
    named = ", ".join(f"{f} (AUC alone {a:.3f})" for a, f in suspects)
    raise LeakageSuspectedError(
        f"out-of-time AUC {oot_auc:.4f} is above the leakage ceiling {ceiling:.4f} (model.leakage_auc_ceiling): "
        "a feature most likely carries the outcome (computed after the snapshot date, or from the label "
        f"itself). The model was not registered. {'Strongest single features: ' + named if named else ''}"
    )


def curve_arrays(bad: Any, pd_: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative bads, goods and accounts at each distinct PD threshold, highest PD first."""
    y = np.asarray(bad, dtype=np.float64)
    p = np.asarray(pd_, dtype=np.float64)
    if y.size == 0 or y.sum() == 0 or y.sum() == y.size:
        raise ValueError("ROC/KS curves need at least one good and one bad account")
    order = np.argsort(-p, kind="stable")
    ordered = p[order]
    last_of_tie = np.r_[ordered[1:] != ordered[:-1], True]  # tied accounts move together
    cum_bad = np.cumsum(y[order])[last_of_tie]
    cum_all = (np.flatnonzero(last_of_tie) + 1).astype(np.float64)
    return cum_bad, cum_all - cum_bad, cum_all


def thin(keep_also: Sequence[int], length: int, max_points: int) -> np.ndarray:
    """At most ``max_points`` evenly spread indices (ends and ``keep_also`` included)."""
    even = np.linspace(0, length - 1, min(max_points, length)).round().astype(np.int64)
    return np.unique(np.r_[even, np.asarray(keep_also, dtype=np.int64)])


def roc_points(bad: Any, pd_: Any, max_points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates (cutting at each distinct PD), from (0, 0) to (1, 1)."""
    cum_bad, cum_good, _ = curve_arrays(bad, pd_)
    tpr = np.r_[0.0, cum_bad / cum_bad[-1]]
    fpr = np.r_[0.0, cum_good / cum_good[-1]]
    idx = thin([], tpr.size, max_points)
    return fpr[idx], tpr[idx]


@dataclass(frozen=True)
class KsCurve:
    population_share: np.ndarray  # accounts with PD at or above the cut, as a share of all
    bad_share: np.ndarray  # cumulative share of bads captured
    good_share: np.ndarray  # cumulative share of goods captured
    ks: float
    at_share: float  # population share where the gap is largest


def ks_points(bad: Any, pd_: Any, max_points: int = 400) -> KsCurve:
    """Cumulative bad and good shares by population share, highest PD first; KS is their largest gap."""
    cum_bad, cum_good, cum_all = curve_arrays(bad, pd_)
    share = np.r_[0.0, cum_all / cum_all[-1]]
    bads = np.r_[0.0, cum_bad / cum_bad[-1]]
    goods = np.r_[0.0, cum_good / cum_good[-1]]
    gap = np.abs(bads - goods)
    best = int(np.argmax(gap))
    idx = thin([best], share.size, max_points)
    return KsCurve(share[idx], bads[idx], goods[idx], float(gap[best]), float(share[best]))


def oot_curves(bad: Any, pd_: Any, max_points: int) -> dict[str, Any]:
    """The OOT ROC and KS curves as training stores them with the model (``metrics.json``), for the report."""
    fpr, tpr = roc_points(bad, pd_, max_points)
    ks = ks_points(bad, pd_, max_points)
    return {
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
        "ks": {"population_share": ks.population_share.tolist(), "bad_share": ks.bad_share.tolist(),
               "good_share": ks.good_share.tolist(), "ks": ks.ks, "at_share": ks.at_share},
    }


def curves_from_record(stored: Mapping[str, Any]) -> tuple[tuple[np.ndarray, np.ndarray], KsCurve]:
    """The ROC points and KS curve of :func:`oot_curves` back as arrays (JSON floats round-trip exactly)."""
    roc, ks = stored["roc"], stored["ks"]
    return (np.asarray(roc["fpr"], dtype=np.float64), np.asarray(roc["tpr"], dtype=np.float64)), KsCurve(
        np.asarray(ks["population_share"], dtype=np.float64), np.asarray(ks["bad_share"], dtype=np.float64),
        np.asarray(ks["good_share"], dtype=np.float64), float(ks["ks"]), float(ks["at_share"]),
    )


def shap_from_record(stored: Mapping[str, Any]) -> tuple[pl.DataFrame, int]:
    """The mean |SHAP| summary training stored (``importance_shap``, see
    :func:`pipelines.model.importance.shap_summary`) as ``feature, mean_abs_shap``, largest first (ties by
    name), with the number of OOT accounts it was computed on.
    """
    frame = pl.DataFrame(list(stored["mean_abs"].items()), schema={"feature": pl.String, "mean_abs_shap": pl.Float64},
                         orient="row")
    return frame.sort("mean_abs_shap", "feature", descending=[True, False]), int(stored["accounts"])
