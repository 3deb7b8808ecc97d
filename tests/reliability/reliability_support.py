"""Shared helpers of the reliability tests: the published lake they start from, digests, landing drops.

The lake (:func:`build_published_lake`, once per session by the ``published_lake`` fixture): 1,000 accounts x 60 generated days. Every day before ``PUBLISHED`` is seeded straight into the curated
zone (conformed and de-duplicated, not validated: it stands for nights ingested earlier, and costs about
2 s where 58 real ingests would cost a minute). A champion model is trained on the features of the day
before ``PUBLISHED`` with a synthetic label (60 days of history cannot mature a 90-day label; these tests
need a model that serves, not a good one). Then the real nightly run publishes ``PUBLISHED``.

``NEXT`` (the last generated day) has a clean landing drop that is not ingested yet: the bad-input tests
tamper with it, run the night for it and check what happened to the night before.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from pipelines import generate, ingest, lake, nightly
from pipelines.config import RisklineConfig
from pipelines.contract import DATASETS
from pipelines.generate import Fault, GeneratorParams, PortfolioDay, PortfolioSimulation

NEXT = dt.date(2026, 11, 20)
PUBLISHED = NEXT - dt.timedelta(days=1)
DAYS = 60
ACCOUNTS = 1_000
SEED = 11


@dataclass(frozen=True)
class PublishedLake:
    """A pristine lake (never modify ``root``: copy it with the ``lake_root`` fixture)."""

    root: Path
    published: dt.date
    next_day: dt.date
    model_version: str
    last_day: PortfolioDay  # the generator's clean NEXT day, for injecting generator faults
    seed: int


def tree_digests(root: Path, *parts: str) -> dict[str, str]:
    """sha256 of every file under ``root/<parts...>`` (hidden staging folders included), by relative path."""
    base = root.joinpath(*parts)
    if not base.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(base.rglob("*")) if p.is_file()
    }


def published_digests(root: Path, as_of: dt.date) -> dict[str, str]:
    """Every published file of one date: the four outputs and the manifest."""
    out: dict[str, str] = {}
    for folder in sorted((root / "outputs").glob(f"*/as_of_date={as_of.isoformat()}")):
        out.update(tree_digests(root, *folder.relative_to(root).parts))
    return out


def write_fault(root: Path, book: PublishedLake, kind: str, cfg: RisklineConfig) -> None:
    """Replace the NEXT landing drop with the generator's ``kind`` fault injected into that day."""
    parts, _ = generate.inject_faults(book.last_day, [Fault(kind, book.next_day)], book.seed, cfg.business.tz)
    for dataset, part in parts.items():
        # the generator's own writer, so a fault lands exactly as `riskline generate --faults` would write it
        generate._write_landing_partition(root, dataset, book.next_day, part)




def write_landing(root: Path, params: GeneratorParams, cfg: RisklineConfig) -> PortfolioDay:
    sim = PortfolioSimulation(params, cfg.generator, cfg.business.tz)
    last = None
    for day in sim.run():
        parts, _ = generate.inject_faults(day, [], params.seed, cfg.business.tz)
        for dataset, part in parts.items():
            generate._write_landing_partition(root, dataset, day.date, part)
        last = day
    assert last is not None and last.date == params.end_date
    return last


def train_fixture_champion(root: Path, as_of: dt.date, cfg: RisklineConfig) -> str:
    from pipelines.features import build_feature_snapshot, read_features
    from pipelines.model_definition import load_model_definition
    from pipelines.registry import ModelRegistry, version_id
    from pipelines.train import train_model

    build_feature_snapshot(root, as_of, cfg)
    features = read_features(root, as_of)
    definition = load_model_definition(cfg)
    definition = definition.model_copy(
        update={"hyperparameters": definition.hyperparameters.model_copy(update={"nthread": 1})}
    )
    rng = np.random.default_rng(SEED)
    risk = features["dpd"].to_numpy().astype(float) + rng.normal(0.0, 1.0, features.height)
    labelled = features.with_columns(pl.Series("bad", (risk > np.quantile(risk, 0.9)).astype(np.int8)))
    half = pl.col("account_id").hash(seed=SEED) % 2 == 0
    trained = train_model(labelled.filter(half), labelled.filter(~half), definition)
    version = version_id(as_of, trained.model_bytes)
    registry = ModelRegistry(root)
    registry.register(version, trained.model_bytes, {
        "features": [{"name": f, "dtype": "float32"} for f in trained.feature_names],
        "manifest": {"as_of": as_of.isoformat(), "note": "reliability test fixture, synthetic label"},
        "metrics": {},
        "gate": {"promote": True, "reasons": [], "summary": "fixture"},
    })
    registry.set_champion(version, as_of, "manual_promote", "reliability test fixture")
    return version


def build_published_lake(root: Path, cfg: RisklineConfig) -> PublishedLake:
    params = GeneratorParams(accounts=ACCOUNTS, days=DAYS, end_date=NEXT, seed=SEED)
    last_day = write_landing(root, params, cfg)
    day = params.start_date
    while day < PUBLISHED:
        for name in DATASETS:
            frame = ingest.read_landing(root, name, day, cfg)
            lake.publish_frames(lake.partition_dir(root, "curated", name, day), {ingest.CURATED_FILE: frame})
        day += dt.timedelta(days=1)
    version = train_fixture_champion(root, PUBLISHED - dt.timedelta(days=1), cfg)
    nightly.run_night(root, PUBLISHED, cfg, nightly.RunOptions(retrain=False))
    return PublishedLake(root, PUBLISHED, NEXT, version, last_day, SEED)


def landing(root: Path, dataset: str, day: dt.date) -> pl.DataFrame:
    return pl.read_parquet(lake.parquet_files(lake.partition_dir(root, "landing", dataset, day)))


def deliver(root: Path, dataset: str, day: dt.date, files: dict[str, pl.DataFrame | bytes]) -> None:
    """Replace a landing drop whole, as upstream delivers it: the files, then ``_SUCCESS``."""
    with lake.staged_partition(lake.partition_dir(root, "landing", dataset, day)) as tmp:
        for name, content in sorted(files.items()):
            if isinstance(content, bytes):
                (tmp / name).write_bytes(content)
            else:
                lake.write_parquet(content, tmp / name)
