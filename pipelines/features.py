"""Point-in-time features per account as of a business date D.

One row per account that is active or frozen in the accounts snapshot of D, keyed by ``account_id`` and
``as_of_date``. Every input row with ``dt > D`` is ignored, so the features of D can be rebuilt on any
later day and come out identical. The columns and their meaning are listed in
:mod:`pipelines.feature_dictionary`; protected attributes (``contract.PROTECTED_ATTRIBUTES``) and region
are never read into a feature.

Behaviour is read in one pass: a single group-by over the last 180 days of events with conditional sums
for every window, instead of one pass per window. Money features stay integer cents (Int64); ratios are
Float64 with null where undefined (XGBoost reads null as missing).

:func:`build_features` is pure; :func:`build_feature_snapshot` (bottom) reads the curated zone and
publishes ``DATA_ROOT/features/as_of_date=D/`` and ``DATA_ROOT/ledger/as_of_date=D/``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import polars as pl

from pipelines import lake
from pipelines.config import RisklineConfig
from pipelines.contract import EVENT_TYPES
from pipelines.feature_dictionary import (
    BEHAVIOUR_WINDOWS,
    DPD_WINDOWS,
    HISTORY_DAYS,
    KEY_COLUMNS,
    LIMIT_WINDOWS,
    ON_TIME_WINDOWS,
    RATIO_WINDOWS,
    TREND_PRIOR_DAYS,
    TREND_RECENT_DAYS,
)
from pipelines.ledger import Ledger, build_ledger, outstanding_principal_at, reconcile_ledger
from pipelines.pending_payments import WAITING_SCHEMA, PendingPayments, resolve_pending_payments
from pipelines.sharding import filter_shard

SCORED_STATUSES: tuple[str, ...] = ("active", "frozen")
UTILIZATION_TREND_DAYS = 30  # one of LIMIT_WINDOWS: the limit of that snapshot is the denominator


def _days_before(as_of: dt.date, days: int) -> dt.date:
    return as_of - dt.timedelta(days=days)


def _ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """num / den as Float64, null when the denominator is 0 or null (undefined, not 0)."""
    return pl.when(den > 0).then(num.cast(pl.Float64) / den.cast(pl.Float64)).otherwise(None)


def _age_edges() -> list[int]:
    """Bucket edges in days of age: every window and trend boundary (the last one is the history)."""
    return sorted({*BEHAVIOUR_WINDOWS, TREND_RECENT_DAYS, TREND_RECENT_DAYS + TREND_PRIOR_DAYS, HISTORY_DAYS})


def aggregate_behaviour(behaviour: pl.LazyFrame, as_of: dt.date) -> pl.LazyFrame:
    """Per account: spend, purchases, cash draws, logins and refunds over every window, in one pass.

    The one pass over the events reduces them to cells (account, event type x age bucket) with a
    count and an amount, where the buckets are cut at every window edge (7/30/90/180 days). Each
    window is then a sum over a few cells per account. Measured on 10M events: 1.5 s, against 6 s for
    one group-by with two dozen conditional sums over the raw events.
    """
    edges = _age_edges()
    first_day = _days_before(as_of, HISTORY_DAYS - 1)
    age = (pl.lit(as_of, dtype=pl.Date()) - pl.col("dt")).dt.total_days()  # 0 = D; "last w days" = age < w
    # bucket i holds ages edges[i-1] <= age < edges[i] (edges[-1] is the history, already filtered)
    bucket = pl.sum_horizontal([(age >= e).cast(pl.UInt8) for e in edges[:-1]]).cast(pl.UInt8)
    n_buckets = len(edges)
    # One small-integer cell key (event type x bucket) next to account_id: a two-column key groups
    # 2x faster than account_id + bucket + event type (measured on 47M events).
    cell = pl.col("event_type").cast(pl.Enum(EVENT_TYPES)).to_physical().cast(pl.UInt8) * n_buckets + bucket
    cells = (
        behaviour.filter(pl.col("dt").is_between(first_day, as_of))
        .select("account_id", cell.alias("cell"), pl.col("amount_cents").fill_null(0))
        .group_by("account_id", "cell")
        .agg(pl.len().cast(pl.Int32).alias("n"), pl.col("amount_cents").sum().alias("cents"))
    )

    def within(kind: str, lo: int, hi: int) -> pl.Expr:
        """Cells of ``kind`` whose ages lie in [lo, hi); lo and hi must be edges (or 0)."""
        first, last = (edges.index(lo) + 1 if lo else 0), edges.index(hi)
        base = EVENT_TYPES.index(kind) * n_buckets
        return pl.col("cell").is_between(base + first, base + last)

    # when/then/sum rather than filter/sum: an elementwise expression under a sum stays on the
    # group-by's fast path, a filter is evaluated group by group.
    def count(kind: str, w: int) -> pl.Expr:
        return pl.when(within(kind, 0, w)).then(pl.col("n")).otherwise(0).sum().cast(pl.Int32)

    def total(kind: str, lo: int, hi: int) -> pl.Expr:
        return pl.when(within(kind, lo, hi)).then(pl.col("cents")).otherwise(0).sum()

    aggs: list[pl.Expr] = []
    for w in BEHAVIOUR_WINDOWS:
        aggs += [
            total("purchase", 0, w).alias(f"spend_{w}d_cents"),
            count("purchase", w).alias(f"purchase_count_{w}d"),
            count("cash_draw", w).alias(f"cash_draw_count_{w}d"),
            total("cash_draw", 0, w).alias(f"cash_draw_amount_{w}d_cents"),
            count("login", w).alias(f"login_count_{w}d"),
        ]
    aggs += [total("refund", 0, w).alias(f"_refund_{w}d_cents") for w in RATIO_WINDOWS]
    aggs.append(
        total("purchase", TREND_RECENT_DAYS, TREND_RECENT_DAYS + TREND_PRIOR_DAYS).alias("_spend_prior_cents")
    )
    spend_recent = pl.col(f"spend_{TREND_RECENT_DAYS}d_cents")
    return (
        cells.group_by("account_id")
        .agg(aggs)
        .with_columns(
            *(
                _ratio(pl.col(f"_refund_{w}d_cents"), pl.col(f"spend_{w}d_cents")).alias(f"refund_ratio_{w}d")
                for w in RATIO_WINDOWS
            ),
            # ratio of daily averages, so a flat spender reads 1.0
            _ratio(
                spend_recent * TREND_PRIOR_DAYS, pl.col("_spend_prior_cents") * TREND_RECENT_DAYS
            ).alias("spend_trend_30d"),
        )
        .drop(*(f"_refund_{w}d_cents" for w in RATIO_WINDOWS), "_spend_prior_cents")
    )


def _limit_history(accounts: pl.LazyFrame, as_of: dt.date) -> pl.DataFrame:
    """Per account: the credit line of its latest snapshot on or before D-w, for each limit window."""
    earliest_cut = _days_before(as_of, min(LIMIT_WINDOWS))
    hist = (
        accounts.filter(pl.col("dt") <= earliest_cut)
        .select("account_id", "dt", "credit_limit_cents")
        .collect()
    )
    out = hist.select("account_id").unique()
    for w in sorted(LIMIT_WINDOWS):
        cut = _days_before(as_of, w)
        ref = (
            hist.filter(pl.col("dt") <= cut)
            .group_by("account_id")
            .agg(pl.col("credit_limit_cents").sort_by("dt").last().alias(f"_limit_{w}d_ago_cents"))
        )
        out = out.join(ref, on="account_id", how="left")
    return out


def _repayment_windows(ledger: Ledger, as_of: dt.date) -> pl.DataFrame:
    """Per account: amounts falling due and repaid, and on-time instalments, over the ratio windows."""
    age_due = (pl.lit(as_of, dtype=pl.Date()) - pl.col("due_date")).dt.total_days()
    due_aggs: list[pl.Expr] = []
    for w in RATIO_WINDOWS:
        in_w = (age_due >= 0) & (age_due < w)
        due_aggs.append(pl.when(in_w).then(pl.col("due_cents")).otherwise(0).sum().alias(f"_due_{w}d_cents"))
    for w in ON_TIME_WINDOWS:
        in_w = (age_due >= 0) & (age_due < w)
        # on time = paid off by the close of the due date (a payment on the due date is on time)
        on_time = in_w & (pl.col("paid_off_date") <= pl.col("due_date")).fill_null(False)
        due_aggs += [in_w.sum().alias(f"_n_due_{w}d"), on_time.sum().alias(f"_n_on_time_{w}d")]
    due = ledger.installments.group_by("account_id").agg(due_aggs)

    age_paid = (pl.lit(as_of, dtype=pl.Date()) - pl.col("paid_on")).dt.total_days()
    paid = ledger.payments.group_by("account_id").agg(
        pl.when(age_paid < w).then(pl.col("amount_cents")).otherwise(0).sum().alias(f"_paid_{w}d_cents")
        for w in RATIO_WINDOWS
    )
    return (
        due.join(paid, on="account_id", how="full", coalesce=True)
        .with_columns(
            *(
                _ratio(pl.col(f"_paid_{w}d_cents").fill_null(0), pl.col(f"_due_{w}d_cents"))
                .alias(f"payment_to_due_ratio_{w}d")
                for w in RATIO_WINDOWS
            ),
            *(
                _ratio(pl.col(f"_n_on_time_{w}d"), pl.col(f"_n_due_{w}d")).alias(f"on_time_ratio_{w}d")
                for w in ON_TIME_WINDOWS
            ),
        )
        .select(
            "account_id",
            *(f"payment_to_due_ratio_{w}d" for w in RATIO_WINDOWS),
            *(f"on_time_ratio_{w}d" for w in ON_TIME_WINDOWS),
        )
    )


def _months_between(start: pl.Expr, end: dt.date) -> pl.Expr:
    """Whole months from ``start`` to ``end`` (a month counts once its day-of-month is reached)."""
    months = (end.year - start.dt.year().cast(pl.Int32)) * 12 + (end.month - start.dt.month().cast(pl.Int32))
    return (months - (start.dt.day() > end.day).cast(pl.Int32)).clip(lower_bound=0).cast(pl.Int32)


def build_features(
    accounts: pl.LazyFrame, behaviour: pl.LazyFrame, ledger: Ledger, as_of: dt.date
) -> pl.DataFrame:
    """The feature rows of D, sorted by ``account_id``.

    Args:
        accounts: curated account snapshots with ``dt`` (at least D's; older ones give limit history).
        behaviour: curated behaviour events with ``dt``.
        ledger: :func:`pipelines.ledger.build_ledger` as of D.
    """
    if ledger.as_of != as_of:
        raise ValueError(f"ledger is as of {ledger.as_of}, features are asked as of {as_of}")
    as_of_lit = pl.lit(as_of, dtype=pl.Date())
    # Only keys, dates, line and status are read: protected attributes and region never enter.
    book = (
        accounts.filter((pl.col("dt") == as_of) & pl.col("status").is_in(SCORED_STATUSES))
        .select("account_id", "opened_on", "credit_limit_cents", "status")
        .collect()
    )
    if book.get_column("account_id").is_duplicated().any():
        raise ValueError(f"accounts snapshot of {as_of} repeats account ids")
    behaviour_agg = aggregate_behaviour(behaviour, as_of).collect(engine="streaming")
    limits = _limit_history(accounts, as_of)
    trend_day = _days_before(as_of, UTILIZATION_TREND_DAYS)
    before = outstanding_principal_at(ledger, trend_day).rename(
        {"outstanding_principal_cents": "_outstanding_before_cents"}
    )
    ledger_acc = ledger.accounts.select(
        "account_id",
        "outstanding_principal_cents",
        "overdue_cents",
        "dpd",
        "missed_installments",
        *(pl.col(f"worst_dpd_{w}d").alias(f"max_dpd_{w}d") for w in DPD_WINDOWS),
        "open_loans",
        "last_draw_date",
        "last_payment_date",
    )
    repayment = _repayment_windows(ledger, as_of)

    behaviour_cols = [c for c in behaviour_agg.columns if c != "account_id"]
    zero_if_absent = [
        c for c in behaviour_cols if not c.startswith(("refund_ratio", "spend_trend"))
    ] + ["outstanding_principal_cents", "overdue_cents", "dpd", "missed_installments", "open_loans"] + [
        f"max_dpd_{w}d" for w in DPD_WINDOWS
    ]
    utilization = _ratio(pl.col("outstanding_principal_cents"), pl.col("credit_limit_cents"))
    limit_before = pl.col(f"_limit_{UTILIZATION_TREND_DAYS}d_ago_cents")
    frame = (
        book.join(behaviour_agg, on="account_id", how="left")
        .join(ledger_acc, on="account_id", how="left")
        .join(repayment, on="account_id", how="left")
        .join(limits, on="account_id", how="left")
        .join(before, on="account_id", how="left")
        .with_columns(pl.col(c).fill_null(0) for c in zero_if_absent)
        .with_columns(
            as_of_date=as_of_lit,
            is_frozen=(pl.col("status") == "frozen").cast(pl.Int8),
            months_on_book=_months_between(pl.col("opened_on"), as_of),
            utilization=utilization,
            utilization_trend_30d=utilization
            - _ratio(pl.col("_outstanding_before_cents").fill_null(0), limit_before),
            days_since_last_draw=(as_of_lit - pl.col("last_draw_date")).dt.total_days().cast(pl.Int32),
            days_since_last_payment=(as_of_lit - pl.col("last_payment_date")).dt.total_days().cast(pl.Int32),
            **{
                f"limit_change_{w}d_ratio": _ratio(pl.col("credit_limit_cents"), pl.col(f"_limit_{w}d_ago_cents"))
                - 1.0
                for w in LIMIT_WINDOWS
            },
        )
        .drop(
            "opened_on", "status", "last_draw_date", "last_payment_date", "_outstanding_before_cents",
            *(f"_limit_{w}d_ago_cents" for w in LIMIT_WINDOWS),
        )
    )
    return frame.select(*KEY_COLUMNS, *(c for c in frame.columns if c not in KEY_COLUMNS)).sort("account_id")


# --- I/O entry points -------------------------------------------------------------------------------

FEATURES_ZONE = "features"
LEDGER_ZONE = "ledger"
FEATURES_FILE = "features.parquet"
PENDING_PAYMENTS_FILE = "pending_payments.parquet"
# file -> sort key; every frame is sorted so that one or N shards give the same bytes
LEDGER_FILES: dict[str, tuple[str, ...]] = {
    "installments.parquet": ("loan_id", "account_id", "installment_no", "installment_id"),
    "loans.parquet": ("loan_id", "account_id"),
    "accounts.parquet": ("account_id",),
    "unallocated.parquet": ("payment_id",),
    # quarantined payments not applied as of D (pipelines.pending_payments): decide holds their accounts
    PENDING_PAYMENTS_FILE: tuple(WAITING_SCHEMA),
}
RECONCILIATION_FILE = "_reconciliation.json"  # leading "_": not a data file for lake.parquet_files


class IncompleteHistoryError(RuntimeError):
    """A curated partition needed for the as-of date is missing or incomplete."""


def feature_partition(root: Path, as_of: dt.date) -> Path:
    return lake.derived_partition(root, FEATURES_ZONE, as_of)


def ledger_partition(root: Path, as_of: dt.date) -> Path:
    return lake.derived_partition(root, LEDGER_ZONE, as_of)


def _shard_partition(root: Path, zone: str, as_of: dt.date, shard: int, n_shards: int) -> Path:
    # Shards are staged beside, not inside, the date's partition: merge_shards publishes that one whole.
    base = lake.derived_partition(root, f"{zone}/_shards", as_of)
    return lake.ensure_inside(root, base / f"shard={shard:04d}-of-{n_shards:04d}")


def _check_history(root: Path, as_of: dt.date) -> dict[str, list[dt.date]]:
    """Complete curated dates per dataset up to D; raise if D or any day since the first is missing.

    A missing payments day would show paying customers as late, and a missing behaviour day would
    quietly lower counts: both must stop the run rather than publish plausible wrong features.
    """
    available: dict[str, list[dt.date]] = {}
    problems: list[str] = []
    for dataset in ("accounts", "behaviour", "installments", "payments"):
        dates = [d for d in lake.complete_partition_dates(root, "curated", dataset) if d <= as_of]
        available[dataset] = dates
        if not dates or dates[-1] != as_of:
            problems.append(f"{dataset}: no complete curated partition for {as_of}")
            continue
        if dataset == "accounts":
            continue  # full snapshots: any older one is enough for limit history
        expected = (as_of - dates[0]).days + 1
        if len(dates) != expected:
            have = set(dates)
            gaps = [dates[0] + dt.timedelta(days=i) for i in range(expected)]
            missing = [d.isoformat() for d in gaps if d not in have]
            problems.append(f"{dataset}: missing curated partitions {', '.join(missing[:10])}")
    if problems:
        raise IncompleteHistoryError(f"cannot build features as of {as_of}: " + "; ".join(problems))
    return available


def scan_inputs(
    root: Path, as_of: dt.date, shard: int = 0, n_shards: int = 1
) -> dict[str, pl.LazyFrame]:
    """Lazy scans of the curated inputs of D for one shard (checked complete, ``dt <= D`` only)."""
    available = _check_history(root, as_of)
    snapshot_days = {as_of}
    for w in LIMIT_WINDOWS:
        older = [d for d in available["accounts"] if d <= _days_before(as_of, w)]
        if older:
            snapshot_days.add(older[-1])  # 4 snapshots instead of 180: limits change at these points
    scans = {
        "accounts": lake.scan_curated(root, "accounts", as_of, dates=sorted(snapshot_days)),
        "behaviour": lake.scan_curated(root, "behaviour", as_of, since=_days_before(as_of, HISTORY_DAYS - 1)),
        # the ledger needs every loan ever drawn, not only the last 180 days
        "installments": lake.scan_curated(root, "installments", as_of),
        "payments": lake.scan_curated(root, "payments", as_of),
    }
    return {name: filter_shard(lf, shard, n_shards) for name, lf in scans.items()}


def scan_pending_payments(root: Path, as_of: dt.date, shard: int = 0, n_shards: int = 1) -> PendingPayments:
    """The quarantined payments of ``dt <= D`` of one shard, resolved against the curated zone of D.

    A quarantined row belongs to the shard of the ``account_id`` it names (a null one to shard 0), so
    every row is judged exactly once across shards; a row that resolves names an account of D's snapshot,
    which is in that same shard.
    """
    quarantined = filter_shard(lake.scan_quarantine(root, "payments", as_of), shard, n_shards).collect()
    payments = lake.scan_curated(root, "payments", as_of)
    if quarantined.is_empty():
        return PendingPayments.none(payments.collect_schema())
    ids = quarantined.get_column("payment_id").drop_nulls().unique().implode()
    loan_ids = quarantined.get_column("loan_id").drop_nulls().unique().implode()
    pending = resolve_pending_payments(
        quarantined,
        as_of,
        # whole-book reads, narrowed to the ids at hand: a redelivery or a loan may sit in another shard
        curated_ids=payments.select("payment_id").filter(pl.col("payment_id").is_in(ids)).collect().to_series(),
        snapshot_ids=filter_shard(lake.scan_curated(root, "accounts", as_of, dates=[as_of]), shard, n_shards)
        .select("account_id").collect().to_series(),
        loans=lake.scan_curated(root, "installments", as_of).select("loan_id", "account_id")
        .filter(pl.col("loan_id").is_in(loan_ids)).unique().collect(),
    )
    return PendingPayments(pending.resolved.cast(payments.collect_schema()), pending.waiting)  # type: ignore[arg-type]


def build_feature_snapshot(
    root: Path, as_of: dt.date, cfg: RisklineConfig, shard: int = 0, n_shards: int = 1
) -> Path:
    """Build and publish the ledger and the features of D (for one shard); return the features path.

    Unsharded: ``features/as_of_date=D/features.parquet`` and ``ledger/as_of_date=D/{installments,loans,
    accounts,unallocated,pending_payments}.parquet`` + ``_reconciliation.json``, each partition replaced whole and
    atomically.
    Sharded: the same files under ``<zone>/_shards/as_of_date=D/shard=KKKK-of-NNNN/``; once every shard
    is done, :func:`merge_shards` publishes the date's partitions. Rebuildable for any past D.
    """
    scans = scan_inputs(root, as_of, shard, n_shards)
    # Quarantined payments whose references resolved are applied like curated ones (pipelines.pending_payments).
    pending = scan_pending_payments(root, as_of, shard, n_shards)
    applied = pl.concat([scans["payments"], pending.resolved.lazy()], how="vertical")
    ledger = build_ledger(scans["installments"], applied, as_of, cfg.business.timezone)
    reconciliation = reconcile_ledger(ledger, scans["payments"], pending)
    features = build_features(scans["accounts"], scans["behaviour"], ledger, as_of)

    if n_shards == 1:
        feature_dir, ledger_dir = feature_partition(root, as_of), ledger_partition(root, as_of)
    else:
        feature_dir = _shard_partition(root, FEATURES_ZONE, as_of, shard, n_shards)
        ledger_dir = _shard_partition(root, LEDGER_ZONE, as_of, shard, n_shards)
    _publish_ledger(ledger_dir, ledger, reconciliation, pending)
    lake.publish_frames(feature_dir, {FEATURES_FILE: features})
    return feature_dir


def _ledger_frames(ledger: Ledger, pending: PendingPayments) -> dict[str, pl.DataFrame]:
    unallocated = ledger.payments.filter(pl.col("unallocated_cents") > 0).select(
        "payment_id", "account_id", "loan_id", "paid_on", "amount_cents", "allocated_cents",
        "unallocated_cents", "unallocated_reason",
    )
    frames = {
        # loan_idx numbers loans within one run: it differs between shards, so it is not published
        "installments.parquet": ledger.installments.drop("loan_idx"),
        "loans.parquet": ledger.loans,
        "accounts.parquet": ledger.accounts,
        "unallocated.parquet": unallocated,
        PENDING_PAYMENTS_FILE: pending.waiting,
    }
    return {name: frame.sort(LEDGER_FILES[name]) for name, frame in frames.items()}


def _publish_ledger(target: Path, ledger: Ledger, reconciliation: object, pending: PendingPayments) -> None:
    with lake.staged_partition(target) as tmp:
        for name, frame in _ledger_frames(ledger, pending).items():
            lake.write_parquet(frame, tmp / name)
        payload = dataclasses.asdict(reconciliation)  # type: ignore[call-overload]
        payload["as_of"] = payload["as_of"].isoformat()
        (tmp / RECONCILIATION_FILE).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def merge_shards(root: Path, as_of: dt.date, n_shards: int) -> Path:
    """Publish the date's features and ledger from all ``n_shards`` shard outputs; return features path.

    Fails (publishing nothing) unless every shard is complete. The shard outputs are disjoint by
    account, so concatenating and sorting gives exactly the unsharded result.
    """
    shard_dirs = {
        zone: [_shard_partition(root, zone, as_of, k, n_shards) for k in range(n_shards)]
        for zone in (FEATURES_ZONE, LEDGER_ZONE)
    }
    missing = [str(p) for dirs in shard_dirs.values() for p in dirs if not lake.is_complete(p)]
    if missing:
        raise IncompleteHistoryError(f"shards not complete for {as_of}: {', '.join(missing)}")
    features = pl.concat([pl.read_parquet(d / FEATURES_FILE) for d in shard_dirs[FEATURES_ZONE]])
    with lake.staged_partition(ledger_partition(root, as_of)) as tmp:
        for name, keys in LEDGER_FILES.items():
            merged = pl.concat([pl.read_parquet(d / name) for d in shard_dirs[LEDGER_ZONE]]).sort(keys)
            lake.write_parquet(merged, tmp / name)
        totals: dict[str, int] = {}
        for d in shard_dirs[LEDGER_ZONE]:
            for key, value in json.loads((d / RECONCILIATION_FILE).read_text()).items():
                if key != "as_of":
                    totals[key] = totals.get(key, 0) + int(value)
        (tmp / RECONCILIATION_FILE).write_text(
            json.dumps({"as_of": as_of.isoformat(), **totals}, indent=2, sort_keys=True) + "\n"
        )
    lake.publish_frames(feature_partition(root, as_of), {FEATURES_FILE: features.sort("account_id")})
    return feature_partition(root, as_of)


def read_features(root: Path, as_of: dt.date) -> pl.DataFrame:
    """The published features of D (fails if the partition is missing or incomplete)."""
    return lake.read_partition(feature_partition(root, as_of))
