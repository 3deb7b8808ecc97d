"""What the book says about a drop's units and loans: pure checks the ingest runs against the lake.

No type tells cents from yuan, or a schedule re-sent under new ids from a new loan; the book does. Money
columns do not move 20-fold overnight (:func:`money_unit_drift`), a cash draw cannot exceed its line
(:func:`loans_over_their_lines`), most payments pay an instalment to the cent (:func:`payments_in_another_unit`),
an account's line or income does not move 5-fold (:func:`amounts_in_another_unit`), and a loan is one cash
draw (:func:`loans_without_a_draw`). ``pipelines/stages/lake_checks.py`` reads the lake for them and stops the
ingest in one line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

import polars as pl

# A median of fewer amounts says nothing about their unit.
UNIT_MIN_TONIGHT, UNIT_MIN_HISTORY = 5, 20


class UnitDrift(NamedTuple):
    """A money column whose amounts moved as a unit would move them (see :func:`money_unit_drift`)."""

    column: str
    now: int  # the quantile tonight, in cents
    was: int  # the same quantile over the recent days, in cents
    quantile: str  # which one: "median", "90th percentile" or "10th percentile"


# The median catches a whole column in another unit; the outer deciles catch a unit error in part of the
# rows (a second extract writer sending cents in two rows of five moves the 90th percentile 100x while the
# median stays). A legitimate day moves none of them 20-fold: amounts are bounded by the lines.
_UNIT_QUANTILES = (("median", 0.5), ("90th percentile", 0.9), ("10th percentile", 0.1))


def money_unit_drift(
    tonight: pl.DataFrame, history: pl.DataFrame, columns: Sequence[str], ratio: float
) -> list[UnitDrift]:
    """Each money column (integer cents) whose median, 90th or 10th percentile non-zero absolute amount
    tonight is ``ratio`` times above or below that of ``history`` (the first such quantile per column).

    Cents sent in a CNY column typed float or decimal(p,0) are read as yuan: every amount 100x. No type
    tells them apart, but the book does: what customers borrow, pay and spend does not move 20-fold
    overnight, so quantiles against the recent days catch the unit whatever the column's type, in every
    row or in a part of them.
    """
    drift = []
    for column in columns:
        now, was = (f.get_column(column).drop_nulls().abs() for f in (tonight, history))
        now, was = now.filter(now > 0), was.filter(was > 0)
        if now.len() < UNIT_MIN_TONIGHT or was.len() < UNIT_MIN_HISTORY:
            continue
        for name, q in _UNIT_QUANTILES:
            a, b = (int(v.quantile(q, interpolation="nearest")) for v in (now, was))  # type: ignore[arg-type]
            if a >= b * ratio or a * ratio <= b:
                drift.append(UnitDrift(column, a, b, name))
                break
    return drift


def loans_over_their_lines(installments: pl.DataFrame, limits: pl.DataFrame) -> tuple[int, pl.DataFrame]:
    """The loans of a schedule drop whose principal exceeds their account's credit line.

    ``installments``: curated columns (``loan_id``, ``account_id``, ``principal_due_cents``); ``limits``:
    ``account_id``, ``credit_limit_cents`` (the day's snapshot). Returns how many loans have a known line,
    and those over it (``loan_id``, ``account_id``, ``principal_cents``, ``credit_limit_cents``), largest
    excess first.
    """
    loans = (installments.group_by("loan_id", "account_id")
             .agg(pl.col("principal_due_cents").sum().alias("principal_cents"))
             .join(limits.select("account_id", "credit_limit_cents").unique("account_id"), on="account_id",
                   how="inner")
             .filter(pl.col("credit_limit_cents").is_not_null() & pl.col("principal_cents").is_not_null()))
    over = (loans.filter(pl.col("principal_cents") > pl.col("credit_limit_cents"))
            .sort(pl.col("principal_cents") - pl.col("credit_limit_cents"), "loan_id", descending=[True, False]))
    return loans.height, over


# Powers of ten a unit error moves money by: jiao (10), fen/cents (100), and li or a double slip (1000).
_UNIT_FACTORS = (10, 100, 1000)


def payments_in_another_unit(payments: pl.DataFrame, dues: pl.DataFrame) -> pl.DataFrame:
    """Payments whose amount is an instalment of their loan in another unit: 10x, 100x or 1000x below or
    above one instalment's total due (to the unit: yuan sent as cents may be whole yuan) while equal to none.
    Most payments pay an instalment to the cent (71% of the demo book's), so a unit error in some rows shows
    as this signature; a genuine partial payment carries it rarely, so the caller weighs how many rows do.

    ``payments``: ``payment_id``, ``loan_id``, ``amount_cents``; ``dues``: ``loan_id``, ``due_cents`` (each
    instalment's principal + interest). Returns the payments with the signature (``payment_id``,
    ``loan_id``, ``amount_cents``, ``due_cents``, ``factor``: due / amount, below 1 for an amount too big).
    """
    dues = dues.select("loan_id", "due_cents").unique()
    sent = payments.select("payment_id", "loan_id", "amount_cents").filter(pl.col("amount_cents") > 0)
    plain = sent.join(dues, left_on=["loan_id", "amount_cents"], right_on=["loan_id", "due_cents"], how="anti")
    pairs = plain.join(dues, on="loan_id")
    amount, due = pl.col("amount_cents"), pl.col("due_cents")
    found = [pairs.filter((amount * f - due).abs() < f).with_columns(pl.lit(float(f)).alias("factor"))
             for f in _UNIT_FACTORS]
    found += [pairs.filter((amount - due * f).abs() < f).with_columns(pl.lit(1 / f).alias("factor"))
              for f in _UNIT_FACTORS]
    return (pl.concat(found).sort("payment_id", "due_cents")
            .unique("payment_id", keep="first", maintain_order=True))


def loans_off_their_draw(unbacked: pl.DataFrame, draws: pl.DataFrame) -> pl.DataFrame:
    """Loans without their draw whose account has a draw 10x, 100x or 1000x above or below the loan's
    principal: a unit error in the schedule or in the behaviour, not a schedule sent again.

    ``unbacked``: ``loan_id``, ``account_id``, ``principal_cents`` (:attr:`DrawBacking.unbacked`);
    ``draws``: ``account_id``, ``amount_cents``. Returns the loans with ``amount_cents`` and ``factor``
    (the larger over the smaller amount), one row per loan.
    """
    hi = pl.max_horizontal("principal_cents", "amount_cents")
    lo = pl.min_horizontal("principal_cents", "amount_cents")
    return (unbacked.join(draws.drop_nulls(), on="account_id")
            .filter(lo > 0, hi != lo, hi % lo == 0, (hi // lo).is_in(_UNIT_FACTORS))
            .with_columns((hi // lo).alias("factor"))
            .unique("loan_id", keep="first", maintain_order=True))


def amounts_in_another_unit(today: pl.DataFrame, previous: pl.DataFrame, column: str,
                            ratio: float) -> tuple[int, pl.DataFrame]:
    """Accounts whose amount ``column`` (cents) is ``ratio`` times or more above or below their last known one:
    the per-account unit check of the snapshot's money, for a column one account's value seldom moves far.

    * ``credit_limit_cents``: riskline never moves a line that far (a decrease keeps at least 60% of it, an
      increase at most doubles it, and neither twice in a week), so such a move is a unit error in a few rows
      (one writer in jiao, also on a line riskline just changed: 1,200 raised to 1,440 and sent in jiao is 144,
      8.3x, not 10x): the line is where the policy starts from, and a line read 10x low is cut from there;
    * ``annual_income_cents``: self-declared, re-declared seldom; a genuine update of one account may be large,
      so the caller judges the share of accounts that moved (income /10 in a whole snapshot is under the 20x
      drift ratio, and the affordability cap withholds increases on it).

    An amount that was positive and is 0 tonight moved too (factor 0): an income zeroed by a mapping fault
    caps every increase at nothing (review 28, N4). ``today`` and ``previous``: ``account_id`` and ``column``
    (``previous``: each account's last known value). Returns how many accounts have the amount in both (absent
    or null on either side, or 0 before, says nothing), and those that moved: ``account_id``, ``was_cents``,
    ``column``, ``factor`` (today / was), sorted.
    """
    empty = pl.DataFrame(schema={"account_id": pl.String(), "was_cents": pl.Int64(), column: pl.Int64(),
                                 "factor": pl.Float64()})
    if column not in today.columns or column not in previous.columns:  # an optional column not sent
        return 0, empty
    was = previous.select("account_id", pl.col(column).alias("was_cents")).unique("account_id")
    hi = pl.max_horizontal("was_cents", column)
    lo = pl.min_horizontal("was_cents", column)
    both = today.select("account_id", column).join(was, on="account_id").filter(
        pl.col(column) >= 0, pl.col("was_cents") > 0)  # null >= 0 is null: dropped (min_horizontal skips nulls)
    moved = (both.filter((pl.col(column) == 0) | (hi >= lo * ratio))
             .with_columns((pl.col(column) / pl.col("was_cents")).alias("factor"))
             .select("account_id", "was_cents", column, "factor").sort("account_id"))
    return both.height, moved


class DrawBacking(NamedTuple):
    """Loans against the cash draws that created them (see :func:`loans_without_a_draw`)."""

    evidence: int  # loans curated on the window's earlier dates: what says the book's loans follow draws
    unbacked_before: int  # ... of which no draw accounts for (a book whose loans are not draws: check off)
    unbacked: pl.DataFrame  # tonight's loans in excess: loan_id, account_id, principal_cents


def loans_without_a_draw(tonight: pl.DataFrame, earlier: pl.DataFrame, draws: pl.DataFrame,
                         draws_before: pl.DataFrame) -> DrawBacking:
    """Tonight's loans that no cash draw of their account and amount accounts for.

    A loan is one cash draw (``installments.loan_id``): a draw of X CNY by account A creates one schedule
    whose principal is X. Schedules sent again under new loan and instalment ids (a re-extract that mints
    ids) pass every key check and would double what those customers owe; the draws they repeat are already
    taken by the loans curated for them. So, per (account, amount), the loans of the window (earlier dates,
    then tonight's) may not outnumber its draws; tonight's loans take what is left, in loan_id order.

    ``tonight``: the drop's instalments (``loan_id``, ``account_id``, ``principal_due_cents``; identical
    redeliveries already dropped); ``earlier``: the same of the window's earlier curated dates; ``draws``:
    ``account_id``, ``amount_cents`` of the window's ``cash_draw`` events, tonight's included (a null amount
backs nothing);
    ``draws_before``: the same without tonight's (to judge ``earlier`` alone).
    """
    def loans(schedule: pl.DataFrame) -> pl.DataFrame:
        return (schedule.group_by("loan_id", "account_id")
                .agg(pl.col("principal_due_cents").sum().alias("principal_cents"))
                .sort("loan_id"))

    def counted(frame: pl.DataFrame, name: str) -> pl.DataFrame:
        return (frame.select("account_id", pl.col("amount_cents").alias("principal_cents"))
                .group_by("account_id", "principal_cents").len(name))

    def excess(mine: pl.DataFrame, taken: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
        pair = ["account_id", "principal_cents"]
        # A draw whose amount is missing backs nothing: "any loan of its account" let a loan in another
        # unit through beside a draw quarantined for its amount.
        return (mine.with_columns(pl.int_range(1, pl.len() + 1).over(pair).alias("_nth"))
                .join(taken, on=pair, how="left").join(counted(events, "_draws"), on=pair, how="left")
                .filter(pl.col("_nth") + pl.col("_taken").fill_null(0) > pl.col("_draws").fill_null(0))
                .select("loan_id", "account_id", "principal_cents"))

    before = loans(earlier)
    no_taken = pl.DataFrame(schema={"account_id": pl.String, "principal_cents": pl.Int64, "_taken": pl.UInt32})
    unbacked_before = excess(before, no_taken, draws_before).height
    taken = before.group_by("account_id", "principal_cents").len("_taken")
    unbacked = excess(loans(tonight), taken, draws)
    return DrawBacking(before.height, unbacked_before, unbacked)
