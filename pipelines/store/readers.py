"""Readers of what earlier stages and nights left in the lake, as the decide step reads them.

"The previous run" has one definition, :func:`pipelines.store.zones.previous_night`; scoring, decide and the
report all read it through it. :func:`read_decide_inputs` is what the decide step reads for night D: the score
stage (deciding once before its reason codes), the decide stage, the report's swap set and the policy what-if
(``riskline simulate``) all read it, so none of them ever decides on different inputs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import polars as pl

from pipelines.config.settings import RisklineConfig
from pipelines.contracts.landing import CONTRACT
from pipelines.domain import policy
from pipelines.domain.coverage import accounts_held_out
from pipelines.domain.decide import decide_frames
from pipelines.domain.pending_payments import combine_holds, empty_holds, pending_holds, unapplied_credit_holds
from pipelines.domain.sharding import filter_shard
from pipelines.store import lake, zones
from pipelines.store.zones import FEATURES_FILE, FEATURES_ZONE, LEDGER_ZONE, shard_dir


def read_previous_run(
    root: Path, as_of: dt.date, shard: int = 0, n_shards: int = 1
) -> tuple[pl.DataFrame | None, pl.DataFrame]:
    """The previous run's scores (None on the first run) and the limit history it left, as decide reads them.

    Both come from the same night, :func:`~pipelines.store.zones.previous_night`. With ``n_shards > 1``, only
    the rows of ``shard``'s accounts.
    """

    def read(files: list[Path]) -> pl.DataFrame:
        return filter_shard(lake.scan_parquet(files), shard, n_shards).collect()

    night = zones.previous_night(root, as_of)
    if night is None:
        return None, policy.empty_limit_history()
    history = read([lake.partition_file(zones.decisions_dir(root, night), zones.LIMIT_HISTORY_FILE)])
    return read_previous_scores(root, night, shard, n_shards), history


def read_previous_scores(root: Path, night: dt.date, shard: int = 0, n_shards: int = 1) -> pl.DataFrame | None:
    """The internal scores of ``night`` (of ``shard``'s accounts), None when its partition is not complete."""
    partition = zones.scores_dir(root, night)
    if not lake.is_complete(partition):
        return None
    return filter_shard(lake.scan_parquet(lake.parquet_files(partition)), shard, n_shards).collect()


def read_pending_holds(
    root: Path, as_of: dt.date, cfg: RisklineConfig, shard: int = 0, n_shards: int = 1
) -> pl.DataFrame:
    """Accounts whose adverse actions are held tonight: for a payment waiting in quarantine, or for credit
    on an overdue account (money applied to no due instalment: see ``unapplied_credit_holds``).

    Read from the merged ledger partition of D (a waiting payment may hold an account of another shard:
    the one its loan belongs to), then narrowed to ``shard``'s accounts.
    """
    ledger = zones.ledger_partition(root, as_of)
    path = lake.partition_file(ledger, zones.PENDING_PAYMENTS_FILE)
    if not lake.is_file(path):
        return empty_holds()
    holds = combine_holds(
        pending_holds(lake.read_parquet(path), as_of, cfg.pending_payments.max_hold_days),
        unapplied_credit_holds(lake.read_parquet(lake.partition_file(ledger, "unallocated.parquet")),
                               lake.read_parquet(lake.partition_file(ledger, "accounts.parquet"), columns=["account_id", "overdue_cents"]),
                               as_of, cfg.pending_payments.max_hold_days),
    )
    return filter_shard(holds.lazy(), shard, n_shards).collect()


def read_latest_snapshot_rows(
    root: Path, before: dt.date, *, last_snapshots: int | None = None, within_days: int | None = None,
    shard: int = 0, n_shards: int = 1,
) -> tuple[list[dt.date], pl.DataFrame]:
    """The curated account snapshots before ``before`` (the last ``last_snapshots`` of them, or those of the
    last ``within_days`` days), oldest first, and each account's latest row in them, in one scan: what a
    snapshot is compared with, the accounts, lines and incomes it should still hold.

    Columns: ``account_id, status, credit_limit_cents, dt`` of the latest row; ``annual_income_cents``, the
    latest income declared (null in every row, or the optional column never sent: none, nothing to compare);
    ``last_open_dt``, the date of its latest open row (active or frozen; null: closed in every one).
    No such snapshot: ``[]`` and an empty frame."""
    dates = [d for d in zones.curated_dates(root, "accounts") if d < before]
    if within_days is not None:
        dates = [d for d in dates if d >= before - dt.timedelta(days=within_days)]
    if last_snapshots is not None:
        dates = dates[-last_snapshots:] if last_snapshots else []
    columns = {"account_id": pl.String(), "status": pl.String(), "credit_limit_cents": pl.Int64(),
               "annual_income_cents": pl.Int64(), "dt": pl.Date(), "last_open_dt": pl.Date()}
    if not dates:
        return [], pl.DataFrame(schema=columns)
    scan = zones.scan_curated(root, "accounts", dates[-1], dates=dates).select(
        "account_id", "status", "credit_limit_cents", "annual_income_cents", "dt")
    latest = scan.group_by("account_id").agg(
        pl.col("status", "credit_limit_cents", "dt").sort_by("dt").last(),
        pl.col("annual_income_cents").sort_by("dt").drop_nulls().last(),
        pl.col("dt").filter(pl.col("status").is_in(policy.DECIDED_STATUSES)).max().alias("last_open_dt"),
    )
    rows = filter_shard(latest, shard, n_shards).collect().select(list(columns)).sort("account_id")
    return dates, rows


def read_delivered_snapshot(root: Path, before: dt.date, rows: int) -> tuple[dt.date, pl.DataFrame] | None:
    """The latest accounts snapshot curated before ``before``, as it was delivered: its curated rows and its
    quarantined ones (contract columns only), with its date; None when there is none or when it does not
    hold ``rows`` rows (counted from the files' footers, before reading any row).

    What tonight's snapshot is compared with to tell a stale extract re-sent as today's."""
    dates = [d for d in zones.curated_dates(root, "accounts") if d < before]
    if not dates:
        return None
    partitions = [zones.curated(root, "accounts", dates[-1]), zones.quarantine(root, "accounts", dates[-1])]
    files = [f for p in partitions for f in (lake.complete_files(p) or [])]
    if not files or sum(lake.scan_parquet(f).select(pl.len()).collect().item() for f in files) != rows:
        return None  # the quarantine's files carry one more column: counted one by one
    columns = list(CONTRACT["accounts"].curated_schema())
    frames = [lake.read_parquet(f) for f in files]
    frames = [f.select([c for c in columns if c in f.columns]) for f in frames]
    return dates[-1], pl.concat(frames, how="diagonal_relaxed")


# --- what decide reads for night D -------------------------------------------------------------------


def read_shard_file(
    root: Path, zone: str, as_of: dt.date, name: str, shard: int, n_shards: int,
    columns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """One file of a zone for one shard: the shard's own partition, else the merged one filtered."""
    own = shard_dir(root, zone, as_of, shard, n_shards)
    part = own if n_shards > 1 and lake.is_complete(own) else lake.derived_partition(root, zone, as_of)
    if not lake.is_complete(part):
        raise FileNotFoundError(f"partition {part} is missing or incomplete (no {lake.SUCCESS})")
    scan = lake.scan_parquet(lake.partition_file(part, name))
    if columns is not None:
        scan = scan.select(*dict.fromkeys(columns))
    return (scan if part == own else filter_shard(scan, shard, n_shards)).collect()


class DecideInputs(NamedTuple):
    """Night D's inputs of :func:`pipelines.domain.decide.decide_frames`, scores aside."""

    accounts: pl.DataFrame
    features: pl.DataFrame
    installments: pl.DataFrame
    ledger_accounts: pl.DataFrame
    previous_scores: pl.DataFrame | None
    history: pl.DataFrame
    holds: pl.DataFrame
    # account_id, left: open in a snapshot of the last pending_payments.max_hold_days and missing from D's
    # curated one (a partial extract, a quarantined row), or closed in it while overdue (a charge-off or a
    # status fault): held (coverage.accounts_held_out)
    vanished: pl.DataFrame

    def decide(
        self, as_of: dt.date, cfg: RisklineConfig, scores: pl.DataFrame
    ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        """:func:`~pipelines.domain.decide.decide_frames` of D on these inputs and ``scores``."""
        return decide_frames(as_of, cfg, self.accounts, self.features, self.installments, self.ledger_accounts,
                             scores, self.previous_scores, self.history, self.holds, self.vanished)


def read_decide_inputs(
    root: Path, as_of: dt.date, cfg: RisklineConfig, shard: int = 0, n_shards: int = 1
) -> DecideInputs:
    """The curated snapshot, features, ledger, previous run and holds of D for ``shard`` of ``n_shards``."""
    accounts_part = zones.curated(root, "accounts", as_of)
    if not lake.is_complete(accounts_part):
        raise FileNotFoundError(f"partition {accounts_part} is missing or incomplete (no {lake.SUCCESS})")
    accounts = filter_shard(lake.scan_parquet(lake.parquet_files(accounts_part)), shard, n_shards).collect()
    previous_scores, history = read_previous_run(root, as_of, shard, n_shards)
    # held like a waiting payment, for as long: a row missing, quarantined or closed while overdue for a week
    # is a fault upstream as likely as a charge-off, and only the hold's end tells them apart
    _, recent = read_latest_snapshot_rows(root, as_of, within_days=cfg.pending_payments.max_hold_days, shard=shard,
                                          n_shards=n_shards)
    ledger_accounts = read_shard_file(root, LEDGER_ZONE, as_of, "accounts.parquet", shard, n_shards)
    return DecideInputs(
        accounts=accounts,
        features=read_shard_file(root, FEATURES_ZONE, as_of, FEATURES_FILE, shard, n_shards),
        installments=read_shard_file(root, LEDGER_ZONE, as_of, "installments.parquet", shard, n_shards),
        ledger_accounts=ledger_accounts,
        previous_scores=previous_scores,
        history=history,
        holds=read_pending_holds(root, as_of, cfg, shard, n_shards),
        vanished=accounts_held_out(accounts, recent, ledger_accounts),
    )
