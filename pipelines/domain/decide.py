"""The decide step, pure: every decision of night D from frames (limits, collection cases, hardship offers,
the new limit history). The night, its shards and the report's counterfactual all call :func:`decide_frames`."""

from __future__ import annotations

import datetime as dt

import polars as pl

from pipelines.config.settings import RisklineConfig
from pipelines.domain import collections, hardship, policy
from pipelines.domain.explanations import explain_offers
from pipelines.domain.pending_payments import grace_accounts


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
    vanished: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Every decision of D for the given accounts: limits, collection cases, hardship offers, new history.

    The one place the night's decision steps are listed, for the whole book and for a shard alike; the
    cases still need the queue's capacity cut (``collections.assign_treatments``), which ranks the book.
    ``holds`` (:func:`~pipelines.store.readers.read_pending_holds`) withholds freezes, cuts, collections contacts and
    hardship offers; so does an account's grace period (:func:`~pipelines.domain.pending_payments.grace_accounts`).
    ``vanished`` (``account_id``; :func:`~pipelines.domain.coverage.accounts_held_out`): accounts open in a
    curated snapshot of the last ``pending_payments.max_hold_days`` and missing from D's (left out, or their row
    quarantined) or closed in it while overdue, whose collections contact and hardship offer are held too: a
    partial extract, a broken row or a status mis-mapped upstream must not send them to the queue on the
    fallback PD (``collections.unscored_pd``) with no offer; one still missing or closed after the hold (a
    charge-off) is queued on it.
    """
    grace = grace_accounts(ledger_accounts, cfg.pending_payments.grace_days)
    inputs = policy.build_policy_input(
        as_of, accounts, features, installments, scores, previous_scores, history, holds, grace
    )
    limits = policy.decide_limits(inputs, cfg.policy, cfg.product)
    held = pl.concat([h.select("account_id") for h in (holds, grace, vanished) if h is not None])
    offers = explain_offers(hardship.offer_hardship(features, installments, as_of, cfg.hardship, held), accounts,
                            cfg.hardship.explanations, cfg.policy.explanations.default_language)
    cases = collections.collection_cases(ledger_accounts, scores, offers, cfg.collections, held)
    return limits, cases, offers, policy.update_limit_history(history, limits, as_of)


ADVERSE_ACTIONS: tuple[str, ...] = ("decrease", "freeze")


class InexactReasonsError(RuntimeError):
    """A decision a customer or an agent reads would publish approximate reason codes."""


def accounts_acted_on(limits: pl.DataFrame, cases: pl.DataFrame, offers: pl.DataFrame) -> pl.Series:
    """The accounts whose decision tonight someone reads with its reasons: an adverse limit action
    (decrease, freeze), a collections case (the queue, overflow included) or a hardship offer."""
    return (
        pl.concat([
            limits.filter(pl.col("action").is_in(ADVERSE_ACTIONS)).get_column("account_id"),
            cases.get_column("account_id"),
            offers.get_column("account_id"),
        ])
        .unique()
        .sort()
    )


def require_exact_reasons(
    scores: pl.DataFrame, limits: pl.DataFrame, cases: pl.DataFrame, offers: pl.DataFrame, cfg: RisklineConfig
) -> None:
    """Refuse to publish decisions whose reasons are approximate where they are read.

    The score stage decides first and computes exact reasons for :func:`accounts_acted_on`; this is the
    check that it did (scores from another run, or a decide input changed in between, would break it).
    ``model.reason_code_method: approx`` is the operator's explicit choice of approximate reasons for all.
    """
    if cfg.model.reason_code_method == "approx":
        return
    acted = accounts_acted_on(limits, cases, offers)
    inexact = scores.filter(pl.col("account_id").is_in(acted.implode()) & (pl.col("reason_method") != "exact"))
    if inexact.height:
        ids = ", ".join(inexact["account_id"].head(5).to_list())
        raise InexactReasonsError(
            f"{inexact.height} account(s) acted on tonight have approximate reason codes (e.g. {ids}): the scores "
            "of this date were not computed from tonight's decide inputs. NEXT STEP: rerun the score stage "
            "for this date, then decide (riskline run reruns both).")
