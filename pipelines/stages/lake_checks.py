"""Checks of a drop against what else the lake knows, run by :func:`pipelines.stages.ingest.ingest_date` after
validation on the rows about to be curated (step 5 of its docstring), each a one-line stop naming the drop's
files: money in another unit (against the recent days, the credit lines, each account's last known line and
income, the instalments payments pay), loans without their cash draw (schedules re-sent under new ids), a
snapshot missing or closing open accounts, and a redelivery lacking rows curated for its date. The pure
comparisons are in ``pipelines/domain/conform.py`` and ``pipelines/domain/coverage.py``; this module reads the
lake for them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl

from pipelines.config.settings import RisklineConfig
from pipelines.contracts.landing import CONTRACT, EVENT_TYPES, valid_key
from pipelines.domain.conform import QUARANTINE_REASON, SAMPLE_KEYS
from pipelines.domain.plausibility import (
    UNIT_MIN_TONIGHT, amounts_in_another_unit, loans_off_their_draw, loans_over_their_lines,
    loans_without_a_draw, money_unit_drift, payments_in_another_unit,
)
from pipelines.domain.coverage import curated_rows_changed, curated_rows_removed, open_accounts, open_accounts_lost
from pipelines.errors import IngestError
from pipelines.store import lake, zones
from pipelines.store.drops import Landed, land_partition, landing_file_names
from pipelines.store.readers import read_delivered_snapshot, read_latest_snapshot_rows

# Loans of the days before a drop that must all follow cash draws (at least this many) before its own
# loans are judged against draws: a book whose loans are not draws (a card book's statements) shows it.
_DRAW_EVIDENCE_DAYS, _DRAW_EVIDENCE_MIN_LOANS = 7, 20
_DRAW_EVIDENCE_SLACK = 0.05  # ... all but this share of them (one lost draw must not switch the check off)
# Payments with an instalment's amount in another unit: fewer than this many in a drop is a genuine partial
# payment's chance (about 1 a year on the demo book), not a unit error.
_UNIT_PAYMENTS_MIN = 3
# The next step of every money-unit stop.
_SEND_ONE_UNIT = ("send money as decimal(18,2) CNY, or integer cents under <name>_cents (docs/contracts.md: money "
                  "units), then rerun ingest for this date")



UNIT_HISTORY_DAYS = 7  # the recent curated days a money column's median is compared with


def _cny(cents: int) -> str:
    """Cents as CNY for an error line: ``451600`` -> ``4,516.00``."""
    return f"{cents / 100:,.2f}"


def _sample(frame: pl.DataFrame, row: Callable[[dict[str, Any]], str]) -> str:
    """Up to ``SAMPLE_KEYS`` rows of ``frame``, each as ``row`` words it, for a one-line error."""
    return ", ".join(row(r) for r in frame.head(SAMPLE_KEYS).iter_rows(named=True))


def _refusal(root: Path, dataset: str, day: dt.date, column: str, text: str, hint: str) -> IngestError:
    """The one-line stop of a check against the lake, naming the drop's files (``refuse_*`` raise it)."""
    return IngestError(text, dataset=dataset, date=day, column=column, file=landing_file_names(root, dataset, day),
                       hint=hint)


