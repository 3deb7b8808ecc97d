"""The features stage: read the curated inputs of D, build the ledger and features (domain), publish both.

Unsharded or one shard at a time (:func:`merge_shards` publishes the date once every shard is done); each
partition is replaced whole and atomically. :func:`load_feature_snapshot` is how training and scoring read
a snapshot, building it first when it is missing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from pipelines.config.settings import RisklineConfig
from pipelines.contracts.landing import CONTRACT
from pipelines.domain import features
from pipelines.domain.feature_dictionary import HISTORY_DAYS, KEY_COLUMNS, LIMIT_WINDOWS
from pipelines.domain.features import build_features, days_before
from pipelines.domain.ledger import Ledger
from pipelines.domain.working_set import Retired, stack, unallocated_rows, with_retired_totals, working_ledger
from pipelines.domain.reconcile import reconcile_ledger
from pipelines.domain.pending_payments import PendingPayments, resolve_pending_payments
from pipelines.domain.sharding import filter_shard
from pipelines.stages import ledger_state
from pipelines.store import lake, zones
from pipelines.store.zones import (
    FEATURES_FILE, FEATURES_ZONE, LEDGER_FILES, LEDGER_ZONE, PENDING_PAYMENTS_FILE, RECONCILIATION_FILE,
    feature_partition, ledger_partition, shard_partition,
)


class IncompleteHistoryError(RuntimeError):
    """A curated partition needed for the as-of date is missing or incomplete; ``missing``: their dates, all
    of them (the message names the first few), for the ingest that fills them."""

    def __init__(self, message: str, missing: Sequence[dt.date] = ()) -> None:
        super().__init__(message)
        self.missing = tuple(sorted(set(missing)))

    def ingest_command(self) -> str | None:
        """The ``riskline ingest`` of the missing dates (one date, or the range from the first to the last:
        a range ingests in date order, as the lake needs), None when no date is missing (shards)."""
        if not self.missing:
            return None
        first, last = self.missing[0], self.missing[-1]
        return (f"riskline ingest --date {first}" if first == last
                else f"riskline ingest --from-date {first} --to-date {last}")


def _check_history(root: Path, as_of: dt.date) -> dict[str, list[dt.date]]:
    """Complete curated dates per dataset up to D; raise if D or any day since the first is missing.

    A missing payments day would show paying customers as late, and a missing behaviour day would
    quietly lower counts: both must stop the run rather than publish plausible wrong features.
    """
    available: dict[str, list[dt.date]] = {}
    problems: list[str] = []
    absent: set[dt.date] = set()
    for dataset in ("accounts", "behaviour", "installments", "payments"):
        dates = [d for d in zones.curated_dates(root, dataset) if d <= as_of]
        available[dataset] = dates
        if not dates or dates[-1] != as_of:
            problems.append(f"{dataset}: no complete curated partition for {as_of}")
            absent.add(as_of)
            continue
        if dataset == "accounts":
            continue  # full snapshots: any older one is enough for limit history
        expected = (as_of - dates[0]).days + 1
        if len(dates) != expected:
            have = set(dates)
            gaps = [dates[0] + dt.timedelta(days=i) for i in range(expected)]
            missing = [d for d in gaps if d not in have]
            absent.update(missing)
            problems.append(f"{dataset}: missing curated partitions {', '.join(map(str, missing[:10]))}"
                            + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else ""))
    if problems:
        raise IncompleteHistoryError(f"cannot build features as of {as_of}: " + "; ".join(problems), absent)
    return available


def scan_inputs(
    root: Path, as_of: dt.date, shard: int = 0, n_shards: int = 1
) -> dict[str, pl.LazyFrame]:
    """Lazy scans of the curated accounts and behaviour of D for one shard (the history checked complete,
    ``dt <= D`` only). The ledger's inputs are read by :func:`pipelines.stages.ledger_state.ledger_inputs`:
    the last night's state and the drops since, not every payment since the lake began."""
    available = _check_history(root, as_of)
    snapshot_days = {as_of}
    for w in LIMIT_WINDOWS:
        older = [d for d in available["accounts"] if d <= days_before(as_of, w)]
        if older:
            snapshot_days.add(older[-1])  # 4 snapshots instead of 180: limits change at these points
    scans = {
        "accounts": zones.scan_curated(root, "accounts", as_of, dates=sorted(snapshot_days)),
        "behaviour": zones.scan_curated(root, "behaviour", as_of, since=days_before(as_of, HISTORY_DAYS - 1)),
    }
    return {name: filter_shard(lf, shard, n_shards) for name, lf in scans.items()}


