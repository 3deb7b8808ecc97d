"""Scoring and decisions run shard by shard, and the merges that publish the date's partitions.

A shard is every account whose stable hash of ``account_id`` falls in it (:mod:`pipelines.domain.sharding`).
Ledger and features shard in :mod:`pipelines.domain.features`; this module adds the other per-account stages::

    build_feature_snapshot(k) for every k -> merge_shards -> train
      -> score_shard(k) for every k -> merge_scores
      -> decide_shard(k) for every k -> merge_decisions -> publish

A shard stage writes ``DATA_ROOT/<zone>/_shards/as_of_date=D/shard=KKKK-of-NNNN/`` atomically; a merge
publishes ``DATA_ROOT/<zone>/as_of_date=D/`` whole once every shard is complete, and refuses otherwise.
Shards are disjoint by account, so the merged frames equal the unsharded ones for any shard count. The
one step that needs every account at once, the collections queue's agent-capacity cut and priorities
(:func:`pipelines.domain.collections.assign_treatments`), runs in :func:`merge_decisions` on the concatenated
per-shard cases (overdue accounts only: a few percent of the book, a dozen columns).

Memory: a shard stage holds one shard's rows. The big merges (scores, limits) go range by range over the
shards' sorted files (:func:`_sink_merged`), so the merged limits of a 10M book never sit in memory whole.
Streamed files hold the same rows as an in-memory write, not necessarily the same bytes; the published
outputs are rewritten by :mod:`pipelines.store.publish` from the frames.

Shard stages read their inputs from the shard partitions of the same shard count when those exist, and
otherwise filter the merged partition (e.g. features built unsharded by an earlier run).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.config.model_definition import load_model_definition
from pipelines.config.location import Location
from pipelines.config.settings import RisklineConfig
from pipelines.domain.collections import assign_treatments
from pipelines.domain.decide import require_exact_reasons
from pipelines.domain.feature_dictionary import KEY_COLUMNS
from pipelines.domain.ledger import LOAN_KEY
from pipelines.model.pd import model_features
from pipelines.model.registry import ModelRegistry
from pipelines.model.score import add_reasons, reason_reference, score_pd_frame
from pipelines.stages.score import acted_on_tonight, previous_pd_of, trained_reference
from pipelines.store import lake
from pipelines.store.readers import read_decide_inputs, read_shard_file
from pipelines.store.zones import (
    DECISIONS_ZONE, FEATURES_FILE, FEATURES_ZONE, SCORES_FILE, SCORES_ZONE, decisions_dir,
    scores_dir, shard_dir,
)

SHARD_DECISION_FILES = ("limits.parquet", "collection_cases.parquet", "hardship_offers.parquet",
                        "limit_history.parquet")


class ShardsIncompleteError(RuntimeError):
    """A merge was asked for before every shard of the date was complete."""


def _complete_shards(root: Location, zone: str, as_of: dt.date, n_shards: int) -> list[Location]:
    dirs = [shard_dir(root, zone, as_of, k, n_shards) for k in range(n_shards)]
    missing = [str(d) for d in dirs if not lake.is_complete(d)]
    if missing:
        raise ShardsIncompleteError(f"{zone} shards not complete for {as_of}: {', '.join(missing)}")
    return dirs


def _sink_merged(files: list[Location], key: str, target: Path) -> None:
    """Write the rows of ``files`` (each sorted by the unique ``key``) as one file sorted by ``key``.

    A range merge, not a k-way merge: the key space is cut into as many ranges as there are files, at
    the quantiles of one file's keys (shards hash accounts uniformly, so any shard is a fair sample).
    Each range is read from every file (row groups outside it are skipped on their min/max statistics,
    as the files are sorted), sorted, and written to a range file; the range files are then streamed
    into ``target`` in order. Peak memory is one range, about one shard. Measured on 10 shards of 1M
    limits: 1.8 GiB, where polars' streaming ``merge_sorted`` tree or ``sort`` held the whole 10M rows
    (8.7 and 7.6 GiB).
    """
    with lake.fetched(files) as local:  # each range reads every file: fetch object-store files once
        _sink_ranges(local, key, target)


def _sink_ranges(files: list[Path], key: str, target: Path) -> None:
    keys = next((k for k in (lake.read_parquet(f, columns=[key])[key] for f in files) if len(k)), None)
    n_ranges = len(files)
    bounds = (
        [] if keys is None or n_ranges < 2
        else sorted(set(keys.gather([len(keys) * i // n_ranges for i in range(1, n_ranges)]).to_list()))
    )
    ranges_dir = target.parent / f".ranges-{target.stem}"
    ranges_dir.mkdir()
    try:
        parts = []
        for i, (lo, hi) in enumerate(zip([None, *bounds], [*bounds, None], strict=True)):
            inside = pl.lit(True)
            if lo is not None:
                inside = inside & (pl.col(key) >= lo)
            if hi is not None:
                inside = inside & (pl.col(key) < hi)
            part = ranges_dir / f"range-{i:05d}.parquet"
            lake.write_parquet(lake.scan_parquet(files).filter(inside).collect().sort(key), part)
            parts.append(part)
        # concatenating sorted, disjoint, ordered ranges streams in bounded memory
        lake.scan_parquet(parts).sink_parquet(target, **lake.PARQUET_OPTIONS)  # type: ignore[arg-type]
    finally:
        shutil.rmtree(ranges_dir, ignore_errors=True)


# --- scoring ------------------------------------------------------------------------------------------


def score_shard(
    root: Location, as_of: dt.date, cfg: RisklineConfig, shard: int, n_shards: int, model_version: str | None = None
) -> Path:
    """Score one shard with the champion of ``as_of`` (or ``model_version``); return the shard partition.

    Same inputs and rules as :func:`pipelines.model.score.run_scoring`, restricted to the shard's accounts.
    """

    definition = load_model_definition(cfg)
    registry = ModelRegistry(root)
    version = model_version or registry.require_champion_on(as_of)
    booster = registry.load_booster(version)
    columns = [*KEY_COLUMNS, *model_features(booster), *definition.reason_codes.exact_when_positive]
    features = read_shard_file(root, FEATURES_ZONE, as_of, FEATURES_FILE, shard, n_shards, columns)
    previous_pd = previous_pd_of(root, as_of, shard, n_shards)
    # Reasons are judged against the whole book's reference, not the shard's: any shard count, same reasons.
    book = _whole_book(root, FEATURES_ZONE, as_of, FEATURES_FILE, n_shards)
    reference = reason_reference(book, model_features(booster), trained_reference(registry, version))
    scored = score_pd_frame(booster, features, definition, version)
    acted = acted_on_tonight(root, as_of, cfg, scored, shard, n_shards)
    scores = add_reasons(booster, features, scored, definition, cfg.model.reason_code_method, previous_pd,
                         reference, acted)
    return lake.publish_frames(shard_dir(root, SCORES_ZONE, as_of, shard, n_shards), {SCORES_FILE: scores})


def _whole_book(root: Location, zone: str, as_of: dt.date, name: str, n_shards: int) -> pl.LazyFrame:
    """A lazy scan of one file of a zone over every account: the merged partition, else all shards."""
    merged = lake.derived_partition(root, zone, as_of)
    if lake.is_complete(merged):
        return lake.scan_parquet(lake.partition_file(merged, name))
    return lake.scan_parquet([lake.partition_file(d, name) for d in _complete_shards(root, zone, as_of, n_shards)])


def merge_scores(root: Location, as_of: dt.date, n_shards: int) -> Path:
    """Publish ``scores/as_of_date=D`` from every shard's scores (fails unless all are complete)."""

    dirs = _complete_shards(root, SCORES_ZONE, as_of, n_shards)
    target = scores_dir(root, as_of)
    with lake.staged_partition(target) as tmp:
        _sink_merged([lake.partition_file(d, SCORES_FILE) for d in dirs], "account_id", tmp / SCORES_FILE)
    return target


