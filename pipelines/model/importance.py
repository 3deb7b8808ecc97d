"""Mean |SHAP| per feature, computed once at training on a stable sample of the OOT snapshot.

Training stores the summary with the model (``metrics.json``, key ``importance_shap``) next to the gain
importance and the OOT curves; the report reads it back with
:func:`pipelines.model.metrics.shap_from_record` and never runs TreeSHAP itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import xgboost as xgb

from pipelines.domain.sharding import fnv1a_64
from pipelines.model.pd import dmatrix, model_features


def shap_sample(account_ids: pl.Series, size: int) -> pl.Series:
    """``size`` accounts with the smallest FNV-1a hash of their id, sorted: the same accounts whatever the
    row order, spread evenly over the book, and a smaller sample is a subset of a larger one.
    """
    frame = pl.DataFrame({"account_id": account_ids, "_h": fnv1a_64(account_ids)})
    return frame.sort("_h", "account_id").head(size)["account_id"].sort()


def mean_abs_shap(booster: xgb.Booster, frame: pl.DataFrame, nthread: int = 1) -> pl.DataFrame:
    """Mean |exact TreeSHAP contribution| (log-odds) of each model feature over ``frame``'s rows.

    Returns:
        ``feature, mean_abs_shap``, largest first (ties by name).
    """
    features = model_features(booster)
    if frame.height == 0:
        return pl.DataFrame({"feature": features, "mean_abs_shap": [0.0] * len(features)})
    booster.set_param({"nthread": nthread})
    contribs = booster.predict(dmatrix(booster, frame, nthread), pred_contribs=True)[:, :-1]  # last: bias
    return pl.DataFrame({"feature": features, "mean_abs_shap": np.abs(contribs).mean(axis=0).astype(np.float64)}).sort(
        "mean_abs_shap", "feature", descending=[True, False]
    )


def shap_summary(booster: xgb.Booster, oot: pl.DataFrame, accounts: int, nthread: int = 1) -> dict[str, Any]:
    """Mean |SHAP| of every model feature on at most ``accounts`` OOT accounts (:func:`shap_sample`), as
    training stores it: ``{"accounts": n, "mean_abs": {feature: value}}`` with JSON floats, by feature name.
    """
    chosen = shap_sample(oot["account_id"], accounts)
    sample = oot.filter(pl.col("account_id").is_in(chosen.implode())).sort("account_id")
    shap = mean_abs_shap(booster, sample, nthread)
    return {
        "accounts": sample.height,
        "mean_abs": {f: float(v) for f, v in sorted(zip(shap["feature"], shap["mean_abs_shap"], strict=True))},
    }