def refuse_unit_drift(root: Path, landed: Landed, day: dt.date, cfg: RisklineConfig) -> None:
    """Stop when a money column's amounts moved ``ingest.money_unit_ratio``-fold against the recent curated
    days (:func:`~pipelines.domain.plausibility.money_unit_drift`): money in another unit, never a customer."""
    dataset = CONTRACT[landed.dataset]
    columns = [c.curated_name for c in dataset.columns if c.kind == "money" and c.curated_name in landed.frame.columns]
    recent = [d for d in zones.curated_dates(root, dataset.name) if d < day][-UNIT_HISTORY_DAYS:]
    if not columns or not recent or landed.frame.is_empty():
        return
    history = zones.scan_curated(root, dataset.name, recent[-1], dates=recent).select(columns).collect()
    drift = money_unit_drift(landed.frame, history, columns, cfg.ingest.money_unit_ratio)
    if drift:
        curated, now, was, quantile = drift[0]
        column = next(c.name for c in dataset.columns if c.curated_name == curated)  # upstream's name
        raise _refusal(
            root, dataset.name, day, column,
            f"{column}: {quantile} amount {_cny(now)} CNY tonight against {_cny(was)} CNY on "
            f"dt={recent[0]}..dt={recent[-1]} ({max(now, was) / max(min(now, was), 1):,.0f}x): money in another "
            "unit (cents in a CNY column?) would move every balance and limit",
            hint=f"{_SEND_ONE_UNIT}; if the amounts are right, raise ingest.money_unit_ratio",
        )


def refuse_loans_over_their_lines(root: Path, landed: Mapping[str, Landed], day: dt.date, cfg: RisklineConfig,
                                   schedules: pl.DataFrame) -> None:
    """Stop when most of the drop's loans borrow more than their line, or any borrows
    ``ingest.max_loan_to_line_ratio`` times it: the schedule's money (all of it, or some rows) is in another
    unit (:func:`~pipelines.domain.plausibility.loans_over_their_lines`). ``schedules``: the loans about to be
    curated (after validation; a loan held whole misstates nothing). The day's snapshot comes from
    :func:`day_frame`; without one, there is nothing to compare with."""
    if schedules.is_empty():
        return
    accounts = day_frame(root, landed, "accounts", day, cfg)
    if accounts is None:
        return
    known, over = loans_over_their_lines(schedules, accounts)
    share, ratio = cfg.ingest.max_share_of_loans_over_line, cfg.ingest.max_loan_to_line_ratio
    far = over.filter((pl.col("credit_limit_cents") > 0)  # a frozen line says nothing of a unit
                      & (pl.col("principal_cents") >= ratio * pl.col("credit_limit_cents")))
    if far.is_empty() and (known < UNIT_MIN_TONIGHT or over.height <= share * known):
        return
    shown = over if far.is_empty() else far
    sample = _sample(shown, lambda r: f"{r['loan_id']} {_cny(r['principal_cents'])} CNY on a "
                                      f"{_cny(r['credit_limit_cents'])} CNY line")
    what = (f"{over.height:,} of {known:,} loans drawn today borrow more than their account's credit limit"
            if far.is_empty() else
            f"{far.height:,} of {known:,} loans drawn today borrow {ratio:g}x their account's credit limit or more")
    raise _refusal(
        root, "installments", day, "principal_due",
        f"{what} ({sample}): a cash draw cannot exceed its line, so the schedule's money is in another unit "
        "(jiao read as CNY?) and would multiply what these customers owe",
        hint=f"{_SEND_ONE_UNIT}; if the loans are right, raise ingest.max_share_of_loans_over_line (most loans) "
             "or ingest.max_loan_to_line_ratio (one loan)",
    )


