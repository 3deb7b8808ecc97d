"""The nightly run of one business date, stage by stage: what ``riskline run`` and the Airflow DAG call.

Stages (each a function taking the data root, the date and the config, returning a small JSON-able
dict, so Airflow tasks can call them one by one and pass only paths and counts):
    ingest -> features -> train -> score -> decide -> publish -> report

``decide`` is where limits, collection queues and hardship offers are made (it calls
``pipelines.domain.policy.decide_limits``, ``pipelines.domain.hardship.offer_hardship`` and
``pipelines.domain.collections.rank_collections``); ``publish`` validates the four outputs and publishes them
all-or-nothing with the run manifest (``pipelines.store.publish``); ``report`` writes the page the manifest
links to (``reports/as_of_date=D/report.html``, ``pipelines.report.report``).

Reruns: every stage replaces its partitions whole, so running a date twice gives the same bytes. A run
reads only partitions of its own date, or the newest partition strictly before it for "the previous
run" (previous scores and limit history), never "latest". Nights form a chain (``pipelines.store.chain``):
decide refuses a night whose previous night is missing or stale, or that would run out of order, unless
forced, and publish marks later nights stale when a rerun changed the limit history they read.

Dry runs (``RunOptions(publish=False)``) run every stage on a private copy of the lake,
``DATA_ROOT/staging/as_of_date=D/`` (:func:`prepare_dry_run_root`, hard links: cheap), and publish into it;
nothing a real run reads is written, not even the registry when the dry run retrains.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import resource
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.config.location import Location, is_remote
from pipelines.config.model_definition import load_model_definition
from pipelines.config.settings import RisklineConfig
from pipelines.contracts.outputs import to_published
from pipelines.domain.collections import assign_treatments
from pipelines.domain.decide import require_exact_reasons
from pipelines.errors import IngestError
from pipelines.quality.validate import validate_output
from pipelines.report.sections import money_to_cents, score_psi
from pipelines.report.trends import book_summary
from pipelines.stages.features import build_feature_snapshot, merge_shards
from pipelines.stages.ledger_state import built_how
from pipelines.stages.ingest import describe_purged, ingest_night
from pipelines.store import chain, lake, locks, zones
from pipelines.store.publish import PublishError, describe_latest, publish_outputs, read_output
from pipelines.store.readers import read_decide_inputs, read_pending_holds
from pipelines.store.zones import (
    DECISION_FILES, decisions_dir, report_link, scores_dir,
)
from pipelines.vocab import DATASETS

STAGES: tuple[str, ...] = ("ingest", "features", "train", "score", "decide", "publish", "report")


class RunLockedError(RuntimeError):
    """Another run of the same business date is in progress."""


@dataclass(frozen=True)
class RunOptions:
    retrain: bool = True
    model_version: str | None = None  # pin a registered model; None = the champion on the date
    publish: bool = True  # False: a dry run on a private copy of the lake, DATA_ROOT/staging/as_of_date=D
    force_chain: bool = False  # run even if the night is out of order (pipelines/store/chain.py); recorded in the manifest


@dataclass
class RunResult:
    as_of: dt.date
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    root: Location | None = None  # where the night wrote: the data root, or a dry run's staging root


# --- helpers ---------------------------------------------------------------------------------------


@contextmanager
def date_lock(root: Location, as_of: dt.date) -> Iterator[None]:
    """Refuse a second run of the same date while one is running (different dates run side by side)."""
    path = zones.run_lock_path(root, as_of)
    with ExitStack() as held:
        try:
            held.enter_context(locks.file_lock(path, blocking=False))
        except locks.LockHeld:
            raise RunLockedError(
                f"a run for business date {as_of} is already in progress (lock {path}); wait for it to finish"
            ) from None
        yield


DRY_RUN_MARKER = lake.DRY_RUN_MARKER  # in a dry run's staging root: publishing there is allowed, and it is disposable


def dry_run_root(root: Location, as_of: dt.date) -> Path:
    return lake.derived_partition(root, zones.STAGING_ZONE, as_of)


def prepare_dry_run_root(root: Location, as_of: dt.date, run_id: str) -> Path:
    """A private copy of the lake for a dry run of ``as_of`` (hard links), made once per ``run_id``.

    Replaces the previous dry run's copy of the date whole. Runs of the same id (the parallel tasks of one
    Airflow run) share the copy made by the first of them.
    """
    target = dry_run_root(root, as_of)
    skip = (zones.STAGING_ZONE, zones.SIMULATIONS_ZONE, "_locks", "outputs/_journal")
    with locks.file_lock(target.parent / f".prepare-{target.name}.lock"):
        marker = target / DRY_RUN_MARKER
        if (lake.read_bytes(marker) or b"").decode().strip() == run_id:
            return target
        if is_remote(target):  # no rename: the copy is complete once its marker, written last, names the run
            lake.remove_tree(target)
            lake.copy_tree(root, target, skip=skip)
            lake.atomic_write_bytes(marker, (run_id + "\n").encode())
            return target
        with lake.staged_partition(target, marker=False) as tmp:
            lake.link_tree(root, tmp, skip=skip)
            (tmp / DRY_RUN_MARKER).write_text(run_id + "\n")
    return target


def refresh_dry_run_landing(root: Location, staging_root: Location, dataset: str, as_of: dt.date) -> None:
    """Link the landing drop of ``dataset`` for D into a dry run's copy (it may have landed after the copy)."""
    source = zones.landing(root, dataset, as_of)
    if not lake.is_complete(source):
        return
    target = zones.landing(staging_root, dataset, as_of)
    if is_remote(target):
        lake.remove_tree(target)
        lake.copy_tree(source, target)
        return
    with lake.staged_partition(target, marker=False) as tmp:
        lake.link_tree(source, tmp)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- stages ----------------------------------------------------------------------------------------


