"""The collections queue of D: who is contacted, how, and in which order.

Every account with an overdue amount and DPD >= 1 as of D gets one row (thresholds under ``collections:``
in riskline.yaml):

* ``bucket`` by DPD: 1-7, 8-30, 31-60, 61-90, 90+ (over 90). An instalment unpaid at the close of its due
  date (DPD 0 but already overdue, see :mod:`pipelines.domain.ledger`) could join the queue the next morning at
  DPD 1, but the grace period holds it (below): with ``pending_payments.grace_days`` 3 it joins at DPD 4.
* ``expected_loss_cents`` = round(pd x outstanding balance x LGD), an estimate for ranking only (a float
  product rounded half-even to the cent; no ledger amount is ever derived from it). The outstanding
  balance is the outstanding principal: interest not yet due is not owed, and interest due is in the
  overdue amount.
* ``pd``: the account's PD of D. An overdue account without a score (missing from tonight's snapshot:
  closed or charged off upstream; or its snapshot row was quarantined) still owes its overdue amount and
  is published with the fallback ``unscored_pd`` (1.0: worked first, not lost) and ``pd_source`` =
  ``fallback`` (``model`` otherwise), so one unscored account never blocks the night's publish.
* ``treatment``, in this order: the bucket's treatment (auto_reminder, smart_call, agent,
  external_review); an account with a hardship offer (:mod:`pipelines.domain.hardship`) gets ``hardship_offer``
  instead; the agent queue keeps the ``agent_daily_capacity`` cases with the highest expected loss and
  the rest go to ``overflow_treatment`` (smart_call) with ``overflow`` = true.
* ``priority``: 1 = contact first, within the treatment, by expected loss (highest first), ties by
  account_id. ``channel`` follows the treatment (push_sms, ivr, phone_agent, in_app_offer, letter).

Held: an account a payment waiting in quarantine may belong to (:func:`pipelines.domain.pending_payments.pending_holds`)
is not queued: the ledger may be missing its money, and the customer must not be chased for a payment
already made. It is queued again once the payment is applied or the hold lapses. So is an account whose
arrears all fell due within the grace period (:func:`pipelines.domain.pending_payments.grace_accounts`): a
payment made on time may still be on its way.

Sharding: :func:`collection_cases` is per account and runs on any shard of the book; the agent capacity
and the priorities rank the whole queue, so :func:`assign_treatments` runs once on the concatenated
cases (only overdue accounts, a few percent of the book, and a handful of columns).
"""

from __future__ import annotations

import polars as pl

from pipelines.config.decisions import CollectionsConfig
from pipelines.contracts.outputs import PD_SOURCES

QUEUE_COLUMNS: tuple[str, ...] = (
    "account_id", "dpd", "bucket", "overdue_amount_cents", "outstanding_balance_cents", "pd",
    "expected_loss_cents", "treatment", "channel", "priority", "overflow", "model_version", "policy_version",
    "pd_source",
)


def collection_cases(
    ledger_accounts: pl.DataFrame, scores: pl.DataFrame, hardship_offers: pl.DataFrame, cfg: CollectionsConfig,
    holds: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Per overdue account: bucket, expected loss and the treatment before the agent capacity cut.

    Args:
        ledger_accounts: ``Ledger.accounts`` as of D (``dpd, overdue_cents, outstanding_principal_cents``).
        scores: the scores of D (``pd, model_version``).
        hardship_offers: :func:`pipelines.domain.hardship.offer_hardship` of D (only ``account_id`` is read).
        holds: accounts whose collections contact is held for a waiting payment (``account_id``); None: none.
    """
    if holds is not None:
        ledger_accounts = ledger_accounts.join(holds.select("account_id"), on="account_id", how="anti")
    bucket: pl.Expr = pl.lit(None, dtype=pl.String)
    treatment: pl.Expr = pl.lit(None, dtype=pl.String)
    for b in cfg.buckets:  # ascending bounds: the last bucket whose min_dpd is reached wins
        bucket = pl.when(pl.col("dpd") >= b.min_dpd).then(pl.lit(b.name)).otherwise(bucket)
        treatment = pl.when(pl.col("dpd") >= b.min_dpd).then(pl.lit(b.treatment)).otherwise(treatment)
    offered = hardship_offers.select("account_id").unique().with_columns(_offer=pl.lit(True))
    return (
        ledger_accounts.filter((pl.col("overdue_cents") > 0) & (pl.col("dpd") >= cfg.buckets[0].min_dpd))
        .select(
            "account_id",
            pl.col("dpd").cast(pl.Int32),
            pl.col("overdue_cents").alias("overdue_amount_cents"),
            pl.col("outstanding_principal_cents").alias("outstanding_balance_cents"),
        )
        .join(scores.select("account_id", "pd", "model_version"), on="account_id", how="left")
        .join(offered, on="account_id", how="left")
        .with_columns(
            bucket=bucket,
            treatment=pl.when(pl.col("_offer")).then(pl.lit("hardship_offer")).otherwise(treatment),
            pd_source=pl.when(pl.col("pd").is_null()).then(pl.lit(PD_SOURCES[1])).otherwise(pl.lit(PD_SOURCES[0])),
            pd=pl.col("pd").fill_null(cfg.unscored_pd),
        )
        .with_columns(
            expected_loss_cents=(pl.col("pd") * cfg.lgd * pl.col("outstanding_balance_cents")).round(0).cast(pl.Int64),
        )
        .drop("_offer")
    )


def assign_treatments(cases: pl.DataFrame, cfg: CollectionsConfig) -> pl.DataFrame:
    """Cut the agent queue to capacity (overflow to ``overflow_treatment``), then rank within treatment."""
    ranked = cases.sort(["expected_loss_cents", "account_id"], descending=[True, False], nulls_last=True)
    agent_rank = pl.int_range(1, pl.len() + 1).over("treatment")
    ranked = ranked.with_columns(
        overflow=(pl.col("treatment") == "agent") & (agent_rank > cfg.agent_daily_capacity),
    ).with_columns(
        treatment=pl.when(pl.col("overflow")).then(pl.lit(cfg.overflow_treatment)).otherwise(pl.col("treatment")),
    )
    return (
        ranked.with_columns(
            # still in expected-loss order, so the position within the treatment is the priority
            priority=pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("treatment"),
            channel=pl.col("treatment").replace_strict(cfg.channels, return_dtype=pl.String),
            policy_version=pl.lit(cfg.version, dtype=pl.String),
        )
        .select(QUEUE_COLUMNS)
        .sort("account_id")
    )


def rank_collections(
    ledger_accounts: pl.DataFrame, scores: pl.DataFrame, hardship_offers: pl.DataFrame, cfg: CollectionsConfig,
    holds: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The collections queue of D (:data:`QUEUE_COLUMNS`, sorted by account_id); see the module docstring."""
    return assign_treatments(collection_cases(ledger_accounts, scores, hardship_offers, cfg, holds), cfg)