def refuse_payments_in_another_unit(root: Path, landed: Mapping[str, Landed], day: dt.date, cfg: RisklineConfig,
                                     payments: pl.DataFrame) -> None:
    """Stop when more than ``ingest.max_share_of_payments_in_another_unit`` of the payments about to be
    curated (three or more) pay an instalment of their loan 10x, 100x or 1000x off
    (:func:`~pipelines.domain.conform.payments_in_another_unit`): a second writer sending yuan as cents, or
    jiao, in part of the rows. Each would be applied as a fraction of the money paid and its customer cut.
    A loan's instalments come from the curated schedule of earlier dates and from tonight's drop (a loan
    drawn and paid the same day)."""
    if payments.height < _UNIT_PAYMENTS_MIN:
        return
    wanted = payments.get_column("loan_id").drop_nulls().unique()
    loans = wanted.implode()
    due = (pl.col("principal_due_cents") + pl.col("interest_due_cents")).alias("due_cents")
    # only the partitions whose loan ids span one paid tonight (their footers' ranges): not three years of them
    parts = {d: part for d, part in zones.curated_partitions(root, "installments").items() if d < day}
    drawn = zones.partitions_holding(parts, wanted.to_frame("loan_id"))
    dues = [zones.scan_curated(root, "installments", day - dt.timedelta(days=1), dates=drawn)
            .filter(pl.col("loan_id").is_in(loans)).select("loan_id", due).collect()]
    tonight = day_frame(root, landed, "installments", day, cfg)
    if tonight is not None:
        dues.append(tonight.filter(pl.col("loan_id").is_in(loans)).select("loan_id", due))
    odd = payments_in_another_unit(payments, pl.concat(dues))
    share = cfg.ingest.max_share_of_payments_in_another_unit
    if odd.height < _UNIT_PAYMENTS_MIN or odd.height <= share * payments.height:
        return
    sample = _sample(odd, lambda r: f"{r['payment_id']} {_cny(r['amount_cents'])} CNY against an instalment of "
                                    f"{_cny(r['due_cents'])} CNY on {r['loan_id']}")
    raise _refusal(
        root, "payments", day, "amount",
        f"{odd.height:,} of {payments.height:,} payments are an instalment of their loan 10x, 100x or 1000x off "
        f"and equal to none as sent ({sample}): money in another unit in part of the drop would be applied as a "
        "fraction (or a multiple) of what these customers paid",
        hint=f"ask upstream which files or writer send another unit; {_SEND_ONE_UNIT}; if the amounts are right, "
             "raise ingest.max_share_of_payments_in_another_unit",
    )


def refuse_payments_resent_under_new_ids(root: Path, day: dt.date, cfg: RisklineConfig,
                                         payments: pl.DataFrame) -> None:
    """Stop when payments about to be curated repeat a payment curated on an earlier date of the late window
    under another ``payment_id``: same account, loan, ``paid_at`` to the millisecond and amount (the ``facts``
    of the payments contract). A real second payment has its own time; a source that mints ids on every
    extract re-sent the first, and crediting it again would count money never received (its PD, and so its
    customer's limit, moves on that money). Within one delivery the copy is quarantined
    (``same_as_another_payment``); across deliveries the extract is at fault, so the ingest stops."""
    if payments.is_empty():
        return
    since = day - dt.timedelta(days=cfg.ingest.payment_late_days + 1)
    contract = CONTRACT["payments"]
    facts, compared = list(contract.facts), contract.fact_exprs()  # paid_at to the millisecond
    loans = payments.get_column("loan_id").unique().implode()
    earlier = (zones.scan_curated(root, "payments", day - dt.timedelta(days=1), since=since)
               .filter(pl.col("loan_id").is_in(loans))
               .select(pl.col("payment_id").alias("curated_id"), *compared, "dt").collect())
    copies = (payments.select("payment_id", *compared).join(earlier, on=facts)
              .filter(pl.col("payment_id") != pl.col("curated_id")).sort("payment_id"))
    if copies.is_empty():
        return
    sample = _sample(copies, lambda r: f"{r['payment_id']} = {r['curated_id']} of dt={r['dt']} "
                                       f"({_cny(r['amount_cents'])} CNY)")
    raise _refusal(
        root, "payments", day, "payment_id",
        f"{copies.height:,} payment(s) repeat a payment curated on an earlier date under a new payment_id, same "
        f"account, loan, paid_at and amount ({sample}): a re-sent extract would credit that money twice",
        hint="have upstream remove the re-sent payments (or send them under their first payment_id, which is "
             "dropped as a redelivery) and rerun ingest for this date",
    )


# Snapshots looked back through for an account's last known row (one missing from a snapshot returns).
_LOOKBACK_SNAPSHOTS = 7