def stage_ingest(root: Location, as_of: dt.date, cfg: RisklineConfig) -> dict[str, Any]:

    before = {name: chain.curated_digest(root, name, as_of) for name in DATASETS}
    results, kept = ingest_night(root, as_of, cfg)  # a drop purged once ingested: its curated partition is read
    chain.after_ingest(root, as_of, before)  # late data: marks published nights that read the old partition
    out: dict[str, Any] = {
        r.dataset: {"rows": r.rows_curated, "quarantined": r.quarantined, "duplicates": r.duplicates_dropped,
                    "redelivered": r.redelivered}
        for r in results
    }
    note = describe_purged(as_of, kept) if kept else None
    for name, at in kept.items():  # read as curated: the counts of its ingest are that ingest's
        rows = lake.scan_parquet(lake.parquet_files(zones.curated(root, name, as_of))).select(pl.len()).collect()
        out[name] = {"rows": int(rows.item()), "landing_purged": note, "ingested_at": at.isoformat() if at else None}
    return out


def stage_features(root: Location, as_of: dt.date, cfg: RisklineConfig) -> dict[str, Any]:
    refuse_owed_reingests(root, as_of)

    if cfg.run.shards > 1:  # per account-hash shard, then one merge (pipelines/stages/shards.py)
        # why: keeps xgboost out of the cli (which imports this module at start-up)
        from pipelines.stages.shards import run_shards

        run_shards(build_feature_snapshot, cfg.run.shards, cfg.run.shard_workers, root, as_of, cfg)
        path = merge_shards(root, as_of, cfg.run.shards)
    else:
        path = build_feature_snapshot(root, as_of, cfg)
    rows = lake.scan_parquet(lake.parquet_files(path)).select(pl.len()).collect().item()
    return {"path": str(path.relative_to(root)), "accounts": int(rows), "ledger": built_how(root, as_of)}


def refuse_owed_reingests(root: Location, as_of: dt.date) -> None:
    """Stop before the history is read while a curated partition of dt <= D still holds copies of rows an
    earlier date now owns (a range re-ingest stopped before reaching it): they would count twice."""
    owed = zones.owed_reingests(root, as_of)
    if owed:
        name, day, owner = owed[0]
        more = f" (and {len(owed) - 1} more partition(s))" if len(owed) > 1 else ""
        raise IngestError(
            f"curated partition still holds copies of rows now curated on dt={owner}{more}: a range re-ingest "
            "stopped before reaching it, and the history would count those payments, instalments or events twice",
            dataset=name, date=day,
            hint=f"re-ingest it: {zones.reingest_command(owed)}, then rerun this night",
        )


