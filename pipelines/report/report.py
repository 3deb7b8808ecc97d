"""The nightly run report: one self-contained HTML page per business date, read every morning.

``DATA_ROOT/reports/as_of_date=D/report.html`` (CSS inline, charts inline as base64 PNG, no script, no
network) for risk managers, model validators and collections leads. Sections: data (rows, quarantine,
validation, a link to the night's Data Docs), model (OOT metric trend, ROC/KS, calibration, score drift,
feature importance, feature PSI, the champion/challenger decision), portfolio (delinquency by bucket,
roll rates, vintages), decisions (actions and exposure by grade, limit changes, the swap set, strategy
test cells) and collections (queues against capacity, hardship offers).

Every count the manifest holds (rows per output, model and policy versions) is rendered *from the
manifest* and tagged ``data-manifest="<dotted key>"`` so a test can hold the page to it. The page holds
no wall-clock time, so regenerating it from the same lake gives the same bytes.

Layout: pure pieces first (frames and arrays in, frames/numbers out: :func:`roll_rates`,
:func:`vintage_curves`, :func:`swap_set`, :func:`format_cny`, ...), then :func:`render_report` (a
:class:`ReportData` in, HTML text out), then the I/O at the bottom (:func:`collect_report_data` reads the
lake, :func:`write_report` writes the page atomically). Charts are drawn by :mod:`pipelines.report.plots`.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TYPE_CHECKING

import numpy as np
import polars as pl

from pipelines.config.model_definition import load_model_definition
from pipelines.config.settings import CollectionBucket, CollectionsConfig, RisklineConfig
from pipelines.contracts.outputs import OUTPUTS
from pipelines.domain import features, labels, policy
from pipelines.domain.conform import QUARANTINE_REASON
from pipelines.domain.sharding import fnv1a_64
from pipelines.store import lake, zones
from pipelines.store.publish import read_manifest, read_output
from pipelines.store.readers import read_previous_run
from pipelines.store.zones import REPORT_ZONE, ledger_partition, read_features
from pipelines.vocab import DATASETS

if TYPE_CHECKING:
    import xgboost as xgb

REPORT_FILE = "report.html"
CURRENT = "current"  # the bucket of an account owing money with no DPD
ACTION_ORDER: tuple[str, ...] = ("freeze", "decrease", "hold", "unfreeze", "increase")
UNSCORED = "unscored"
SWAP_SET_DEFINITION = (
    "Swap set: accounts whose limit action tonight differs from the action the same policy would have taken "
    "tonight, on the same data, with the previous run's champion model scoring them. Only the model differs, "
    "so every account listed changed action because the model changed."
)


class ReportError(RuntimeError):
    """The report cannot be built for this date (nothing was published for it)."""


# --- money ------------------------------------------------------------------------------------------


def _round_div(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half away from zero, in integers (no float on money)."""
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return -quotient if numerator < 0 else quotient


def format_cny(cents: int) -> str:
    """Integer cents as whole yuan with thousands separators: ``123456789`` -> ``¥1,234,568``."""
    yuan = _round_div(int(cents), 100)
    return f"-¥{-yuan:,}" if yuan < 0 else f"¥{yuan:,}"


_COMPACT_UNITS: tuple[tuple[int, str], ...] = ((100 * 10**9, "B"), (100 * 10**6, "M"), (100 * 10**3, "K"))


def format_cny_compact(cents: int) -> str:
    """Integer cents in a short form for chart labels: ``¥1.2M``, ``¥350K``, ``¥980``, ``-¥2.5K``."""
    cents = int(cents)
    sign = "-" if cents < 0 else ""
    size = abs(cents)
    for i, (unit, suffix) in enumerate(_COMPACT_UNITS):
        if size >= unit:
            tenths = _round_div(size * 10, unit)
            if tenths >= 10_000 and i > 0:  # 999,960 -> "¥1.0M", not "¥1,000K"
                unit, suffix = _COMPACT_UNITS[i - 1]
                tenths = _round_div(size * 10, unit)
            whole, frac = divmod(tenths, 10)
            return f"{sign}¥{whole:,}" + (f".{frac}" if frac else "") + suffix
    return f"{sign}¥{_round_div(size, 100):,}"


def money_to_cents(column: str) -> pl.Expr:
    """A published decimal(18,2) CNY column back to integer cents, exactly."""
    return (pl.col(column) * 100).cast(pl.Int64)


# --- portfolio --------------------------------------------------------------------------------------


def bucket_names(buckets: Sequence[CollectionBucket]) -> list[str]:
    return [CURRENT, *(b.name for b in buckets)]


def dpd_bucket(dpd: pl.Expr, buckets: Sequence[CollectionBucket]) -> pl.Expr:
    """The collections bucket of a DPD (the same cut-offs as the queue), ``current`` below the first."""
    bucket: pl.Expr = pl.lit(CURRENT)
    for b in buckets:  # ascending bounds: the last bucket whose min_dpd is reached wins
        bucket = pl.when(dpd >= b.min_dpd).then(pl.lit(b.name)).otherwise(bucket)
    return bucket


def delinquency_by_bucket(ledger_accounts: pl.DataFrame, buckets: Sequence[CollectionBucket]) -> pl.DataFrame:
    """Share of accounts and of outstanding principal per DPD bucket, among accounts owing money.

    Args:
        ledger_accounts: ``Ledger.accounts`` of D (``dpd, outstanding_principal_cents, overdue_cents``).

    Returns:
        ``bucket, accounts, account_share, outstanding_cents, balance_share``, every bucket in order.
    """
    names = bucket_names(buckets)
    owing = ledger_accounts.filter((pl.col("outstanding_principal_cents") > 0) | (pl.col("overdue_cents") > 0))
    counts = owing.group_by(dpd_bucket(pl.col("dpd"), buckets).alias("bucket")).agg(
        pl.len().cast(pl.Int64).alias("accounts"),
        pl.col("outstanding_principal_cents").sum().alias("outstanding_cents"),
    )
    frame = pl.DataFrame({"bucket": names}).join(counts, on="bucket", how="left").with_columns(
        pl.col("accounts").fill_null(0), pl.col("outstanding_cents").fill_null(0)
    )
    total_accounts = max(int(frame["accounts"].sum()), 1)
    total_cents = max(int(frame["outstanding_cents"].sum()), 1)
    return frame.with_columns(
        account_share=pl.col("accounts") / total_accounts,
        balance_share=pl.col("outstanding_cents") / total_cents,
    ).select("bucket", "accounts", "account_share", "outstanding_cents", "balance_share")


def roll_rates(
    previous: pl.DataFrame, current: pl.DataFrame, buckets: Sequence[CollectionBucket]
) -> pl.DataFrame:
    """Where the accounts of each DPD bucket at the previous run are now.

    Args:
        previous, current: ``account_id, dpd`` (ledger accounts of the previous run's date and of D).
            Only accounts on both ledgers count: a line first drawn since has no bucket to roll from.

    Returns:
        ``from_bucket, to_bucket, accounts, share`` (share of the from-bucket's accounts), the full grid
        of buckets in order, zeros included.
    """
    names = bucket_names(buckets)
    moved = (
        previous.select("account_id", dpd_bucket(pl.col("dpd"), buckets).alias("from_bucket"))
        .join(current.select("account_id", dpd_bucket(pl.col("dpd"), buckets).alias("to_bucket")),
              on="account_id", how="inner")
        .group_by("from_bucket", "to_bucket")
        .agg(pl.len().cast(pl.Int64).alias("accounts"))
    )
    grid = pl.DataFrame({"from_bucket": names}).join(pl.DataFrame({"to_bucket": names}), how="cross")
    order = {name: i for i, name in enumerate(names)}
    return (
        grid.join(moved, on=["from_bucket", "to_bucket"], how="left")
        .with_columns(pl.col("accounts").fill_null(0))
        .with_columns(share=(pl.col("accounts") / pl.col("accounts").sum().over("from_bucket")).fill_nan(0.0))
        .sort(pl.col("from_bucket").replace_strict(order), pl.col("to_bucket").replace_strict(order))
    )


