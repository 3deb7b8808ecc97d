"""Payments held in quarantine: which resolve (the ledger applies them), which wait and whom they hold."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from pipelines.contracts.landing import CONTRACT
from pipelines.domain.ledger import build_ledger
from pipelines.domain.reconcile import reconcile_ledger
from pipelines.domain.pending_payments import (
    PendingPayments,
    combine_holds,
    grace_accounts,
    pending_holds,
    resolve_pending_payments,
    unapplied_credit_holds,
)

D = dt.date
AS_OF = D(2024, 3, 10)
YESTERDAY = AS_OF - dt.timedelta(days=1)
SCHEMA = {**CONTRACT["payments"].curated_schema(), "dt": pl.Date(), "quarantine_reason": pl.String()}
SNAPSHOT = pl.Series(["A", "C", "E", "F", "G"], dtype=pl.String)  # B is not in tonight's snapshot
LOANS = pl.DataFrame({"loan_id": ["LA", "LB", "LC", "LD", "LE", "LG"], "account_id": ["A", "B", "C", "D", "E", "G"]})
CURATED_IDS = pl.Series(["PX"], dtype=pl.String)


def quarantined(rows: list[tuple]) -> pl.DataFrame:
    """rows: (payment_id, account_id, loan_id, business_date, amount_cents, reason); paid 02:00 UTC."""
    return pl.DataFrame(
        [(p, a, loan, dt.datetime.combine(day, dt.time(2), dt.UTC), cents, day, reason)
         for p, a, loan, day, cents, reason in rows],
        schema=SCHEMA, orient="row",
    )


ROWS = [
    # only a reference was missing, and it resolves tonight (A is in the snapshot, LA is A's loan): applied
    ("P1", "A", "LA", YESTERDAY, 10_000, "unknown_account"),
    ("P2", "A", "LA", YESTERDAY, 500, "unknown_account;unknown_loan"),
    # B is still not in the snapshot: waits, holds B
    ("P3", "B", "LB", YESTERDAY, 2_000, "unknown_account"),
    # the same payment quarantined again a day later: one payment (its first delivery)
    ("P3", "B", "LB", AS_OF, 2_000, "unknown_account"),
    # a loan nobody delivered: waits, holds its payer
    ("P4", "E", "L-NONE", AS_OF, 300, "unknown_loan"),
    # a padded account id: cannot be applied as is, holds the customer it names (and its loan's owner)
    ("P5", " C ", "LC", AS_OF, 700, "unknown_account"),
    # no account at all: its loan says whose money it is
    ("P6", None, "LD", AS_OF, 800, "null_account_id"),
    # a defect of the payment itself: never applied automatically, holds the account
    ("P7", "A", "LA", AS_OF, -5, "non_positive_amount"),
    ("P8", "F", "LG", AS_OF, 900, "unknown_loan"),  # F pays G's loan: either customer's money, both held
    ("PX", "A", "LA", YESTERDAY, 1_000, "unknown_account"),  # redelivered and curated since: superseded
    ("P9", "A", "LA", AS_OF + dt.timedelta(days=1), 50, "unknown_account"),  # after D: not known yet
    ("P10", "G", "LG", AS_OF - dt.timedelta(days=40), 60, "paid_at_outside_business_day"),  # hold lapsed
    # blank ids identify nothing: two different payments, never de-duplicated into one
    ("", "H", "LH", AS_OF, 111, "invalid_payment_id"),
    ("", "J", "LJ", AS_OF, 222, "invalid_payment_id"),
    # one id on two different payments (both otherwise resolvable): ambiguous, neither is applied
    ("P11", "A", "LA", YESTERDAY, 70, "unknown_account"),
    ("P11", "A", "LA", AS_OF, 80, "unknown_account"),
]


def resolve(rows: list[tuple] = ROWS) -> PendingPayments:
    return resolve_pending_payments(quarantined(rows), AS_OF, curated_ids=CURATED_IDS, snapshot_ids=SNAPSHOT,
                                    loans=LOANS)


def test_resolved_waiting_and_superseded_payments():
    pending = resolve()
    assert pending.resolved["payment_id"].to_list() == ["P1", "P2"]
    assert pending.resolved.columns == [c for c in SCHEMA if c != "quarantine_reason"]
    assert sorted(pending.waiting["payment_id"].drop_nulls()) == ["", "", "P10", "P11", "P11", "P3", "P4", "P5",
                                                                  "P6", "P7", "P8"]
    assert pending.waiting.filter(pl.col("payment_id") == "P3")["paid_on"].to_list() == [YESTERDAY]


def test_waiting_payments_hold_every_account_they_may_belong_to():
    holds = pending_holds(resolve().waiting, AS_OF, max_hold_days=30)
    got = {r["account_id"]: (r["pending_payments"], r["pending_cents"], r["pending_since"]) for r in holds.to_dicts()}
    assert got == {
        "A": (3, 150, YESTERDAY),  # P7 (-5: no money, counts 0) and the two P11 (P1, P2 are applied)
        "B": (1, 2_000, YESTERDAY),  # P3 once
        "C": (1, 700, AS_OF),  # " C " trimmed, and C owns LC: one payment
        "D": (1, 800, AS_OF),  # P6 through its loan
        "E": (1, 300, AS_OF),
        "F": (1, 900, AS_OF),
        "G": (1, 900, AS_OF),  # P8 via its loan; P10 is 40 days old, past max_hold_days
        "H": (1, 111, AS_OF),
        "J": (1, 222, AS_OF),
    }


@pytest.mark.parametrize("days, held", [(39, False), (40, True)])
def test_a_hold_lapses_after_max_hold_days(days: int, held: bool):
    holds = pending_holds(resolve([r for r in ROWS if r[0] == "P10"]).waiting, AS_OF, max_hold_days=days)
    assert ("G" in set(holds["account_id"])) is held


def test_the_ledger_applies_resolved_payments_from_their_own_date_and_reports_the_rest():
    schema = {**CONTRACT["installments"].curated_schema(), "dt": pl.Date()}
    inst = pl.LazyFrame([("LA-1", "LA", "A", 1, YESTERDAY, 10_000, 500, D(2024, 2, 1))], schema=schema, orient="row")
    curated = pl.LazyFrame(schema={**CONTRACT["payments"].curated_schema(), "dt": pl.Date()})
    pending = resolve()
    ledger = build_ledger(inst, pl.concat([curated, pending.resolved.lazy()]), AS_OF)
    # P1 + P2 pay the instalment due yesterday, on yesterday: never past due
    row = ledger.installments.row(0, named=True)
    assert (row["paid_off_date"], ledger.loans["dpd"].item()) == (YESTERDAY, 0)
    rec = reconcile_ledger(ledger, curated, pending)
    # money received: positive amounts only (P7's -5 is a defective row, not money that lowers the total)
    waiting = int(pending.waiting["amount_cents"].filter(pending.waiting["amount_cents"] > 0).sum())
    assert waiting == int(pending.waiting["amount_cents"].sum()) + 5
    assert (rec.payments, rec.received_cents, rec.resolved_payments, rec.resolved_cents) == (2, 10_500, 2, 10_500)
    assert (rec.waiting_payments, rec.waiting_cents) == (pending.waiting.height, waiting)
    assert (rec.upstream_payments, rec.upstream_cents) == (2 + pending.waiting.height, 10_500 + waiting)
    # a resolved payment the ledger did not apply is caught
    with pytest.raises(AssertionError, match="missing from the ledger: P2"):
        reconcile_ledger(build_ledger(inst, pending.resolved.head(1).lazy(), AS_OF), curated, pending)


@pytest.mark.parametrize("paid, max_hold_days, held", [
    (5_500, 0, True), (9_000, 0, True),  # covers the arrears: held however old
    (5_499, 30, True), (5_499, 3, False),  # part of them: held for max_hold_days after the payment (4 days ago)
])
def test_credit_that_covers_the_arrears_holds_the_account(paid: int, max_hold_days: int, held: bool):
    """A's payment for its open loan LB was sent against LA, repaid last month: the ledger keeps it as credit
    on A while LB's instalment (5,000 + 500 interest, due 3 days ago) is overdue. The customer paid what is
    overdue, so A is held; credit short of the arrears holds A for max_hold_days after it was paid."""
    schema = {**CONTRACT["installments"].curated_schema(), "dt": pl.Date()}
    inst = pl.LazyFrame([
        ("LA-1", "LA", "A", 1, D(2024, 2, 10), 10_000, 0, D(2024, 1, 10)),
        ("LB-1", "LB", "A", 1, AS_OF - dt.timedelta(days=3), 5_000, 500, D(2024, 2, 7)),
        ("LC-1", "LC", "C", 1, AS_OF - dt.timedelta(days=3), 5_000, 500, D(2024, 2, 7)),  # C: overdue, no credit
    ], schema=schema, orient="row")
    pay_schema = {**CONTRACT["payments"].curated_schema(), "dt": pl.Date()}
    at = dt.datetime.combine(D(2024, 2, 9), dt.time(2), dt.UTC)
    late = dt.datetime.combine(AS_OF - dt.timedelta(days=4), dt.time(2), dt.UTC)
    payments = pl.LazyFrame([
        ("PA", "A", "LA", at, 10_000, D(2024, 2, 9)),
        ("PB", "A", "LA", late, paid, AS_OF - dt.timedelta(days=4)),  # meant for LB
    ], schema=pay_schema, orient="row")
    ledger = build_ledger(inst, payments, AS_OF)
    unallocated = ledger.payments.filter(pl.col("unallocated_cents") > 0)
    account = ledger.accounts.filter(pl.col("account_id") == "A").row(0, named=True)
    assert (account["overdue_cents"], account["credit_balance_cents"]) == (5_500, paid)
    holds = unapplied_credit_holds(unallocated, ledger.accounts, AS_OF, max_hold_days)
    assert holds.to_dicts() == ([{"account_id": "A", "pending_payments": 1, "pending_cents": paid,
                                  "pending_since": AS_OF - dt.timedelta(days=4)}] if held else [])
    # with a waiting payment of the same account: one row, both counted
    waiting = pending_holds(resolve([r for r in ROWS if r[0] == "P7"]).waiting, AS_OF, max_hold_days=30)
    both = combine_holds(waiting, holds)
    assert both["account_id"].is_unique().all()
    assert both.filter(pl.col("account_id") == "A")["pending_payments"].item() == 1 + held


def test_the_night_reads_credit_holds_with_the_waiting_payments(tmp_path, cfg):
    """read_pending_holds, as decide calls it: the ledger partition's waiting payments and its credit."""
    from pipelines.store import zones
    from pipelines.store.readers import read_pending_holds

    ledger = zones.ledger_partition(tmp_path, AS_OF)
    ledger.mkdir(parents=True)
    resolve([r for r in ROWS if r[0] == "P3"]).waiting.write_parquet(ledger / zones.PENDING_PAYMENTS_FILE)
    pl.DataFrame({"payment_id": ["PZ"], "account_id": ["Z"], "loan_id": ["LZ"], "paid_on": [YESTERDAY],
                  "unallocated_cents": [700]}).write_parquet(ledger / "unallocated.parquet")
    pl.DataFrame({"account_id": ["B", "Z"], "overdue_cents": [0, 700]}).write_parquet(ledger / "accounts.parquet")
    holds = read_pending_holds(tmp_path, AS_OF, cfg)
    assert holds.select("account_id", "pending_cents").rows() == [("B", 2_000), ("Z", 700)]


