"""The repayment ledger as of a business date D: where every payment went and what each loan owes.

Conventions (the rest of the pipeline relies on them):

* **Only data with ``dt <= D``.** A loan exists from its draw date (the ``dt`` of its instalments
  partition); a payment is known from the ``dt`` of its payments partition, and counts from the business
  day it was paid (``paid_on``): the business date of ``paid_at`` in the book's time zone, never after its
  ``dt``. They differ only for a payment delivered late (bank settlement, up to
  ``ingest.payment_late_days``): it is applied as paid on its own day, so the delay creates no DPD, while
  a ledger rebuilt as of a date before its ``dt`` still does not know it (point in time). Without a time
  zone (unit tests) ``paid_on`` is the ``dt``. ``paid_at`` orders payments of the same day.
* **Allocation.** Within a loan, payments in receipt order pay the oldest unpaid instalment first (by
  ``installment_no``); a partial payment leaves the rest of that instalment unpaid, an overpayment moves
  on to the next instalment, and money beyond the last instalment is ``unallocated`` (a credit balance,
  reason ``overpaid``). A payment whose ``(account_id, loan_id)`` has no instalments as of D is wholly
  unallocated with reason ``unknown_loan`` (a payment naming another account's loan included: the money
  stays on the paying account, which also keeps sharding by account exact). Nothing is dropped:
  :func:`pipelines.domain.reconcile.reconcile_ledger` proves allocated + unallocated == received to the cent.
* **DPD at the close of business day D.** An instalment is paid off on the business day the cumulative
  payments of its loan first cover it. Its DPD on day t is ``t - due_date`` (in days) for
  ``due_date <= t < paid_off_date`` and 0 otherwise; a loan's / account's DPD is the largest over its
  instalments, i.e. that of the oldest instalment due and not fully paid. So **the due date itself is
  DPD 0** (an instalment still unpaid at the close of its due date is already in the overdue amount and
  the missed instalments, but has DPD 0 that day), the next day is DPD 1, and DPD counts calendar days,
  across month ends (due Jan 31 2024, unpaid: DPD 1 on Feb 1, 29 on Feb 29, 30 on Mar 1). A payment
  received on the due date is on time.
* **Windows** "the last N days" are the N calendar days D-N+1 .. D (each day's close counts).

Everything is vectorized: cumulative sums over instalments and payments ordered per loan, then an
as-of join (the first payment whose running total covers an instalment's running total).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from pipelines.domain.feature_dictionary import DPD_WINDOWS

LOAN_KEY: tuple[str, str] = ("account_id", "loan_id")

UNKNOWN_LOAN = "unknown_loan"
OVERPAID = "overpaid"


@dataclass(frozen=True)
class Ledger:
    """The ledger as of ``as_of``.

    Attributes:
        installments: one row per instalment (loans drawn by D): what was paid, when it was paid off.
        payments: one row per payment received by D: allocated and unallocated cents, with a reason.
        loans: one row per loan: outstanding principal, overdue amount, DPD, next instalment, end date.
        accounts: one row per account with a loan or a payment: the loans rolled up.
    """

    as_of: dt.date
    installments: pl.DataFrame
    payments: pl.DataFrame
    loans: pl.DataFrame
    accounts: pl.DataFrame


# --- pure steps ------------------------------------------------------------------------------------


def _running_total(amount: str, new_group: pl.Expr) -> pl.Expr:
    """Running total of ``amount`` restarting at each ``new_group`` row, on a frame sorted by group.

    A global cumulative sum minus the total before the group's first row: two scans, no group-by.
    """
    total = pl.col(amount).cum_sum()
    return total - pl.when(new_group).then(total - pl.col(amount)).forward_fill()


def _starts_group(*keys: str) -> pl.Expr:
    """True on the first row of each run of equal ``keys`` (the frame is sorted by them)."""
    changed = [pl.col(k).ne_missing(pl.col(k).shift()) for k in keys]
    return pl.any_horizontal(changed).fill_null(True)


def prepare_installments(installments: pl.LazyFrame, as_of: dt.date) -> pl.LazyFrame:
    """Instalments of loans drawn by D, ordered per loan, with running totals of the amount due.

    ``loan_idx`` numbers the loans (0, 1, ...) in this frame's order so that later joins and group-bys
    run on an integer instead of two strings.
    """
    return (
        installments.filter(pl.col("dt") <= as_of)
        .select(
            *LOAN_KEY,
            "installment_id",
            "installment_no",
            "due_date",
            "principal_due_cents",
            "interest_due_cents",
            pl.col("dt").alias("draw_date"),
        )
        # loan_id first: it is nearly unique, so the sort rarely compares a second key (4x faster
        # than account_id first, measured). A stable sort instead of an installment_id tie-breaker
        # (which doubles the sort's cost) keeps a defective schedule's repeated numbers in file order.
        .sort("loan_id", "account_id", "installment_no", maintain_order=True)
        .with_columns(
            _new_loan=_starts_group("loan_id", "account_id"),
            due_cents=pl.col("principal_due_cents") + pl.col("interest_due_cents"),
        )
        .with_columns(
            loan_idx=(pl.col("_new_loan").cum_sum() - 1).cast(pl.UInt32),
            cum_due_cents=_running_total("due_cents", pl.col("_new_loan")),
        )
        .with_columns(cum_due_before_cents=pl.col("cum_due_cents") - pl.col("due_cents"))
        .drop("_new_loan")
    )


def paid_on(tz: str | None) -> pl.Expr:
    """A payment's business day: ``paid_at``'s date in ``tz``, never after its ``dt`` (module docstring)."""
    if tz is None:
        return pl.col("dt")
    day = pl.col("paid_at").dt.convert_time_zone(tz).dt.date()
    return pl.when(day < pl.col("dt")).then(day).otherwise(pl.col("dt"))


def prepare_payments(
    payments: pl.LazyFrame, loans: pl.DataFrame, as_of: dt.date, tz: str | None = None
) -> pl.LazyFrame:
    """Payments received by D, matched to ``loans`` (``loan_id``, ``account_id``, ``loan_idx``,
    ``loan_due_cents``, sorted by loan_id), in receipt order per loan, with the loan's running total
    received. ``loan_idx`` and ``loan_due_cents`` are null when the paying account has no such loan."""
    received = payments.filter(pl.col("dt") <= as_of).select(
        *LOAN_KEY, "payment_id", "paid_at", "amount_cents", paid_on(tz).alias("paid_on")
    )
    loan_ids = loans.get_column("loan_id")
    if loan_ids.len() and bool((loan_ids == loan_ids.shift()).any()):
        # a loan id used by two accounts (a defect upstream): match on both ids
        # maintain_order: payments of one loan at the same instant are applied in file order on every run
        matched = received.join(loans.lazy(), on=list(LOAN_KEY), how="left", maintain_order="left")
    else:
        # Loan ids are unique: join on loan_id alone (a one-string key is markedly cheaper) and then
        # drop the match where the paying account is not the loan's, which makes it an unknown loan.
        same_account = pl.col("account_id") == pl.col("_loan_account_id")
        matched = received.join(
            loans.lazy().rename({"account_id": "_loan_account_id"}), on="loan_id", how="left", maintain_order="left"
        ).with_columns(
            pl.when(same_account).then(pl.col(c)).alias(c) for c in ("loan_idx", "loan_due_cents")
        ).drop("_loan_account_id")
    return (
        matched
        # stable: payments of one loan at the same instant keep their file order
        .sort("loan_idx", "paid_on", "paid_at", nulls_last=True, maintain_order=True)
        .with_columns(
            # a payment for an unknown loan has no running total: none of it can be allocated
            cum_paid_cents=pl.when(pl.col("loan_idx").is_not_null())
            .then(_running_total("amount_cents", _starts_group("loan_idx")))
        )
        .with_columns(cum_paid_before_cents=pl.col("cum_paid_cents") - pl.col("amount_cents"))
    )


def allocate_payments(
    installments: pl.LazyFrame, payments: pl.LazyFrame, as_of: dt.date, tz: str | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Allocate payments received by D to instalments, oldest first.

    Args:
        installments, payments: curated frames with their ``dt`` column (rows after D are ignored).

    Returns:
        ``(installments, payments)``: per instalment ``paid_cents`` (interest first, then principal) and
        ``paid_off_date`` (null while not fully paid); per payment ``allocated_cents``,
        ``unallocated_cents`` and ``unallocated_reason`` (null when fully allocated). Both carry
        ``loan_idx`` (null on a payment for an unknown loan).
    """
    inst = prepare_installments(installments, as_of).collect()
    last_of_loan = pl.col("loan_idx").ne_missing(pl.col("loan_idx").shift(-1))
    loans = inst.filter(last_of_loan).select(*LOAN_KEY, "loan_idx", pl.col("cum_due_cents").alias("loan_due_cents"))
    pay = prepare_payments(payments, loans, as_of, tz).collect()
    loan_paid = pay.filter(last_of_loan & pl.col("loan_idx").is_not_null()).select(
        "loan_idx", pl.col("cum_paid_cents").alias("loan_paid_cents")
    )

    # The first payment whose running total reaches an instalment's running total pays it off.
    # Running totals are non-decreasing within a loan and both sides are sorted by loan then total.
    inst = (
        inst.join_asof(
            pay.filter(pl.col("loan_idx").is_not_null()).select("loan_idx", "cum_paid_cents", "paid_on"),
            left_on="cum_due_cents",
            right_on="cum_paid_cents",
            by="loan_idx",
            strategy="forward",
            check_sortedness=False,
        )
        .join(loan_paid, on="loan_idx", how="left", maintain_order="left")
        .with_columns(
            paid_cents=(pl.col("loan_paid_cents").fill_null(0) - pl.col("cum_due_before_cents"))
            .clip(0, pl.col("due_cents")),
            # A zero instalment at the start of a schedule is owed nothing: paid off when drawn.
            paid_off_date=pl.when(pl.col("cum_due_cents") <= 0)
            .then(pl.col("draw_date"))
            .otherwise(pl.col("paid_on")),
        )
        .with_columns(
            # Interest before principal within an instalment: the contract's waterfall (costs of credit
            # are settled first), so principal is only reduced by money that exceeds the interest due,
            # and outstanding principal is exactly the principal not yet covered.
            interest_paid_cents=pl.min_horizontal("paid_cents", "interest_due_cents"),
        )
        .with_columns(principal_paid_cents=pl.col("paid_cents") - pl.col("interest_paid_cents"))
        .drop("loan_paid_cents", "paid_on", "cum_paid_cents")
    )

    pay = (
        pay.with_columns(
            allocated_cents=pl.when(pl.col("loan_due_cents").is_null())
            .then(0)
            .otherwise(
                (pl.min_horizontal("cum_paid_cents", "loan_due_cents") - pl.col("cum_paid_before_cents"))
                .clip(0, pl.col("amount_cents"))
            )
            .cast(pl.Int64)
        )
        .with_columns(unallocated_cents=pl.col("amount_cents") - pl.col("allocated_cents"))
        .with_columns(
            unallocated_reason=pl.when(pl.col("unallocated_cents") == 0)
            .then(None)
            .when(pl.col("loan_due_cents").is_null())
            .then(pl.lit(UNKNOWN_LOAN))
            .otherwise(pl.lit(OVERPAID))
        )
        .drop("loan_due_cents")
    )
    return inst, pay


