"""The decide step, pure: every decision of night D from frames (limits, collection cases, hardship offers,
the new limit history). The night, its shards and the report's counterfactual all call :func:`decide_frames`."""

from __future__ import annotations

import datetime as dt

import polars as pl

from pipelines.config.settings import RisklineConfig
from pipelines.domain import collections, hardship, policy


def decide_frames(
    as_of: dt.date,
    cfg: RisklineConfig,
    accounts: pl.DataFrame,
    features: pl.DataFrame,
    installments: pl.DataFrame,
    ledger_accounts: pl.DataFrame,
    scores: pl.DataFrame,
    previous_scores: pl.DataFrame | None,
    history: pl.DataFrame,
    holds: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Every decision of D for the given accounts: limits, collection cases, hardship offers, new history.

    The one place the night's decision steps are listed, for the whole book and for a shard alike; the
    cases still need the queue's capacity cut (``collections.assign_treatments``), which ranks the book.
    ``holds`` (:func:`~pipelines.store.readers.read_pending_holds`) withholds freezes, cuts, collections contacts and
    hardship offers.
    """

    inputs = policy.build_policy_input(
        as_of, accounts, features, installments, scores, previous_scores, history, holds
    )
    limits = policy.decide_limits(inputs, cfg.policy, cfg.product)
    offers = hardship.offer_hardship(features, installments, as_of, cfg.hardship, holds)
    cases = collections.collection_cases(ledger_accounts, scores, offers, cfg.collections, holds)
    return limits, cases, offers, policy.update_limit_history(history, limits, as_of)
