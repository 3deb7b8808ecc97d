"""The PD model's one prediction path: feature matrix -> PD (recalibrated) -> score points -> grade.

Training's OOT evaluation, the nightly scoring and the report's counterfactual all call :func:`score_pd`
(or its parts), so a PD, a score and a grade are computed the same way everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import xgboost as xgb

from pipelines.config.model_definition import Grades, ModelDefinition, ScoreScaling


_PD_CLIP = 1e-9


def model_features(booster: xgb.Booster) -> list[str]:
    """The feature names a booster was trained with (stored inside the model file)."""
    names = booster.feature_names
    if not names:
        raise ValueError("the model carries no feature names; it was not trained by pipelines.model.train")
    return list(names)


def feature_matrix(frame: pl.DataFrame, features: Sequence[str]) -> np.ndarray:
    """The model's input: float32 columns in model order, nulls as NaN (XGBoost's missing value)."""
    absent = [f for f in features if f not in frame.columns]
    if absent:
        raise ValueError(f"feature snapshot lacks model features {absent}")
    bad = [f for f in features if not frame.schema[f].is_numeric() and frame.schema[f] != pl.Boolean]
    if bad:
        raise ValueError(f"model features must be numeric, got non-numeric columns {bad}")
    if frame.height == 0:
        return np.empty((0, len(features)), dtype=np.float32)
    return frame.select(pl.col(f).cast(pl.Float32) for f in features).to_numpy().astype(np.float32, copy=False)


def dmatrix(booster: xgb.Booster, frame: pl.DataFrame, nthread: int) -> xgb.DMatrix:
    features = model_features(booster)
    return xgb.DMatrix(feature_matrix(frame, features), feature_names=features, missing=np.nan, nthread=nthread)


@dataclass(frozen=True)
class PlattCalibration:
    """PD = sigmoid(slope x margin + intercept) on the trees' log-odds margin (slope > 0: same ranking).

    Stored inside the model file as the booster attribute :data:`CALIBRATION_ATTR`, so every reader of a
    registered model (scoring, the champion on the gate, the report) applies the same PD.
    """

    slope: float
    intercept: float

    def apply(self, margin: np.ndarray) -> np.ndarray:
        z = self.slope * np.asarray(margin, dtype=np.float64) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def to_attr(self) -> str:
        return json.dumps({"method": "platt", "slope": self.slope, "intercept": self.intercept}, sort_keys=True)


CALIBRATION_ATTR = "riskline_calibration"


def model_calibration(booster: xgb.Booster) -> PlattCalibration | None:
    """The calibration stored in the model, or None (a model trained before recalibration: raw PD)."""
    raw = booster.attr(CALIBRATION_ATTR)
    if not raw:
        return None
    data = json.loads(raw)
    return PlattCalibration(float(data["slope"]), float(data["intercept"]))


def predict_margin(booster: xgb.Booster, frame: pl.DataFrame, nthread: int = 1) -> np.ndarray:
    """The trees' raw log-odds, one per row (before any calibration)."""
    if frame.height == 0:
        return np.empty(0, dtype=np.float64)
    booster.set_param({"nthread": nthread})
    return booster.predict(dmatrix(booster, frame, nthread), output_margin=True).astype(np.float64)


def predict_pd(booster: xgb.Booster, frame: pl.DataFrame, nthread: int = 1) -> np.ndarray:
    """Probability of going bad within the label window, one per row of ``frame`` (calibrated if stored)."""
    if frame.height == 0:
        return np.empty(0, dtype=np.float64)
    calibration = model_calibration(booster)
    if calibration is not None:
        return calibration.apply(predict_margin(booster, frame, nthread))
    booster.set_param({"nthread": nthread})
    return booster.predict(dmatrix(booster, frame, nthread)).astype(np.float64)


def pd_to_score(pd_: np.ndarray, scaling: ScoreScaling) -> np.ndarray:
    """Points = offset + factor * ln(good:bad odds), rounded: 600 at 19:1, +50 each time the odds double."""
    p = np.clip(np.asarray(pd_, dtype=np.float64), _PD_CLIP, 1.0 - _PD_CLIP)
    return np.rint(scaling.offset + scaling.factor * np.log((1.0 - p) / p)).astype(np.int32)


def assign_grade(pd_: np.ndarray, score: np.ndarray, grades: Grades) -> pl.Series:
    """Grade labels by the configured cut-offs (on PD ascending, or on score descending)."""
    labels = np.asarray(grades.labels, dtype=object)
    bounds = np.asarray(grades.bounds, dtype=np.float64)
    if grades.by == "pd":
        # bin i holds bounds[i-1] <= pd < bounds[i]: a PD exactly at a cut-off gets the worse grade
        idx = np.searchsorted(bounds, np.asarray(pd_, dtype=np.float64), side="right")
    else:
        # bin i holds bounds[i] <= score < bounds[i-1]: a score exactly at a cut-off gets the better grade
        idx = np.searchsorted(-bounds, -np.asarray(score, dtype=np.float64), side="left")
    return pl.Series("grade", labels[idx].tolist() if idx.size else [], dtype=pl.String)


def score_pd(booster: xgb.Booster, frame: pl.DataFrame, definition: ModelDefinition) -> tuple[np.ndarray, np.ndarray, pl.Series]:
    """PD, score points and grade of every row of ``frame``, in its row order: the one prediction path."""
    pd_ = predict_pd(booster, frame, definition.hyperparameters.nthread)
    score = pd_to_score(pd_, definition.score_scaling)
    return pd_, score, assign_grade(pd_, score, definition.grades)