class KnownAccounts(NamedTuple):
    """Each account's last known row over the last few curated snapshots before a date."""

    dates: list[dt.date]  # the snapshots looked at, oldest first ([] on the book's first date)
    # each account's latest row among them: account_id, status, credit_limit_cents, dt, annual_income_cents
    # (its latest declared), last_open_dt (read_latest_snapshot_rows)
    rows: pl.DataFrame


def last_known_accounts(root: Path, day: dt.date) -> KnownAccounts:
    """The last ``_LOOKBACK_SNAPSHOTS`` curated snapshots before ``day``, each account's latest row in them:
    what tonight's snapshot is compared with (its lines and incomes, the open accounts it must keep)."""
    return KnownAccounts(*read_latest_snapshot_rows(root, day, last_snapshots=_LOOKBACK_SNAPSHOTS))


class _AccountUnit(NamedTuple):
    """One money column of the snapshot judged against each account's last known value."""

    column: str  # upstream's name; the curated one is <column>_cents
    ratio: float  # a move this many times above or below is a unit error's signature ...
    share: float  # ... on more than this share of the accounts with the amount in both ...
    least: int  # ... and at least this many accounts
    plural: str  # what the column holds, for the error line ...
    noun: str  # ... and one of them
    knob: str  # the setting a genuine move that large is passed with
    why: str  # why such a move is a unit error, and what it would do


# Incomes moving far on fewer accounts than this in a night are genuine updates' chance, not a unit.
_UNIT_INCOMES_MIN = 3


def _account_units(cfg: RisklineConfig) -> tuple[_AccountUnit, ...]:
    """The snapshot's money columns judged per account, with their settings."""
    ing = cfg.ingest
    return (
        _AccountUnit("credit_limit", ing.max_line_move_ratio, ing.max_share_of_lines_in_another_unit, 1,
                     "credit line(s)", "line", "max_share_of_lines_in_another_unit",
                     "riskline never moves a line that far, so these rows are in another unit, and the policy "
                     "would cut (or raise) from the wrong line"),
        _AccountUnit("annual_income", ing.max_income_move_ratio, ing.max_share_of_incomes_in_another_unit,
                     _UNIT_INCOMES_MIN, "annual income(s)", "income", "max_share_of_incomes_in_another_unit",
                     "a self-declared income is re-declared seldom and one account at a time, so these rows are "
                     "in another unit, and the affordability cap would withhold (or allow) increases on the wrong "
                     "income"),
    )


def refuse_amounts_in_another_unit(root: Path, day: dt.date, cfg: RisklineConfig, accounts: pl.DataFrame,
                                   known: KnownAccounts) -> None:
    """Stop when the snapshot's money about to be curated is far off each account's last known value
    (``known``: its latest of the last 7 curated snapshots; :func:`~pipelines.domain.conform.amounts_in_another_unit`),
    one column at a time:

    * ``credit_limit``: ``ingest.max_line_move_ratio`` times or more above or below, on more than
      ``ingest.max_share_of_lines_in_another_unit`` of the accounts with a line in both (0: any one);
    * ``annual_income`` (optional: absent or null compares nothing): ``ingest.max_income_move_ratio`` times
      or more, on more than ``ingest.max_share_of_incomes_in_another_unit`` of the accounts with an income in
      both and at least 3 (one account's genuine re-declaration may be large)."""
    if not known.dates or accounts.is_empty():
        return
    for check in _account_units(cfg):
        compared, moved = amounts_in_another_unit(accounts, known.rows, f"{check.column}_cents", check.ratio)
        if moved.height < check.least or moved.height <= check.share * compared:
            continue
        sample = _sample(moved, lambda r, c=check: f"{r['account_id']} {_cny(r['was_cents'])} -> "
                                                   f"{_cny(r[f'{c.column}_cents'])} CNY")
        raise _refusal(
            root, "accounts", day, check.column,
            f"{moved.height:,} {check.plural} are {check.ratio:g}x or more off the account's last known "
            f"{check.noun} (of {compared:,} accounts with one in both, dt={known.dates[0]}..dt={known.dates[-1]} "
            f"and tonight: {sample}): {check.why}",
            hint=f"ask upstream which writer sends these rows in another unit; {_SEND_ONE_UNIT}; if the amounts "
                 f"are right (a manual change, a re-declaration), raise ingest.{check.knob} for that rerun",
        )