def last_unpaid_day_upto(upto: dt.date) -> pl.Expr:
    """Per instalment: its last day unpaid, no later than ``upto`` (the day before ``paid_off_date``).

    An instalment is past due on day t for ``due_date + 1 <= t < paid_off_date``; every DPD window and
    cure rule of the project reads that span through this one expression.
    """
    upto_lit = pl.lit(upto, dtype=pl.Date())
    return pl.min_horizontal(upto_lit, (pl.col("paid_off_date") - pl.duration(days=1)).fill_null(upto_lit))


def worst_dpd_between(lo: dt.date, hi: dt.date) -> pl.Expr:
    """Per instalment: the largest DPD at the close of any day ``lo .. hi`` (0 if never past due).

    DPD on day t is ``t - due_date`` for ``due_date <= t < paid_off_date``, so over the window it peaks
    on the instalment's last unpaid day in it. Needs ``due_date`` and ``paid_off_date`` columns.
    """
    last_unpaid_day = last_unpaid_day_upto(hi)
    first_day = pl.max_horizontal(pl.lit(lo, dtype=pl.Date()), pl.col("due_date"))
    return (
        pl.when(last_unpaid_day >= first_day)
        .then((last_unpaid_day - pl.col("due_date")).dt.total_days())
        .otherwise(0)
        .cast(pl.Int32)
    )


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def summarize_loans(installments: pl.DataFrame, payments: pl.DataFrame, as_of: dt.date) -> pl.DataFrame:
    """One row per loan as of D, from :func:`allocate_payments`' frames (which are in loan order)."""
    for name, frame in (("installments", installments), ("payments", payments.drop_nulls("loan_idx"))):
        if not frame.get_column("loan_idx").is_sorted():  # the group-bys below rely on it
            raise ValueError(f"{name} must be in loan order, as allocate_payments returns them")
    unpaid = pl.col("due_cents") - pl.col("paid_cents")
    is_due = pl.col("due_date") <= as_of
    open_inst = unpaid > 0
    # Cured this month: 1+ DPD at the close of the previous month or on any day of this month.
    since_last_month_end = _month_start(as_of) - dt.timedelta(days=1)
    new_loan = pl.col("loan_idx").ne_missing(pl.col("loan_idx").shift()).fill_null(True)
    # Row-level columns first, so the group-by below only sums, maxes and takes firsts (its fast
    # path); a filter inside the aggregation is evaluated group by group, 10x slower on a big book.
    state = installments.with_columns(
        unpaid_cents=unpaid,
        overdue_cents=pl.when(is_due).then(unpaid).otherwise(0),
        principal_left_cents=pl.col("principal_due_cents") - pl.col("principal_paid_cents"),
        interest_left_cents=pl.col("interest_due_cents") - pl.col("interest_paid_cents"),
        missed=(is_due & open_inst).cast(pl.Int32),
        open=open_inst.cast(pl.Int32),
        dpd=worst_dpd_between(as_of, as_of),
        worst_dpd_month=worst_dpd_between(since_last_month_end, as_of),
        **{
            f"worst_dpd_{w}d": worst_dpd_between(as_of - dt.timedelta(days=w - 1), as_of)
            for w in DPD_WINDOWS
        },
    ).with_columns(
        # the oldest unpaid instalment: the first open one of its loan (instalments are in order)
        _is_next=open_inst & (_running_total("open", new_loan) == 1),
    ).with_columns(
        pl.when(pl.col("_is_next")).then(pl.col(src)).alias(f"_next_{src}")
        for src in ("installment_no", "due_date", "due_cents", "unpaid_cents")
    )
    # loan_idx is ascending (rows are in loan order): flagging it lets the group-by cut slices
    # instead of hashing, about twice as fast.
    loans = state.with_columns(pl.col("loan_idx").set_sorted()).group_by("loan_idx").agg(
        pl.col("account_id").first(),
        pl.col("loan_id").first(),
        pl.col("draw_date").min(),
        pl.len().cast(pl.Int32).alias("installment_count"),
        pl.col("principal_due_cents").sum().alias("principal_cents"),
        pl.col("interest_due_cents").sum().alias("interest_cents"),
        pl.col("due_cents").sum().alias("total_due_cents"),
        pl.col("paid_cents").sum().alias("allocated_cents"),
        pl.col("principal_left_cents").sum().alias("outstanding_principal_cents"),
        pl.col("interest_left_cents").sum().alias("outstanding_interest_cents"),
        pl.col("overdue_cents").sum(),
        pl.col("dpd").max(),
        pl.col("missed").sum().alias("missed_installments"),
        *(pl.col(f"worst_dpd_{w}d").max() for w in DPD_WINDOWS),
        pl.col("worst_dpd_month").max(),
        pl.col("open").sum().alias("remaining_installments"),
        pl.col("due_date").max().alias("end_date"),
        # one _next_ value per open loan: max() picks it and gives null for a paid-off loan
        pl.col("_next_installment_no").max().alias("next_installment_no"),
        pl.col("_next_due_date").max().alias("next_due_date"),
        pl.col("_next_due_cents").max().alias("next_installment_cents"),
        pl.col("_next_unpaid_cents").max().alias("next_installment_unpaid_cents"),
    )
    paid = (
        payments.filter(pl.col("loan_idx").is_not_null())
        .with_columns(pl.col("loan_idx").set_sorted())  # payments are in loan order too
        .group_by("loan_idx")
    ).agg(
        pl.col("amount_cents").sum().alias("received_cents"),
        pl.col("unallocated_cents").sum(),
        pl.col("paid_on").max().alias("last_payment_date"),
    )
    return (
        loans.join(paid, on="loan_idx", how="left")
        .with_columns(
            pl.col("received_cents", "unallocated_cents").fill_null(0),
            is_open=pl.col("remaining_installments") > 0,
            cured_this_month=(pl.col("dpd") == 0) & (pl.col("worst_dpd_month") >= 1),
            as_of_date=pl.lit(as_of, dtype=pl.Date()),
        )
        .drop("worst_dpd_month", "loan_idx")  # loan_idx is internal to one run (differs by shard)
        # loan_id first: nearly unique, so 10x cheaper to sort than account_id first (measured)
        .sort("loan_id", "account_id")
    )


