"""The nightly run protects the book: a useless challenger never replaces the champion, a leaking feature
stops the run, and with nothing fit to serve the run fails before any decision is made."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipelines.config.settings import RisklineConfig
from pipelines.model.metrics import LeakageSuspectedError
from pipelines.config.model_definition import ModelDefinition
from pipelines.model.registry import ModelRegistry, NoChampionError
from pipelines.model.train import train_evaluate_register


def _shuffled(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    return frame.with_columns(pl.Series("bad", np.random.default_rng(seed).permutation(frame["bad"].to_numpy())))


def test_a_challenger_trained_on_shuffled_labels_is_rejected_and_the_champion_keeps_serving(
    book, definition: ModelDefinition, cfg: RisklineConfig, tmp_path
):
    registry = ModelRegistry(tmp_path)
    first = train_evaluate_register(registry, book.plan, book.fit, book.early_stopping, book.oot, definition, cfg.model)
    assert first.promoted and registry.champion() == first.version

    challenger = train_evaluate_register(
        registry, book.plan, _shuffled(book.fit, 1), _shuffled(book.early_stopping, 2), book.oot, definition, cfg.model
    )
    assert not challenger.promoted
    assert challenger.version != first.version and challenger.version in registry.versions()
    assert registry.champion() == first.version == registry.champion_on(book.plan.as_of)
    failed = {r.split(":")[0] for r in challenger.gate["reasons"]}
    # noise has an AUC near 0.5: below the floor and far below the champion on the same OOT rows
    assert {"oot_auc", "auc_vs_champion"} <= failed
    assert challenger.gate["champion"] == first.version
    assert registry.record(challenger.version).metrics["champion_on_same_oot"]["auc"] == pytest.approx(first.oot["auc"])


def test_a_label_leaking_feature_trips_the_leakage_guard(
    book, definition: ModelDefinition, cfg: RisklineConfig, tmp_path
):
    leaky = definition.feature_names[0]  # an unconstrained feature, now computed from the outcome

    def leak(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns((pl.col("bad") * 10.0 + pl.col(leaky) * 0.01).alias(leaky))

    registry = ModelRegistry(tmp_path)
    with pytest.raises(LeakageSuspectedError, match=f"leakage ceiling.*Strongest single features: {leaky} "):
        train_evaluate_register(
            registry, book.plan, leak(book.fit), leak(book.early_stopping), leak(book.oot), definition, cfg.model
        )
    assert registry.versions() == [] and registry.champion() is None


def test_without_a_champion_a_failing_challenger_stops_the_run(
    book, definition: ModelDefinition, cfg: RisklineConfig, tmp_path
):
    registry = ModelRegistry(tmp_path)
    with pytest.raises(NoChampionError, match="no model can serve"):
        train_evaluate_register(
            registry, book.plan, _shuffled(book.fit, 1), _shuffled(book.early_stopping, 2), book.oot,
            definition, cfg.model,
        )
    assert registry.champion() is None and registry.champion_on(book.plan.as_of) is None
    assert len(registry.versions()) == 1  # kept for inspection, never served


def test_a_rerun_of_the_same_night_reuses_the_version_and_records_nothing_new(
    book, definition: ModelDefinition, cfg: RisklineConfig, tmp_path
):
    registry = ModelRegistry(tmp_path)
    first = train_evaluate_register(registry, book.plan, book.fit, book.early_stopping, book.oot, definition, cfg.model)
    again = train_evaluate_register(registry, book.plan, book.fit, book.early_stopping, book.oot, definition, cfg.model)
    assert (again.version, again.created, first.created) == (first.version, False, True)
    assert len(registry.history()) == 1
