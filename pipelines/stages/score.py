"""The score stage: ``riskline score --as-of D``: score every account of D with the champion serving on D."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from pipelines.config.model_definition import load_model_definition
from pipelines.config.settings import RisklineConfig
from pipelines.model.pd import model_features
from pipelines.model.registry import ModelRegistry
from pipelines.model.score import score_accounts
from pipelines.stages.features import load_feature_snapshot
from pipelines.store import lake, zones
from pipelines.store.readers import read_previous_scores
from pipelines.store.zones import SCORES_FILE, scores_dir


def run_scoring(root: Path, as_of: dt.date, cfg: RisklineConfig, model_version: str | None = None) -> Path:
    """Score every active/frozen account on ``as_of`` with the champion of that date (or ``model_version``).

    Builds the feature snapshot if it is missing, reads the previous run's scores (if any) for the
    PD-rise trigger, and replaces ``DATA_ROOT/scores/as_of_date=D/`` atomically.
    """

    definition = load_model_definition(cfg)
    registry = ModelRegistry(root)
    version = model_version or registry.require_champion_on(as_of)
    booster = registry.load_booster(version)
    columns = model_features(booster) + list(definition.reason_codes.exact_when_positive)
    features = load_feature_snapshot(root, as_of, cfg, columns)
    previous_pd = previous_pd_of(root, as_of)
    scores = score_accounts(booster, features, definition, version, cfg.model.reason_code_method, previous_pd)
    return lake.publish_frames(scores_dir(root, as_of), {SCORES_FILE: scores})


def previous_pd_of(root: Path, as_of: dt.date, shard: int = 0, n_shards: int = 1) -> pl.DataFrame | None:
    """``account_id, pd`` of the previous run (:func:`~pipelines.store.zones.previous_night`), for the PD-rise
    trigger of exact reasons: the same night decide compares with, so every PD-rise cut has exact reasons."""
    night = zones.previous_night(root, as_of)
    previous = read_previous_scores(root, night, shard, n_shards) if night is not None else None
    return previous.select("account_id", "pd") if previous is not None else None