def summarize_accounts(loans: pl.DataFrame, payments: pl.DataFrame, as_of: dt.date) -> pl.DataFrame:
    """One row per account with a loan or a payment as of D (unknown-loan credits included)."""
    by_loans = loans.group_by("account_id").agg(
        pl.len().cast(pl.Int32).alias("loans"),
        pl.col("is_open").sum().cast(pl.Int32).alias("open_loans"),
        pl.col("outstanding_principal_cents").sum(),
        pl.col("overdue_cents").sum(),
        pl.col("dpd").max(),
        pl.col("missed_installments").sum().cast(pl.Int32),
        *(pl.col(f"worst_dpd_{w}d").max() for w in DPD_WINDOWS),
        # When the account is current every loan is, and a loan is then cured iff it was 1+ DPD
        # since last month end: so the account is cured iff it is current and any loan is.
        pl.col("cured_this_month").any().alias("_any_loan_cured"),
        pl.col("draw_date").max().alias("last_draw_date"),
        pl.col("next_due_date").min(),
    )
    by_payments = payments.group_by("account_id").agg(
        pl.col("amount_cents").sum().alias("received_cents"),
        pl.col("unallocated_cents").sum().alias("credit_balance_cents"),
        pl.col("paid_on").max().alias("last_payment_date"),
    )
    zero_fill = {
        "loans": 0, "open_loans": 0, "outstanding_principal_cents": 0, "overdue_cents": 0, "dpd": 0,
        "missed_installments": 0, "received_cents": 0, "credit_balance_cents": 0,
        **{f"worst_dpd_{w}d": 0 for w in DPD_WINDOWS},
    }
    return (
        by_loans.join(by_payments, on="account_id", how="full", coalesce=True)
        .with_columns(pl.col(name).fill_null(value) for name, value in zero_fill.items())
        .with_columns(
            cured_this_month=(pl.col("dpd") == 0) & pl.col("_any_loan_cured").fill_null(False),
            as_of_date=pl.lit(as_of, dtype=pl.Date()),
        )
        .drop("_any_loan_cured")
        .sort("account_id")
    )


