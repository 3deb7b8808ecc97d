"""Payments received upstream but held in quarantine: applied once they resolve, and held for while they wait.

A payment is money the customer has already handed over. When ingest quarantines one (its account's
snapshot row was quarantined or missing that day, its loan was not delivered yet, or the row itself is
defective), the customer must not be cut, frozen or chased for it. As of a business date D, every
quarantined payment of ``dt <= D`` is exactly one of:

* **superseded**: its ``payment_id`` is curated (upstream redelivered it clean): the curated row is the
  payment; the quarantined copy is ignored, so nothing is counted twice.
* **resolved**: its only defects were references (``unknown_account``, ``unknown_loan``, ``loan_held``: the row itself
  was sound) and both resolve now: its account is in D's curated snapshot and its loan is a curated loan of
  that account (``dt <= D``). The ledger applies it from its own business date (``paid_on`` = the
  quarantine partition's ``dt``), exactly as if it had been curated that day: DPD, overdue amount and the
  reconciliation treat it as paid on time.
* **waiting**: everything else (a reference still missing, or a defect of the payment itself: null or
  malformed id, non-positive amount, time outside the business day). It is not applied (its amount cannot
  be trusted, or there is nothing to apply it to), but its money is reported, and for
  ``pending_payments.max_hold_days`` after its business date the adverse actions of every account it may
  belong to (its own ``account_id``, trimmed, and the account of its ``loan_id``) are held: no limit
  decrease, no freeze, no collections contact (:func:`pending_holds`).

An account whose arrears all fell due within the grace period (``pending_payments.grace_days``, DPD at most
that) is held the same way, with code ``GRACE_PERIOD`` (:func:`grace_accounts`): a payment made on its due date
may still be on its way (bank settlement, a drop closed early, a delivery a day late), so its absence is not yet
evidence. Without the grace, a lost or late payment would cut, queue or re-amortize its payer that night
though clean data would not; with it, a payment missing for longer than the grace is the limit of what riskline
can tell from the data (docs/guarantees.md, "What is not guaranteed").

A payment that was applied, but to no due instalment (a credit balance, e.g. money sent against a loan
already repaid), holds its overdue account the same way: while that credit covers the account's whole
overdue amount, and otherwise for ``max_hold_days`` after the first such payment (:func:`unapplied_credit_holds`).

Why the ledger resolves held payments every night instead of ingest re-curating them into the curated
zone: a curated partition stays the record of what its drop delivered (re-ingesting a date gives the same
bytes, and the nights that read it stay reproducible); the resolution is point in time (a ledger rebuilt as
of an earlier date applies only what had resolved by then); and when upstream redelivers the day, the
quarantine partition is replaced whole, so a payment can never be applied from both zones.

Pure functions (frames in, frames out); the quarantine zone is read by
:func:`pipelines.domain.features.scan_pending_payments`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

QUARANTINE_REASON = "quarantine_reason"  # the column ingest writes (pipelines.stages.ingest.QUARANTINE_REASON)
# Defects of a payment's references, not of the payment: the row resolves once the reference exists.
# loan_held: the payment's loan is held whole in quarantine (pipelines.stages.ingest) until upstream fixes it.
REFERENCE_REASONS: frozenset[str] = frozenset({"unknown_account", "unknown_loan", "loan_held"})
PAYMENT_PENDING = "PAYMENT_PENDING"  # the reason code of a decision held for a waiting payment
GRACE_PERIOD = "GRACE_PERIOD"  # the reason code of a decision held while the account's arrears are in grace

WAITING_SCHEMA: dict[str, pl.DataType] = {
    "payment_id": pl.String(),
    "account_id": pl.String(),  # as delivered (may be null, empty or padded)
    "loan_id": pl.String(),
    "loan_account_id": pl.String(),  # the curated account of loan_id; null when the loan is unknown
    "paid_on": pl.Date(),  # the business date of the quarantine partition
    "paid_at": pl.Datetime("us", "UTC"),
    "amount_cents": pl.Int64(),
    QUARANTINE_REASON: pl.String(),
}
HOLD_SCHEMA: dict[str, pl.DataType] = {
    "account_id": pl.String(),
    "pending_payments": pl.UInt32(),
    "pending_cents": pl.Int64(),  # null and non-positive amounts count 0: the money is unknown, the hold is not
    "pending_since": pl.Date(),
}


@dataclass(frozen=True)
class PendingPayments:
    """Quarantined payments as of D (module docstring).

    Attributes:
        resolved: payments to apply, in the curated payments schema plus ``dt`` (their business date).
        waiting: :data:`WAITING_SCHEMA`, one row per payment still held.
    """

    resolved: pl.DataFrame
    waiting: pl.DataFrame

    @staticmethod
    def none(curated_schema: pl.Schema) -> PendingPayments:
        return PendingPayments(pl.DataFrame(schema=curated_schema), pl.DataFrame(schema=WAITING_SCHEMA))


def _trimmed(column: str) -> pl.Expr:
    """An id with surrounding whitespace removed; null when nothing is left."""
    text = pl.col(column).str.strip_chars()
    return pl.when(text.str.len_chars() > 0).then(text)


def resolve_pending_payments(
    quarantined: pl.DataFrame,
    as_of: dt.date,
    *,
    curated_ids: pl.Series,
    snapshot_ids: pl.Series,
    loans: pl.DataFrame,
) -> PendingPayments:
    """Split the quarantined payments of ``dt <= as_of`` into resolved and waiting (superseded are dropped).

    Args:
        quarantined: quarantine rows of payments: the curated columns, ``dt`` and ``quarantine_reason``.
        curated_ids: payment ids curated with ``dt <= as_of`` (at least those among ``quarantined``).
        snapshot_ids: account ids of the curated accounts snapshot of ``as_of``.
        loans: ``loan_id, account_id`` of curated instalments with ``dt <= as_of`` (at least the loans
            ``quarantined`` names).
    """
    curated_columns = [c for c in quarantined.columns if c not in (QUARANTINE_REASON,)]
    rows = (
        quarantined.filter(pl.col("dt") <= as_of)
        .filter(~pl.col("payment_id").is_in(curated_ids.drop_nulls().implode()).fill_null(False))
        .sort("dt", "paid_at", "account_id", "loan_id", "amount_cents", nulls_last=True, maintain_order=True)
    )
    # The same payment quarantined on two days (redelivered, still defective) is one payment: its first
    # delivery. Only a usable id says "the same": rows with a null or blank id are each their own payment
    # (de-duplicating them would lose real money), and one id on different payments is ambiguous.
    usable_id = _trimmed("payment_id").is_not_null()
    same = ["payment_id", "account_id", "loan_id", "amount_cents"]
    keyed = rows.filter(usable_id).unique(same, keep="first", maintain_order=True)
    rows = pl.concat([keyed, rows.filter(~usable_id)])
    loan_owner = loans.select("loan_id", pl.col("account_id").alias("loan_account_id")).unique("loan_id", keep="any")
    rows = rows.join(loan_owner, on="loan_id", how="left", maintain_order="left")
    only_references = (
        pl.col(QUARANTINE_REASON).str.split(";").list.eval(pl.element().is_in(list(REFERENCE_REASONS))).list.all()
    )
    resolves = (
        only_references
        & usable_id
        & ~pl.col("payment_id").is_duplicated()  # one id, two different payments: applying either could be wrong
        & (pl.col("amount_cents") > 0)
        & pl.col("account_id").is_in(snapshot_ids.implode())
        & (pl.col("account_id") == pl.col("loan_account_id"))
    ).fill_null(False)
    flagged = rows.with_columns(_resolves=resolves)
    resolved = flagged.filter(pl.col("_resolves")).select(curated_columns)
    waiting = (
        flagged.filter(~pl.col("_resolves"))
        .select(
            "payment_id", "account_id", "loan_id", "loan_account_id", pl.col("dt").alias("paid_on"), "paid_at",
            "amount_cents", QUARANTINE_REASON,
        )
        .cast(WAITING_SCHEMA)  # type: ignore[arg-type]
        .sort(list(WAITING_SCHEMA), nulls_last=True)
    )
    return PendingPayments(resolved.sort("dt", "payment_id"), waiting)


def pending_holds(waiting: pl.DataFrame, as_of: dt.date, max_hold_days: int) -> pl.DataFrame:
    """Per account: the waiting payments that hold its adverse actions tonight (:data:`HOLD_SCHEMA`).

    A payment holds the account it names (trimmed: a padded id is still the customer's) and the account
    that owns its loan, when they differ (a payment naming one account and another's loan may be either
    customer's money), for ``max_hold_days`` after its business date: long enough for upstream to
    redeliver, short enough that a defect nobody fixes cannot shield an account from collections for ever.
    """
    recent = waiting.filter(pl.col("paid_on") >= as_of - dt.timedelta(days=max_hold_days))
    targets = pl.concat_list(_trimmed("account_id"), pl.col("loan_account_id")).list.drop_nulls().list.unique()
    return (
        recent.with_row_index("_payment")
        .select("_payment", "paid_on", pl.col("amount_cents").clip(lower_bound=0).fill_null(0),
                targets.alias("account_id"))
        .explode("account_id")
        .drop_nulls("account_id")
        .group_by("account_id")
        .agg(
            pl.col("_payment").n_unique().cast(pl.UInt32).alias("pending_payments"),
            pl.col("amount_cents").sum().alias("pending_cents"),
            pl.col("paid_on").min().alias("pending_since"),
        )
        .cast(HOLD_SCHEMA)  # type: ignore[arg-type]
        .sort("account_id")
    )


def unapplied_credit_holds(
    unallocated: pl.DataFrame, accounts: pl.DataFrame, as_of: dt.date, max_hold_days: int
) -> pl.DataFrame:
    """Per overdue account: money received and applied to no due instalment, which may be what is overdue.

    A payment the ledger could not put on a due instalment (beyond a loan's last instalment: a loan already
    repaid, or overpaid) stays on the account as a credit balance. If upstream sent it against the wrong
    loan of the customer (the repaid one instead of the open one), the arrears it should have paid remain,
    and with them DPD, bucket, cut and contact: a routing fault would punish the customer. So an overdue
    account with credit is held like one with a waiting payment (same schema, :data:`HOLD_SCHEMA`):

    * while the credit covers the whole overdue amount (the customer has paid at least what is overdue);
    * otherwise for ``max_hold_days`` after its first such payment: long enough for operations to re-apply
      the money (the ``unallocated`` ledger file lists it), short enough that a small credit cannot shield
      an account from collections for ever (counted from the first, so a cent overpaid every month does not
      renew the hold).

    Args:
        unallocated: the ledger's unallocated payments (``account_id, paid_on, unallocated_cents``).
        accounts: the ledger's account summary (``account_id, overdue_cents``).
    """
    credit = unallocated.filter(pl.col("unallocated_cents") > 0).group_by("account_id").agg(
        pl.len().cast(pl.UInt32).alias("pending_payments"),
        pl.col("unallocated_cents").sum().alias("pending_cents"),
        pl.col("paid_on").min().alias("pending_since"),
    )
    recent = pl.col("pending_since") >= as_of - dt.timedelta(days=max_hold_days)
    return (
        credit.join(accounts.select("account_id", "overdue_cents"), on="account_id", how="inner")
        .filter((pl.col("overdue_cents") > 0) & ((pl.col("pending_cents") >= pl.col("overdue_cents")) | recent))
        .select(list(HOLD_SCHEMA))
        .cast(HOLD_SCHEMA)  # type: ignore[arg-type]
        .sort("account_id")
    )


def combine_holds(*holds: pl.DataFrame) -> pl.DataFrame:
    """One row per held account over several kinds of hold (counts and money added, the earliest date)."""
    return (
        pl.concat([h.cast(HOLD_SCHEMA) for h in holds])  # type: ignore[arg-type]
        .group_by("account_id")
        .agg(pl.col("pending_payments").sum(), pl.col("pending_cents").sum(), pl.col("pending_since").min())
        .cast(HOLD_SCHEMA)  # type: ignore[arg-type]
        .sort("account_id")
    )


def grace_accounts(ledger_accounts: pl.DataFrame, grace_days: int) -> pl.DataFrame:
    """``account_id`` of every account whose overdue amount all fell due within the last ``grace_days`` days.

    The ledger's DPD is that of the account's oldest unpaid due instalment (0 on its due date), so
    ``overdue > 0`` and ``DPD <= grace_days`` says every unpaid instalment is that young. An account with an
    older arrear is not in grace, whatever else fell due since.

    Args:
        ledger_accounts: ``account_id, dpd, overdue_cents`` as of D (the ledger's account summary).
    """
    in_grace = (pl.col("overdue_cents") > 0) & (pl.col("dpd") <= grace_days)
    return ledger_accounts.filter(in_grace.fill_null(False)).select("account_id").unique().sort("account_id")


def empty_holds() -> pl.DataFrame:
    return pl.DataFrame(schema=HOLD_SCHEMA)
