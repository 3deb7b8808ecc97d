"""Published reasons distinguish the customer: none is a feature that is constant across the night's book.

The night is a young generated book (every line opened on one day, so ``months_on_book`` is one value
tonight) scored by a champion that learned ``months_on_book`` on an older book, where it varied between
accounts: the situation of the real card book, where it was a published reason for 68% of accounts.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.config.model_definition import load_model_definition
from pipelines.config.settings import RisklineConfig
from pipelines.contracts.landing import DATASETS
from pipelines.model.registry import ModelRegistry
from pipelines.model.train import SnapshotPlan, train_evaluate_register
from pipelines.stages import ingest, night as nightly
from pipelines.stages.features import build_feature_snapshot
from pipelines.store import drops, lake
from pipelines.store.zones import read_features
from tools.generate import write_portfolio
from tools.simulate import GeneratorParams
from tools.generator_config import load_generator_config

NIGHT = dt.date(2026, 11, 20)
REASONS = ("reason_1", "reason_2", "reason_3")


def _train_champion(root: Path, as_of: dt.date, cfg: RisklineConfig) -> str:
    """A champion from tonight's feature shape with varied line ages, young lines riskier (labels drawn)."""
    build_feature_snapshot(root, as_of, cfg)
    features = read_features(root, as_of)
    definition = load_model_definition(cfg)
    definition = definition.model_copy(
        update={"hyperparameters": definition.hyperparameters.model_copy(update={"nthread": 1})}
    )
    rng = np.random.default_rng(7)
    snapshots = [as_of - dt.timedelta(days=7 * (5 - i)) for i in range(6)]
    frames = []
    for date in snapshots:
        for copy in range(4):
            months = rng.integers(0, 36, features.height)
            signal = (features["dpd"].fill_null(0).clip(0, 30) / 10 + features["utilization"].fill_null(0) * 2).to_numpy()
            pd_ = 1 / (1 + np.exp(3.0 - 1.5 * (signal + 1.2 * (months < 6) + rng.normal(0, 0.5, features.height))))
            frames.append(features.with_columns(
                pl.col("account_id") + f"-{copy}", pl.lit(date).alias("as_of_date"),
                pl.Series("months_on_book", months, dtype=features.schema["months_on_book"]),
                pl.Series("bad", (rng.random(features.height) < pd_).astype(np.int8)),
            ))
    book = pl.concat(frames)
    plan = SnapshotPlan(as_of, 90, tuple(snapshots[:3]), tuple(snapshots[3:5]), snapshots[5])
    on = pl.col("as_of_date")
    result = train_evaluate_register(
        ModelRegistry(root), plan, book.filter(on.is_in(plan.fit_dates)),
        book.filter(on.is_in(plan.early_stopping_dates)), book.filter(on == plan.oot_date), definition, cfg.model,
    )
    assert result.promoted and "months_on_book" in (ModelRegistry(root).load_booster(result.version).feature_names or [])
    return result.version


def test_no_published_reason_is_a_feature_constant_across_the_nights_book(tmp_path: Path, quiet_cfg: RisklineConfig):
    root = tmp_path / "lake"
    cfg = quiet_cfg
    generator = load_generator_config().model_copy(
        update={"opened_before_share": 1.0, "max_account_age_days": 1, "close_rate": 0.0})
    params = GeneratorParams(accounts=500, days=60, end_date=NIGHT, seed=3)
    write_portfolio(root, params, cfg, generator=generator)
    day = params.start_date
    while day < NIGHT:  # earlier nights, seeded straight into curated
        for name in DATASETS:
            frame = drops.read_landing(root, name, day, cfg)
            lake.publish_frames(lake.partition_dir(root, "curated", name, day), {ingest.CURATED_FILE: frame})
        day += dt.timedelta(days=1)
    _train_champion(root, NIGHT - dt.timedelta(days=1), cfg)
    nightly.run_night(root, NIGHT, cfg, nightly.RunOptions(retrain=False))

    scores = pl.read_parquet(lake.parquet_files(lake.derived_partition(root, "outputs/scores", NIGHT)))
    limits = pl.read_parquet(lake.parquet_files(lake.derived_partition(root, "outputs/limits", NIGHT)))
    book = read_features(root, NIGHT).filter(pl.col("account_id").is_in(scores["account_id"].implode()))
    assert book["months_on_book"].n_unique() == 1  # the night has the trap the test is about

    published = {r for c in REASONS for r in scores[c].drop_nulls()}
    published |= {c.removeprefix("MODEL:") for c in limits["reason_codes"].explode().drop_nulls() if c.startswith("MODEL:")}
    assert published, "reasons were published: the check below is not vacuous"
    constant = sorted(f for f in published if book[f].n_unique() == 1)
    assert constant == [], f"published reasons constant across the night's book: {constant}"