def stage_train(root: Location, as_of: dt.date, cfg: RisklineConfig) -> dict[str, Any]:
    # why: keeps xgboost out of the cli (which imports this module at start-up)
    from pipelines.stages.train import run_training

    return run_training(root, as_of, cfg).summary()


def stage_score(root: Location, as_of: dt.date, cfg: RisklineConfig, model_version: str | None = None) -> dict[str, Any]:
    # why: keeps xgboost out of the cli (which imports this module at start-up)
    from pipelines.stages.score import run_scoring

    if cfg.run.shards > 1:
        # why: keeps xgboost out of the cli (which imports this module at start-up)
        from pipelines.stages.shards import merge_scores, run_shards, score_shard

        run_shards(score_shard, cfg.run.shards, cfg.run.shard_workers, root, as_of, cfg, model_version=model_version)
        path = merge_scores(root, as_of, cfg.run.shards)
    else:
        path = run_scoring(root, as_of, cfg, model_version=model_version)
    # counted lazily: on a 10M book the scores frame is not worth reading back whole for two numbers
    accounts, version = lake.scan_parquet(lake.parquet_files(path)).select(
        pl.len(), pl.col("model_version").first()
    ).collect().row(0)
    return {"path": str(path.relative_to(root)), "accounts": int(accounts), "model_version": version}


def check_night_chain(root: Location, as_of: dt.date, force_chain: bool = False) -> chain.ChainRecord:
    """Refuse a night that would break the chain (``pipelines.store.chain``); keep what it saw for publish."""
    record = chain.check_chain(root, as_of, force=force_chain)
    chain.save_chain_record(root, as_of, record)
    return record


def stage_decide(root: Location, as_of: dt.date, cfg: RisklineConfig, force_chain: bool = False) -> dict[str, Any]:

    check_night_chain(root, as_of, force_chain)
    if cfg.run.shards > 1:  # the queue's capacity cut runs once, in the merge (pipelines/stages/shards.py)
        # why: keeps xgboost out of the cli (which imports this module at start-up)
        from pipelines.stages.shards import decide_shard, merge_decisions, run_shards

        run_shards(decide_shard, cfg.run.shards, cfg.run.shard_workers, root, as_of, cfg)
        summary = _decide_summary(root, merge_decisions(root, as_of, cfg, cfg.run.shards))
        return {**summary, "held_for_pending_payments": read_pending_holds(root, as_of, cfg).height}

    inputs = read_decide_inputs(root, as_of, cfg)
    scores = lake.read_partition(scores_dir(root, as_of))
    limits, cases, offers, new_history = inputs.decide(as_of, cfg, scores)
    require_exact_reasons(scores, limits, cases, offers, cfg)
    queue = assign_treatments(cases, cfg.collections)
    path = lake.publish_frames(
        decisions_dir(root, as_of), dict(zip(DECISION_FILES, (limits, queue, offers, new_history), strict=True))
    )
    return {
        "path": str(path.relative_to(root)),
        "actions": dict(sorted(limits.group_by("action").len().iter_rows())),
        "treatments": dict(sorted(queue.group_by("treatment").len().iter_rows())),
        "hardship_offers": offers.height,
        "held_for_pending_payments": inputs.holds.height,
        # two counts, not one: the first key predates closed accounts being held, and ops read it
        "held_missing_from_snapshot": inputs.vanished.filter(pl.col("left") == "missing").height,
        "held_closed_while_overdue": inputs.vanished.filter(pl.col("left") == "closed").height,
    }


def _decide_summary(root: Location, path: Path) -> dict[str, Any]:
    """stage_decide's summary read lazily from the decisions partition (a sharded run holds no frames)."""

    def counts(name: str, column: str) -> dict[str, int]:
        return dict(sorted(lake.scan_parquet(lake.partition_file(path, name)).group_by(column).len().collect().iter_rows()))

    return {
        "path": str(path.relative_to(root)),
        "actions": counts("limits.parquet", "action"),
        "treatments": counts("collection_queue.parquet", "treatment"),
        "hardship_offers": int(lake.scan_parquet(lake.partition_file(path, "hardship_offers.parquet")).select(pl.len()).collect().item()),
    }


