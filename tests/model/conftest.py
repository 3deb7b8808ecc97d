"""Fixtures for the behavioural model tests: a small synthetic book and a champion trained on it.

The book has the feature snapshots' shape (``account_id``, ``as_of_date``, every feature of the
definition) plus ``bad``. Features the dictionary marks risk-raising (+1) grow with a latent risk,
risk-lowering ones (-1) shrink with it, the rest are noise; ``bad`` is drawn from the latent risk, so a
sound model reaches an OOT AUC near 0.8 and one trained on shuffled labels stays near 0.5.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl
import pytest

from pipelines.config.settings import RisklineConfig
from pipelines.domain.feature_dictionary import feature
from pipelines.config.model_definition import ModelDefinition, load_model_definition
from pipelines.model.train import SnapshotPlan

AS_OF = dt.date(2026, 11, 25)
SNAPSHOTS = [dt.date(2026, 6, 4) + dt.timedelta(days=7 * i) for i in range(6)]  # last = OOT


def synthetic_book(definition: ModelDefinition, dates: list[dt.date], accounts: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    ids = np.array([f"A{i:07d}" for i in range(accounts)])
    base_risk = rng.normal(0.0, 1.0, accounts)
    frames = []
    for date in dates:
        risk = base_risk + rng.normal(0.0, 0.5, accounts)
        bad = rng.random(accounts) < 1.0 / (1.0 + np.exp(3.2 - 1.3 * risk))  # ~7% bad
        columns: dict[str, object] = {"account_id": ids, "as_of_date": pl.Series([date] * accounts, dtype=pl.Date)}
        for spec in definition.features:
            direction = feature(spec.name).monotone
            noise = rng.normal(0.0, 1.0, accounts)
            if direction > 0:
                value = np.maximum(0.0, np.round(8.0 * (risk - 0.8) + 4.0 * noise))
            elif direction < 0:
                value = 1.0 / (1.0 + np.exp(risk + 0.7 * noise))
            else:
                value = np.exp(noise)
            columns[spec.name] = value
        columns["bad"] = bad.astype(np.int8)
        frames.append(pl.DataFrame(columns))
    return pl.concat(frames).sort("as_of_date", "account_id")


@dataclass(frozen=True)
class Book:
    plan: SnapshotPlan
    fit: pl.DataFrame
    early_stopping: pl.DataFrame
    oot: pl.DataFrame


def split_book(frame: pl.DataFrame, as_of: dt.date = AS_OF) -> Book:
    plan = SnapshotPlan(as_of, 90, tuple(SNAPSHOTS[:3]), tuple(SNAPSHOTS[3:5]), SNAPSHOTS[5])
    date = pl.col("as_of_date")
    return Book(
        plan,
        frame.filter(date.is_in(plan.fit_dates)),
        frame.filter(date.is_in(plan.early_stopping_dates)),
        frame.filter(date == plan.oot_date),
    )


@pytest.fixture(scope="session")
def definition(cfg: RisklineConfig) -> ModelDefinition:
    committed = load_model_definition(cfg)
    # One thread: the test machine is shared, and OpenMP's spin-waiting made 2-thread training 10x slower
    # under contention. (The bytes came out the same for 1-3 threads; determinism is tested per setting.)
    return committed.model_copy(
        update={"hyperparameters": committed.hyperparameters.model_copy(update={"nthread": 1})}
    )


@pytest.fixture(scope="session")
def book(definition: ModelDefinition) -> Book:
    # 2,000 accounts x 6 weekly snapshots: ~12k rows, trains in well under a second
    return split_book(synthetic_book(definition, SNAPSHOTS, accounts=2000, seed=11))