def refuse_open_accounts_lost(root: Path, landed: Landed, day: dt.date, cfg: RisklineConfig,
                              known: KnownAccounts) -> None:
    """Stop when more than ``ingest.max_share_of_open_accounts_missing`` of the accounts open in their last
    known row (``known``: the last 7 snapshots) are missing from this one or closed in it
    (:func:`~pipelines.domain.coverage.open_accounts_lost`): every delivered row counts, quarantined or not.
    The volume floor only counts rows, so a partial extract that left out quiet accounts passed it, and each
    missing account went undecided; the week's window also sees a book eroded a little each night. A status
    mapping fault that closes a tenth of the book passes every count too, and each closed account gets no
    score and no limit (an overdue one queued on the fallback PD): a book closes at most 0.13% of its open
    accounts in a night (generated books), so both count toward the one share."""
    if not known.dates:
        return
    lost = open_accounts_lost(landed.frame, known.rows)
    share = cfg.ingest.max_share_of_open_accounts_missing
    opened = open_accounts(known.rows).height
    if lost.height <= share * opened:
        return
    closed = lost.filter(pl.col("tonight") == "closed").height
    sample = _sample(lost, lambda r: f"{r['account_id']} ({r['status']}, {_cny(r['credit_limit_cents'])} CNY, "
                                     f"{r['tonight']})")
    raise _refusal(
        root, "accounts", day, "account_id",
        f"{lost.height:,} of the {opened:,} accounts open in their last snapshot (dt={known.dates[0]}.."
        f"dt={known.dates[-1]}) are missing from this one or closed in it ({lost.height - closed:,} missing, "
        f"{closed:,} closed: {sample}): a snapshot keeps its accounts (a closed one comes as a closed row) and a "
        "book closes few in a night, so this extract is partial or its statuses are mis-mapped, and these "
        "customers would get no decision",
        hint="have upstream redeliver the whole snapshot with each account's true status (and the earlier ones "
             "that also lack accounts); if the accounts really left the book or closed, raise "
             "ingest.max_share_of_open_accounts_missing for that rerun",
    )


def refuse_stale_snapshot(root: Path, landed: Mapping[str, Landed], day: dt.date, cfg: RisklineConfig) -> None:
    """Stop when tonight's snapshot is, row for row, the last one delivered before it (curated and
    quarantined rows) while tonight's other drops name accounts it does not hold: yesterday's extract re-sent
    as today's. Every count passes it, but accounts opened today go undecided and the night decides on
    yesterday's lines and statuses (a line upstream raised today would be published back at yesterday's).

    An identical snapshot alone is a quiet book (a card book's lines and statuses move once a month, a book
    without new accounts may not change for days); activity of accounts the snapshot lacks is what tells a
    stale one. A stale snapshot of a day on which no account opened and acted cannot be told."""
    if not cfg.ingest.refuse_stale_snapshot:
        return
    snapshot = landed["accounts"].frame
    previous = read_delivered_snapshot(root, day, snapshot.height)
    if previous is None:
        return
    earlier, rows = previous
    columns = [c for c in snapshot.columns if c in rows.columns]
    if set(columns) != set(rows.columns) or not snapshot.select(columns).sort("account_id").equals(
            rows.select(columns).sort("account_id")):
        return
    active = [frame.select("account_id") for name in ("behaviour", "installments", "payments")
              if (frame := day_frame(root, landed, name, day, cfg)) is not None and "account_id" in frame.columns]
    strangers = (pl.concat(active).drop_nulls().unique().join(snapshot.select("account_id"), on="account_id",
                                                              how="anti").sort("account_id")
                 if active else pl.DataFrame(schema={"account_id": pl.String}))
    if strangers.is_empty():
        return
    raise _refusal(
        root, "accounts", day, "account_id",
        f"the snapshot is identical, row for row, to the one of dt={earlier} ({snapshot.height:,} accounts), "
        f"yet {strangers.height:,} account(s) active tonight are not in it ({_sample(strangers, lambda r: r['account_id'])}): "
        "yesterday's extract re-sent as today's would leave them undecided and decide on yesterday's lines "
        "and statuses",
        hint="ask upstream for this date's snapshot and have it redelivered, then rerun ingest for this date; if "
             "this snapshot is right, set ingest.refuse_stale_snapshot: false for that rerun",
    )


