"""Ledger: allocation, reconciliation and DPD on hand-computed books."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from pipelines.contracts.landing import CONTRACT
from pipelines.domain.ledger import (
    OVERPAID,
    UNKNOWN_LOAN,
    Ledger,
    account_worst_dpd,
    build_ledger,
    outstanding_principal_at,
)
from pipelines.domain.reconcile import LedgerReconciliationError, reconcile_ledger

D = dt.date
UTC = dt.timezone.utc
DRAW = D(2024, 1, 1)
# The usual 3-instalment loan: 100.00 CNY principal + 5.00 CNY interest per month.
DUES = (D(2024, 2, 1), D(2024, 3, 1), D(2024, 4, 1))
PRINCIPAL, INTEREST = 10_000, 500
DUE = PRINCIPAL + INTEREST


def installments(rows: list[tuple]) -> pl.LazyFrame:
    """rows: (installment_id, loan_id, account_id, no, due_date, principal_cents, interest_cents, dt)."""
    schema = {**CONTRACT["installments"].curated_schema(), "dt": pl.Date()}
    return pl.LazyFrame(rows, schema=schema, orient="row")


def payments(rows: list[tuple]) -> pl.LazyFrame:
    """rows: (payment_id, account_id, loan_id, business_date, amount_cents); paid 02:00 UTC that day."""
    schema = {**CONTRACT["payments"].curated_schema(), "dt": pl.Date()}
    full = [
        (pid, acc, loan, dt.datetime.combine(day, dt.time(2), UTC) + dt.timedelta(minutes=i), amount, day)
        for i, (pid, acc, loan, day, amount) in enumerate(rows)
    ]
    return pl.LazyFrame(full, schema=schema, orient="row")


def loan(loan_id: str = "L1", account_id: str = "A1", dues=DUES, draw=DRAW,
         principal=PRINCIPAL, interest=INTEREST) -> list[tuple]:
    return [
        (f"{loan_id}-{n}", loan_id, account_id, n, due, principal, interest, draw)
        for n, due in enumerate(dues, start=1)
    ]


def one(frame: pl.DataFrame, **keys: str) -> dict:
    rows = frame.filter(*(pl.col(k) == v for k, v in keys.items())).to_dicts()
    assert len(rows) == 1, rows
    return rows[0]


def ledger_of(inst_rows, pay_rows, as_of: dt.date) -> Ledger:
    return build_ledger(installments(inst_rows), payments(pay_rows), as_of)


# --- allocation ------------------------------------------------------------------------------------


def test_three_instalments_paid_on_time():
    pays = [(f"P{i}", "A1", "L1", due, DUE) for i, due in enumerate(DUES)]
    ledger = ledger_of(loan(), pays, D(2024, 4, 1))
    row = one(ledger.loans, loan_id="L1")
    # every instalment paid on its due date: nothing outstanding, never late
    assert row["outstanding_principal_cents"] == 0
    assert row["overdue_cents"] == 0
    assert (row["dpd"], row["missed_installments"], row["worst_dpd_90d"]) == (0, 0, 0)
    assert (row["remaining_installments"], row["is_open"]) == (0, False)
    assert row["next_installment_no"] is None and row["end_date"] == D(2024, 4, 1)
    paid_off = ledger.installments.sort("installment_no").get_column("paid_off_date").to_list()
    assert paid_off == list(DUES)  # a payment on the due date pays it off that day
    assert ledger.payments.get_column("unallocated_cents").to_list() == [0, 0, 0]
    reconcile_ledger(ledger, payments(pays))


def test_mid_loan_state_after_two_payments():
    pays = [("P1", "A1", "L1", DUES[0], DUE), ("P2", "A1", "L1", DUES[1], DUE)]
    row = one(ledger_of(loan(), pays, D(2024, 3, 15)).loans, loan_id="L1")
    # two of three instalments paid: one principal of 100.00 CNY left, due Apr 1
    assert row["outstanding_principal_cents"] == PRINCIPAL
    assert (row["next_installment_no"], row["next_due_date"]) == (3, D(2024, 4, 1))
    assert row["next_installment_cents"] == row["next_installment_unpaid_cents"] == DUE
    assert (row["remaining_installments"], row["is_open"]) == (1, True)


def test_paid_late_dpd_then_cured():
    pays = [("P1", "A1", "L1", D(2024, 2, 11), DUE)]
    before = one(ledger_of(loan(), pays, D(2024, 2, 10)).accounts, account_id="A1")
    # due Feb 1, unpaid at the close of Feb 10: 9 days past due, one instalment overdue
    assert (before["dpd"], before["overdue_cents"], before["missed_installments"]) == (9, DUE, 1)
    after = one(ledger_of(loan(), pays, D(2024, 2, 11)).accounts, account_id="A1")
    # paid on Feb 11: current again; the worst close in the last 30 days was Feb 10 at 9 DPD
    assert (after["dpd"], after["overdue_cents"], after["worst_dpd_30d"]) == (0, 0, 9)
    assert after["cured_this_month"] is True
    next_month = one(ledger_of(loan(), pays, D(2024, 3, 1)).accounts, account_id="A1")
    # the late days were all in February; instalment 2 is due (unpaid) on Mar 1 but DPD 0 that day
    assert next_month["cured_this_month"] is False
    assert (next_month["dpd"], next_month["overdue_cents"], next_month["missed_installments"]) == (0, DUE, 1)


def test_cured_on_first_day_of_month_counts_last_month_end():
    # due Feb 1, paid Mar 1: 28 DPD at the close of Feb 29, current at the close of Mar 1
    pays = [("P1", "A1", "L1", D(2024, 3, 1), DUE)]
    acc = one(ledger_of(loan(), pays, D(2024, 3, 1)).accounts, account_id="A1")
    assert acc["dpd"] == 0 and acc["cured_this_month"] is True


def test_partial_payment_pays_interest_first_and_carries_over():
    pays = [("P1", "A1", "L1", D(2024, 2, 1), 6_000)]
    ledger = ledger_of(loan(), pays, D(2024, 2, 1))
    first = one(ledger.installments, installment_no=1)
    # 60.00 paid against 105.00: the 5.00 interest first, then 55.00 of principal
    assert (first["interest_paid_cents"], first["principal_paid_cents"]) == (500, 5_500)
    assert first["paid_off_date"] is None
    row = one(ledger.loans, loan_id="L1")
    assert row["outstanding_principal_cents"] == 3 * PRINCIPAL - 5_500
    assert (row["overdue_cents"], row["dpd"]) == (DUE - 6_000, 0)  # due date itself: DPD 0
    assert row["next_installment_unpaid_cents"] == DUE - 6_000
    assert one(ledger_of(loan(), pays, D(2024, 2, 2)).loans, loan_id="L1")["dpd"] == 1

    pays.append(("P2", "A1", "L1", D(2024, 2, 5), 8_000))
    ledger = ledger_of(loan(), pays, D(2024, 2, 5))
    # 80.00 more: 45.00 finishes instalment 1, 35.00 goes to instalment 2 (5.00 interest, 30.00 principal)
    second = one(ledger.installments, installment_no=2)
    assert (second["interest_paid_cents"], second["principal_paid_cents"]) == (500, 3_000)
    assert one(ledger.installments, installment_no=1)["paid_off_date"] == D(2024, 2, 5)
    row = one(ledger.loans, loan_id="L1")
    assert row["outstanding_principal_cents"] == 3 * PRINCIPAL - PRINCIPAL - 3_000
    assert (row["next_installment_no"], row["next_installment_unpaid_cents"]) == (2, DUE - 3_500)
    assert ledger.payments.get_column("allocated_cents").to_list() == [6_000, 8_000]


def test_overpayment_moves_on_then_becomes_credit_balance():
    moved = ledger_of(loan(), [("P1", "A1", "L1", D(2024, 1, 20), 15_000)], D(2024, 1, 20))
    # 150.00 on a 105.00 instalment: 45.00 goes to instalment 2, before it is due
    assert one(moved.installments, installment_no=2)["paid_cents"] == 4_500
    assert one(moved.loans, loan_id="L1")["next_installment_unpaid_cents"] == DUE - 4_500

    pays = [("P1", "A1", "L1", D(2024, 2, 1), 20_000), ("P2", "A1", "L1", D(2024, 2, 2), 20_000)]
    ledger = ledger_of(loan(), pays, D(2024, 2, 2))
    # 400.00 received against 315.00 owed: P2 allocates only the last 115.00, 85.00 is a credit
    p2 = one(ledger.payments, payment_id="P2")
    assert (p2["allocated_cents"], p2["unallocated_cents"], p2["unallocated_reason"]) == (11_500, 8_500, OVERPAID)
    assert one(ledger.payments, payment_id="P1")["unallocated_reason"] is None
    row = one(ledger.loans, loan_id="L1")
    assert (row["outstanding_principal_cents"], row["is_open"], row["unallocated_cents"]) == (0, False, 8_500)
    assert one(ledger.accounts, account_id="A1")["credit_balance_cents"] == 8_500
    rec = reconcile_ledger(ledger, payments(pays))
    assert (rec.received_cents, rec.allocated_cents, rec.overpaid_cents) == (40_000, 31_500, 8_500)


def test_payment_on_unknown_loan_is_unallocated_not_lost():
    pays = [
        ("P1", "A1", "L1", D(2024, 2, 1), DUE),
        ("P2", "A1", "NOPE", D(2024, 2, 1), 1_234),
        ("P3", "A2", "L1", D(2024, 2, 1), 700),  # another account's loan: stays with the payer
        ("P4", "A9", "X", D(2024, 2, 1), 99),  # an account with no loan at all
    ]
    ledger = ledger_of(loan(), pays, D(2024, 2, 1))
    for pid, cents in (("P2", 1_234), ("P3", 700), ("P4", 99)):
        row = one(ledger.payments, payment_id=pid)
        assert (row["allocated_cents"], row["unallocated_cents"], row["unallocated_reason"]) == (0, cents, UNKNOWN_LOAN)
    assert one(ledger.accounts, account_id="A2")["credit_balance_cents"] == 700
    assert one(ledger.accounts, account_id="A9")["loans"] == 0
    rec = reconcile_ledger(ledger, payments(pays))
    assert (rec.received_cents, rec.unknown_loan_cents) == (DUE + 1_234 + 700 + 99, 1_234 + 700 + 99)


def test_a_loan_id_shared_by_two_accounts_keeps_their_schedules_apart():
    # an upstream defect: both accounts call their loan "L1"; each payment must pay its own schedule
    inst = loan(account_id="A1") + loan(account_id="A2", principal=20_000)
    pays = [("P1", "A1", "L1", D(2024, 2, 1), DUE), ("P2", "A2", "L1", D(2024, 2, 1), 20_500)]
    ledger = ledger_of(inst, pays, D(2024, 2, 1))
    assert one(ledger.accounts, account_id="A1")["outstanding_principal_cents"] == 2 * PRINCIPAL
    assert one(ledger.accounts, account_id="A2")["outstanding_principal_cents"] == 2 * 20_000
    assert ledger.payments.get_column("unallocated_cents").to_list() == [0, 0]
    reconcile_ledger(ledger, payments(pays))


def test_payment_before_the_loan_partition_is_unknown_until_it_arrives():
    inst = loan(draw=D(2024, 1, 10))
    pays = [("P1", "A1", "L1", D(2024, 1, 5), 500)]
    early = ledger_of(inst, pays, D(2024, 1, 9))
    assert one(early.payments, payment_id="P1")["unallocated_reason"] == UNKNOWN_LOAN
    later = ledger_of(inst, pays, D(2024, 1, 10))
    assert one(later.payments, payment_id="P1")["allocated_cents"] == 500


# --- DPD convention ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("as_of", "dpd"),
    [
        (D(2024, 1, 30), 0),  # not yet due
        (D(2024, 1, 31), 0),  # the due date itself is DPD 0
        (D(2024, 2, 1), 1),  # the day after, across the month end
        (D(2024, 2, 29), 29),  # leap February: 29 days after Jan 31
        (D(2024, 3, 1), 30),
        (D(2024, 3, 31), 60),
    ],
)
def test_dpd_counts_calendar_days_after_the_due_date(as_of, dpd):
    inst = loan(dues=(D(2024, 1, 31), D(2024, 2, 29), D(2024, 3, 31)))
    acc = one(ledger_of(inst, [], as_of).accounts, account_id="A1")
    assert acc["dpd"] == dpd


def test_overdue_and_missed_count_the_due_date():
    inst = loan(dues=(D(2024, 1, 31), D(2024, 2, 29), D(2024, 3, 31)))
    on_due = one(ledger_of(inst, [], D(2024, 1, 31)).accounts, account_id="A1")
    # unpaid at the close of its due date: overdue and missed, though still DPD 0
    assert (on_due["overdue_cents"], on_due["missed_installments"], on_due["dpd"]) == (DUE, 1, 0)
    mar1 = one(ledger_of(inst, [], D(2024, 3, 1)).accounts, account_id="A1")
    # Jan 31 and Feb 29 both unpaid; DPD follows the oldest one
    assert (mar1["overdue_cents"], mar1["missed_installments"], mar1["dpd"]) == (2 * DUE, 2, 30)


def test_worst_dpd_windows():
    inst = loan(dues=(D(2024, 1, 31), D(2024, 2, 29), D(2024, 3, 31)))
    pays = [("P1", "A1", "L1", D(2024, 3, 5), DUE)]  # instalment 1 paid Mar 5: 33 DPD on Mar 4
    mar10 = one(ledger_of(inst, pays, D(2024, 3, 10)).accounts, account_id="A1")
    # instalment 2 (due Feb 29) is unpaid on Mar 10: DPD 10 now, 33 was the worst close (Mar 4)
    assert (mar10["dpd"], mar10["worst_dpd_30d"]) == (10, 33)
    full = pays + [("P2", "A1", "L1", D(2024, 3, 6), 2 * DUE)]
    apr30 = one(ledger_of(inst, full, D(2024, 4, 30)).accounts, account_id="A1")
    # window of 30 days is Apr 1..Apr 30 (all paid since Mar 6): 0; 90 days reaches back to Feb 1
    assert (apr30["worst_dpd_30d"], apr30["worst_dpd_90d"], apr30["dpd"]) == (0, 33, 0)
    assert account_worst_dpd(ledger_of(inst, full, D(2024, 4, 30)).installments,
                             D(2024, 3, 5), D(2024, 3, 5)).item(0, "worst_dpd") == 5  # instalment 2


def test_outstanding_at_an_earlier_day_matches_a_ledger_built_then():
    inst = loan() + loan("L2", dues=(D(2024, 3, 15), D(2024, 4, 15)), draw=D(2024, 2, 15))
    pays = [("P1", "A1", "L1", D(2024, 2, 1), 6_000), ("P2", "A1", "L2", D(2024, 3, 20), 3_000),
            ("P3", "A1", "L1", D(2024, 3, 25), 9_000)]
    late = ledger_of(inst, pays, D(2024, 4, 20))
    for day in (D(2024, 1, 31), D(2024, 2, 20), D(2024, 3, 20)):
        expected = ledger_of(inst, pays, day).accounts.select("account_id", "outstanding_principal_cents")
        assert_frame_equal(outstanding_principal_at(late, day), expected, check_row_order=False)


def test_rows_after_the_as_of_date_are_ignored():
    inst = loan()
    pays = [("P1", "A1", "L1", D(2024, 2, 1), 6_000)]
    base = ledger_of(inst, pays, D(2024, 2, 10))
    more_inst = inst + loan("L2", draw=D(2024, 2, 11))
    more_pays = pays + [("P2", "A1", "L1", D(2024, 2, 11), 50_000)]
    later = ledger_of(more_inst, more_pays, D(2024, 2, 10))
    for name in ("installments", "payments", "loans", "accounts"):
        assert_frame_equal(getattr(base, name), getattr(later, name))


# --- reconciliation ----------------------------------------------------------------------------------


def test_reconciliation_names_a_payment_missing_from_the_ledger():
    pays = [("P1", "A1", "L1", D(2024, 2, 1), DUE), ("P2", "A1", "L1", D(2024, 3, 1), 10)]
    ledger = ledger_of(loan(), pays, D(2024, 3, 1))
    broken = Ledger(ledger.as_of, ledger.installments, ledger.payments.filter(pl.col("payment_id") != "P2"),
                    ledger.loans, ledger.accounts)
    with pytest.raises(LedgerReconciliationError, match="missing from the ledger: P2"):
        reconcile_ledger(broken, payments(pays))


def test_reconciliation_names_a_misallocated_cent():
    pays = [("P1", "A1", "L1", D(2024, 2, 1), DUE)]
    ledger = ledger_of(loan(), pays, D(2024, 2, 1))
    off_by_one = ledger.payments.with_columns(pl.col("allocated_cents") - 1)
    broken = Ledger(ledger.as_of, ledger.installments, off_by_one, ledger.loans, ledger.accounts)
    with pytest.raises(LedgerReconciliationError, match=r"allocated \+ unallocated != received: P1") as err:
        reconcile_ledger(broken, payments(pays))
    assert "L1" in str(err.value)  # the loan's instalments no longer match its payments either


def test_reconciliation_catches_a_payment_matched_to_the_wrong_loan():
    inst = loan() + loan("L2", account_id="A2")
    pays = [("P1", "A1", "L1", D(2024, 2, 1), DUE), ("P2", "A2", "L2", D(2024, 2, 1), DUE)]
    ledger = ledger_of(inst, pays, D(2024, 2, 1))
    # swap the two payments' internal loan index: totals, amounts and splits all still add up
    swapped = ledger.payments.with_columns(pl.col("loan_idx").reverse())
    broken = Ledger(ledger.as_of, ledger.installments, swapped, ledger.loans, ledger.accounts)
    with pytest.raises(LedgerReconciliationError, match="matched to a loan whose ids differ"):
        reconcile_ledger(broken, payments(pays))


def test_reconciliation_refuses_a_payment_id_received_twice():
    pays = [("P1", "A1", "L1", D(2024, 2, 1), DUE), ("P1", "A1", "L1", D(2024, 2, 2), DUE)]
    ledger = ledger_of(loan(), pays, D(2024, 2, 2))
    with pytest.raises(LedgerReconciliationError) as err:
        reconcile_ledger(ledger, payments(pays))
    # Ingest refuses this now; if a lake still holds one, the error names the dataset, both partitions and
    # what to do (it used to name only the id, and blocked every later night with no way to find the data).
    assert ("payments: payment_id curated on more than one date: P1 (dt=2024-02-01, dt=2024-02-02) -> rerun "
            "`riskline ingest --date 2024-02-02`") in str(err.value)


_amounts = st.integers(min_value=1, max_value=30_000)


@settings(max_examples=40, deadline=None)
@given(
    schedule=st.lists(st.tuples(st.integers(0, 20_000), st.integers(0, 2_000)), min_size=1, max_size=6),
    paid=st.lists(st.tuples(st.integers(0, 120), _amounts, st.sampled_from(["L1", "L1", "L1", "LX"])), max_size=8),
    as_of_offset=st.integers(0, 200),
)
def test_allocation_reconciles_to_the_cent_and_pays_oldest_first(schedule, paid, as_of_offset):
    inst = [
        (f"I{n}", "L1", "A1", n, DRAW + dt.timedelta(days=30 * n), p, i, DRAW)
        for n, (p, i) in enumerate(schedule, start=1)
    ]
    pays = [(f"P{k}", "A1", lid, DRAW + dt.timedelta(days=day), amt) for k, (day, amt, lid) in enumerate(paid)]
    as_of = DRAW + dt.timedelta(days=as_of_offset)
    ledger = ledger_of(inst, pays, as_of)
    rec = reconcile_ledger(ledger, payments(pays))
    received = sum(a for day, a, _ in paid if DRAW + dt.timedelta(days=day) <= as_of)
    assert rec.received_cents == received == rec.allocated_cents + rec.unallocated_cents
    owed = sum(p + i for p, i in schedule)
    to_l1 = sum(a for day, a, lid in paid if lid == "L1" and DRAW + dt.timedelta(days=day) <= as_of)
    assert rec.allocated_cents == min(owed, to_l1)  # nothing allocated beyond what the loan owes
    inst_state = ledger.installments.sort("installment_no")
    paid_cents = inst_state.get_column("paid_cents").to_list()
    due_cents = inst_state.get_column("due_cents").to_list()
    for k in range(1, len(paid_cents)):
        if paid_cents[k] > 0:  # a later instalment only gets money once every earlier one is settled
            assert paid_cents[k - 1] == due_cents[k - 1]
    outstanding = one(ledger.loans, loan_id="L1")["outstanding_principal_cents"]
    assert 0 <= outstanding <= sum(p for p, _ in schedule)


def test_an_instalment_curated_on_two_dates_stops_the_ledger_naming_both():
    # a schedule that got into the lake twice (a range re-ingest stopped between its dates) would double
    # what the customer owes: the proof refuses it and says which partition to re-ingest
    inst = loan() + [row[:-1] + (D(2024, 1, 5),) for row in loan()]
    ledger = ledger_of(inst, [], D(2024, 2, 1))
    with pytest.raises(LedgerReconciliationError) as err:
        reconcile_ledger(ledger, payments([]))
    text = str(err.value)
    assert "installment_id curated on more than one date: L1-1 (dt=2024-01-01, dt=2024-01-05)" in text, text
    assert "riskline ingest --date 2024-01-05" in text, text


def test_an_instalment_copy_anywhere_in_its_loan_stops_the_ledger():
    # a defective schedule numbering every instalment 1: its copy is not next to its original
    first = [row[:3] + (1,) + row[4:] for row in loan()]
    copy = [row[:-1] + (D(2024, 1, 5),) for row in first]
    with pytest.raises(LedgerReconciliationError) as err:
        reconcile_ledger(ledger_of(first + copy, [], D(2024, 2, 1)), payments([]))
    assert all(f"L1-{n} (dt=2024-01-01, dt=2024-01-05)" in str(err.value) for n in (1, 2, 3)), str(err.value)