def build_ledger(
    installments: pl.LazyFrame, payments: pl.LazyFrame, as_of: dt.date, tz: str | None = None
) -> Ledger:
    """Allocate payments and summarize loans and accounts as of D (only rows with ``dt <= D``).

    ``tz``: the business time zone, which dates a late-delivered payment by its ``paid_at``.
    """
    inst, pay = allocate_payments(installments, payments, as_of, tz)
    loans = summarize_loans(inst, pay, as_of)
    accounts = summarize_accounts(loans, pay, as_of)
    return Ledger(as_of=as_of, installments=inst, payments=pay, loans=loans, accounts=accounts)


def outstanding_principal_at(ledger: Ledger, day: dt.date) -> pl.DataFrame:
    """Outstanding principal per account at the close of an earlier ``day`` (<= the ledger's D).

    Allocation is causal (payments in receipt order), so the state at ``day`` follows from the same
    schedule and the payments received by then, without rebuilding the ledger.
    """
    if day > ledger.as_of:
        raise ValueError(f"day {day} is after the ledger's as-of date {ledger.as_of}")
    paid_by_day = (
        ledger.payments.filter((pl.col("paid_on") <= day) & pl.col("loan_idx").is_not_null())
        .group_by("loan_idx")
        .agg(pl.col("amount_cents").sum().alias("paid_by_day_cents"))
    )
    return (
        ledger.installments.filter(pl.col("draw_date") <= day)
        .join(paid_by_day, on="loan_idx", how="left")
        .with_columns(
            principal_paid=(
                pl.col("paid_by_day_cents").fill_null(0)
                - pl.col("cum_due_before_cents")
                - pl.col("interest_due_cents")
            ).clip(0, pl.col("principal_due_cents"))
        )
        .group_by("account_id")
        .agg((pl.col("principal_due_cents") - pl.col("principal_paid")).sum()
             .alias("outstanding_principal_cents"))
    )


def account_worst_dpd(installments: pl.DataFrame, lo: dt.date, hi: dt.date) -> pl.DataFrame:
    """Per account with instalments: the worst DPD at the close of any day ``lo .. hi``."""
    return installments.group_by("account_id").agg(worst_dpd_between(lo, hi).max().alias("worst_dpd"))