def refuse_curated_rows_removed(root: Path, landed: Landed, day: dt.date, cfg: RisklineConfig,
                                curated_elsewhere: Callable[[pl.DataFrame], pl.DataFrame]) -> None:
    """Stop when a redelivery of a date already curated lacks payments or instalments curated for it
    (:func:`~pipelines.domain.coverage.curated_rows_removed`): replacing the partition would lose a payment
    received (its payer cut and queued) or part of a loan's schedule, and nothing would say so.

    A row upstream moved to another date is not lost: ``curated_elsewhere`` (given the removed rows) returns
    those curated on another date or delivered to a later one this range ingests next, e.g. a late payment
    redelivered on the day it was paid (docs/contracts.md, Keys over time)."""
    if landed.dataset not in ("payments", "installments"):
        return
    part = zones.curated(root, landed.dataset, day)
    if not lake.is_complete(part):
        return
    dataset = CONTRACT[landed.dataset]
    key = dataset.key[0]
    curated = lake.read_partition(part)
    _refuse_curated_rows_changed(root, landed, day, cfg, curated)
    kept = pl.concat([curated.select(key, *dataset.unit), _waiting_payments(root, landed.dataset, day)],
                     how="diagonal_relaxed")
    removed = curated_rows_removed(kept, landed.frame, key)
    if removed.height <= cfg.ingest.max_curated_rows_removed:
        return
    moved = curated_elsewhere(removed)
    for column in (key, *dataset.unit):  # a loan's schedule moves whole
        removed = removed.join(moved.select(column).unique(), on=column, how="anti")
    if removed.height <= cfg.ingest.max_curated_rows_removed:
        return
    removed = removed.sort(key)
    raise _refusal(
        root, landed.dataset, day, key,
        f"this redelivery lacks {removed.height:,} {landed.dataset} rows curated (or waiting in quarantine) for "
        f"dt={day} and on no other date ({_sample(removed, lambda r: str(r[key]))}): a partial redelivery would "
        "remove them, and a payment received is never removed silently",
        hint="have upstream redeliver the whole day (every row curated before included); if upstream moved them "
             "to another date, re-ingest both dates in one call (riskline ingest --from-date <the earlier> "
             "--to-date <the later>); if they were withdrawn on purpose, raise ingest.max_curated_rows_removed "
             "for that rerun",
    )


def _waiting_payments(root: Path, dataset: str, day: dt.date) -> pl.DataFrame:
    """Payments of ``day`` waiting in quarantine that are money received (a valid id, a positive amount, not a
    copy of another payment): a redelivery without one of them loses it as surely as a curated one (review
    28R, P1). A copy, a garbled id or a non-positive amount may leave: that is the redelivery asked for."""
    part = zones.quarantine(root, dataset, day)
    schema = {"payment_id": pl.String}
    if dataset != "payments" or not lake.is_complete(part) or not lake.complete_files(part):
        return pl.DataFrame(schema=schema)
    rows = lake.read_partition(part)
    copy = CONTRACT["payments"].copy_rule
    money = rows.filter(valid_key(["payment_id"]) & (pl.col("amount_cents") > 0)
                        & ~pl.col(QUARANTINE_REASON).str.contains(copy, literal=True).fill_null(False))
    return money.select("payment_id")