def published_frames(root: Location, as_of: dt.date, cfg: RisklineConfig) -> tuple[dict[str, pl.DataFrame], dict[str, str]]:
    """The four outputs of D in contract shape, and the versions that produced them."""

    scores = lake.read_partition(scores_dir(root, as_of))
    # A score is the model's view of the ledger as delivered: published, but flagged where a payment waits
    # in quarantine (the ledger may lack it; the account's limit, queue entry and hardship offer are held).
    held = read_pending_holds(root, as_of, cfg).get_column("account_id")
    scores = scores.with_columns(pending_payment=pl.col("account_id").is_in(held.implode()))
    decisions = decisions_dir(root, as_of)
    internal = {
        "scores": scores,
        "limits": lake.read_parquet(lake.partition_file(decisions, "limits.parquet")),
        "collection_queue": lake.read_parquet(lake.partition_file(decisions, "collection_queue.parquet")),
        "hardship_offers": lake.read_parquet(lake.partition_file(decisions, "hardship_offers.parquet")),
    }
    model_versions = scores["model_version"].unique().to_list()
    versions = {"model_version": model_versions[0] if model_versions else "", "policy_version": cfg.policy.version}
    return {name: to_published(name, frame, as_of, versions) for name, frame in internal.items()}, versions


def _model_sha256(root: Location, version: str) -> str | None:
    """sha256 of the model's bytes, for the manifest's input fingerprints."""
    if not version:
        return None
    from pipelines.model.registry import ModelRegistry  # why: xgboost stays out of `riskline --help` (cli imports night)

    return hashlib.sha256(ModelRegistry(root).model_bytes(version)).hexdigest()


def _book_summary(root: Location, as_of: dt.date, cfg: RisklineConfig, frames: dict[str, pl.DataFrame]) -> dict[str, Any]:
    """The night's book in a few numbers (pipelines.report.trends.book_summary), kept in the manifest so the
    report's trend reads past nights without rebuilding their ledgers or scoring them again."""
    ledger = lake.read_parquet(lake.partition_file(zones.ledger_partition(root, as_of), "accounts.parquet"),
                               columns=["account_id", "dpd", "outstanding_principal_cents", "overdue_cents"])
    queue = frames["collection_queue"].select("account_id", "pd", money_to_cents("expected_loss").alias("expected_loss_cents"))
    psi = None
    # the night the report compares with: the newest published night before D (chain.compared_night)
    _, previous = chain.compared_night(root, as_of)
    if previous is not None:
        before = read_output(root, "scores", previous, columns=["score"])["score"].to_numpy()
        now = frames["scores"]["score"].to_numpy()
        if before.size and now.size:
            psi = score_psi(before, now, load_model_definition(cfg).stability.bins)  # as the report computes it
    return book_summary(ledger, frames["scores"], frames["limits"], queue, cfg.collections.lgd, psi)


def stage_publish(
    root: Location, as_of: dt.date, cfg: RisklineConfig, *, dry_run: bool = False, run_info: dict[str, Any] | None = None
) -> dict[str, Any]:

    frames, versions = published_frames(root, as_of, cfg)
    failures = []
    for name, frame in frames.items():
        report = validate_output(name, frame, as_of, cfg, raise_on_critical=False)
        if not report.ok:
            failures.append(report.describe())
    if failures:
        raise PublishError(
            f"outputs of {as_of} failed validation; nothing was published, {describe_latest(root)}:\n"
            + "\n".join(failures)
        )
    record = chain.load_chain_record(root, as_of)
    manifest = {
        **versions,
        "config_sha256": cfg.source_sha256,
        "code_version": _code_version(),
        "inputs": chain.input_fingerprints(
            root, as_of, versions["model_version"], _model_sha256(root, versions["model_version"]), record
        ),
        "run": run_info or {},
        "book": _book_summary(root, as_of, cfg, frames),
    }
    if dry_run:
        if not lake.is_file(root / DRY_RUN_MARKER):  # a dry run publishes only into its own copy of the lake
            raise PublishError(f"a dry run publishes only into a dry-run staging root, not {root} "
                               f"(use RunOptions(publish=False), which prepares {dry_run_root(root, as_of)})")
        manifest["dry_run"] = True
    else:  # written by the report stage right after publish, at this deterministic path

        manifest["report"] = report_link(as_of)
    path = publish_outputs(root, as_of, frames, manifest)
    stale = chain.after_publish(root, as_of)
    out = {"manifest": str(path.relative_to(root)), "rows": {n: f.height for n, f in frames.items()},
           "published": not dry_run}
    if stale:
        out["stale_nights"] = [d.isoformat() for d in stale]
        out["stale_hint"] = chain.rebuild_hint(root, stale)
    return out


