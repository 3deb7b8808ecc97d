"""No clock features: on a young lake a feature that only tells the snapshot date is kept out of the model.

The lake is generated with every line opened on the same day just before the window (a book launched
on one day): ``months_on_book`` is then one value per snapshot, and the limit-change ratios are null
until the line is old enough and 0 after (the generator never changes a limit). Pooled, those let the
trees learn the snapshot date. The screen must find them from the data alone, and say why.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.config.model_definition import ModelDefinition
from pipelines.config.settings import RisklineConfig
from pipelines.contracts.landing import DATASETS
from pipelines.model.registry import ModelRegistry
from pipelines.model.train import SnapshotPlan, screen_clock_features, train_evaluate_register
from pipelines.stages import ingest
from pipelines.stages.features import build_feature_snapshot
from pipelines.store import drops, lake
from pipelines.store.zones import read_features
from tools.generate import write_portfolio
from tools.simulate import GeneratorParams
from tools.generator_config import load_generator_config

END = dt.date(2026, 11, 20)
SNAPSHOTS = [END - dt.timedelta(days=7 * k) for k in range(5, -1, -1)]  # six weekly snapshots, oldest first


@pytest.fixture(scope="module")
def young_book(tmp_path_factory, quiet_cfg: RisklineConfig) -> pl.DataFrame:
    root: Path = tmp_path_factory.mktemp("young-lake")
    # every line opened the day before the first generated day; none closes
    cfg = quiet_cfg
    generator = load_generator_config().model_copy(
        update={"opened_before_share": 1.0, "max_account_age_days": 1, "close_rate": 0.0})
    params = GeneratorParams(accounts=400, days=60, end_date=END, seed=5)
    write_portfolio(root, params, cfg, generator=generator)
    day = params.start_date
    while day <= END:  # seeded straight into curated, as earlier nights would have left it
        for name in DATASETS:
            frame = drops.read_landing(root, name, day, cfg)
            lake.publish_frames(lake.partition_dir(root, "curated", name, day), {ingest.CURATED_FILE: frame})
        day += dt.timedelta(days=1)
    frames = []
    for snapshot in SNAPSHOTS:
        build_feature_snapshot(root, snapshot, cfg)
        frames.append(read_features(root, snapshot))
    return pl.concat(frames, how="diagonal_relaxed")


def test_the_young_lakes_clocks_are_found_and_explained(young_book: pl.DataFrame, definition: ModelDefinition):
    training = young_book.filter(pl.col("as_of_date") < SNAPSHOTS[-1])
    excluded = screen_clock_features(training, definition.feature_names, definition.feature_screen)
    # one value per snapshot (the whole book is the same age), a different one at each: a clock
    assert "a clock" in excluded["months_on_book"]
    # null until the lake holds 180 days of the line's history: constant at every snapshot
    assert "limit_change_180d_ratio" in excluded
    # behaviour that differs between customers of one snapshot stays in
    assert not {"dpd", "utilization", "spend_30d_cents", "login_count_30d"} & set(excluded)


def test_excluded_features_are_logged_and_left_out_of_the_trees(
    young_book: pl.DataFrame, definition: ModelDefinition, cfg: RisklineConfig, tmp_path
):
    # labels drawn from arrears and utilization (as the reliability fixture does): the gate sees a real model
    rng = np.random.default_rng(3)
    signal = (young_book["dpd"].fill_null(0).clip(0, 30) / 10 + young_book["utilization"].fill_null(0) * 2).to_numpy()
    pd_ = 1 / (1 + np.exp(3.0 - 1.5 * (signal + rng.normal(0, 0.7, young_book.height))))
    book = pl.concat([  # four copies of each account: enough rows to judge calibration
        young_book.with_columns(pl.col("account_id") + f"-{copy}",
                                pl.Series("bad", (rng.random(young_book.height) < pd_).astype(np.int8)))
        for copy in range(4)
    ])
    plan = SnapshotPlan(END, 90, tuple(SNAPSHOTS[:3]), tuple(SNAPSHOTS[3:5]), SNAPSHOTS[5])
    on = pl.col("as_of_date")
    registry = ModelRegistry(tmp_path)
    result = train_evaluate_register(
        registry, plan, book.filter(on.is_in(plan.fit_dates)), book.filter(on.is_in(plan.early_stopping_dates)),
        book.filter(on == plan.oot_date), definition, cfg.model,
    )
    record = registry.record(result.version)
    excluded = record.metrics["excluded_features"]
    assert {"months_on_book", "limit_change_180d_ratio"} <= set(excluded) and all(excluded.values())
    kept = [f["name"] for f in record.features]
    assert not set(excluded) & set(kept) and kept == [f for f in definition.feature_names if f not in excluded]
    booster = registry.load_booster(result.version)
    assert booster.feature_names == kept  # XGBoost's positional feature order is the definition's, less the clocks
    constraints = {f["name"]: f["monotone"] for f in record.features}
    assert constraints["dpd"] == 1 and constraints["on_time_ratio_90d"] == -1
