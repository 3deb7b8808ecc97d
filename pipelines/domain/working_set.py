"""The ledger's working set: the loans a night recomputes, and what loans long settled leave behind.

A loan whose every instalment is paid and whose last draw, due date and payment are more than
:data:`RETAIN_DAYS` before D is **retired**: nothing about it can change tonight's features, limits or queue
any more, except through lifetime totals. So a night allocates only the loans of the working set (open
loans, loans touched in the last ``RETAIN_DAYS`` days, and payments naming no known loan) and carries the
retired ones as :class:`Retired`:

* one row per retired loan (``loans``): the sums and dates the account rollup needs (loans drawn, money
  received, allocated and unallocated, the last draw and payment) and the reconciliation's totals;
* the published rows of every retired instalment that was ever past due (``installments``): days since the
  last DPD, the hardship clean-record rule and the report's vintages look back without limit, and read
  only those rows (an instalment paid by the day after its due date was never at 1+ DPD);
* the published unallocated rows of retired loans' payments (``unallocated``): overpayments stay listed.

Published ledger files hold the working set plus these carried rows, whichever way the night was built: from
the whole curated history (:func:`working_ledger` with nothing retired before) or incrementally, from the
previous night's state and today's drops (``pipelines.stages.ledger_state``). A loan that is paid again after
it retired (an overpayment, a late settlement) is taken back into the working set from its curated rows, so
both ways give the same bytes. The equality is tested over a generated year (tests/reliability).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import polars as pl

from pipelines.domain.feature_dictionary import DPD_WINDOWS, HISTORY_DAYS
from pipelines.domain.ledger import LOAN_KEY, Ledger, allocate_payments, summarize_accounts, summarize_loans
from pipelines.domain.reconcile import Reconciliation

# Every window a night reads from the ledger ends at D and is at most HISTORY_DAYS long (features: 180
# days; DPD windows; the month's cure; the 30-day utilization trend), so a loan settled and quiet for longer
# adds only zeros to them. tests/unit/test_working_set.py proves features equal with and without such loans.
RETAIN_DAYS = max(HISTORY_DAYS, *DPD_WINDOWS)

# One row per retired loan, sorted by loan_id, account_id.
RETIRED_LOANS_SCHEMA = pl.Schema({
    "account_id": pl.String(),
    "loan_id": pl.String(),
    "draw_date": pl.Date(),
    "payments": pl.Int64(),
    "received_cents": pl.Int64(),
    "allocated_cents": pl.Int64(),
    "unallocated_cents": pl.Int64(),
    "last_payment_date": pl.Date(),
})

UNALLOCATED_COLUMNS = (
    "payment_id", "account_id", "loan_id", "paid_on", "amount_cents", "allocated_cents", "unallocated_cents",
    "unallocated_reason",
)


@dataclass(frozen=True)
class Retired:
    """What the retired loans leave in every later ledger (module docstring)."""

    loans: pl.DataFrame
    installments: pl.DataFrame
    unallocated: pl.DataFrame

    @classmethod
    def none(cls) -> Retired:
        """Nothing retired (a night built from the whole history); carried rows take their schema when
        stacked on the working set's (:func:`stack`)."""
        return cls(pl.DataFrame(schema=RETIRED_LOANS_SCHEMA), pl.DataFrame(), pl.DataFrame())

    def without(self, keys: pl.DataFrame) -> Retired:
        """These carried rows less the loans in ``keys`` (``account_id, loan_id``): taken back tonight."""
        if keys.is_empty() or self.loans.is_empty():
            return self
        keys = keys.select(*LOAN_KEY).unique()
        return Retired(*(frame.join(keys, on=list(LOAN_KEY), how="anti", maintain_order="left")
                         for frame in (self.loans, self.installments, self.unallocated)))


def stack(*frames: pl.DataFrame) -> pl.DataFrame:
    """The frames one under the other; a frame of no columns (nothing carried yet) is left out."""
    return pl.concat([f for f in frames if f.width]) if any(f.width for f in frames) else frames[0]


