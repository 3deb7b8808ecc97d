"""Readers of what earlier stages and nights left in the lake, as the decide step reads them.

"The previous run" has one definition, :func:`pipelines.store.zones.previous_night`; scoring, decide and the
report all read it through it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from pipelines.config.settings import RisklineConfig
from pipelines.domain import policy
from pipelines.domain.pending_payments import combine_holds, empty_holds, pending_holds, unapplied_credit_holds
from pipelines.domain.sharding import filter_shard
from pipelines.store import lake, zones


def read_previous_run(
    root: Path, as_of: dt.date, shard: int = 0, n_shards: int = 1
) -> tuple[pl.DataFrame | None, pl.DataFrame]:
    """The previous run's scores (None on the first run) and the limit history it left, as decide reads them.

    Both come from the same night, :func:`~pipelines.store.zones.previous_night`. With ``n_shards > 1``, only
    the rows of ``shard``'s accounts.
    """

    def read(files: list[Path]) -> pl.DataFrame:
        return filter_shard(pl.scan_parquet(files), shard, n_shards).collect()

    night = zones.previous_night(root, as_of)
    if night is None:
        return None, policy.empty_limit_history()
    history = read([zones.decisions_dir(root, night) / zones.LIMIT_HISTORY_FILE])
    return read_previous_scores(root, night, shard, n_shards), history


def read_previous_scores(root: Path, night: dt.date, shard: int = 0, n_shards: int = 1) -> pl.DataFrame | None:
    """The internal scores of ``night`` (of ``shard``'s accounts), None when its partition is not complete."""
    partition = zones.scores_dir(root, night)
    if not lake.is_complete(partition):
        return None
    return filter_shard(pl.scan_parquet(lake.parquet_files(partition)), shard, n_shards).collect()


def read_pending_holds(
    root: Path, as_of: dt.date, cfg: RisklineConfig, shard: int = 0, n_shards: int = 1
) -> pl.DataFrame:
    """Accounts whose adverse actions are held tonight: for a payment waiting in quarantine, or for credit
    on an overdue account (money applied to no due instalment: see ``unapplied_credit_holds``).

    Read from the merged ledger partition of D (a waiting payment may hold an account of another shard:
    the one its loan belongs to), then narrowed to ``shard``'s accounts.
    """
    ledger = zones.ledger_partition(root, as_of)
    path = ledger / zones.PENDING_PAYMENTS_FILE
    if not path.is_file():
        return empty_holds()
    holds = combine_holds(
        pending_holds(pl.read_parquet(path), as_of, cfg.pending_payments.max_hold_days),
        unapplied_credit_holds(pl.read_parquet(ledger / "unallocated.parquet"),
                               pl.read_parquet(ledger / "accounts.parquet", columns=["account_id", "overdue_cents"]),
                               as_of, cfg.pending_payments.max_hold_days),
    )
    return filter_shard(holds.lazy(), shard, n_shards).collect()


def read_recent_snapshot_rows(
    root: Path, as_of: dt.date, days: int, shard: int = 0, n_shards: int = 1
) -> pl.DataFrame:
    """Each account's latest curated snapshot row (``account_id, status, credit_limit_cents``) over the
    ``days`` dates before ``as_of`` that have a snapshot: the accounts tonight's snapshot should still hold
    (:func:`pipelines.domain.coverage.open_accounts_missing`). Empty for ``days`` 0 or no such snapshot."""
    dates = [d for d in zones.curated_dates(root, "accounts") if as_of - dt.timedelta(days=days) <= d < as_of]
    columns = ["account_id", "status", "credit_limit_cents"]
    if not dates:
        return pl.DataFrame(schema={"account_id": pl.String(), "status": pl.String(),
                                    "credit_limit_cents": pl.Int64()})
    scan = zones.scan_curated(root, "accounts", dates[-1], dates=dates).select(*columns, "dt").sort("dt")
    return filter_shard(scan.group_by("account_id").last(), shard, n_shards).select(columns).collect()