def _refuse_curated_rows_changed(root: Path, landed: Landed, day: dt.date, cfg: RisklineConfig,
                                 curated: pl.DataFrame) -> None:
    """Stop when a redelivery carries a payment or instalment curated for its date with other values (another
    account or loan, another amount, time or due date): the partition would be replaced and the change applied
    silently (review 28R, P2: a payment moved to another customer queued its payer)."""
    dataset = CONTRACT[landed.dataset]
    key = dataset.key[0]
    changed = curated_rows_changed(curated, landed.frame, key, list(dataset.curated_schema()))
    if changed.height <= cfg.ingest.max_curated_rows_removed:
        return
    both = [c.removesuffix("_now") for c in changed.columns if c.endswith("_now")]

    def show(r: dict[str, Any]) -> str:
        moved = [f"{c} {r[c]} -> {r[c + '_now']}" for c in both if r[c] != r[c + "_now"]]
        return f"{r[key]} ({'; '.join(moved)})"

    raise _refusal(
        root, landed.dataset, day, key,
        f"this redelivery changes {changed.height:,} {landed.dataset} rows curated for dt={day} "
        f"({_sample(changed, show)}): a correction of curated rows (money, owners, times) is never applied "
        "silently",
        hint="ask upstream which values are right: if the curated ones, have the day redelivered with them; if "
             "the correction is agreed, raise ingest.max_curated_rows_removed for that rerun",
    )


def day_frame(root: Path, landed: Mapping[str, Landed], name: str, day: dt.date,
               cfg: RisklineConfig) -> pl.DataFrame | None:
    """``name``'s rows of ``day``: this ingest's, else its landing drop's (conformed, every delivered row,
    quarantined or not), else the curated ones; None when there are none.

    The landing drop first: in Airflow each dataset of a date is ingested by its own task, so another
    dataset's curated partition of the same date may be published while this read phase runs, after its
    listings were taken (a stale listing read it as empty and refused every loan of a backfilled date as
    having no draw). The landing drop does not change under an ingest."""
    if name in landed:
        return landed[name].frame
    try:
        return land_partition(root, name, day, cfg, check_totals=False).frame  # judged by its own ingest
    except IngestError:
        pass
    part = zones.curated(root, name, day)
    return lake.read_partition(part) if lake.is_complete(part) else None


