"""The score stage: ``riskline score --as-of D``: score every account of D with the champion serving on D."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import polars as pl

from pipelines.config.model_definition import load_model_definition
from pipelines.config.settings import RisklineConfig
from pipelines.domain.decide import accounts_acted_on
from pipelines.model.pd import model_features
from pipelines.model.registry import ModelRegistry
from pipelines.model.score import add_reasons, reason_reference, score_pd_frame
from pipelines.stages.features import load_feature_snapshot
from pipelines.store import lake, zones
from pipelines.store.readers import read_decide_inputs, read_previous_scores
from pipelines.store.zones import SCORES_FILE, scores_dir

log = logging.getLogger(__name__)


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
    scored = score_pd_frame(booster, features, definition, version)
    reference = reason_reference(features, model_features(booster), trained_reference(registry, version))
    scores = add_reasons(booster, features, scored, definition, cfg.model.reason_code_method, previous_pd,
                         reference, acted_on_tonight(root, as_of, cfg, scored))
    return lake.publish_frames(scores_dir(root, as_of), {SCORES_FILE: scores})


def trained_reference(registry: ModelRegistry, version: str) -> dict[str, float | None] | None:
    """The reference reasons are judged against, stored with the model at training (None: a model
    registered before it was, whose reasons fall back to the book's median)."""
    return registry.record(version).metrics.get("reason_reference")


def acted_on_tonight(
    root: Path, as_of: dt.date, cfg: RisklineConfig, scored: pl.DataFrame, shard: int = 0, n_shards: int = 1
) -> pl.Series | None:
    """The accounts tonight's decisions will act on, decided here first from PD and grade (reasons never
    pick an action, they only word it), so that exact reason codes are spent exactly where they are read.

    The decide stage decides again on the same inputs (:func:`~pipelines.store.readers.read_decide_inputs`)
    with these scores and refuses to publish if an account it acts on got approximate reasons. None when
    D's decide inputs are not all there (``riskline score`` on a lake without D's ledger): the definition's
    expectation alone then picks exact reasons, and decide checks them as always.
    """
    try:
        inputs = read_decide_inputs(root, as_of, cfg, shard, n_shards)
    except FileNotFoundError as exc:
        log.warning("scoring %s before its decide inputs are complete (%s): exact reasons only where the model "
                    "definition expects an action; decide refuses approximate reasons where it acts", as_of, exc)
        return None
    limits, cases, offers, _ = inputs.decide(as_of, cfg, scored)
    return accounts_acted_on(limits, cases, offers)


def previous_pd_of(root: Path, as_of: dt.date, shard: int = 0, n_shards: int = 1) -> pl.DataFrame | None:
    """``account_id, pd`` of the previous run (:func:`~pipelines.store.zones.previous_night`), for the PD-rise
    trigger of exact reasons: the same night decide compares with, so every PD-rise cut has exact reasons."""
    night = zones.previous_night(root, as_of)
    previous = read_previous_scores(root, night, shard, n_shards) if night is not None else None
    return previous.select("account_id", "pd") if previous is not None else None
