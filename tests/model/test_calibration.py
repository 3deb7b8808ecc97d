"""Calibrated under drift: the served PD is recalibrated on the newest matured data before OOT.

The book's bad rate steps up after the fit snapshots (a shift the pooled trees cannot know about): the
raw PD is then too low on the out-of-time snapshot and would fail the calibration ceiling. Recalibrated
on a held-out slice of the newest pre-OOT snapshots, the same trees pass, with the ranking unchanged.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipelines.config.model_definition import ModelDefinition
from pipelines.config.settings import RisklineConfig
from pipelines.model import metrics as evaluate
from pipelines.model.pd import model_calibration, predict_margin, predict_pd
from pipelines.model.registry import ModelRegistry
from pipelines.model.train import fit_platt, split_calibration_slice, train_evaluate_register


def _shift(frame: pl.DataFrame, share: float, seed: int) -> pl.DataFrame:
    """``share`` of the goods turn bad: the bad rate rises for reasons no feature shows (a macro shock)."""
    flip = np.random.default_rng(seed).random(frame.height) < share
    return frame.with_columns(pl.when(pl.Series(flip)).then(1).otherwise(pl.col("bad")).cast(pl.Int8).alias("bad"))


def test_after_a_shift_in_the_bad_rate_the_recalibrated_model_passes_the_gate(
    book, definition: ModelDefinition, cfg: RisklineConfig, tmp_path
):
    early_stopping, oot = _shift(book.early_stopping, 0.08, 1), _shift(book.oot, 0.08, 2)
    registry = ModelRegistry(tmp_path)
    result = train_evaluate_register(registry, book.plan, book.fit, early_stopping, oot, definition, cfg.model)
    metrics = registry.record(result.version).metrics
    calibration = metrics["calibration"]
    raw = calibration["oot_uncalibrated"]
    # the raw PD misses the shift by far more than the ceiling plus its sampling noise: it would have failed
    assert raw["calibration_error"] > definition.gate.max_calibration_error + raw["calibration_noise"]
    # recalibrated on the newest pre-OOT snapshots, the same trees are calibrated on OOT and promoted
    assert calibration["method"] == "platt"
    assert calibration["snapshots"] == [d.isoformat() for d in book.plan.early_stopping_dates]
    assert calibration["oot_error_after"] < calibration["oot_error_before"] / 2
    assert metrics["oot"]["calibration_error"] == pytest.approx(calibration["oot_error_after"])
    assert result.promoted and registry.champion() == result.version
    assert metrics["oot"]["auc"] == pytest.approx(raw["auc"], abs=1e-9)  # ranking untouched

    # The calibration is stored in the model: whoever loads it serves the calibrated PD, monotone in the margin.
    served = registry.load_booster(result.version)
    platt = model_calibration(served)
    assert platt is not None and platt.slope > 0
    margin, pd_ = predict_margin(served, oot), predict_pd(served, oot)
    assert np.all(np.diff(pd_[np.argsort(margin, kind="stable")]) >= 0)
    ordered = oot.sort("account_id", "as_of_date")  # the row order training evaluated in
    served_error = evaluate.calibration_error(evaluate.calibration_by_decile(ordered["bad"], predict_pd(served, ordered)))
    assert served_error == pytest.approx(calibration["oot_error_after"])


def test_the_calibration_slice_is_held_out_of_early_stopping_and_never_oot(book, definition: ModelDefinition):
    stopping, held = split_calibration_slice(book.early_stopping, definition.calibration.holdout_share)
    assert stopping.height + held.height == book.early_stopping.height
    assert set(stopping["account_id"]).isdisjoint(held["account_id"])  # by account, on every snapshot
    assert 0.4 < held.height / book.early_stopping.height < 0.6
    assert set(held["as_of_date"]) == set(book.plan.early_stopping_dates)  # the newest pre-OOT, never OOT


def test_platt_recovers_a_known_slope_and_intercept():
    rng = np.random.default_rng(0)
    margin = rng.normal(-2.0, 1.5, 200_000)
    bad = rng.random(margin.size) < 1 / (1 + np.exp(-(0.6 * margin + 0.4)))
    slope, intercept = fit_platt(bad.astype(np.int8), margin)
    assert slope == pytest.approx(0.6, abs=0.02) and intercept == pytest.approx(0.4, abs=0.04)
