"""Fitting the PD booster locally: XGBoost parameters from the model definition, early stopping, best trees.

``pipelines/model/train_dask.py`` fits the same booster on a Dask cluster with the same parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import xgboost as xgb

from pipelines.config.model_definition import ModelDefinition
from pipelines.domain.feature_dictionary import KEY_COLUMNS
from pipelines.model.pd import feature_matrix


class InsufficientHistoryError(RuntimeError):
    """Too few matured snapshots with data to train and early-stop on."""


@dataclass(frozen=True)
class TrainedModel:
    booster: xgb.Booster = field(repr=False)
    model_bytes: bytes = field(repr=False)
    feature_names: tuple[str, ...]
    best_iteration: int
    early_stopping_logloss: float

    @property
    def trees(self) -> int:
        return self.best_iteration + 1


def xgb_params(definition: ModelDefinition) -> dict[str, Any]:
    hp = definition.hyperparameters
    return {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "tree_method": "hist",
        "eta": hp.eta,
        "max_depth": hp.max_depth,
        "min_child_weight": hp.min_child_weight,
        "subsample": hp.subsample,
        "colsample_bytree": hp.colsample_bytree,
        "lambda": hp.reg_lambda,
        "alpha": hp.reg_alpha,
        "max_bin": hp.max_bin,
        "seed": hp.seed,
        "nthread": hp.nthread,
        "monotone_constraints": definition.monotone_constraints,
        "verbosity": 1,
    }


def check_both_classes(fit: pl.DataFrame, early_stopping: pl.DataFrame) -> None:
    """Both training sets need goods and bads, or XGBoost learns nothing (a new book's first nights)."""
    for name, frame in (("fit", fit), ("early-stopping", early_stopping)):
        require_both_classes(name, frame.height, int(frame["bad"].sum()) if frame.height else 0)


def require_both_classes(name: str, rows: int, bads: int) -> None:
    """:func:`check_both_classes` from counts (a Dask backend's rows stay on its workers)."""
    if bads == 0 or bads == rows:
        raise InsufficientHistoryError(f"the {name} set has {rows} rows and {bads} bads: both goods and bads are needed")


def train_model(fit: pl.DataFrame, early_stopping: pl.DataFrame, definition: ModelDefinition) -> TrainedModel:
    """Fit the booster on ``fit``, early-stopping on ``early_stopping``; keep only the best trees.

    Both frames hold the definition's features and ``bad``; they are sorted by the keys here so the
    result never depends on the caller's row order.
    """
    features = definition.feature_names
    hp = definition.hyperparameters
    check_both_classes(fit, early_stopping)
    fit = fit.sort(*KEY_COLUMNS)
    early_stopping = early_stopping.sort(*KEY_COLUMNS)
    # QuantileDMatrix bins the floats once instead of keeping a float copy next to the numpy array.
    dfit = xgb.QuantileDMatrix(
        feature_matrix(fit, features), label=fit["bad"].to_numpy(), feature_names=features,
        max_bin=hp.max_bin, nthread=hp.nthread, missing=np.nan,
    )
    dstop = xgb.QuantileDMatrix(
        feature_matrix(early_stopping, features), label=early_stopping["bad"].to_numpy(),
        feature_names=features, ref=dfit, nthread=hp.nthread, missing=np.nan,
    )
    booster = xgb.train(
        xgb_params(definition),
        dfit,
        num_boost_round=hp.num_boost_round,
        evals=[(dstop, "early_stopping")],
        early_stopping_rounds=hp.early_stopping_rounds,
        verbose_eval=False,
    )
    return keep_best_trees(booster, features)


def keep_best_trees(booster: xgb.Booster, features: list[str]) -> TrainedModel:
    """The model as early stopping chose it: only the trees up to the best iteration, and its bytes."""
    best = int(booster.best_iteration)
    best_model = booster[: best + 1]  # a copy holding only the trees early stopping chose
    return TrainedModel(
        booster=best_model,
        model_bytes=bytes(best_model.save_raw(raw_format="ubj")),
        feature_names=tuple(features),
        best_iteration=best,
        early_stopping_logloss=float(booster.best_score),
    )