# --- decisions ----------------------------------------------------------------------------------------


def decide_shard(root: Location, as_of: dt.date, cfg: RisklineConfig, shard: int, n_shards: int) -> Path:
    """Limits, hardship offers, collection cases (before the capacity cut) and limit history of one shard.

    The inputs are those of :func:`pipelines.stages.night.stage_decide`, restricted to the shard's accounts.
    """
    inputs = read_decide_inputs(root, as_of, cfg, shard, n_shards)
    scores = read_shard_file(root, SCORES_ZONE, as_of, SCORES_FILE, shard, n_shards)
    decided = inputs.decide(as_of, cfg, scores)
    require_exact_reasons(scores, *decided[:3], cfg)
    frames = dict(zip(SHARD_DECISION_FILES, decided, strict=True))
    return lake.publish_frames(shard_dir(root, DECISIONS_ZONE, as_of, shard, n_shards), frames)


def merge_decisions(root: Location, as_of: dt.date, cfg: RisklineConfig, n_shards: int) -> Path:
    """Publish ``decisions/as_of_date=D``: merged limits, offers and history, and the collections queue.

    The queue's agent capacity and priorities rank the whole book, so they are applied here, once, to
    every shard's cases together; the result equals the unsharded :func:`collections.rank_collections`.
    """

    dirs = _complete_shards(root, DECISIONS_ZONE, as_of, n_shards)

    def concat(name: str) -> pl.DataFrame:
        return pl.concat([lake.read_parquet(lake.partition_file(d, name)) for d in dirs], how="vertical")

    queue = assign_treatments(concat("collection_cases.parquet"), cfg.collections)
    offers = concat("hardship_offers.parquet").sort(LOAN_KEY)
    history = concat("limit_history.parquet").sort("account_id")
    target = decisions_dir(root, as_of)
    with lake.staged_partition(target) as tmp:
        _sink_merged([lake.partition_file(d, "limits.parquet") for d in dirs], "account_id", tmp / "limits.parquet")
        for name, frame in (("collection_queue.parquet", queue), ("hardship_offers.parquet", offers),
                            ("limit_history.parquet", history)):
            lake.write_parquet(frame, tmp / name)
    return target


# --- running every shard ------------------------------------------------------------------------------


def run_shards(fn: Callable[..., Any], n_shards: int, workers: int, *args: Any, **kwargs: Any) -> list[Any]:
    """``fn(*args, shard=k, n_shards=n_shards, **kwargs)`` for every shard k, ``workers`` at a time.

    One worker runs them in this process, one after another (the memory of one shard). More workers run
    them in fresh processes (spawned, not forked: polars' thread pools do not survive a fork).
    """
    calls = [dict(kwargs, shard=k, n_shards=n_shards) for k in range(n_shards)]
    if workers <= 1 or n_shards == 1:
        return [fn(*args, **call) for call in calls]
    with ProcessPoolExecutor(min(workers, n_shards), mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_call, [(fn, args, call) for call in calls]))


def _call(job: tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]) -> Any:
    fn, args, kwargs = job
    return fn(*args, **kwargs)