def scan_pending_payments(root: Path, as_of: dt.date, shard: int = 0, n_shards: int = 1) -> PendingPayments:
    """The quarantined payments of ``dt <= D`` of one shard, resolved against the curated zone of D.

    A quarantined row belongs to the shard of the ``account_id`` it names (a null one to shard 0), so
    every row is judged exactly once across shards; a row that resolves names an account of D's snapshot,
    which is in that same shard.
    """
    quarantined = filter_shard(zones.scan_quarantine(root, "payments", as_of), shard, n_shards).collect()
    schema = pl.Schema({**CONTRACT["payments"].curated_schema(), "dt": pl.Date()})
    if quarantined.is_empty():  # the usual night: no read of the curated history at all
        return PendingPayments.none(schema)
    ids = quarantined.select(pl.col("payment_id").drop_nulls().unique())
    loan_ids = quarantined.select(pl.col("loan_id").drop_nulls().unique())
    pending = resolve_pending_payments(
        quarantined,
        as_of,
        # whole-book lookups of the ids at hand (a redelivery or a loan may sit in another shard), reading only
        # the partitions whose footers' id ranges may hold one: not the whole history every night
        curated_ids=zones.curated_matching(root, "payments", as_of, ids).collect().get_column("payment_id"),
        snapshot_ids=filter_shard(zones.scan_curated(root, "accounts", as_of, dates=[as_of]), shard, n_shards)
        .select("account_id").collect().to_series(),
        loans=zones.curated_matching(root, "installments", as_of, loan_ids, ("account_id",)).unique().collect(),
    )
    return PendingPayments(pending.resolved.cast(schema), pending.waiting)  # type: ignore[arg-type]


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
    # Quarantined payments whose references resolved are applied like curated ones (pipelines.domain.pending_payments).
    pending = scan_pending_payments(root, as_of, shard, n_shards)
    # The last night's state and the curated rows since, or the whole history (pipelines/stages/ledger_state.py).
    inputs = ledger_state.ledger_inputs(root, as_of, cfg, pending.resolved, shard, n_shards)
    applied = pl.concat([inputs.payments.lazy(), pending.resolved.lazy().select(inputs.payments.columns)],
                        how="vertical")
    ledger, allocated, retired = working_ledger(inputs.installments.lazy(), applied, as_of, cfg.business.timezone,
                                                inputs.before, pinned=pending.resolved)
    reconciliation = with_retired_totals(reconcile_ledger(allocated, inputs.payments.lazy(), pending), inputs.before)
    del allocated, applied

    if n_shards == 1:
        feature_dir, ledger_dir = feature_partition(root, as_of), ledger_partition(root, as_of)
    else:
        feature_dir = shard_partition(root, FEATURES_ZONE, as_of, shard, n_shards)
        ledger_dir = shard_partition(root, LEDGER_ZONE, as_of, shard, n_shards)
    with lake.staged_partition(ledger_dir) as tmp:
        # the state first: its raw rows are then let go before the features are built (peak memory at 1M)
        ledger_state.write_state(tmp, as_of, cfg, inputs, retired)
        inputs = None  # type: ignore[assignment]
        _publish_ledger(tmp, ledger, retired, reconciliation, pending)
    features = build_features(scans["accounts"], scans["behaviour"], ledger, as_of)
    lake.publish_frames(feature_dir, {FEATURES_FILE: features})
    return feature_dir


def _ledger_frames(ledger: Ledger, retired: Retired, pending: PendingPayments) -> dict[str, pl.DataFrame]:
    """The published ledger: the working set's rows and those the retired loans leave (domain/working_set.py)."""
    frames = {
        # loan_idx numbers loans within one run: it differs between shards, so it is not published
        "installments.parquet": stack(ledger.installments.drop("loan_idx"), retired.installments),
        "loans.parquet": ledger.loans,
        "accounts.parquet": ledger.accounts,
        "unallocated.parquet": stack(unallocated_rows(ledger.payments), retired.unallocated),
        PENDING_PAYMENTS_FILE: pending.waiting,
    }
    return {name: frame.sort(LEDGER_FILES[name]) for name, frame in frames.items()}


def _publish_ledger(
    tmp: Path, ledger: Ledger, retired: Retired, reconciliation: object, pending: PendingPayments
) -> None:
    """Write the ledger's files into the staged partition ``tmp``."""
    for name, frame in _ledger_frames(ledger, retired, pending).items():
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
        zone: [shard_partition(root, zone, as_of, k, n_shards) for k in range(n_shards)]
        for zone in (FEATURES_ZONE, LEDGER_ZONE)
    }
    missing = [str(p) for dirs in shard_dirs.values() for p in dirs if not lake.is_complete(p)]
    if missing:
        raise IncompleteHistoryError(f"shards not complete for {as_of}: {', '.join(missing)}")
    features = pl.concat([lake.read_parquet(lake.partition_file(d, FEATURES_FILE)) for d in shard_dirs[FEATURES_ZONE]])
    with lake.staged_partition(ledger_partition(root, as_of)) as tmp:
        for name, keys in LEDGER_FILES.items():
            merged = pl.concat([lake.read_parquet(lake.partition_file(d, name)) for d in shard_dirs[LEDGER_ZONE]]).sort(keys)
            lake.write_parquet(merged, tmp / name)
        totals: dict[str, int] = {}
        for d in shard_dirs[LEDGER_ZONE]:
            for key, value in json.loads(lake.read_bytes(lake.partition_file(d, RECONCILIATION_FILE)) or b"").items():
                if key != "as_of":
                    totals[key] = totals.get(key, 0) + int(value)
        (tmp / RECONCILIATION_FILE).write_text(
            json.dumps({"as_of": as_of.isoformat(), **totals}, indent=2, sort_keys=True) + "\n"
        )
        ledger_state.merge_state(tmp, shard_dirs[LEDGER_ZONE])
    lake.publish_frames(feature_partition(root, as_of), {FEATURES_FILE: features.sort("account_id")})
    return feature_partition(root, as_of)


def load_feature_snapshot(
    root: Path, as_of: dt.date, cfg: RisklineConfig, columns: Sequence[str] | None = None
) -> pl.DataFrame:
    """The feature snapshot of ``as_of`` (built and cached on disk if missing): keys + ``columns``."""

    partition = zones.feature_partition(root, as_of)
    if not lake.is_complete(partition):
        build_feature_snapshot(root, as_of, cfg)
    scan = lake.scan_parquet(lake.parquet_files(partition))
    if columns is not None:
        scan = scan.select(*KEY_COLUMNS, *dict.fromkeys(c for c in columns if c not in KEY_COLUMNS))
    return scan.collect()