def _month_index(expr: pl.Expr) -> pl.Expr:
    return expr.dt.year().cast(pl.Int32) * 12 + expr.dt.month().cast(pl.Int32)


def first_dpd_date(installments: pl.DataFrame, as_of: dt.date, dpd: int) -> pl.DataFrame:
    """Per account, the first day any instalment reached ``dpd`` DPD on or before ``as_of`` (ledger rules).

    An instalment is at ``t - due_date`` DPD on day t while ``t < paid_off_date``, so it reaches ``dpd``
    on ``due_date + dpd`` unless it was paid off by then.
    """
    hit = pl.col("due_date") + pl.duration(days=dpd)
    return (
        installments.filter(
            (hit <= as_of) & (pl.col("paid_off_date").is_null() | (pl.col("paid_off_date") > hit))
        )
        .group_by("account_id")
        .agg(hit.min().alias("first_dpd_on"))
    )


def vintage_curves(
    accounts: pl.DataFrame, installments: pl.DataFrame, as_of: dt.date, since: dt.date, dpd: int = 30
) -> pl.DataFrame:
    """Cumulative share of each opening month's accounts that reached ``dpd``+ DPD, by months on book.

    Args:
        accounts: ``account_id, opened_on`` (the accounts snapshot of D, closed lines included).
        installments: ``Ledger.installments`` of D (``account_id, due_date, paid_off_date``).
        since: the first business date the lake holds; only opening months starting on or after it
            are shown, since an older line's early loans were drawn before the data begins.

    Returns:
        ``vintage`` (first day of the opening month), ``months_on_book`` (0 = the opening month),
        ``accounts`` (cohort size), ``bad_accounts``, ``bad_rate``; months on book up to D only.
    """
    vintage = pl.col("opened_on").dt.truncate("1mo")
    cohort = (
        accounts.filter(vintage >= since)
        .select("account_id", vintage.alias("vintage"))
        .join(first_dpd_date(installments, as_of, dpd), on="account_id", how="left")
        .with_columns(
            bad_mob=pl.max_horizontal(_month_index(pl.col("first_dpd_on")) - _month_index(pl.col("vintage")), 0)
        )
    )
    now = as_of.year * 12 + as_of.month
    grid = (
        cohort.group_by("vintage")
        .agg(pl.len().cast(pl.Int64).alias("accounts"))
        .with_columns(months_on_book=pl.int_ranges(0, pl.lit(now + 1) - _month_index(pl.col("vintage")),
                                                   dtype=pl.Int32))
        .explode("months_on_book")
    )
    events = (
        cohort.filter(pl.col("first_dpd_on").is_not_null())
        .group_by("vintage", pl.col("bad_mob").cast(pl.Int32).alias("months_on_book"))
        .agg(pl.len().cast(pl.Int64).alias("_new_bad"))
    )
    return (
        grid.join(events, on=["vintage", "months_on_book"], how="left")
        .sort("vintage", "months_on_book")
        .with_columns(bad_accounts=pl.col("_new_bad").fill_null(0).cum_sum().over("vintage"))
        .with_columns(bad_rate=pl.col("bad_accounts") / pl.col("accounts"))
        .select("vintage", "months_on_book", "accounts", "bad_accounts", "bad_rate")
    )


# --- decisions --------------------------------------------------------------------------------------


def _order_key(column: str, order: Sequence[str]) -> pl.Expr:
    return pl.col(column).replace_strict({v: i for i, v in enumerate(order)}, default=len(order), return_dtype=pl.Int32)


def exposure_by_action_grade(limits: pl.DataFrame, grades: Sequence[str]) -> pl.DataFrame:
    """Accounts and exposure change (sum of new - previous limit, cents) per action and grade.

    Args:
        limits: ``action, grade, previous_limit_cents, new_limit_cents`` (grade null: unscored).
    """
    return (
        limits.with_columns(pl.col("grade").fill_null(UNSCORED))
        .group_by("action", "grade")
        .agg(
            pl.len().cast(pl.Int64).alias("accounts"),
            (pl.col("new_limit_cents") - pl.col("previous_limit_cents")).sum().alias("exposure_change_cents"),
        )
        .sort(_order_key("action", ACTION_ORDER), _order_key("grade", [*grades, UNSCORED]))
    )


def limit_changes(limits: pl.DataFrame) -> pl.DataFrame:
    """``account_id, action, change_cents`` of every line whose limit moved tonight."""
    return (
        limits.select("account_id", "action",
                      (pl.col("new_limit_cents") - pl.col("previous_limit_cents")).alias("change_cents"))
        .filter(pl.col("change_cents") != 0)
        .sort("account_id")
    )


def test_cell_summary(limits: pl.DataFrame) -> pl.DataFrame:
    """Per strategy test cell: accounts per action and the exposure change (cents)."""
    seen = set(limits["action"].unique().to_list())
    present = [a for a in ACTION_ORDER if a in seen]
    return (
        limits.group_by("test_cell")
        .agg(
            pl.len().cast(pl.Int64).alias("accounts"),
            *((pl.col("action") == a).sum().cast(pl.Int64).alias(a) for a in present),
            (pl.col("new_limit_cents") - pl.col("previous_limit_cents")).sum().alias("exposure_change_cents"),
        )
        .sort(_order_key("test_cell", ("champion", "challenger", "control")))
    )


def swap_set(tonight: pl.DataFrame, counterfactual: pl.DataFrame) -> pl.DataFrame:
    """Accounts whose action tonight differs from the action the previous champion's scores would give.

    Args:
        tonight: the decisions made (``account_id, action, grade``).
        counterfactual: the same policy on the same inputs with the previous champion's scores
            (``account_id, action, grade``).

    Returns:
        ``account_id, previous_model_action, action, previous_model_grade, grade``, sorted by account_id.
    """
    return (
        tonight.select("account_id", "action", "grade")
        .join(
            counterfactual.select("account_id", pl.col("action").alias("previous_model_action"),
                                  pl.col("grade").alias("previous_model_grade")),
            on="account_id", how="inner",
        )
        .filter(pl.col("action") != pl.col("previous_model_action"))
        .select("account_id", "previous_model_action", "action", "previous_model_grade", "grade")
        .sort("account_id")
    )


def swap_summary(swaps: pl.DataFrame) -> pl.DataFrame:
    """Swap-set accounts per (action with the previous model -> action tonight)."""
    return (
        swaps.group_by("previous_model_action", "action")
        .agg(pl.len().cast(pl.Int64).alias("accounts"))
        .sort(_order_key("previous_model_action", ACTION_ORDER), _order_key("action", ACTION_ORDER))
    )


def queue_against_capacity(queue: pl.DataFrame, collections: CollectionsConfig) -> pl.DataFrame:
    """Cases per treatment tonight, with the overdue amount and the agent capacity.

    Args:
        queue: the collection queue (``treatment, overflow, overdue_amount_cents, expected_loss_cents``).

    Returns:
        ``treatment, accounts, overflow, overdue_cents, expected_loss_cents, capacity`` (capacity only
        for the agent queue: the others are automated), in the order of the buckets' treatments.
    """
    order = list(dict.fromkeys([*(b.treatment for b in collections.buckets), "hardship_offer",
                                collections.overflow_treatment]))
    return (
        queue.group_by("treatment")
        .agg(
            pl.len().cast(pl.Int64).alias("accounts"),
            pl.col("overflow").sum().cast(pl.Int64).alias("overflow"),
            pl.col("overdue_amount_cents").sum().alias("overdue_cents"),
            pl.col("expected_loss_cents").sum().alias("expected_loss_cents"),
        )
        .with_columns(
            capacity=pl.when(pl.col("treatment") == "agent").then(pl.lit(collections.agent_daily_capacity))
            .cast(pl.Int64)
        )
        .sort(_order_key("treatment", order), "treatment")
    )


# --- model ------------------------------------------------------------------------------------------