@pytest.mark.parametrize("due_days_ago, grace_days, in_grace", [
    (0, 3, True),  # unpaid at the close of its due date (DPD 0, overdue)
    (3, 3, True), (4, 3, False),  # DPD 3 is the grace's last day
    (1, 0, False),  # no grace
])
def test_an_account_is_in_grace_while_every_arrear_is_younger_than_the_grace(
    due_days_ago: int, grace_days: int, in_grace: bool
):
    """A's only arrear fell due ``due_days_ago``; B has one as young plus one 10 days old (never in grace);
    C owes nothing overdue."""
    schema = {**CONTRACT["installments"].curated_schema(), "dt": pl.Date()}
    due = AS_OF - dt.timedelta(days=due_days_ago)
    inst = pl.LazyFrame([
        ("LA-1", "LA", "A", 1, due, 5_000, 500, D(2024, 1, 1)),
        ("LB-1", "LB", "B", 1, due, 5_000, 500, D(2024, 1, 1)),
        ("LB2-1", "LB2", "B", 1, AS_OF - dt.timedelta(days=10), 5_000, 500, D(2024, 1, 1)),
        ("LC-1", "LC", "C", 1, AS_OF + dt.timedelta(days=5), 5_000, 500, D(2024, 1, 1)),
    ], schema=schema, orient="row")
    payments = pl.LazyFrame(schema={**CONTRACT["payments"].curated_schema(), "dt": pl.Date()})
    ledger = build_ledger(inst, payments, AS_OF)
    assert grace_accounts(ledger.accounts, grace_days)["account_id"].to_list() == (["A"] if in_grace else [])