def stage_report(root: Location, as_of: dt.date, cfg: RisklineConfig) -> dict[str, Any]:
    """The run report of D (``reports/as_of_date=D/report.html``), built from what publish wrote."""
    # why: keeps xgboost and matplotlib out of the cli (which imports this module at start-up)
    from pipelines.report.report import write_report

    path = write_report(root, as_of, cfg)
    return {"report": str(path.relative_to(root)), "path": str(path)}


def _code_version() -> str:
    # why: keeps xgboost out of the cli (which imports this module at start-up)
    from pipelines.stages.train import code_version

    return code_version()


# --- the whole night -------------------------------------------------------------------------------


def run_night(
    root: Location,
    as_of: dt.date,
    cfg: RisklineConfig,
    options: RunOptions = RunOptions(),
    progress: Callable[[str, int, int], None] | None = None,
) -> RunResult:
    """Run every stage for ``as_of`` in order; the first failure stops the run before publish.

    ``progress(stage, n, total)`` is called as each stage starts, counting only the stages this run has
    (no ``train`` without retraining, no ``report`` in a dry run). A dry run (``options.publish`` False)
    runs on a fresh private copy of the lake (module docstring).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads that spin starve a 2-core machine
    if not options.publish:
        root = prepare_dry_run_root(root, as_of, f"cli-{uuid.uuid4().hex}")
    result = RunResult(as_of=as_of, root=root)
    plan: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("ingest", lambda: stage_ingest(root, as_of, cfg)),
        ("features", lambda: stage_features(root, as_of, cfg)),
    ]
    if options.retrain and options.model_version is None:
        plan.append(("train", lambda: stage_train(root, as_of, cfg)))
    plan += [
        ("score", lambda: stage_score(root, as_of, cfg, options.model_version)),
        ("decide", lambda: stage_decide(root, as_of, cfg, force_chain=options.force_chain)),
        ("publish", lambda: stage_publish(
            root, as_of, cfg, dry_run=not options.publish,
            run_info={"retrain": options.retrain, "pinned_model_version": options.model_version},
        )),
    ]
    if options.publish:  # a dry run publishes no manifest to report on
        plan.append(("report", lambda: stage_report(root, as_of, cfg)))
    if options.model_version is not None:
        # why: keeps xgboost out of the cli (which imports this module at start-up)
        from pipelines.model.registry import ModelRegistry

        # A hostile (../..) or unknown pin fails here, before any stage writes a partition of the date.
        ModelRegistry(root).record(options.model_version)
    with date_lock(root, as_of):
        # Refuse an out-of-order night before hours of work; decide checks again (it reads the chain).
        chain.check_chain(root, as_of, force=options.force_chain)
        for n, (name, fn) in enumerate(plan, 1):
            if progress:
                progress(name, n, len(plan))
            start = time.perf_counter()
            result.stages[name] = fn()
            result.timings[name] = {"seconds": round(time.perf_counter() - start, 3),
                                    "peak_rss_mib": round(_peak_rss_mib(), 1)}
    _write_timings(root, as_of, result)
    return result


def _write_timings(root: Location, as_of: dt.date, result: RunResult) -> None:
    """Timings live beside the manifest, not in it, so a rerun's manifest stays byte-identical."""
    path = lake.derived_partition(root, "runs", as_of) / "timings.json"
    lake.atomic_write_bytes(path, (json.dumps(result.timings, indent=2, sort_keys=True) + "\n").encode())
