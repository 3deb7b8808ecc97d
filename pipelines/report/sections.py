"""What the morning report shows, as data: the sections' dataclasses and the pure computations behind them.

Frames in, frames and numbers out (roll rates, vintages, exposure by action and grade, the swap set, feature
drift); ``pipelines/report/report.py`` reads the lake and fills them, ``render.py`` and ``plots.py`` draw them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from pipelines.config.decisions import CollectionBucket, CollectionsConfig
from pipelines.model.metrics import KsCurve, psi_against, psi_band_expr, reference_bins
from pipelines.report.cells import CellsSection
from pipelines.report.trends import TrendSection


CURRENT = "current"  # the bucket of an account owing money with no DPD
# The roll tables' own state for an account owing nothing (paid off, or a line never drawn): counted as
# "current" it would dilute the roll out of current and pass a pay-off as a cure (FINDINGS20C 1).
NO_BALANCE = "no balance"
ACTION_ORDER: tuple[str, ...] = ("freeze", "decrease", "hold", "unfreeze", "increase")
UNSCORED = "unscored"
SWAP_SET_DEFINITION = (
    "Swap set: accounts whose limit action tonight differs from the action the same policy would have taken "
    "tonight, on the same data, with the previous run's champion model scoring them. Only the model differs, "
    "so every account listed changed action because the model changed."
)


class ReportError(RuntimeError):
    """The report cannot be built for this date (nothing was published for it)."""


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


def format_cny_cents(cents: int) -> str:
    """Integer cents as yuan and fen, ``-8335567`` -> ``-¥83,355.67``: where totals are shown exactly, so that
    live - candidate = the difference as printed (whole yuan rounded apart would be off by one)."""
    cents = int(cents)
    sign, size = ("-" if cents < 0 else ""), abs(cents)
    return f"{sign}¥{size // 100:,}.{size % 100:02d}"


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


def bucket_names(buckets: Sequence[CollectionBucket]) -> list[str]:
    return [CURRENT, *(b.name for b in buckets)]


def dpd_bucket(dpd: pl.Expr, buckets: Sequence[CollectionBucket]) -> pl.Expr:
    """The collections bucket of a DPD (the same cut-offs as the queue), ``current`` below the first."""
    bucket: pl.Expr = pl.lit(CURRENT)
    for b in buckets:  # ascending bounds: the last bucket whose min_dpd is reached wins
        bucket = pl.when(dpd >= b.min_dpd).then(pl.lit(b.name)).otherwise(bucket)
    return bucket


def owing_money() -> pl.Expr:
    """An account owing money on its ledger: the population of the bucket table, the 30+ DPD rate and the rolls."""
    return (pl.col("outstanding_principal_cents") > 0) | (pl.col("overdue_cents") > 0)


def delinquency_by_bucket(ledger_accounts: pl.DataFrame, buckets: Sequence[CollectionBucket]) -> pl.DataFrame:
    """Share of accounts and of outstanding principal per DPD bucket, among accounts owing money.

    Args:
        ledger_accounts: ``Ledger.accounts`` of D (``dpd, outstanding_principal_cents, overdue_cents``).

    Returns:
        ``bucket, accounts, account_share, outstanding_cents, balance_share``, every bucket in order.
    """
    names = bucket_names(buckets)
    owing = ledger_accounts.filter(owing_money())
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


def roll_state(buckets: Sequence[CollectionBucket]) -> pl.Expr:
    """An account's state in a roll table: its DPD bucket when it owes money, ``no balance`` when it owes nothing."""
    return pl.when(owing_money()).then(dpd_bucket(pl.col("dpd"), buckets)).otherwise(pl.lit(NO_BALANCE))


def roll_rates(
    previous: pl.DataFrame, current: pl.DataFrame, buckets: Sequence[CollectionBucket]
) -> pl.DataFrame:
    """Where the accounts of each DPD bucket at the previous run are now.

    Args:
        previous, current: ``account_id, dpd, outstanding_principal_cents, overdue_cents`` (ledger accounts of
            the previous run's date and of D). Only accounts on both ledgers count: a line first drawn since has
            no bucket to roll from. An account owing nothing is in ``no balance``, not ``current``, so the
            buckets' rows are the bucket table's population and a pay-off is not a cure.

    Returns:
        ``from_bucket, to_bucket, accounts, share`` (share of the from-bucket's accounts), the full grid
        of states in order (the buckets, then ``no balance``), zeros included.
    """
    names = [*bucket_names(buckets), NO_BALANCE]
    moved = (
        previous.select("account_id", roll_state(buckets).alias("from_bucket"))
        .join(current.select("account_id", roll_state(buckets).alias("to_bucket")),
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


def order_key(column: str, order: Sequence[str]) -> pl.Expr:
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
        .sort(order_key("action", ACTION_ORDER), order_key("grade", [*grades, UNSCORED]))
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
        .sort(order_key("test_cell", ("champion", "challenger", "control")))
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
        .sort(order_key("previous_model_action", ACTION_ORDER), order_key("action", ACTION_ORDER))
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
        .sort(order_key("treatment", order), "treatment")
    )


def feature_psi(
    features: pl.DataFrame, reference: Mapping[str, Mapping[str, Sequence[float]]], bands: tuple[float, float]
) -> pl.DataFrame:
    """PSI of each model feature tonight against the serving model's OOT reference bins, with its band.

    Returns:
        ``feature, psi, band`` (stable < bands[0] <= watch < bands[1] <= shifted), worst first.
    """

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


def score_psi(previous: Any, current: Any, bins: int) -> float:
    """PSI of tonight's scores against the previous run's, on the previous run's score deciles."""

    return psi_against(reference_bins(previous, bins), current)


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
    shap: pl.DataFrame  # feature, mean_abs_shap (as training stored it; empty for a model stored without it)
    shap_accounts: int  # OOT accounts training computed it on
    shap_note: str  # why there is no SHAP chart, or ""
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
    dpd30_bucket: str = ""  # the bucket DPD 30 falls in (the 30+ DPD rate counts it; the buckets may not)


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
    cells: CellsSection | None = None  # "Test cells: outcomes" (pipelines/report/cells.py); None: not collected
    trends: TrendSection | None = None  # issue 20: the trend strip, EL tile, 30-day roll (None: not collected)
    # chain.night_status of D (``stale``, and when stale ``reason`` and ``rebuild``); earlier nights marked stale
    stale: dict[str, Any] = field(default_factory=dict)
    stale_in_trend: list[dt.date] = field(default_factory=list)
    previous_unpublished: dt.date | None = None  # D's previous night when it was never published (see notes)
