"""The nightly run of one business date, stage by stage: what ``riskline run`` and the Airflow DAG call.

Stages (each a function taking the data root, the date and the config, returning a small JSON-able
dict, so Airflow tasks can call them one by one and pass only paths and counts):

    ingest -> features -> train -> score -> decide -> publish -> report

``decide`` is where limits, collection queues and hardship offers are made (it calls
``pipelines.policy.decide_limits``, ``pipelines.hardship.offer_hardship`` and
``pipelines.collections.rank_collections``); ``publish`` validates the four outputs and publishes them
all-or-nothing with the run manifest (``pipelines.publish``); ``report`` writes the page the manifest
links to (``reports/as_of_date=D/report.html``, ``pipelines.report``).

Reruns: every stage replaces its partitions whole, so running a date twice gives the same bytes. A run
reads only partitions of its own date, or the newest partition strictly before it for "the previous
run" (previous scores and limit history), never "latest". Nights form a chain (``pipelines.chain``):
decide refuses a night whose previous night is missing or stale, or that would run out of order, unless
forced, and publish marks later nights stale when a rerun changed the limit history they read.

Dry runs (``RunOptions(publish=False)``) run every stage on a private copy of the lake,
``DATA_ROOT/staging/as_of_date=D/`` (:func:`prepare_dry_run_root`, hard links: cheap), and publish into it;
nothing a real run reads is written, not even the registry when the dry run retrains.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pipelines import chain, lake
from pipelines.config import RisklineConfig

DECISIONS_ZONE = "decisions"
DECISION_FILES = ("limits.parquet", "collection_queue.parquet", "hardship_offers.parquet", "limit_history.parquet")
STAGES: tuple[str, ...] = ("ingest", "features", "train", "score", "decide", "publish", "report")


class RunLockedError(RuntimeError):
    """Another run of the same business date is in progress."""


@dataclass(frozen=True)
class RunOptions:
    retrain: bool = True
    model_version: str | None = None  # pin a registered model; None = the champion on the date
    publish: bool = True  # False: a dry run on a private copy of the lake, DATA_ROOT/staging/as_of_date=D
    force_chain: bool = False  # run even if the night is out of order (pipelines/chain.py); recorded in the manifest


@dataclass
class RunResult:
    as_of: dt.date
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    root: Path | None = None  # where the night wrote: the data root, or a dry run's staging root


# --- helpers ---------------------------------------------------------------------------------------


def decisions_dir(root: Path, as_of: dt.date) -> Path:
    return lake.derived_partition(root, DECISIONS_ZONE, as_of)


def previous_partition(root: Path, zone: str, as_of: dt.date) -> Path | None:
    """The newest complete ``zone/as_of_date=X`` with X < ``as_of`` (the previous run's), or None."""
    before = [d for d in lake.complete_partition_dates(root, zone, key="as_of_date") if d < as_of]
    return lake.derived_partition(root, zone, before[-1]) if before else None


def read_previous_run(
    root: Path, as_of: dt.date, shard: int = 0, n_shards: int = 1
) -> tuple[pl.DataFrame | None, pl.DataFrame]:
    """The previous run's scores (None on the first run) and the limit history it left, as decide reads them.

    With ``n_shards > 1``, only the rows of ``shard``'s accounts.
    """
    from pipelines import policy
    from pipelines.sharding import filter_shard

    def read(files: list[Path]) -> pl.DataFrame:
        return filter_shard(pl.scan_parquet(files), shard, n_shards).collect()

    prev_scores_dir = previous_partition(root, "scores", as_of)
    previous_scores = read(lake.parquet_files(prev_scores_dir)) if prev_scores_dir else None
    prev_decisions = previous_partition(root, DECISIONS_ZONE, as_of)
    history = read([prev_decisions / "limit_history.parquet"]) if prev_decisions else policy.empty_limit_history()
    return previous_scores, history


def read_pending_holds(
    root: Path, as_of: dt.date, cfg: RisklineConfig, shard: int = 0, n_shards: int = 1
) -> pl.DataFrame:
    """Accounts whose adverse actions are held tonight for a payment waiting in quarantine.

    Read from the merged ledger partition of D (a waiting payment may hold an account of another shard:
    the one its loan belongs to), then narrowed to ``shard``'s accounts.
    """
    from pipelines.features import PENDING_PAYMENTS_FILE, ledger_partition
    from pipelines.pending_payments import empty_holds, pending_holds
    from pipelines.sharding import filter_shard

    path = ledger_partition(root, as_of) / PENDING_PAYMENTS_FILE
    if not path.is_file():
        return empty_holds()
    holds = pending_holds(pl.read_parquet(path), as_of, cfg.pending_payments.max_hold_days)
    return filter_shard(holds.lazy(), shard, n_shards).collect()


def decide_frames(
    as_of: dt.date,
    cfg: RisklineConfig,
    accounts: pl.DataFrame,
    features: pl.DataFrame,
    installments: pl.DataFrame,
    ledger_accounts: pl.DataFrame,
    scores: pl.DataFrame,
    previous_scores: pl.DataFrame | None,
    history: pl.DataFrame,
    holds: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Every decision of D for the given accounts: limits, collection cases, hardship offers, new history.

    The one place the night's decision steps are listed, for the whole book and for a shard alike; the
    cases still need the queue's capacity cut (``collections.assign_treatments``), which ranks the book.
    ``holds`` (:func:`read_pending_holds`) withholds freezes, cuts, collections contacts and hardship offers.
    """
    from pipelines import collections, hardship, policy

    inputs = policy.build_policy_input(
        as_of, accounts, features, installments, scores, previous_scores, history, holds
    )
    limits = policy.decide_limits(inputs, cfg.policy, cfg.product)
    offers = hardship.offer_hardship(features, installments, as_of, cfg.hardship, holds)
    cases = collections.collection_cases(ledger_accounts, scores, offers, cfg.collections, holds)
    return limits, cases, offers, policy.update_limit_history(history, limits, as_of)


@contextmanager
def date_lock(root: Path, as_of: dt.date) -> Iterator[None]:
    """Refuse a second run of the same date while one is running (different dates run side by side)."""
    locks = root / "_locks"
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / f"run-{as_of.isoformat()}.lock"
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(
                f"a run for business date {as_of} is already in progress (lock {path}); wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


DRY_RUN_MARKER = lake.DRY_RUN_MARKER  # in a dry run's staging root: publishing there is allowed, and it is disposable


def dry_run_root(root: Path, as_of: dt.date) -> Path:
    return lake.derived_partition(root, "staging", as_of)


def prepare_dry_run_root(root: Path, as_of: dt.date, run_id: str) -> Path:
    """A private copy of the lake for a dry run of ``as_of`` (hard links), made once per ``run_id``.

    Replaces the previous dry run's copy of the date whole. Runs of the same id (the parallel tasks of one
    Airflow run) share the copy made by the first of them.
    """
    target = dry_run_root(root, as_of)
    lake.make_dirs(target.parent)
    with open(target.parent / f".prepare-{target.name}.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        marker = target / DRY_RUN_MARKER
        if marker.is_file() and marker.read_text().strip() == run_id:
            return target
        with lake.staged_partition(target, marker=False) as tmp:
            lake.link_tree(root, tmp, skip=("staging", "_locks", "outputs/_journal"))
            (tmp / DRY_RUN_MARKER).write_text(run_id + "\n")
    return target


def refresh_dry_run_landing(root: Path, staging_root: Path, dataset: str, as_of: dt.date) -> None:
    """Link the landing drop of ``dataset`` for D into a dry run's copy (it may have landed after the copy)."""
    source = lake.partition_dir(root, "landing", dataset, as_of)
    if lake.is_complete(source):
        with lake.staged_partition(lake.partition_dir(staging_root, "landing", dataset, as_of), marker=False) as tmp:
            lake.link_tree(source, tmp)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- stages ----------------------------------------------------------------------------------------


def stage_ingest(root: Path, as_of: dt.date, cfg: RisklineConfig) -> dict[str, Any]:
    from pipelines.catalog import DATASETS
    from pipelines.ingest import ingest_date

    before = {name: chain.curated_digest(root, name, as_of) for name in DATASETS}
    results = ingest_date(root, as_of, cfg)
    chain.after_ingest(root, as_of, before)  # late data: marks published nights that read the old partition
    return {
        r.dataset: {"rows": r.rows_curated, "quarantined": r.quarantined, "duplicates": r.duplicates_dropped,
                    "redelivered": r.redelivered}
        for r in results
    }


def stage_features(root: Path, as_of: dt.date, cfg: RisklineConfig) -> dict[str, Any]:
    from pipelines.features import build_feature_snapshot, merge_shards

    if cfg.run.shards > 1:  # per account-hash shard, then one merge (pipelines/shard_stages.py)
        from pipelines.shard_stages import run_shards

        run_shards(build_feature_snapshot, cfg.run.shards, cfg.run.shard_workers, root, as_of, cfg)
        path = merge_shards(root, as_of, cfg.run.shards)
    else:
        path = build_feature_snapshot(root, as_of, cfg)
    rows = pl.scan_parquet(sorted(path.glob("*.parquet"))).select(pl.len()).collect().item()
    return {"path": str(path.relative_to(root)), "accounts": int(rows)}


def stage_train(root: Path, as_of: dt.date, cfg: RisklineConfig) -> dict[str, Any]:
    from pipelines.train import run_training

    return run_training(root, as_of, cfg).summary()


def stage_score(root: Path, as_of: dt.date, cfg: RisklineConfig, model_version: str | None = None) -> dict[str, Any]:
    from pipelines.score import run_scoring

    if cfg.run.shards > 1:
        from pipelines.shard_stages import merge_scores, run_shards, score_shard

        run_shards(score_shard, cfg.run.shards, cfg.run.shard_workers, root, as_of, cfg, model_version=model_version)
        path = merge_scores(root, as_of, cfg.run.shards)
    else:
        path = run_scoring(root, as_of, cfg, model_version=model_version)
    # counted lazily: on a 10M book the scores frame is not worth reading back whole for two numbers
    accounts, version = pl.scan_parquet(lake.parquet_files(path)).select(
        pl.len(), pl.col("model_version").first()
    ).collect().row(0)
    return {"path": str(path.relative_to(root)), "accounts": int(accounts), "model_version": version}


def check_night_chain(root: Path, as_of: dt.date, force_chain: bool = False) -> chain.ChainRecord:
    """Refuse a night that would break the chain (``pipelines.chain``); keep what it saw for publish."""
    record = chain.check_chain(root, as_of, force=force_chain)
    chain.save_chain_record(root, as_of, record)
    return record


def stage_decide(root: Path, as_of: dt.date, cfg: RisklineConfig, force_chain: bool = False) -> dict[str, Any]:
    from pipelines.collections import assign_treatments
    from pipelines.features import ledger_partition, read_features
    from pipelines.score import scores_dir

    check_night_chain(root, as_of, force_chain)
    if cfg.run.shards > 1:  # the queue's capacity cut runs once, in the merge (pipelines/shard_stages.py)
        from pipelines.shard_stages import decide_shard, merge_decisions, run_shards

        run_shards(decide_shard, cfg.run.shards, cfg.run.shard_workers, root, as_of, cfg)
        summary = _decide_summary(root, merge_decisions(root, as_of, cfg, cfg.run.shards))
        return {**summary, "held_for_pending_payments": read_pending_holds(root, as_of, cfg).height}

    accounts = lake.read_partition(lake.partition_dir(root, "curated", "accounts", as_of))
    features = read_features(root, as_of)
    ledger_dir = ledger_partition(root, as_of)
    installments = pl.read_parquet(ledger_dir / "installments.parquet")
    ledger_accounts = pl.read_parquet(ledger_dir / "accounts.parquet")
    scores = lake.read_partition(scores_dir(root, as_of))
    previous_scores, history = read_previous_run(root, as_of)
    holds = read_pending_holds(root, as_of, cfg)

    limits, cases, offers, new_history = decide_frames(
        as_of, cfg, accounts, features, installments, ledger_accounts, scores, previous_scores, history, holds
    )
    queue = assign_treatments(cases, cfg.collections)
    path = lake.publish_frames(
        decisions_dir(root, as_of), dict(zip(DECISION_FILES, (limits, queue, offers, new_history), strict=True))
    )
    return {
        "path": str(path.relative_to(root)),
        "actions": dict(sorted(limits.group_by("action").len().iter_rows())),
        "treatments": dict(sorted(queue.group_by("treatment").len().iter_rows())),
        "hardship_offers": offers.height,
        "held_for_pending_payments": holds.height,
    }


def _decide_summary(root: Path, path: Path) -> dict[str, Any]:
    """stage_decide's summary read lazily from the decisions partition (a sharded run holds no frames)."""

    def counts(name: str, column: str) -> dict[str, int]:
        return dict(sorted(pl.scan_parquet(path / name).group_by(column).len().collect().iter_rows()))

    return {
        "path": str(path.relative_to(root)),
        "actions": counts("limits.parquet", "action"),
        "treatments": counts("collection_queue.parquet", "treatment"),
        "hardship_offers": int(pl.scan_parquet(path / "hardship_offers.parquet").select(pl.len()).collect().item()),
    }


def published_frames(root: Path, as_of: dt.date, cfg: RisklineConfig) -> tuple[dict[str, pl.DataFrame], dict[str, str]]:
    """The four outputs of D in contract shape, and the versions that produced them."""
    from pipelines.outputs import to_published
    from pipelines.score import scores_dir

    scores = lake.read_partition(scores_dir(root, as_of))
    # A score is the model's view of the ledger as delivered: published, but flagged where a payment waits
    # in quarantine (the ledger may lack it; the account's limit, queue entry and hardship offer are held).
    held = read_pending_holds(root, as_of, cfg).get_column("account_id")
    scores = scores.with_columns(pending_payment=pl.col("account_id").is_in(held.implode()))
    decisions = decisions_dir(root, as_of)
    internal = {
        "scores": scores,
        "limits": pl.read_parquet(decisions / "limits.parquet"),
        "collection_queue": pl.read_parquet(decisions / "collection_queue.parquet"),
        "hardship_offers": pl.read_parquet(decisions / "hardship_offers.parquet"),
    }
    model_versions = scores["model_version"].unique().to_list()
    versions = {"model_version": model_versions[0] if model_versions else "", "policy_version": cfg.policy.version}
    return {name: to_published(name, frame, as_of, versions) for name, frame in internal.items()}, versions


def stage_publish(
    root: Path, as_of: dt.date, cfg: RisklineConfig, *, dry_run: bool = False, run_info: dict[str, Any] | None = None
) -> dict[str, Any]:
    from pipelines.publish import PublishError, publish_outputs
    from pipelines.validate import validate_output

    frames, versions = published_frames(root, as_of, cfg)
    failures = []
    for name, frame in frames.items():
        report = validate_output(name, frame, as_of, cfg, raise_on_critical=False)
        if not report.ok:
            failures.append(report.describe())
    if failures:
        from pipelines.publish import describe_latest

        raise PublishError(
            f"outputs of {as_of} failed validation; nothing was published, {describe_latest(root)}:\n"
            + "\n".join(failures)
        )
    record = chain.load_chain_record(root, as_of)
    manifest = {
        **versions,
        "config_sha256": cfg.source_sha256,
        "code_version": _code_version(),
        "inputs": chain.input_fingerprints(root, as_of, versions["model_version"], record),
        "run": run_info or {},
    }
    if dry_run:
        if not (root / DRY_RUN_MARKER).is_file():  # a dry run publishes only into its own copy of the lake
            raise PublishError(f"a dry run publishes only into a dry-run staging root, not {root} "
                               f"(use RunOptions(publish=False), which prepares {dry_run_root(root, as_of)})")
        manifest["dry_run"] = True
    else:  # written by the report stage right after publish, at this deterministic path
        from pipelines.report import report_link

        manifest["report"] = report_link(as_of)
    path = publish_outputs(root, as_of, frames, manifest)
    stale = chain.after_publish(root, as_of)
    out = {"manifest": str(path.relative_to(root)), "rows": {n: f.height for n, f in frames.items()},
           "published": not dry_run}
    if stale:
        out["stale_nights"] = [d.isoformat() for d in stale]
        out["stale_hint"] = chain.rebuild_hint(stale)
    return out


def stage_report(root: Path, as_of: dt.date, cfg: RisklineConfig) -> dict[str, Any]:
    """The run report of D (``reports/as_of_date=D/report.html``), built from what publish wrote."""
    from pipelines.report import write_report

    path = write_report(root, as_of, cfg)
    return {"report": str(path.relative_to(root)), "path": str(path)}


def _code_version() -> str:
    from pipelines.train import code_version

    return code_version()


# --- the whole night -------------------------------------------------------------------------------


def run_night(
    root: Path,
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
        import uuid

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
        from pipelines.registry import ModelRegistry

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


def _write_timings(root: Path, as_of: dt.date, result: RunResult) -> None:
    """Timings live beside the manifest, not in it, so a rerun's manifest stays byte-identical."""
    path = lake.derived_partition(root, "runs", as_of) / "timings.json"
    lake.atomic_write_bytes(path, (json.dumps(result.timings, indent=2, sort_keys=True) + "\n").encode())
