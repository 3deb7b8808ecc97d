"""The train stage: ``riskline train --as-of D``: build the matured snapshots' features and labels that are
missing, then train, evaluate, register and maybe promote (``pipelines/model/train.py``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from pipelines.config.location import Location, is_remote
from pipelines.config.model_definition import ModelDefinition, load_model_definition
from pipelines.config.settings import RisklineConfig
from pipelines.domain import labels
from pipelines.domain.labels import LabelsNotMaturedError, build_labels, horizon_end, is_matured
from pipelines.domain.ledger import build_ledger
from pipelines.model.pd import model_features
from pipelines.model.registry import ModelRegistry
from pipelines.model.train import (
    Provenance, SnapshotPlan, TrainingResult, evaluate_register, fit_challenger, label_snapshot, plan_snapshots,
    sample_accounts,
)
from pipelines.model.train_dask import SnapshotFiles, TrainingFiles, fit_challenger_on_cluster
# labels read payments as the nightly ledger does: curated plus quarantined ones resolved by then
from pipelines.stages.features import build_feature_snapshot, load_feature_snapshot, scan_pending_payments
from pipelines.store import lake, zones
from pipelines.store.zones import LABELS_FILE, labels_partition


def build_labels_for(
    root: Path, snapshot_date: dt.date, cfg: RisklineConfig, as_of: dt.date | None = None
) -> pl.DataFrame:
    """Labels of a matured snapshot, read from the curated zone (only ``dt <= s+G+H``).

    ``as_of`` (the run's date), when given, must lie on or after s+G+H. The snapshot of s and the
    instalments and payments partitions of s+G+H must be complete.
    """
    end = horizon_end(snapshot_date, cfg.labels)
    if as_of is not None and not is_matured(snapshot_date, as_of, cfg.labels):
        raise LabelsNotMaturedError(f"snapshot {snapshot_date} matures on {end}, after the run date {as_of}")
    problems = []
    if not lake.is_complete(zones.curated(root, "accounts", snapshot_date)):
        problems.append(f"no complete accounts snapshot for {snapshot_date}")
    for dataset in ("installments", "payments"):
        if not lake.is_complete(zones.curated(root, dataset, end)):
            problems.append(f"no complete {dataset} partition for {end}")
    if problems:
        raise LabelsNotMaturedError(f"cannot label snapshot {snapshot_date}: " + "; ".join(problems))
    # the payments the nightly ledger of s+H applied: curated plus quarantined ones resolved by then
    payments = pl.concat(
        [zones.scan_curated(root, "payments", end), scan_pending_payments(root, end).resolved.lazy()], how="vertical"
    )
    ledger = build_ledger(zones.scan_curated(root, "installments", end), payments, end, cfg.business.timezone)
    accounts = zones.scan_curated(root, "accounts", snapshot_date, dates=[snapshot_date])
    return build_labels(accounts, ledger, snapshot_date, cfg.labels)


def write_labels_for(root: Path, snapshot_date: dt.date, cfg: RisklineConfig) -> Path:
    """Build and publish ``DATA_ROOT/labels/snapshot_date=s/labels.parquet``; return the partition."""
    labels = build_labels_for(root, snapshot_date, cfg)
    return lake.publish_frames(labels_partition(root, snapshot_date), {LABELS_FILE: labels})


def load_labels(root: Path, snapshot_date: dt.date, cfg: RisklineConfig) -> pl.DataFrame:
    """Labels of a matured snapshot, built and cached on disk if missing (they never change once matured)."""

    partition = zones.labels_partition(root, snapshot_date)
    if lake.is_complete(partition):
        cached = lake.read_partition(partition)
        if _labels_match(cached, cfg):
            return cached
    write_labels_for(root, snapshot_date, cfg)  # missing, or built for another outcome window
    return lake.read_partition(partition)


def ensure_labels(root: Location, snapshot_date: dt.date, cfg: RisklineConfig) -> Location:
    """:func:`load_labels` without reading the rows back: the partition, built when missing or stale.

    Only the outcome-window columns (and ``bad``, which keeps the row count) are read to judge the cache.
    """
    partition = zones.labels_partition(root, snapshot_date)
    if lake.is_complete(partition):
        scan = lake.scan_parquet(lake.parquet_files(partition))
        window = [c for c in ("horizon_days", "gap_days") if c in scan.collect_schema().names()]
        if _labels_match(scan.select("bad", *window).collect(), cfg):
            return partition
    write_labels_for(root, snapshot_date, cfg)
    return partition


def training_files(root: Location, plan: SnapshotPlan, cfg: RisklineConfig) -> TrainingFiles:
    """What the Dask workers read (``model.train_backend: dask``): the committed files of each training
    snapshot's features and labels, built first where missing as the local backend builds them; no row is
    read here. Storage options are the data root's own (credentials come from the environment)."""

    def committed(partition: Location) -> tuple[str, ...]:
        files = tuple(str(f) for f in lake.parquet_files(partition))
        if not files:
            raise FileNotFoundError(f"partition {partition} holds no data file")
        return files

    def snapshot(s: dt.date) -> SnapshotFiles:
        features = zones.feature_partition(root, s)
        if not lake.is_complete(features):  # as load_feature_snapshot does before it reads
            build_feature_snapshot(root, s, cfg)
        return SnapshotFiles(s, committed(features), committed(ensure_labels(root, s, cfg)))

    return TrainingFiles(
        fit=tuple(snapshot(s) for s in plan.fit_dates),
        early_stopping=tuple(snapshot(s) for s in plan.early_stopping_dates),
        sample_rate=cfg.model.training_sample_rate,
        storage_options=dict(root.storage_options) if is_remote(root) else {},
    )


def _labels_match(cached: pl.DataFrame, cfg: RisklineConfig) -> bool:
    """Cached labels were built with tonight's window (labels.horizon_days and labels.gap_days)."""
    window = {"horizon_days": cfg.labels.horizon_days, "gap_days": cfg.labels.gap_days}
    if cached.height == 0:
        return True  # an empty population carries no window to compare; rebuilding gives the same
    return all(
        name in cached.columns and cached[name].unique().to_list() == [value] for name, value in window.items()
    )


def _fingerprints(root: Path, partition: Path) -> list[dict[str, str]]:

    return [
        {"file": str(p.relative_to(root)), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
        for p in lake.parquet_files(partition)
    ]


def code_version() -> str:
    """The git commit of the code (``+dirty`` with local changes), or ``unknown`` outside a checkout."""
    repo = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha or "unknown"


def config_hash(cfg: RisklineConfig, definition: ModelDefinition) -> str:
    """What the model depends on in config: the model and labels sections and the definition."""
    payload = {
        "model": cfg.model.model_dump(mode="json"),
        "labels": cfg.labels.model_dump(mode="json"),
        "definition": definition.fingerprint(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def run_training(root: Path, as_of: dt.date, cfg: RisklineConfig) -> TrainingResult:
    """``riskline train --as-of D``: build what is missing, train, evaluate, register, maybe promote."""

    definition = load_model_definition(cfg)
    curated = zones.curated_dates(root, "accounts")
    plan = plan_snapshots(
        as_of, cfg.labels.horizon_days, cfg.model, curated[0] if curated else None, cfg.labels.gap_days
    )
    for snapshot in (*plan.training_dates, plan.oot_date):
        if not labels.is_matured(snapshot, as_of, cfg.labels):  # by construction; guard against edits
            raise labels.LabelsNotMaturedError(f"snapshot {snapshot} is not matured on {as_of}")

    registry = ModelRegistry(root)
    champion = registry.champion_on(as_of)
    oot_columns = list(definition.feature_names)
    if champion is not None:
        oot_columns += [f for f in model_features(registry.load_booster(champion)) if f not in oot_columns]

    def labelled(snapshot: dt.date, columns: Sequence[str], rate: float) -> pl.DataFrame:
        feats = sample_accounts(load_feature_snapshot(root, snapshot, cfg, columns), rate)
        return label_snapshot(feats, load_labels(root, snapshot, cfg), columns)

    started = time.perf_counter()
    if cfg.model.train_backend == "dask":  # the workers read, join and sample the snapshots; here only their files
        challenger = fit_challenger_on_cluster(training_files(root, plan, cfg), definition, cfg.model)
    else:
        rate = cfg.model.training_sample_rate
        fit = pl.concat([labelled(s, definition.feature_names, rate) for s in plan.fit_dates])
        early_stopping = pl.concat([labelled(s, definition.feature_names, rate) for s in plan.early_stopping_dates])
        challenger = fit_challenger(fit, early_stopping, definition)
    oot = labelled(plan.oot_date, oot_columns, 1.0)

    inputs = {
        "features": {
            s.isoformat(): _fingerprints(root, zones.feature_partition(root, s))
            for s in (*plan.training_dates, plan.oot_date)
        },
        "labels": {
            s.isoformat(): _fingerprints(root, zones.labels_partition(root, s))
            for s in (*plan.training_dates, plan.oot_date)
        },
    }
    provenance = Provenance(code_version(), config_hash(cfg, definition), inputs)
    return evaluate_register(registry, plan, challenger, oot, definition, cfg.model, provenance,
                             curve_points=cfg.report.curve_points, shap_accounts=cfg.report.shap_sample_accounts,
                             started=started)