def refuse_loans_without_a_draw(root: Path, landed: Mapping[str, Landed], day: dt.date, cfg: RisklineConfig,
                                 schedules: pl.DataFrame) -> bool:
    """Stop when loans about to be curated (``schedules``: after validation, held loans out) have no cash draw
    of their account and amount: schedules sent again under new ids
    (:func:`~pipelines.domain.plausibility.loans_without_a_draw`), which every key check lets through and which
    would double what those customers owe. Every delivered draw counts, quarantined or not, a copy of one (the
    same facts under another id) once. Judged only when the window's earlier loans (enough of them) all
    follow draws; the window reaches ``ingest.loan_draw_lag_days`` before the drop's date. True when judged
    and every loan has its draw (a later delivery's equal schedules under new ids are then real loans)."""
    lag = cfg.ingest.loan_draw_lag_days
    if lag is None or schedules.is_empty():
        return False
    tonight_draws = day_frame(root, landed, "behaviour", day, cfg)
    if tonight_draws is None:
        return False
    start = day - dt.timedelta(days=_DRAW_EVIDENCE_DAYS + lag)
    # A draw whose type arrived garbled (unknown or null: quarantined) still backs the loan of its exact
    # amount: the amount is the evidence, the type its label.
    kind = pl.col("event_type")
    draw = (kind == "cash_draw") | kind.is_null() | ~kind.is_in(list(EVENT_TYPES))
    before = [d for d in zones.curated_dates(root, "behaviour") if start <= d < day]
    garbled = (zones.scan_quarantine(root, "behaviour", day - dt.timedelta(days=1))
               .filter(pl.col("dt") >= start, draw, pl.col("amount_cents").is_not_null(),
                       pl.col("quarantine_reason").str.split(";").list.eval(
                           pl.element().is_in(["unknown_event_type", "null_event_type"])).list.all())
               .select("account_id", "amount_cents"))
    draws_before = pl.concat([zones.scan_curated(root, "behaviour", day, dates=before).filter(draw)
                              .select("account_id", "amount_cents"), garbled]).collect()
    # A draw repeated under another id in the drop is one draw (its copy is quarantined as
    # same_as_another_event): it backs one loan, not a schedule re-sent under new ids beside it.
    events = CONTRACT["behaviour"]
    tonight = tonight_draws.filter(draw)
    if set(events.facts) <= set(tonight.columns):
        tonight = tonight.filter(tonight.select(events.is_first_copy()).to_series().fill_null(True))
    draws = pl.concat([draws_before, tonight.select("account_id", "amount_cents")])
    loan_days = [d for d in zones.curated_dates(root, "installments") if start + dt.timedelta(days=lag) <= d < day]
    earlier = (zones.scan_curated(root, "installments", day, dates=loan_days)
               .select("loan_id", "account_id", "principal_due_cents").collect())
    backing = loans_without_a_draw(schedules, earlier, draws, draws_before)
    # One earlier fault (a draw lost upstream) must not switch the check off for a week: a few unbacked
    # loans are tolerated; a book whose loans are not draws has most of them unbacked.
    if (backing.evidence < _DRAW_EVIDENCE_MIN_LOANS
            or backing.unbacked_before > _DRAW_EVIDENCE_SLACK * backing.evidence):
        return False
    if backing.unbacked.is_empty():
        return True
    # A loan whose draw of its account is there in another unit (10x, 100x, ...) is a unit error in one of
    # the two datasets, not a schedule sent again: say so, with both amounts.
    scaled = loans_off_their_draw(backing.unbacked, draws)
    if not scaled.is_empty():
        sample = _sample(scaled, lambda r: f"{r['loan_id']} {_cny(r['principal_cents'])} CNY against a draw of "
                                           f"{_cny(r['amount_cents'])} CNY ({r['factor']}x)")
        raise _refusal(
            root, "installments", day, "principal_due",
            f"{scaled.height:,} loan(s) differ from a cash draw of their account by a power of ten ({sample}): money "
            "in another unit in installments or behaviour would multiply or shrink what these customers owe",
            hint=f"check which of installments and behaviour of dt={day} carries these amounts in another unit; "
                 f"{_SEND_ONE_UNIT}",
        )
    # What the operator needs to tell a re-sent schedule from a draw that is late or net of a fee: the
    # account's draws in the window next to each loan.
    seen = draws.drop_nulls().group_by("account_id").agg(pl.col("amount_cents").sort())
    sample = _sample(backing.unbacked.head(SAMPLE_KEYS).join(seen, on="account_id", how="left"),
                     lambda r: f"{r['loan_id']} ({r['account_id']}, {_cny(r['principal_cents'])} CNY; its draws: "
                               f"{'/'.join(_cny(c) for c in (r['amount_cents'] or [])) or 'none'})")
    tonight = schedules.get_column("loan_id").n_unique()
    raise _refusal(
        root, "installments", day, "loan_id",
        f"{backing.unbacked.height:,} of {tonight:,} loans have no cash draw of their account and amount in "
        f"behaviour dt={day - dt.timedelta(days=lag)}..dt={day} that the {backing.evidence:,} loans curated "
        f"since dt={start + dt.timedelta(days=lag)} have not taken ({sample}): a schedule sent again under "
        "new ids would double what these customers owe (a draw delivered late, or net of a fee, looks the same)",
        hint="ask upstream whether these schedules re-send loans already delivered: if so, have them removed "
             "and rerun ingest for this date; if they are new loans, have their cash_draw events delivered "
             "(behaviour) first; if this book's draws come later than ingest.loan_draw_lag_days or net of fees, "
             "raise it or set it to null (no draw check)",
    )
