"""What the decide step reads for night D, for the whole book or one account-hash shard, in one place.

The score stage reads the same inputs to decide once before it computes reason codes (exact ones where a
decision will be read: :func:`pipelines.stages.score.acted_on_tonight`), and the decide stage reads them
to decide for real; one reader keeps the two from ever deciding on different inputs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import polars as pl

from pipelines.config.settings import RisklineConfig
from pipelines.domain.coverage import accounts_held_out
from pipelines.domain.decide import decide_frames
from pipelines.domain.sharding import filter_shard
from pipelines.store import lake, zones
from pipelines.store.readers import read_latest_snapshot_rows, read_pending_holds, read_previous_run
from pipelines.store.zones import FEATURES_FILE, FEATURES_ZONE, LEDGER_ZONE, shard_dir


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