def unallocated_rows(payments: pl.DataFrame) -> pl.DataFrame:
    """The published ``unallocated.parquet`` rows of ledger payments: those holding any unallocated money."""
    return payments.filter(pl.col("unallocated_cents") > 0).select(UNALLOCATED_COLUMNS)


def ever_past_due() -> pl.Expr:
    """An instalment at 1+ DPD on some day: ``due_date + 1 <= t < paid_off_date`` (or never paid off)."""
    return pl.col("paid_off_date").is_null() | (pl.col("paid_off_date") > pl.col("due_date") + pl.duration(days=1))


def retiring(loans: pl.DataFrame, as_of: dt.date, pinned: pl.DataFrame | None = None) -> pl.DataFrame:
    """``account_id, loan_id, draw_date`` of the loans retired as of D, from :func:`summarize_loans`' rows.

    Paid off (no instalment open) and quiet: its draw, its last due date and its last payment (which is
    when it was paid off, or later) all lie more than :data:`RETAIN_DAYS` before D. ``pinned`` loans
    (``account_id, loan_id``) never retire tonight: those paid by a quarantined payment that resolved, which
    is re-judged every night and so is never carried.
    """
    cutoff = as_of - dt.timedelta(days=RETAIN_DAYS)
    quiet = pl.max_horizontal("draw_date", "end_date", pl.col("last_payment_date")) <= cutoff
    leaving = loans.filter((pl.col("remaining_installments") == 0) & quiet).select(*LOAN_KEY, "draw_date")
    if pinned is not None and pinned.height:
        leaving = leaving.join(pinned.select(*LOAN_KEY).unique(), on=list(LOAN_KEY), how="anti", maintain_order="left")
    return leaving


def _retired_loans(keys: pl.DataFrame, payments: pl.DataFrame) -> pl.DataFrame:
    matched = payments.filter(pl.col("loan_idx").is_not_null()).join(
        keys.select(*LOAN_KEY), on=list(LOAN_KEY), how="semi")
    paid = matched.group_by(*LOAN_KEY).agg(
        pl.len().cast(pl.Int64).alias("payments"),
        pl.col("amount_cents").sum().alias("received_cents"),
        pl.col("allocated_cents").sum(),
        pl.col("unallocated_cents").sum(),
        pl.col("paid_on").max().alias("last_payment_date"),
    )
    return (
        keys.join(paid, on=list(LOAN_KEY), how="left")
        .with_columns(pl.col("payments", "received_cents", "allocated_cents", "unallocated_cents").fill_null(0))
        .select(*(pl.col(c).cast(t) for c, t in RETIRED_LOANS_SCHEMA.items()))
    )