def _curve_arrays(bad: Any, pd_: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def _thin(keep_also: Sequence[int], length: int, max_points: int) -> np.ndarray:
    """At most ``max_points`` evenly spread indices (ends and ``keep_also`` included)."""
    even = np.linspace(0, length - 1, min(max_points, length)).round().astype(np.int64)
    return np.unique(np.r_[even, np.asarray(keep_also, dtype=np.int64)])


def roc_points(bad: Any, pd_: Any, max_points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates (cutting at each distinct PD), from (0, 0) to (1, 1)."""
    cum_bad, cum_good, _ = _curve_arrays(bad, pd_)
    tpr = np.r_[0.0, cum_bad / cum_bad[-1]]
    fpr = np.r_[0.0, cum_good / cum_good[-1]]
    idx = _thin([], tpr.size, max_points)
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
    cum_bad, cum_good, cum_all = _curve_arrays(bad, pd_)
    share = np.r_[0.0, cum_all / cum_all[-1]]
    bads = np.r_[0.0, cum_bad / cum_bad[-1]]
    goods = np.r_[0.0, cum_good / cum_good[-1]]
    gap = np.abs(bads - goods)
    best = int(np.argmax(gap))
    idx = _thin([best], share.size, max_points)
    return KsCurve(share[idx], bads[idx], goods[idx], float(gap[best]), float(share[best]))


def shap_sample(account_ids: pl.Series, size: int) -> pl.Series:
    """``size`` accounts with the smallest FNV-1a hash of their id: the same accounts night after night
    (while on book), spread evenly over the book. Shards can each take their own smallest ``size`` and the
    book's sample is the smallest ``size`` of those.
    """
    frame = pl.DataFrame({"account_id": account_ids, "_h": fnv1a_64(account_ids)})
    return frame.sort("_h", "account_id").head(size)["account_id"].sort()


def mean_abs_shap(booster: xgb.Booster, frame: pl.DataFrame, nthread: int = 1) -> pl.DataFrame:
    """Mean |exact TreeSHAP contribution| (log-odds) of each model feature over ``frame``'s rows."""
    from pipelines.model.score import _dmatrix, model_features

    features = model_features(booster)
    if frame.height == 0:
        return pl.DataFrame({"feature": features, "mean_abs_shap": [0.0] * len(features)})
    booster.set_param({"nthread": nthread})
    contribs = booster.predict(_dmatrix(booster, frame, nthread), pred_contribs=True)[:, :-1]  # last: bias
    return pl.DataFrame({"feature": features, "mean_abs_shap": np.abs(contribs).mean(axis=0).astype(np.float64)}).sort(
        "mean_abs_shap", "feature", descending=[True, False]
    )


def feature_psi(
    features: pl.DataFrame, reference: Mapping[str, Mapping[str, Sequence[float]]], bands: tuple[float, float]
) -> pl.DataFrame:
    """PSI of each model feature tonight against the serving model's OOT reference bins, with its band.

    Returns:
        ``feature, psi, band`` (stable < bands[0] <= watch < bands[1] <= shifted), worst first.
    """
    from pipelines.model.metrics import psi_against

    rows = []
    for name, ref in sorted(reference.items()):  # one vectorized pass per feature column
        if name not in features.columns:
            continue
        value = psi_against(ref, features[name].cast(pl.Float64).to_numpy())
        rows.append((name, value))
    frame = pl.DataFrame(rows, schema={"feature": pl.String, "psi": pl.Float64}, orient="row")
    return frame.with_columns(band=psi_band_expr(pl.col("psi"), bands)).sort(
        "psi", "feature", descending=[True, False]
    )


def psi_band_expr(psi: pl.Expr, bands: tuple[float, float]) -> pl.Expr:
    low, high = bands
    return pl.when(psi < low).then(pl.lit("stable")).when(psi < high).then(pl.lit("watch")).otherwise(pl.lit("shifted"))


def psi_band(value: float, bands: tuple[float, float]) -> str:
    low, high = bands
    return "stable" if value < low else ("watch" if value < high else "shifted")


def score_psi(previous: Any, current: Any, bins: int) -> float:
    """PSI of tonight's scores against the previous run's, on the previous run's score deciles."""
    from pipelines.model.metrics import psi_against, reference_bins

    return psi_against(reference_bins(previous, bins), current)


# --- what the page shows ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSection:
    datasets: pl.DataFrame  # dataset, validated_rows, curated_rows, quarantined_rows, passed, failed, ok
    quarantine_reasons: pl.DataFrame  # dataset, reason, rows
    failures: list[str]  # failed expectations, described
    data_docs_href: str | None  # relative to the report's folder


@dataclass(frozen=True)
class GateView:
    version: str
    promote: bool
    summary: str
    checks: list[dict[str, Any]]


@dataclass(frozen=True)
class ModelSection:
    serving: str
    oot: dict[str, Any]  # the serving version's stored OOT metrics (without references)
    oot_date: str
    trend: pl.DataFrame  # version, as_of, auc, ks, gini, calibration_error, promoted, serving
    roc: tuple[np.ndarray, np.ndarray] | None
    ks: KsCurve | None
    recomputed_auc: float | None
    curve_note: str
    scores_now: np.ndarray
    scores_previous: np.ndarray | None
    score_psi: float | None
    gain: pl.DataFrame  # feature, gain
    shap: pl.DataFrame  # feature, mean_abs_shap
    shap_accounts: int
    feature_psi: pl.DataFrame  # feature, psi, band
    psi_bands: tuple[float, float]
    trained_tonight: list[GateView]
    serving_gate: GateView | None
    retrain: bool


@dataclass(frozen=True)
class PortfolioSection:
    delinquency: pl.DataFrame
    roll: pl.DataFrame | None
    vintages: pl.DataFrame
    bad_dpd: int
    since: dt.date | None
    note: str = ""


@dataclass(frozen=True)
class SwapView:
    previous_model: str | None
    summary: pl.DataFrame | None  # previous_model_action, action, accounts
    accounts: pl.DataFrame | None  # the first swap_set_rows accounts
    size: int
    note: str


@dataclass(frozen=True)
class DecisionsSection:
    by_action: pl.DataFrame  # action, accounts, exposure_change_cents
    by_action_grade: pl.DataFrame
    changes: pl.DataFrame  # account_id, action, change_cents
    test_cells: pl.DataFrame
    swap: SwapView


@dataclass(frozen=True)
class CollectionsSection:
    queue: pl.DataFrame  # queue_against_capacity
    capacity: int
    hardship: pl.DataFrame  # extension_months, offers, accounts, outstanding_cents, current_cents, new_cents
    hardship_accounts: int  # distinct accounts offered (one may have loans in both extension rows)


@dataclass(frozen=True)
class ReportData:
    as_of: dt.date
    manifest: dict[str, Any]
    previous_run: dt.date | None
    data: DataSection
    model: ModelSection
    portfolio: PortfolioSection
    decisions: DecisionsSection
    collections: CollectionsSection
    grades: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)


# --- HTML -------------------------------------------------------------------------------------------

_CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 "DejaVu Sans",Helvetica,Arial,sans-serif;color:#1d2430;background:#f4f6f9}
header{background:#16324f;color:#fff;padding:14px 28px 12px}
header h1{margin:0;font-size:22px;font-weight:600}
header .sub{color:#c9d6e6;font-size:13px;margin-top:3px}
header code{color:#fff}
nav{background:#fff;border-bottom:1px solid #dde3ea;padding:6px 28px;font-size:13px}
nav a{color:#16324f;margin-right:18px;text-decoration:none;font-weight:600}
main{padding:14px 28px 40px;max-width:1320px}
.cards{display:grid;grid-template-columns:repeat(6,1fr);gap:10px}
.card{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:10px 12px;min-height:112px}
.card .label{color:#5b6675;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .big{font-size:26px;font-weight:700;margin:2px 0}
.card .small{font-size:12px;color:#3b4656}
.card .small div{display:flex;justify-content:space-between}
.attention{background:#fff;border:1px solid #dde3ea;border-left:4px solid #c77700;border-radius:6px;
 margin:10px 0;padding:8px 14px}
.attention.ok{border-left-color:#2e7d32}
.attention ul{margin:4px 0;padding-left:18px}
section{background:#fff;border:1px solid #dde3ea;border-radius:6px;margin:14px 0;padding:4px 18px 14px}
section h2{font-size:18px;margin:12px 0 6px;color:#16324f}
h3{font-size:14px;margin:14px 0 6px}
.grid2{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:18px;align-items:start}
.cols3{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:14px;align-items:start}
.scroll{overflow-x:auto}
.card .version{font-size:14px;font-weight:700;word-break:break-all;margin:6px 0}
img{max-width:100%;height:auto;border:1px solid #eef1f5}
table{border-collapse:collapse;font-size:13px;margin:4px 0 8px}
th,td{padding:3px 9px;border-bottom:1px solid #e8ecf1;text-align:left;white-space:nowrap}
th{background:#f0f3f7;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#5b6675;font-size:12.5px;margin:4px 0}
.pill{display:inline-block;padding:0 8px;border-radius:9px;font-size:12px;font-weight:600;color:#fff}
.stable,.passed,.promoted{background:#2e7d32}.watch{background:#c77700}.shifted,.failed,.rejected{background:#c62828}
code{font-size:12.5px}
"""

def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _int(value: Any) -> str:
    return f"{int(value):,}"


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100.0 * float(value):.{digits}f}%"


def _pill(kind: str, text: str | None = None) -> str:
    return f'<span class="pill {_e(kind)}">{_e(text or kind)}</span>'


def _lookup(manifest: Mapping[str, Any], key: str) -> Any:
    value: Any = manifest
    for part in key.split("."):
        value = value[part]
    return value


def _m(manifest: Mapping[str, Any], key: str, number: bool = False) -> str:
    """A manifest value, tagged with its key so the page can be checked against the manifest."""
    value = _lookup(manifest, key)
    shown = _int(value) if number else str(value)
    return f'<span data-manifest="{_e(key)}">{_e(shown)}</span>'


def _table(frame: pl.DataFrame, columns: Sequence[tuple[str, str, Any]], numeric: Sequence[str] = ()) -> str:
    """An HTML table; ``columns`` are (column, header, formatter or None)."""
    head = "".join(f'<th class="{"n" if c in numeric else ""}">{_e(h)}</th>' for c, h, _ in columns)
    body = []
    for row in frame.iter_rows(named=True):  # page-sized tables (tens of rows), never the book
        cells = []
        for c, _, fmt in columns:
            value = row[c]
            text = fmt(value) if fmt is not None and value is not None else ("" if value is None else _e(value))
            cells.append(f'<td class="{"n" if c in numeric else ""}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{_e(alt)}">'


def _attention(data: ReportData) -> list[str]:
    """The few things a reader should look at first."""
    items = []
    failed = data.data.datasets.filter(~pl.col("ok"))
    if failed.height:
        items.append(f"Validation failed critically for {', '.join(failed['dataset'].to_list())}.")
    quarantined = int(data.data.datasets["quarantined_rows"].sum()) if data.data.datasets.height else 0
    if quarantined:
        items.append(f"{quarantined:,} landing rows quarantined tonight (see Data).")
    m = data.model
    shifted = m.feature_psi.filter(pl.col("band") == "shifted")["feature"].to_list()
    watch = m.feature_psi.filter(pl.col("band") == "watch")["feature"].to_list()
    if shifted:
        items.append(f"Feature PSI shifted (>= {m.psi_bands[1]}): {', '.join(shifted)}.")
    if watch:
        items.append(f"Feature PSI on watch ({m.psi_bands[0]}-{m.psi_bands[1]}): {', '.join(watch)}.")
    if m.score_psi is not None and m.score_psi >= m.psi_bands[0]:
        items.append(f"Score distribution moved since the previous run: PSI {m.score_psi:.3f}.")
    for gate in m.trained_tonight:
        if not gate.promote:
            items.append(f"Challenger {gate.version} was rejected: {gate.summary}.")
    overflow = int(data.collections.queue["overflow"].sum()) if data.collections.queue.height else 0
    if overflow:
        items.append(f"{overflow:,} agent cases over capacity went to automated treatment.")
    if data.decisions.swap.size:
        items.append(f"{data.decisions.swap.size:,} accounts changed limit action because the model changed.")
    return items


def _headline(data: ReportData) -> str:
    man = data.manifest
    m = data.model
    actions = data.decisions.by_action
    queue = data.collections.queue
    action_rows = "".join(
        f"<div><span>{_e(r['action'])}</span><b data-action=\"{_e(r['action'])}\">{_int(r['accounts'])}</b></div>"
        for r in actions.iter_rows(named=True)
    )
    grade_rows = "".join(f"<div><span>grade {_e(g)}</span><b>{n:,}</b></div>" for g, n in _grade_mix(data))
    queue_rows = "".join(
        f"<div><span>{_e(r['treatment'])}</span><b data-treatment=\"{_e(r['treatment'])}\">{_int(r['accounts'])}</b>"
        "</div>" for r in queue.iter_rows(named=True)
    )
    net = int(actions["exposure_change_cents"].sum()) if actions.height else 0
    ds = data.data.datasets
    quarantined = int(ds["quarantined_rows"].sum()) if ds.height else 0
    failed = int(ds["failed"].sum()) if ds.height else 0
    cards = [
        ("Accounts scored", _m(man, "outputs.scores.rows", number=True), f'<div class="small">{grade_rows}</div>'),
        ("Model", f'<div class="version">{_m(man, "model_version")}</div>',
         f'<div class="small"><div><span>OOT AUC</span><b>{m.oot["auc"]:.4f}</b></div>'
         f'<div><span>KS / Gini</span><b>{m.oot["ks"]:.3f} / {m.oot["gini"]:.3f}</b></div>'
         f'<div><span>OOT snapshot</span><b>{_e(m.oot_date)}</b></div>'
         f'<div><span>score PSI</span><b>{"n/a" if m.score_psi is None else f"{m.score_psi:.3f}"}</b></div></div>'),
        ("Limit decisions", _m(man, "outputs.limits.rows", number=True),
         f'<div class="small">{action_rows}<div><span>net exposure</span><b>{_e(format_cny(net))}</b></div></div>'),
        ("Collections queue", _m(man, "outputs.collection_queue.rows", number=True),
         f'<div class="small">{queue_rows}</div>'),
        ("Hardship offers", _m(man, "outputs.hardship_offers.rows", number=True),
         f'<div class="small"><div><span>loans re-termed</span></div><div><span>accounts</span>'
         f"<b>{data.collections.hardship_accounts:,}</b></div></div>"),
        ("Rows quarantined", f"{quarantined:,}",
         f'<div class="small"><div><span>failed expectations</span><b>{failed:,}</b></div>'
         f"<div><span>policy</span><b>{_m(man, 'policy_version')}</b></div></div>"),
    ]
    html_cards = "".join(
        f'<div class="card"><div class="label">{_e(label)}</div><div class="big">{big}</div>{rest}</div>'
        for label, big, rest in cards
    )
    items = _attention(data)
    if items:
        attention = '<div class="attention"><b>Look at first</b><ul>' + "".join(
            f"<li>{_e(i)}</li>" for i in items) + "</ul></div>"
    else:
        attention = '<div class="attention ok"><b>Nothing unusual tonight</b>: validation passed, no feature ' \
                    "or score drift, no challenger rejected, no queue over capacity.</div>"
    return f'<div class="cards">{html_cards}</div>{attention}'


def _grade_mix(data: ReportData) -> list[tuple[str, int]]:
    grades = data.decisions.by_action_grade.group_by("grade").agg(pl.col("accounts").sum())
    counts = dict(grades.iter_rows())
    return [(g, int(counts[g])) for g in [*data.grades, UNSCORED] if g in counts]


def _data_section(data: ReportData) -> str:
    d = data.data
    link = (f'<p>Great Expectations Data Docs of the night: <a href="{_e(d.data_docs_href)}">'
            f"{_e(d.data_docs_href)}</a></p>") if d.data_docs_href else \
        '<p class="note">No Data Docs were rendered for this date (validation.data_docs is off, or ingest ' \
        "did not run).</p>"
    table = _table(d.datasets, [
        ("dataset", "Dataset", None), ("validated_rows", "Rows validated", _int),
        ("curated_rows", "Rows curated", _int), ("quarantined_rows", "Rows quarantined", _int),
        ("passed", "Expectations passed", _int), ("failed", "Failed", _int),
        ("ok", "Result", lambda ok: _pill("passed") if ok else _pill("failed")),
    ], numeric=("validated_rows", "curated_rows", "quarantined_rows", "passed", "failed"))
    reasons = ""
    if d.quarantine_reasons.height:
        reasons = "<h3>Quarantine reasons</h3>" + _table(d.quarantine_reasons, [
            ("dataset", "Dataset", None), ("reason", "Reason", None), ("rows", "Rows", _int)], numeric=("rows",))
    failures = ""
    if d.failures:
        items = "".join(f"<li><code>{_e(f)}</code></li>" for f in d.failures)
        failures = f"<h3>Failed expectations</h3><ul>{items}</ul>"
    outputs = data.manifest.get("outputs", {})
    out_rows = "".join(
        f'<tr><td>{_e(name)}</td><td class="n">{_m(data.manifest, f"outputs.{name}.rows", number=True)}</td>'
        f'<td><code>{_e(meta.get("path", ""))}</code></td></tr>'
        for name, meta in sorted(outputs.items())
    )
    published = ('<h3>Published outputs (from the run manifest)</h3><table><thead><tr><th>Output</th>'
                 f'<th class="n">Rows</th><th>Path</th></tr></thead><tbody>{out_rows}</tbody></table>')
    return (f'<section id="data"><h2>Data</h2><p class="note">Landing drops of {_e(data.as_of)}: rows validated '
            "by the landing suites, rows published to the curated zone and rows held in quarantine.</p>"
            f"{table}{reasons}{failures}{link}{published}</section>")


def _gate_table(gate: GateView) -> str:
    rows = "".join(
        f"<tr><td>{_e(c['name'])}</td><td class=\"n\">{float(c['value']):.4f}</td><td>{_e(c['rule'])}</td>"
        f"<td>{_pill('passed') if c['passed'] else _pill('failed')}</td></tr>"
        for c in gate.checks
    )
    return ("<table><thead><tr><th>Check</th><th class=\"n\">Value</th><th>Rule</th><th>Result</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _model_section(data: ReportData, uris: Mapping[str, str]) -> str:
    m = data.model
    labelled = m.trend.with_columns(
        pl.when(pl.col("serving")).then(pl.col("version") + " (serving)").otherwise(pl.col("version")).alias("version")
    )
    trend = _table(labelled, [
        ("version", "Version", lambda v: f"<code>{_e(v)}</code>"), ("auc", "OOT AUC", lambda v: f"{v:.4f}"),
        ("ks", "KS", lambda v: f"{v:.4f}"), ("gini", "Gini", lambda v: f"{v:.4f}"),
        ("calibration_error", "Cal. error", lambda v: f"{v:.4f}"),
        ("promoted", "Gate", lambda v: _pill("promoted") if v else _pill("rejected")),
    ], numeric=("auc", "ks", "gini", "calibration_error"))
    if m.trained_tonight:
        decision = "".join(
            f"<p><b>Challenger <code>{_e(g.version)}</code></b> trained tonight: "
            f"{_pill('promoted') if g.promote else _pill('rejected')} {_e(g.summary)}</p>{_gate_table(g)}"
            for g in m.trained_tonight
        )
    elif not m.retrain:
        decision = "<p>No challenger was trained tonight (the run scored with the serving champion).</p>"
    else:
        decision = "<p>No new model version was registered tonight (a rerun reused an existing version).</p>"
    if m.serving_gate is not None and m.serving not in {g.version for g in m.trained_tonight}:
        decision += (f"<p>Serving champion <code>{_e(m.serving)}</code> was judged when it was trained: "
                     f"{_e(m.serving_gate.summary)}.</p>")
    curves = ""
    if m.roc is not None and m.ks is not None:
        curves = f'<div class="grid2">{_img(uris["roc"], "ROC curve")}{_img(uris["ks"], "KS curve")}</div>'
    note = f'<p class="note">{_e(m.curve_note)}</p>' if m.curve_note else ""
    third = -(-m.feature_psi.height // 3)
    psi_rows = '<div class="cols3">' + "".join(
        "<div>" + _table(m.feature_psi.slice(i * third, third), [
            ("feature", "Feature", None), ("psi", "PSI", lambda v: f"{v:.4f}"),
            ("band", "Band", _pill),
        ], numeric=("psi",)) + "</div>"
        for i in range(3) if third
    ) + "</div>"
    score_line = (f"Score PSI against the previous run ({_e(data.previous_run)}): <b>{m.score_psi:.4f}</b> "
                  f"{_pill(psi_band(m.score_psi, m.psi_bands))}" if m.score_psi is not None
                  else "No previous run to compare the score distribution with.")
    return (
        '<section id="model"><h2>Model</h2>'
        f"<p>Serving tonight: <code>{_m(data.manifest, 'model_version')}</code>; OOT snapshot {_e(m.oot_date)} "
        f"({m.oot['accounts']:,} accounts, bad rate {_pct(m.oot['bad_rate'], 2)}).</p>"
        "<h3>Champion / challenger decision</h3>" + decision +
        "<h3>OOT discrimination of recent registered versions</h3>"
        f'<div class="grid2"><div>{_img(uris["trend"], "OOT AUC, KS and Gini by model version")}</div>'
        f"<div>{trend}</div></div>"
        f"<h3>ROC and KS of the serving model on its OOT snapshot</h3>{curves}{note}"
        f'<div class="grid2"><div><h3>Calibration by PD decile (OOT)</h3>{_img(uris["calibration"], "Calibration")}'
        f'</div><div><h3>Score distribution vs the previous run</h3>{_img(uris["scores"], "Score distribution")}'
        f'<p>{score_line}</p></div></div>'
        f"<h3>Top features: gain and mean |SHAP|</h3>{_img(uris['importance'], 'Feature importance')}"
        f'<p class="note">Gain from the booster; mean |SHAP| = mean absolute exact TreeSHAP contribution '
        f"(log-odds) over {m.shap_accounts:,} accounts scored tonight (the accounts with the smallest "
        "FNV-1a hash of account_id: the same sample every night).</p>"
        f"<h3>Feature stability tonight vs the model's OOT snapshot</h3>"
        f'<p class="note">PSI over the OOT reference deciles; below {m.psi_bands[0]} stable, '
        f"{m.psi_bands[0]}-{m.psi_bands[1]} watch, {m.psi_bands[1]} and above shifted.</p>{psi_rows}</section>"
    )


def _portfolio_section(data: ReportData, uris: Mapping[str, str]) -> str:
    p = data.portfolio
    table = _table(p.delinquency, [
        ("bucket", "DPD bucket", None), ("accounts", "Accounts", _int), ("account_share", "Share", _pct),
        ("outstanding_cents", "Outstanding principal", format_cny), ("balance_share", "Share of balance", _pct),
    ], numeric=("accounts", "account_share", "outstanding_cents", "balance_share"))
    if p.roll is not None:
        roll = (f"<h3>Roll rates since the previous run ({_e(data.previous_run)})</h3>"
                f"{_img(uris['roll'], 'Roll-rate matrix')}"
                '<p class="note">Share of the accounts in each DPD bucket at the previous run (rows) found in each '
                "bucket tonight (columns); accounts on both nights' ledgers.</p>")
    else:
        roll = f'<h3>Roll rates</h3><p class="note">{_e(p.note or "No previous run to roll from.")}</p>'
    vintage = (f"<h3>Vintage curves: accounts reaching {p.bad_dpd}+ DPD by months on book</h3>"
               f"{_img(uris['vintage'], 'Vintage curves')}"
               f'<p class="note">Lines opened from {_e(p.since)} on (the first date the lake holds), by opening '
               "month; cumulative share of the month's accounts that ever reached "
               f"{p.bad_dpd} DPD.</p>")
    return (f'<section id="portfolio"><h2>Portfolio</h2><div class="grid2"><div><h3>Delinquency by DPD bucket</h3>'
            f'{_img(uris["delinquency"], "Delinquency by bucket")}</div><div><h3>Accounts owing money on '
            f"{_e(data.as_of)}</h3>{table}</div></div>"
            f'<div class="grid2"><div>{roll}</div><div>{vintage}</div></div></section>')


def _action_grade_table(by_action_grade: pl.DataFrame, grades: Sequence[str]) -> str:
    """Actions (rows) by grade (columns): accounts, and the exposure change where a limit moved."""
    cells = {(r["action"], r["grade"]): r for r in by_action_grade.iter_rows(named=True)}
    columns = [g for g in [*grades, UNSCORED] if any(k[1] == g for k in cells)]
    actions = [a for a in ACTION_ORDER if any(k[0] == a for k in cells)]
    head = "<th>Action</th>" + "".join(f'<th class="n">grade {_e(g)}</th>' for g in columns)
    rows = []
    for action in actions:
        tds = []
        for grade in columns:
            cell = cells.get((action, grade))
            if cell is None:
                tds.append('<td class="n"></td>')
                continue
            change = int(cell["exposure_change_cents"])
            extra = f'<br><span class="note">{_e(format_cny(change))}</span>' if change else ""
            tds.append(f'<td class="n">{_int(cell["accounts"])}{extra}</td>')
        rows.append(f"<tr><td>{_e(action)}</td>{''.join(tds)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _decisions_section(data: ReportData, uris: Mapping[str, str]) -> str:
    d = data.decisions
    by_action = _table(d.by_action, [
        ("action", "Action", None), ("accounts", "Accounts", _int),
        ("exposure_change_cents", "Exposure change", format_cny),
    ], numeric=("accounts", "exposure_change_cents"))
    by_grade = _action_grade_table(d.by_action_grade, data.grades)
    cell_cols: list[tuple[str, str, Any]] = [("test_cell", "Cell", None), ("accounts", "Accounts", _int)]
    cell_cols += [(a, a, _int) for a in ACTION_ORDER if a in d.test_cells.columns]
    cell_cols.append(("exposure_change_cents", "Exposure change", format_cny))
    cells = _table(d.test_cells, cell_cols, numeric=[c for c, _, _ in cell_cols[1:]])
    s = d.swap
    swap = f'<p class="note">{_e(SWAP_SET_DEFINITION)}</p>'
    if s.summary is not None and s.accounts is not None:
        summary = (f"<p>Previous champion <code>{_e(s.previous_model)}</code>, tonight "
                   f"<code>{_e(data.model.serving)}</code>: <b>{s.size:,}</b> accounts change action.</p>"
                   + _table(s.summary, [("previous_model_action", "Action with the previous model", None),
                                        ("action", "Action tonight", None), ("accounts", "Accounts", _int)],
                            numeric=("accounts",)))
        examples = ""
        if s.accounts.height:
            examples = f"<p>First {s.accounts.height} accounts of the swap set</p>" + _table(
                s.accounts, [("account_id", "Account", None), ("previous_model_action", "Previous model", None),
                             ("action", "Tonight", None), ("previous_model_grade", "Grade before", None),
                             ("grade", "Grade tonight", None)])
        swap += f'<div class="grid2"><div>{summary}</div><div class="scroll">{examples}</div></div>'
    swap += f"<p>{_e(s.note)}</p>" if s.note else ""
    return (
        '<section id="decisions"><h2>Limit decisions</h2>'
        f'<div class="grid2"><div><h3>Actions and exposure change</h3>{by_action}'
        f'{_img(uris["exposure"], "Exposure change by action and grade")}</div>'
        f'<div><h3>Accounts by action and grade</h3>{by_grade}<p class="note">Second line: exposure change (sum of '
        "new - previous limit) where limits moved.</p>"
        f'<h3>Limit changes</h3>{_img(uris["changes"], "Histogram of limit changes")}</div></div>'
        f"<h3>Strategy test cells</h3>{cells}"
        '<p class="note">Control lines keep their limit where the champion strategy would raise or cut it; '
        "challenger lines are sized with the challenger factors (riskline.yaml policy.strategy_test).</p>"
        f"<h3>Swap set</h3>{swap}</section>"
    )


def _collections_section(data: ReportData, uris: Mapping[str, str]) -> str:
    c = data.collections
    queue = _table(c.queue, [
        ("treatment", "Treatment", None), ("accounts", "Cases", _int), ("capacity", "Daily capacity", _int),
        ("overflow", "Overflow", _int), ("overdue_cents", "Overdue amount", format_cny),
        ("expected_loss_cents", "Expected loss", format_cny),
    ], numeric=("accounts", "capacity", "overflow", "overdue_cents", "expected_loss_cents"))
    if c.hardship.height:
        hardship = _table(c.hardship, [
            ("extension_months", "Extension (months)", None), ("offers", "Loans offered", _int),
            ("accounts", "Accounts", _int), ("outstanding_cents", "Outstanding principal", format_cny),
            ("current_cents", "Monthly instalments now", format_cny),
            ("new_cents", "Monthly instalments offered", format_cny),
        ], numeric=("offers", "accounts", "outstanding_cents", "current_cents", "new_cents"))
    else:
        hardship = '<p class="note">No hardship offers tonight.</p>'
    return (f'<section id="collections"><h2>Collections</h2><div class="grid2"><div><h3>Queues against capacity</h3>'
            f'{_img(uris["queue"], "Collections queue by treatment")}</div><div><h3>Cases per treatment</h3>{queue}'
            f'<p class="note">Agent capacity: {c.capacity:,} cases a day (collections.agent_daily_capacity); '
            "cases beyond it, by expected loss, overflow to the automated treatment.</p>"
            f"<h3>Hardship offers</h3>{hardship}</div></div></section>")


def render_report(data: ReportData, uris: Mapping[str, str]) -> str:
    """The page as HTML text. ``uris`` maps chart names to ``data:image/png;base64,...`` URIs."""
    man = data.manifest
    previous = f"previous run {data.previous_run}" if data.previous_run else "no previous run"
    config = str(man.get("config_sha256", ""))[:12]
    header = (
        f"<header><h1>riskline nightly run &middot; business date {_e(data.as_of)}</h1>"
        f'<div class="sub">model <code>{_m(man, "model_version")}</code> &middot; policy '
        f'<code>{_m(man, "policy_version")}</code> &middot; code <code>{_e(man.get("code_version", ""))}</code> '
        f"&middot; config {_e(config)} &middot; {_e(previous)} &middot; amounts in CNY</div></header>"
        '<nav><a href="#summary">Summary</a><a href="#data">Data</a><a href="#model">Model</a>'
        '<a href="#portfolio">Portfolio</a><a href="#decisions">Decisions</a>'
        '<a href="#collections">Collections</a></nav>'
    )
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in data.notes)
    body = (
        f'<main><div id="summary">{_headline(data)}</div>{notes}{_data_section(data)}'
        f"{_model_section(data, uris)}{_portfolio_section(data, uris)}{_decisions_section(data, uris)}"
        f"{_collections_section(data, uris)}</main>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>riskline run report {_e(data.as_of)}</title><style>{_CSS}</style></head>"
        f"<body>{header}{body}</body></html>\n"
    )


# --- I/O --------------------------------------------------------------------------------------------


def report_path(root: Path, as_of: dt.date) -> Path:
    """``DATA_ROOT/reports/as_of_date=D/report.html`` (also what the run manifest links to)."""

    return lake.derived_partition(root, REPORT_ZONE, as_of) / REPORT_FILE


def report_link(as_of: dt.date) -> str:
    """The report's path relative to the data root, as the manifest records it."""
    return f"{REPORT_ZONE}/as_of_date={as_of.isoformat()}/{REPORT_FILE}"


def published_dates(root: Path) -> list[dt.date]:
    """Business dates with a published run manifest, oldest first."""
    base = root / "outputs" / "_manifests"
    days = []
    if base.is_dir():
        for path in base.glob("as_of_date=*"):
            try:
                day = dt.date.fromisoformat(path.name.split("=", 1)[1])
            except ValueError:
                continue
            if (path / "manifest.json").is_file():
                days.append(day)
    return sorted(days)


def _read_manifest(root: Path, as_of: dt.date) -> dict[str, Any]:

    try:
        return read_manifest(root, as_of)
    except FileNotFoundError as exc:
        raise ReportError(f"{exc}: run `riskline run --as-of {as_of}` first") from None


def _published(root: Path, as_of: dt.date) -> dict[str, pl.DataFrame]:

    return {name: read_output(root, name, as_of) for name in OUTPUTS}


def _count_rows(partition: Path) -> int:

    if not lake.is_complete(partition):
        return 0
    files = lake.parquet_files(partition)
    return int(pl.scan_parquet(files).select(pl.len()).collect().item()) if files else 0


def _collect_data(root: Path, as_of: dt.date, report_dir: Path) -> DataSection:
    from pipelines.quality.validate import data_docs_dir, results_dir

    rows, reasons, failures = [], [], []
    for name in DATASETS:
        stored_path = results_dir(root, as_of) / f"{name}.json"
        stored = json.loads(stored_path.read_text()) if stored_path.is_file() else None
        outcomes = stored["outcomes"] if stored else []
        quarantine = lake.partition_dir(root, "quarantine", name, as_of)
        held = _count_rows(quarantine)
        rows.append({
            "dataset": name,
            "validated_rows": int(stored["rows"]) if stored else 0,
            "curated_rows": _count_rows(lake.partition_dir(root, "curated", name, as_of)),
            "quarantined_rows": held,
            "passed": sum(o["outcome"] == "passed" for o in outcomes),
            "failed": sum(o["outcome"] in ("quarantined", "warning", "critical") for o in outcomes),
            "ok": bool(stored["ok"]) if stored else False,
        })
        for o in outcomes:
            if o["outcome"] in ("quarantined", "warning", "critical"):
                failures.append(f"{name}: {o['outcome'].upper()} [{o['risk']}] {o['expectation']}: "
                                f"{o.get('unexpected_count') or o.get('observed')}")
        if held:
            counts = (pl.scan_parquet(lake.parquet_files(quarantine)).select(
                pl.col(QUARANTINE_REASON).str.split(";").explode().alias("reason"))
                .group_by("reason").len().sort("reason").collect())
            reasons += [{"dataset": name, "reason": r, "rows": int(n)} for r, n in counts.iter_rows()]
    docs = data_docs_dir(root, as_of) / "index.html"
    href = Path(os.path.relpath(docs, report_dir)).as_posix() if docs.is_file() else None
    return DataSection(
        datasets=pl.DataFrame(rows, schema={"dataset": pl.String, "validated_rows": pl.Int64,
                                            "curated_rows": pl.Int64, "quarantined_rows": pl.Int64,
                                            "passed": pl.Int64, "failed": pl.Int64, "ok": pl.Boolean}),
        quarantine_reasons=pl.DataFrame(reasons, schema={"dataset": pl.String, "reason": pl.String, "rows": pl.Int64}),
        failures=failures,
        data_docs_href=href,
    )


def _gate_view(version: str, gate: Mapping[str, Any]) -> GateView:
    return GateView(version, bool(gate["promote"]), str(gate["summary"]), list(gate.get("checks", [])))


def _collect_model(
    root: Path, as_of: dt.date, cfg: RisklineConfig, manifest: Mapping[str, Any], scores: pl.DataFrame,
    previous_scores: pl.DataFrame | None,
) -> ModelSection:
    from pipelines.model.registry import ModelRegistry
    from pipelines.model.score import model_features, predict_pd
    from pipelines.model.train import label_snapshot
    from pipelines.stages.features import load_feature_snapshot
    from pipelines.stages.train import load_labels

    definition = load_model_definition(cfg)
    nthread = definition.hyperparameters.nthread
    registry = ModelRegistry(root)
    serving = str(manifest["model_version"])
    record = registry.record(serving)
    booster = registry.load_booster(serving)
    names = model_features(booster)

    records = [registry.record(v) for v in registry.versions()]
    shown = [r for r in records if r.as_of <= as_of][-cfg.report.trend_versions:]
    trend = pl.DataFrame(
        [{"version": r.version, "as_of": r.as_of, "auc": r.metrics["oot"]["auc"], "ks": r.metrics["oot"]["ks"],
          "gini": r.metrics["oot"]["gini"], "calibration_error": r.metrics["oot"]["calibration_error"],
          "promoted": bool(r.gate["promote"]), "serving": r.version == serving} for r in shown],
        schema={"version": pl.String, "as_of": pl.Date, "auc": pl.Float64, "ks": pl.Float64, "gini": pl.Float64,
                "calibration_error": pl.Float64, "promoted": pl.Boolean, "serving": pl.Boolean},
    )
    trained_tonight = [_gate_view(r.version, r.gate) for r in records if r.as_of == as_of]

    # ROC/KS are not stored with a model: rebuild its OOT rows from the cached snapshot and labels.
    oot_date = dt.date.fromisoformat(record.manifest["training_window"]["oot_date"])
    feats_dir, labels_dir = zones.feature_partition(root, oot_date), zones.labels_partition(root, oot_date)
    roc, ks, recomputed, note = None, None, None, ""
    if lake.is_complete(feats_dir) and lake.is_complete(labels_dir):
        oot = label_snapshot(  # both partitions are complete: these read, never rebuild
            load_feature_snapshot(root, oot_date, cfg, names), load_labels(root, oot_date, cfg), names,
        )
        pd_oot = predict_pd(booster, oot, nthread)
        from pipelines.model.metrics import auc

        recomputed = auc(oot["bad"], pd_oot)
        roc = roc_points(oot["bad"], pd_oot, cfg.report.curve_points)
        ks = ks_points(oot["bad"], pd_oot, cfg.report.curve_points)
        if abs(recomputed - record.metrics["oot"]["auc"]) > 1e-9:
            note = (f"The OOT rows rebuilt tonight give AUC {recomputed:.4f}, the registry holds "
                    f"{record.metrics['oot']['auc']:.4f}: the cached snapshot or labels of {oot_date} changed.")
    else:
        note = f"The OOT snapshot of {oot_date} is no longer in the lake: ROC and KS curves cannot be drawn."

    tonight = zones.read_features(root, as_of)
    sample_ids = shap_sample(tonight["account_id"], cfg.report.shap_sample_accounts)
    sample = tonight.filter(pl.col("account_id").is_in(sample_ids.implode())).sort("account_id")
    gain = pl.DataFrame(sorted(record.metrics.get("importance_gain", {}).items()), schema={
        "feature": pl.String, "gain": pl.Float64}, orient="row").sort("gain", "feature", descending=[True, False])
    oot_metrics = {k: v for k, v in record.metrics["oot"].items() if k != "score_reference"}
    run = manifest.get("run", {})
    prev_scores = previous_scores["score"].to_numpy() if previous_scores is not None else None
    now_scores = scores["score"].to_numpy()
    return ModelSection(
        serving=serving,
        oot=oot_metrics,
        oot_date=oot_date.isoformat(),
        trend=trend,
        roc=roc,
        ks=ks,
        recomputed_auc=recomputed,
        curve_note=note,
        scores_now=now_scores,
        scores_previous=prev_scores,
        score_psi=score_psi(prev_scores, now_scores, definition.stability.bins)
        if prev_scores is not None and prev_scores.size and now_scores.size else None,
        gain=gain.head(cfg.report.top_features),
        shap=mean_abs_shap(booster, sample, nthread).head(cfg.report.top_features),
        shap_accounts=sample.height,
        feature_psi=feature_psi(tonight, record.metrics.get("feature_reference", {}), definition.stability.psi_bands),
        psi_bands=definition.stability.psi_bands,
        trained_tonight=trained_tonight,
        serving_gate=_gate_view(serving, record.gate),
        retrain=bool(run.get("retrain", True)) and not run.get("pinned_model_version"),
    )


def _collect_portfolio(
    root: Path, as_of: dt.date, cfg: RisklineConfig, previous_run: dt.date | None
) -> PortfolioSection:

    buckets = cfg.collections.buckets
    ledger_dir = ledger_partition(root, as_of)
    accounts_now = pl.read_parquet(ledger_dir / "accounts.parquet")
    roll, note = None, ""
    if previous_run is not None:
        prev_dir = ledger_partition(root, previous_run)
        if lake.is_complete(prev_dir):
            previous = pl.read_parquet(prev_dir / "accounts.parquet", columns=["account_id", "dpd"])
            roll = roll_rates(previous, accounts_now, buckets)
        else:
            note = f"The ledger of the previous run ({previous_run}) is no longer in the lake."
    curated = lake.complete_partition_dates(root, "curated", "accounts")
    since = curated[0] if curated else as_of
    book = lake.read_partition(lake.partition_dir(root, "curated", "accounts", as_of)).select("account_id", "opened_on")
    installments = pl.read_parquet(ledger_dir / "installments.parquet",
                                   columns=["account_id", "due_date", "paid_off_date"])
    return PortfolioSection(
        delinquency=delinquency_by_bucket(accounts_now, buckets),
        roll=roll,
        vintages=vintage_curves(book, installments, as_of, since, cfg.labels.bad_dpd),
        bad_dpd=cfg.labels.bad_dpd,
        since=since,
        note=note,
    )


def _counterfactual_decisions(
    root: Path, as_of: dt.date, cfg: RisklineConfig, previous_model: str
) -> pl.DataFrame:
    """Tonight's policy on tonight's inputs (as the decide stage reads them), scored by ``previous_model``."""
    from pipelines.model.registry import ModelRegistry
    from pipelines.model.score import assign_grade, pd_to_score, predict_pd

    definition = load_model_definition(cfg)
    booster = ModelRegistry(root).load_booster(previous_model)
    feats = read_features(root, as_of).sort("account_id")
    pd_ = predict_pd(booster, feats, definition.hyperparameters.nthread)
    scores = feats.select("account_id").with_columns(
        pl.Series("pd", pd_, dtype=pl.Float64),
        assign_grade(pd_, pd_to_score(pd_, definition.score_scaling), definition.grades),
        *(pl.lit(None, dtype=pl.String).alias(c) for c in policy.REASON_COLUMNS),  # reasons never pick an action
        pl.lit(previous_model).alias("model_version"),
    )
    accounts = lake.read_partition(lake.partition_dir(root, "curated", "accounts", as_of))
    installments = pl.read_parquet(ledger_partition(root, as_of) / "installments.parquet")
    previous_scores, history = read_previous_run(root, as_of)
    inputs = policy.build_policy_input(as_of, accounts, feats, installments, scores, previous_scores, history)
    return policy.decide_limits(inputs, cfg.policy, cfg.product).select("account_id", "action", "grade")


def _collect_decisions(
    root: Path, as_of: dt.date, cfg: RisklineConfig, limits: pl.DataFrame, previous_model: str | None,
    serving: str, grades: Sequence[str],
) -> DecisionsSection:
    from pipelines.model.registry import RegistryError

    by_grade = exposure_by_action_grade(limits, grades)
    by_action = (
        by_grade.group_by("action").agg(pl.col("accounts").sum(), pl.col("exposure_change_cents").sum())
        .sort(_order_key("action", ACTION_ORDER))
    )
    if previous_model is None:
        swap = SwapView(None, None, None, 0, "No previous run: there is no previous champion to compare with.")
    elif previous_model == serving:
        swap = SwapView(previous_model, None, None, 0,
                        f"The model did not change since the previous run ({serving}): the swap set is empty.")
    else:
        try:
            counterfactual = _counterfactual_decisions(root, as_of, cfg, previous_model)
        except (ValueError, KeyError, RegistryError) as exc:  # e.g. it needs a feature tonight's snapshot lacks
            swap = SwapView(previous_model, None, None, 0, f"The previous champion cannot score tonight: {exc}")
        else:
            swaps = swap_set(limits, counterfactual)
            swap = SwapView(previous_model, swap_summary(swaps), swaps.head(cfg.report.swap_set_rows), swaps.height, "")
    return DecisionsSection(
        by_action=by_action,
        by_action_grade=by_grade,
        changes=limit_changes(limits),
        test_cells=test_cell_summary(limits),
        swap=swap,
    )


def _collect_collections(cfg: RisklineConfig, queue: pl.DataFrame, offers: pl.DataFrame) -> CollectionsSection:
    queue_cents = queue.with_columns(
        money_to_cents("overdue_amount").alias("overdue_amount_cents"),
        money_to_cents("expected_loss").alias("expected_loss_cents"),
    )
    hardship = (
        offers.with_columns(
            money_to_cents("outstanding_principal").alias("outstanding_cents"),
            money_to_cents("current_instalment").alias("current_cents"),
            money_to_cents("new_instalment").alias("new_cents"),
        )
        .group_by("extension_months")
        .agg(
            pl.len().cast(pl.Int64).alias("offers"),
            pl.col("account_id").n_unique().cast(pl.Int64).alias("accounts"),
            pl.col("outstanding_cents").sum(), pl.col("current_cents").sum(), pl.col("new_cents").sum(),
        )
        .sort("extension_months")
    )
    return CollectionsSection(queue_against_capacity(queue_cents, cfg.collections),
                              cfg.collections.agent_daily_capacity, hardship, offers["account_id"].n_unique())


def collect_report_data(root: Path, as_of: dt.date, cfg: RisklineConfig) -> ReportData:
    """Read what the page shows for ``as_of``: the manifest, the published outputs, registry, ledger, results.

    Raises:
        ReportError: nothing was published for ``as_of``.
    """

    manifest = _read_manifest(root, as_of)
    earlier = [d for d in published_dates(root) if d < as_of]
    previous_run = earlier[-1] if earlier else None
    out = _published(root, as_of)
    notes = [
        f"The published {name} holds {out[name].height:,} rows but the manifest says "
        f"{manifest['outputs'][name]['rows']:,}: the outputs were replaced after the manifest was written."
        for name in sorted(out) if out[name].height != manifest["outputs"][name]["rows"]
    ]
    previous_scores, previous_model = None, None
    if previous_run is not None:
        previous_scores = read_output(root, "scores", previous_run)  # only its scores are compared
        previous_model = str(_read_manifest(root, previous_run)["model_version"])
    grades = tuple(load_model_definition(cfg).grades.labels)
    limits = out["limits"].with_columns(
        money_to_cents("previous_limit").alias("previous_limit_cents"),
        money_to_cents("new_limit").alias("new_limit_cents"),
    ).join(out["scores"].select("account_id", "grade"), on="account_id", how="left")
    model = _collect_model(root, as_of, cfg, manifest, out["scores"], previous_scores)
    return ReportData(
        as_of=as_of,
        manifest=manifest,
        previous_run=previous_run,
        data=_collect_data(root, as_of, report_path(root, as_of).parent),
        model=model,
        portfolio=_collect_portfolio(root, as_of, cfg, previous_run),
        decisions=_collect_decisions(root, as_of, cfg, limits, previous_model, model.serving, grades),
        collections=_collect_collections(cfg, out["collection_queue"], out["hardship_offers"]),
        grades=grades,
        notes=notes,
    )


def write_report(root: Path, as_of: dt.date, cfg: RisklineConfig) -> Path:
    """``riskline report --as-of D``: build the page for ``as_of`` and replace it atomically; return its path."""
    from pipelines.report import plots

    data = collect_report_data(root, as_of, cfg)
    page = render_report(data, plots.draw_charts(data))
    path = report_path(root, as_of)
    lake.atomic_write_bytes(path, page.encode("utf-8"))
    return path