def _carried_rows(loans: pl.DataFrame, retired: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Retired loans as loan and payment rows for :func:`summarize_accounts`: a settled loan adds one loan,
    its money and its dates, and zero to every balance, arrears and DPD window (exact: sums and maxima)."""
    zero = {"is_open": False, "outstanding_principal_cents": 0, "overdue_cents": 0, "dpd": 0,
            "missed_installments": 0, "cured_this_month": False,
            **{f"worst_dpd_{w}d": 0 for w in DPD_WINDOWS}}
    as_loans = retired.select(
        "account_id", "draw_date",
        *(pl.lit(v).cast(loans.schema[c]).alias(c) for c, v in zero.items()),
        pl.lit(None).cast(loans.schema["next_due_date"]).alias("next_due_date"),
    )
    as_payments = retired.filter(pl.col("payments") > 0).select(
        "account_id", pl.col("received_cents").alias("amount_cents"), "unallocated_cents",
        pl.col("last_payment_date").alias("paid_on"),
    )
    return as_loans, as_payments


def summarize_with_retired(
    loans: pl.DataFrame, payments: pl.DataFrame, retired: pl.DataFrame, as_of: dt.date
) -> pl.DataFrame:
    """:func:`summarize_accounts` of the working set's loans and payments plus the retired loans."""
    if retired.is_empty():
        return summarize_accounts(loans, payments, as_of)
    as_loans, as_payments = _carried_rows(loans, retired)
    loan_cols = ["account_id", "draw_date", *(c for c in as_loans.columns if c not in ("account_id", "draw_date"))]
    pay_cols = ["account_id", "amount_cents", "unallocated_cents", "paid_on"]
    return summarize_accounts(
        pl.concat([loans.select(loan_cols), as_loans.select(loan_cols)]),
        pl.concat([payments.select(pay_cols), as_payments.select(pay_cols).cast(payments.select(pay_cols).schema)]),
        as_of,
    )


def working_ledger(
    installments: pl.LazyFrame, payments: pl.LazyFrame, as_of: dt.date, tz: str | None, before: Retired,
    pinned: pl.DataFrame | None = None,
) -> tuple[Ledger, Ledger, Retired]:
    """Allocate the given rows as of D, retire what is settled, and roll accounts up with everything retired.

    Args:
        installments, payments: curated rows (with ``dt``) of every loan not in ``before``, and every
            payment naming no loan of ``before``; the whole curated history when ``before`` is empty.
        before: the loans retired before tonight (less any taken back).
        pinned: loans that must not retire tonight (:func:`retiring`).

    Returns:
        ``(working, allocated, retired)``: the working-set ledger (accounts include every retired loan), the
        ledger of all rows given (for the reconciliation; its ``accounts`` are the working set's) and the
        retired loans after tonight.
    """
    inst, pay = allocate_payments(installments, payments, as_of, tz)
    loans = summarize_loans(inst, pay, as_of)
    leaving = retiring(loans, as_of, pinned)
    keep = list(LOAN_KEY)
    if leaving.is_empty():
        retired, ws_inst, ws_pay, ws_loans = before, inst, pay, loans
    else:
        # loan_idx numbers the loans given tonight: carry the retired loans' rows by their ids instead
        leaving_idx = inst.join(leaving.select(keep), on=keep, how="semi").get_column("loan_idx").unique()
        out_inst = inst.filter(pl.col("loan_idx").is_in(leaving_idx.implode()))
        out_pay = pay.filter(pl.col("loan_idx").is_in(leaving_idx.implode()))
        retired = Retired(
            loans=pl.concat([before.loans, _retired_loans(leaving, out_pay)]).sort("loan_id", "account_id"),
            installments=stack(out_inst.filter(ever_past_due()).drop("loan_idx"), before.installments),
            unallocated=stack(unallocated_rows(out_pay), before.unallocated),
        )
        ws_inst = inst.filter(~pl.col("loan_idx").is_in(leaving_idx.implode()))
        ws_pay = pay.filter(~pl.col("loan_idx").is_in(leaving_idx.implode()) | pl.col("loan_idx").is_null())
        ws_loans = loans.join(leaving.select(keep), on=keep, how="anti", maintain_order="left")
    accounts = summarize_with_retired(ws_loans, ws_pay, retired.loans, as_of)
    working = Ledger(as_of=as_of, installments=ws_inst, payments=ws_pay, loans=ws_loans, accounts=accounts)
    allocated = Ledger(as_of=as_of, installments=inst, payments=pay, loans=loans, accounts=accounts)
    return working, allocated, retired


def with_retired_totals(reconciliation: Reconciliation, before: Retired) -> Reconciliation:
    """The reconciliation of tonight's rows plus the money of loans retired before tonight: every cent
    received since the lake began, as a full rebuild counts it. A retired loan's unallocated money is an
    overpayment (a payment naming no loan never retires)."""
    if before.loans.is_empty():
        return reconciliation
    sums = before.loans.select(pl.col("payments", "received_cents", "allocated_cents", "unallocated_cents").sum()).row(
        0, named=True)
    return dataclasses.replace(
        reconciliation,
        payments=reconciliation.payments + sums["payments"],
        received_cents=reconciliation.received_cents + sums["received_cents"],
        allocated_cents=reconciliation.allocated_cents + sums["allocated_cents"],
        unallocated_cents=reconciliation.unallocated_cents + sums["unallocated_cents"],
        overpaid_cents=reconciliation.overpaid_cents + sums["unallocated_cents"],
        upstream_payments=reconciliation.upstream_payments + sums["payments"],
        upstream_cents=reconciliation.upstream_cents + sums["received_cents"],
    )


