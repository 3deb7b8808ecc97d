"""Hardship: eligibility (DPD, prior record, shock signals) and re-amortized schedules to the cent."""

from __future__ import annotations

import calendar
import datetime as dt

from pathlib import Path

import polars as pl
import pytest
import yaml
from pydantic import ValidationError

from pipelines.config.decisions import HardshipConfig, HardshipExplanationConfig
from pipelines.config.settings import ConfigError, load_config
from pipelines.contracts.landing import CONTRACT
from pipelines.domain import hardship
from pipelines.domain.explanations import explain_offers
from pipelines.domain.hardship import (
    OFFER_COLUMNS, HardshipTotalsError, hardship_eligibility, loan_terms, offer_hardship, reamortize,
)
from pipelines.domain.ledger import build_ledger

D = dt.date
CFG = load_config().hardship  # riskline.yaml: the customer texts have no defaults


def add_months(day: dt.date, months: int) -> dt.date:
    y, m = divmod(day.month - 1 + months, 12)
    return D(day.year + y, m + 1, min(day.day, calendar.monthrange(day.year + y, m + 1)[1]))


def loan_rows(loan_id: str, account_id: str, draw: dt.date, principal: int, term: int, rate_bp: int) -> list[tuple]:
    """Equal principal (remainder on the last), interest on the balance before each instalment: as originated."""
    base = principal // term
    rows = []
    for no in range(1, term + 1):
        balance = principal - base * (no - 1)
        part = principal - base * (term - 1) if no == term else base
        rows.append((f"{loan_id}-{no}", loan_id, account_id, no, add_months(draw, no), part,
                     (balance * rate_bp + 5_000) // 10_000, draw))
    return rows


def ledger_of(inst: list[tuple], pays: list[tuple], as_of: dt.date):
    inst_schema = {**CONTRACT["installments"].curated_schema(), "dt": pl.Date()}
    pay_schema = {**CONTRACT["payments"].curated_schema(), "dt": pl.Date()}
    pay_rows = [(p, a, ln, dt.datetime.combine(day, dt.time(2), dt.UTC), amount, day) for p, a, ln, day, amount in pays]
    return build_ledger(pl.LazyFrame(inst, schema=inst_schema, orient="row"),
                        pl.LazyFrame(pay_rows, schema=pay_schema, orient="row"), as_of)


def features_of(rows: list[dict]) -> pl.DataFrame:
    defaults = {"spend_trend_30d": 0.3, "cash_draw_amount_30d_cents": 0, "cash_draw_amount_90d_cents": 0,
                "cash_draw_count_30d": 0}
    return pl.DataFrame([{**defaults, **r} for r in rows],
                        schema_overrides={"dpd": pl.Int32, "spend_trend_30d": pl.Float64,
                                          "cash_draw_count_30d": pl.Int32})


# A 600.00 CNY, 6-month loan drawn Jan 31 2024 at 100 bp a month: principal 100.00 a month, interest
# 6.00, 5.00, ... 1.00; due Feb 29, Mar 31, Apr 30, May 31, Jun 30, Jul 31. The first instalment is paid,
# the second (due Mar 31) is not: on Apr 10 the account is 10 DPD.
AS_OF = D(2024, 4, 10)
LOAN = loan_rows("L1", "A1", D(2024, 1, 31), 60_000, 6, 100)
PAID = [("P1", "A1", "L1", D(2024, 2, 29), LOAN[0][5] + LOAN[0][6])]


def test_loan_terms_derive_rate_and_current_instalment():
    terms = loan_terms(ledger_of(LOAN, PAID, AS_OF).installments, AS_OF).row(0, named=True)
    # interest 2,100 over balances 60,000 + 50,000 + ... + 10,000 = 210,000 -> exactly 100 bp
    assert terms["monthly_rate_bp"] == 100
    # five instalments of 10,000 principal unpaid; the oldest unpaid one is 10,000 + 500 interest
    assert (terms["outstanding_principal_cents"], terms["current_instalment_cents"]) == (50_000, 10_500)
    # Apr 30, May 31, Jun 30, Jul 31 are after D
    assert (terms["future_installments"], terms["end_date"]) == (4, D(2024, 7, 31))


def test_offer_picks_six_months_and_reamortizes_to_the_cent():
    ledger = ledger_of(LOAN, PAID, AS_OF)
    offers = offer_hardship(features_of([{"account_id": "A1", "dpd": 10}]), ledger.installments, AS_OF, CFG)
    assert offers.columns == list(OFFER_COLUMNS)
    offer = offers.row(0, named=True)
    # +3 months: 7 instalments, 50,000 // 7 = 7,142 + 500 interest = 7,642 > 70% x 10,500 = 7,350: too dear.
    # +6 months: 10 instalments of 5,000 + 500 interest = 5,500 <= 7,350: the shortest affordable one.
    assert (offer["extension_months"], offer["new_installment_count"]) == (6, 10)
    assert offer["new_instalment_cents"] == 5_500
    assert offer["new_end_date"] == D(2025, 1, 31)  # Jul 31 + 6 months
    assert offer["schedule_principal_cents"] == offer["outstanding_principal_cents"] == 50_000
    assert (offer["current_instalment_cents"], offer["dpd"], offer["policy_version"]) == (10_500, 10, CFG.version)


def test_three_month_schedule_by_hand_with_remainder_and_month_ends():
    installments = ledger_of(LOAN, PAID, AS_OF).installments
    terms = loan_terms(installments, AS_OF).with_columns(extension_months=pl.lit(3, dtype=pl.Int32))
    future = installments.filter(pl.col("due_date") > AS_OF).select("account_id", "loan_id", "due_date")
    schedule = reamortize(terms, future)
    # 50,000 over 7: six of 7,142 and 7,148 last (7,142 x 6 = 42,852; 50,000 - 42,852 = 7,148).
    # Interest 1% of the balance before, half up: 500, 428.58->429, 357.16->357, 285.74->286, 214.32->214,
    # 142.90->143, 71.48->71. The kept dates stay; Jul 31 + 1, 2, 3 months = Aug 31, Sep 30, Oct 31.
    expected = pl.DataFrame(
        {
            "installment_no": list(range(1, 8)),
            "due_date": [D(2024, 4, 30), D(2024, 5, 31), D(2024, 6, 30), D(2024, 7, 31), D(2024, 8, 31),
                         D(2024, 9, 30), D(2024, 10, 31)],
            "principal_due_cents": [7_142] * 6 + [7_148],
            "interest_due_cents": [500, 429, 357, 286, 214, 143, 71],
        },
        schema_overrides={"installment_no": pl.Int32},
    )
    assert schedule.select(expected.columns).equals(expected)
    assert schedule["principal_due_cents"].sum() == 50_000
    assert (schedule["due_cents"] == schedule["principal_due_cents"] + schedule["interest_due_cents"]).all()


def test_a_loan_with_nothing_left_to_fall_due_is_spread_after_its_end():
    # 300.00 CNY over 3 months at 0%: due Sep 30, Oct 30, Nov 30; the first two paid; Dec 10 is 10 DPD
    rows = loan_rows("L9", "A9", D(2024, 8, 30), 30_000, 3, 0)
    pays = [("P1", "A9", "L9", D(2024, 9, 30), 10_000), ("P2", "A9", "L9", D(2024, 10, 30), 10_000)]
    as_of = D(2024, 12, 10)
    offers = offer_hardship(features_of([{"account_id": "A9", "dpd": 10}]), ledger_of(rows, pays, as_of).installments,
                            as_of, CFG)
    offer = offers.row(0, named=True)
    # 10,000 over 0 + 3 months: 3,333 <= 70% of 10,000 -> +3; rate 0 -> principal only
    assert (offer["monthly_rate_bp"], offer["extension_months"], offer["new_instalment_cents"]) == (0, 3, 3_333)
    # Nov 30 + 3 months = Feb 28 2025 (month-end safe)
    assert offer["new_end_date"] == D(2025, 2, 28)
    assert offer["schedule_principal_cents"] == 10_000


def test_prior_record_window_ends_the_day_before_the_episode():
    # Each account: an older loan paid 3 days late, and a current instalment due Jun 20, unpaid (DPD 10 on
    # Jun 30, episode began Jun 21). The 180 days before: Dec 24 2023 .. Jun 20 2024.
    as_of = D(2024, 6, 30)
    inst, pays = [], []
    for account, late_due in (("DIRTY", D(2023, 12, 21)), ("CLEAN", D(2023, 12, 20))):
        inst.append((f"{account}-old", f"{account}-OLD", account, 1, late_due, 10_000, 0, D(2023, 11, 1)))
        # paid 4 days after its due date: 1+ DPD on due+1 .. due+3
        pays.append((f"{account}-p", account, f"{account}-OLD", late_due + dt.timedelta(days=4), 10_000))
        inst.append((f"{account}-new", f"{account}-NEW", account, 1, D(2024, 6, 20), 10_000, 0, D(2024, 5, 20)))
    ledger = ledger_of(inst, pays, as_of)
    features = features_of([{"account_id": "DIRTY", "dpd": 10}, {"account_id": "CLEAN", "dpd": 10}])
    out = {r["account_id"]: r for r in hardship_eligibility(features, ledger.installments, as_of, CFG).to_dicts()}
    # DIRTY's last late day is Dec 24 2023: inside the window; CLEAN's is Dec 23: one day before it
    assert (out["DIRTY"]["clean_record"], out["DIRTY"]["eligible"]) == (False, False)
    assert (out["CLEAN"]["clean_record"], out["CLEAN"]["eligible"]) == (True, True)


@pytest.mark.parametrize(
    "feature, spend_fell, draws_rose",
    [
        ({"spend_trend_30d": 0.6}, True, False),  # at the threshold
        ({"spend_trend_30d": 0.61}, False, False),
        ({"spend_trend_30d": None}, False, False),  # nothing spent before: no evidence of a fall
        # 200.00 in 30 days vs 100.00 in the 60 before: 6.67/day vs 1.67/day = 4x, two draws
        ({"spend_trend_30d": 1.0, "cash_draw_amount_30d_cents": 20_000, "cash_draw_amount_90d_cents": 30_000,
          "cash_draw_count_30d": 2}, False, True),
        # the same with a single draw: not enough
        ({"spend_trend_30d": 1.0, "cash_draw_amount_30d_cents": 20_000, "cash_draw_amount_90d_cents": 30_000,
          "cash_draw_count_30d": 1}, False, False),
        # 150.00 vs 200.00: 5.00/day vs 3.33/day = exactly 1.5x
        ({"spend_trend_30d": 1.0, "cash_draw_amount_30d_cents": 15_000, "cash_draw_amount_90d_cents": 35_000,
          "cash_draw_count_30d": 3}, False, True),
        # 149.99 vs 200.00: just under 1.5x
        ({"spend_trend_30d": 1.0, "cash_draw_amount_30d_cents": 14_999, "cash_draw_amount_90d_cents": 34_999,
          "cash_draw_count_30d": 3}, False, False),
        # first draws after 60 quiet days
        ({"spend_trend_30d": None, "cash_draw_amount_30d_cents": 5_000, "cash_draw_amount_90d_cents": 5_000,
          "cash_draw_count_30d": 2}, False, True),
    ],
)
def test_shock_signals(feature: dict, spend_fell: bool, draws_rose: bool):
    ledger = ledger_of(LOAN, PAID, AS_OF)
    out = hardship_eligibility(features_of([{"account_id": "A1", "dpd": 10, **feature}]), ledger.installments,
                               AS_OF, CFG).row(0, named=True)
    assert (out["spend_fell"], out["cash_draws_rose"]) == (spend_fell, draws_rose)
    assert out["eligible"] == (spend_fell or draws_rose)  # the record is clean
    both = CFG.model_copy(update={"signals_required": "all"})
    strict = hardship_eligibility(features_of([{"account_id": "A1", "dpd": 10, **feature}]), ledger.installments,
                                  AS_OF, both).row(0, named=True)
    assert strict["eligible"] == (spend_fell and draws_rose)


@pytest.mark.parametrize("dpd, eligible", [(0, None), (1, True), (30, True), (31, None)])
def test_dpd_range(dpd: int, eligible: bool | None):
    as_of = D(2024, 3, 31) + dt.timedelta(days=dpd)  # the unpaid instalment fell due Mar 31
    ledger = ledger_of(LOAN, PAID, as_of)
    assert ledger.accounts["dpd"].to_list() == [dpd]
    out = hardship_eligibility(features_of([{"account_id": "A1", "dpd": dpd}]), ledger.installments, as_of, CFG)
    # outside 1-30 DPD the account is not considered at all
    assert (out.row(0, named=True)["eligible"] if out.height else None) == eligible


def test_no_offer_without_eligibility():
    ledger = ledger_of(LOAN, PAID, AS_OF)
    features = features_of([{"account_id": "A1", "dpd": 10, "spend_trend_30d": 1.2}])
    assert offer_hardship(features, ledger.installments, AS_OF, CFG).height == 0


@pytest.mark.parametrize(
    "override, fragment",
    [
        ({"min_dpd": 10, "max_dpd": 5}, "min_dpd must not be above"),
        ({"extension_months": [6, 3]}, "strictly ascending"),
        ({"extension_months": [3, 36]}, "1..24"),
        ({"spend_trend_max": None, "cash_draw_trend_min": None}, "at least one shock signal"),
        ({"signals_required": "most"}, "signals_required"),
    ],
)
def test_hardship_config_rejects(override: dict, fragment: str):
    with pytest.raises(ValidationError, match=fragment):
        HardshipConfig.model_validate({**CFG.model_dump(), **override})


def test_a_held_account_gets_no_offer_while_its_payment_waits():
    # A1 is eligible (the test above), but a payment that may be its own waits in quarantine: its DPD may be
    # the missing payment, and an offer would re-amortize the loan on it. The hold lifts the offer only.
    ledger = ledger_of(LOAN, PAID, AS_OF)
    features = features_of([{"account_id": "A1", "dpd": 10}])
    held = pl.DataFrame({"account_id": ["A1"]})
    assert offer_hardship(features, ledger.installments, AS_OF, CFG, held).height == 0
    others = pl.DataFrame({"account_id": ["A2"]})
    assert offer_hardship(features, ledger.installments, AS_OF, CFG, others).equals(
        offer_hardship(features, ledger.installments, AS_OF, CFG))


# --- what an offer costs (issue 20) ----------------------------------------------------------------


def test_offer_states_both_totals_to_the_cent():
    offer = offer_hardship(features_of([{"account_id": "A1", "dpd": 10}]), ledger_of(LOAN, PAID, AS_OF).installments,
                           AS_OF, CFG).row(0, named=True)
    # Current plan: principal 100.00 x 5 unpaid; interest 5.00 (due Mar 31, unpaid) + 4 + 3 + 2 + 1 = 15.00.
    assert (offer["current_total_repayable_cents"], offer["current_total_interest_cents"]) == (51_500, 1_500)
    # Interest already due and unpaid: the Mar 31 instalment's 5.00; it is not capitalized.
    assert offer["interest_arrears_cents"] == 500
    # Proposed (+6, the test above): 10 x 50.00 principal, 1% of 500.00, 450.00, ... 50.00 = 50 x 55 = 27.50,
    # plus the 5.00 arrears -> interest 32.50, total 500.00 + 32.50 = 532.50: 17.50 more than 515.00.
    assert (offer["proposed_total_repayable_cents"], offer["proposed_total_interest_cents"]) == (53_250, 3_250)


def test_a_partial_payment_leaves_only_the_unpaid_interest_as_arrears():
    # 3.00 paid on Apr 5 towards the Mar 31 instalment: interest first, so 2.00 of its 5.00 interest stays owed
    pays = [*PAID, ("P2", "A1", "L1", D(2024, 4, 5), 300)]
    offer = offer_hardship(features_of([{"account_id": "A1", "dpd": 10}]), ledger_of(LOAN, pays, AS_OF).installments,
                           AS_OF, CFG).row(0, named=True)
    assert (offer["outstanding_principal_cents"], offer["interest_arrears_cents"]) == (50_000, 200)
    assert (offer["current_total_repayable_cents"], offer["current_total_interest_cents"]) == (51_200, 1_200)
    # the same schedule as without the payment (27.50 interest) plus 2.00 arrears
    assert (offer["proposed_total_repayable_cents"], offer["proposed_total_interest_cents"]) == (52_950, 2_950)


def test_interest_of_an_instalment_due_today_is_arrears_not_lost():
    # Apr 30: the Apr 30 instalment falls due today, unpaid (in the overdue amount, DPD 0 for it); Mar 31's is
    # 30 days past due. Both are folded into the principal re-amortized, so both their interest stays owed:
    # 5.00 + 4.00. The instalments not yet due: May 31, Jun 30, Jul 31.
    as_of = D(2024, 4, 30)
    offer = offer_hardship(features_of([{"account_id": "A1", "dpd": 30}]), ledger_of(LOAN, PAID, as_of).installments,
                           as_of, CFG).row(0, named=True)
    assert (offer["interest_arrears_cents"], offer["current_total_interest_cents"]) == (900, 1_500)
    # +3: 50,000 // 6 + 500 = 8,833 > 7,350; +6: 9 instalments, 5,555 + 500 = 6,055: affordable. Principal 5,555
    # x 8 + 5,560; interest 1% half up of 500.00, 444.45, 388.90, 333.35, 277.80, 222.25, 166.70, 111.15, 55.60 =
    # 5.00 + 4.44 + 3.89 + 3.33 + 2.78 + 2.22 + 1.67 + 1.11 + 0.56 = 25.00; + 9.00 arrears = 34.00.
    assert (offer["extension_months"], offer["new_installment_count"]) == (6, 9)
    assert (offer["proposed_total_interest_cents"], offer["proposed_total_repayable_cents"]) == (3_400, 53_400)


def _offer_and_schedule(loan: list[tuple], pays: list[tuple]) -> tuple[dict, pl.DataFrame]:
    """A1's offer for a second loan (A1 is eligible through L1), and that loan's new schedule."""
    installments = ledger_of(LOAN + loan, [*PAID, *pays], AS_OF).installments
    offers = offer_hardship(features_of([{"account_id": "A1", "dpd": 10}]), installments, AS_OF, CFG)
    offer = offers.filter(pl.col("loan_id") == loan[0][1]).row(0, named=True)
    terms = loan_terms(installments, AS_OF).filter(pl.col("loan_id") == loan[0][1]).with_columns(
        extension_months=pl.lit(offer["extension_months"], dtype=pl.Int32))
    future = installments.filter(pl.col("due_date") > AS_OF).select("account_id", "loan_id", "due_date")
    return offer, reamortize(terms, future)


def test_interest_paid_ahead_on_a_future_instalment_is_credited():
    # A1's second loan, current: 300.00 over 3 months at 1% drawn Feb 10 (interest 3, 2, 1), overpaid on Mar 10
    # by 1.50 into the May 10 instalment: interest first, so its 1.00 interest and 0.50 principal are paid ahead.
    second = loan_rows("L2", "A1", D(2024, 2, 10), 30_000, 3, 100)
    offer, schedule = _offer_and_schedule(second, [("P3", "A1", "L2", D(2024, 3, 10), 10_300 + 10_200 + 150)])
    # The principal paid ahead is already out: 300.00 - 100.00 - 100.00 - 0.50 = 99.50. No interest left, none
    # in arrears.
    assert (offer["outstanding_principal_cents"], offer["current_total_repayable_cents"],
            offer["current_total_interest_cents"], offer["interest_arrears_cents"]) == (9_950, 9_950, 0, 0)
    # 99.50 over 1 + 3 months: 24.87 x 3 + 24.89; 1% of 99.50, 74.63, 49.76, 24.89 half up = 1.00, 0.75, 0.50,
    # 0.25. The kept May 10 instalment charges its 1.00 again: the 1.00 paid ahead covers it, once.
    assert offer["extension_months"] == 3
    assert schedule["interest_charged_cents"].to_list() == [100, 75, 50, 25]
    assert schedule["interest_credit_cents"].to_list() == [100, 0, 0, 0]
    assert schedule["due_cents"].to_list() == [2_487, 2_487 + 75, 2_487 + 50, 2_489 + 25]
    # Still to pay: 99.50 + 1.50 interest. The instalment told is the regular one as charged (24.87 + 1.00).
    assert (offer["proposed_total_repayable_cents"], offer["proposed_total_interest_cents"]) == (10_100, 150)
    assert offer["new_instalment_cents"] == 2_587


def test_interest_paid_ahead_beyond_the_first_instalment_carries_over():
    # A1's third loan, current: 600.00 over 6 months at 1% drawn Feb 10 (interest 6, 5, 4, 3, 2, 1; due Mar 10
    # .. Aug 10). On Mar 10 the customer pays Mar, Apr and May in full and 3.50 more: Jun's 3.00 interest and
    # 0.50 principal. Paid ahead (due after Apr 10): May's 4.00 + Jun's 3.00 = 7.00 of interest.
    third = loan_rows("L3", "A1", D(2024, 2, 10), 60_000, 6, 100)
    offer, schedule = _offer_and_schedule(third, [("P4", "A1", "L3", D(2024, 3, 10), 10_600 + 10_500 + 10_400 + 350)])
    # 600.00 - 300.00 - 0.50 = 299.50 principal; Jul's 2.00 and Aug's 1.00 interest left.
    assert (offer["outstanding_principal_cents"], offer["current_total_interest_cents"],
            offer["current_total_repayable_cents"], offer["interest_arrears_cents"]) == (29_950, 300, 30_250, 0)
    # +3 (42.78 + 3.00 = 45.78 <= 70% of Jun's 103.00): 299.50 over 4 + 3: 42.78 x 6 + 42.82; 1% half up of
    # 299.50, 256.72, 213.94, 171.16, 128.38, 85.60, 42.82 = 3.00, 2.57, 2.14, 1.71, 1.28, 0.86, 0.43 (11.99).
    assert (offer["extension_months"], offer["new_installment_count"]) == (3, 7)
    assert schedule["interest_charged_cents"].to_list() == [300, 257, 214, 171, 128, 86, 43]
    # 7.00 credit: 3.00 on the first, 2.57 on the second, the 1.43 left on the third (2.14 -> 0.71)
    assert schedule["interest_credit_cents"].to_list() == [300, 257, 143, 0, 0, 0, 0]
    assert schedule["interest_due_cents"].to_list() == [0, 0, 71, 171, 128, 86, 43]
    # Still to pay: 299.50 + 4.99. Difference 1.99 = 11.99 charged - the 10.00 of May..Aug as scheduled.
    assert (offer["proposed_total_repayable_cents"], offer["proposed_total_interest_cents"]) == (30_449, 499)
    assert offer["proposed_total_repayable_cents"] == schedule["due_cents"].sum()
    row = explain_offers(pl.DataFrame([offer]).select(OFFER_COLUMNS), pl.DataFrame({"account_id": ["A1"]}),
                         CFG.explanations, "en").row(0, named=True)
    assert "you would repay 304.49 CNY in total instead of 302.50 CNY, 1.99 CNY more interest" in row["explanation"]


def test_interest_paid_ahead_beyond_the_whole_schedule_leaves_no_interest_to_pay():
    # 300.00 over 3 months at 1% drawn Mar 20 (due Apr 20, May 20, Jun 20: all after Apr 10), 290.00 of the
    # principal and all 6.00 of the interest paid on Mar 25.
    fourth = loan_rows("L4", "A1", D(2024, 3, 20), 30_000, 3, 100)
    offer, schedule = _offer_and_schedule(fourth, [("P5", "A1", "L4", D(2024, 3, 25), 10_300 + 10_200 + 100 + 9_000)])
    assert (offer["outstanding_principal_cents"], offer["current_total_repayable_cents"]) == (1_000, 1_000)
    # 10.00 over 3 + 3: 1.66 x 5 + 1.70; 1% of 10.00, 8.34, 6.68, 5.02, 3.36, 1.70 = 0.10, 0.08, 0.07, 0.05, 0.03,
    # 0.02: all 0.35 covered by the 6.00 paid ahead; the rest is not principal, the plan repays 10.00 exactly.
    assert schedule["interest_charged_cents"].to_list() == [10, 8, 7, 5, 3, 2]
    assert schedule["interest_credit_cents"].to_list() == [10, 8, 7, 5, 3, 2]
    assert schedule["due_cents"].to_list() == [166] * 5 + [170]
    assert (offer["proposed_total_repayable_cents"], offer["proposed_total_interest_cents"]) == (1_000, 0)


@pytest.mark.parametrize(
    "fault",
    [
        # an instalment one cent dearer than its principal + interest
        {"due_cents": pl.col("due_cents") + 1},
        # a cent of credit the customer never paid ahead (L1 has nothing paid ahead), consistently applied
        {"interest_credit_cents": pl.col("interest_credit_cents") + 1,
         "interest_due_cents": pl.col("interest_due_cents") - 1, "due_cents": pl.col("due_cents") - 1},
    ],
)
def test_totals_that_do_not_reconcile_are_refused(monkeypatch: pytest.MonkeyPatch, fault: dict):
    # A schedule whose instalments do not add up, or that credits what was not paid, must not be published with
    # totals computed from its parts.
    real = hardship.reamortize

    def faulty(terms: pl.DataFrame, future: pl.DataFrame) -> pl.DataFrame:
        out = real(terms, future)
        return out.with_columns(**{col: pl.when(pl.col("installment_no") == 2).then(expr).otherwise(pl.col(col))
                                   for col, expr in fault.items()})

    monkeypatch.setattr(hardship, "reamortize", faulty)
    with pytest.raises(HardshipTotalsError, match="L1"):
        offer_hardship(features_of([{"account_id": "A1", "dpd": 10}]), ledger_of(LOAN, PAID, AS_OF).installments,
                       AS_OF, CFG)


# The committed texts filled by hand with the offer above (instalment 105.00 -> 55.00, Jul 31 2024 -> Jan 31 2025,
# 515.00 -> 532.50, 17.50 more interest).
EN = ("We can spread what you still owe on this loan over 6 more months. Your instalment would fall from 105.00 CNY "
      "to 55.00 CNY, and the last one would be due on January 31, 2025 instead of July 31, 2024. The longer term "
      "costs more interest: you would repay 532.50 CNY in total instead of 515.00 CNY, 17.50 CNY more interest.")
ZH = ("我们可以将您这笔借款的剩余欠款延长6个月分期偿还：每期还款额由105.00元降至55.00元，最后一期还款日由2024年7月31日延至"
      "2025年1月31日。期限延长会产生更多利息：您总计需还款532.50元，原计划为515.00元，多付利息17.50元。")


def _explained(language: str | None, default_language: str = "zh", with_column: bool = True) -> dict:
    offers = offer_hardship(features_of([{"account_id": "A1", "dpd": 10}]), ledger_of(LOAN, PAID, AS_OF).installments,
                            AS_OF, CFG)
    accounts = pl.DataFrame({"account_id": ["A1"], "language": [language]}, schema={"account_id": pl.String,
                                                                                     "language": pl.String})
    if not with_column:
        accounts = accounts.drop("language")
    out = explain_offers(offers, accounts, CFG.explanations, default_language)
    assert out.columns == [*OFFER_COLUMNS, "explanation_en", "explanation_zh", "explanation"]
    return out.row(0, named=True)


def test_explanation_states_the_cost_in_both_languages():
    row = _explained("en")
    assert (row["explanation_en"], row["explanation_zh"], row["explanation"]) == (EN, ZH, EN)
    # the Chinese sentence is Chinese throughout: no Latin letters (dates and "CNY" are written in Chinese)
    assert not any("a" <= ch.lower() <= "z" for ch in row["explanation_zh"])


@pytest.mark.parametrize(
    "language, default_language, with_column, expected",
    [
        ("zh", "en", True, ZH),
        ("ZH-cn", "en", True, ZH),  # upstream's casing and region, as the limits read it
        (None, "zh", True, ZH),  # no language for this customer: policy.explanations.default_language
        (None, "en", True, EN),
        ("fr", "en", True, EN),  # a language without texts: the default, never an empty sentence
        ("fr", "zh", True, ZH),
        (None, "en", False, EN),  # the snapshot carries no language column at all
    ],
)
def test_explanation_language_falls_back_to_the_default(language, default_language, with_column, expected):
    assert _explained(language, default_language, with_column)["explanation"] == expected


def test_no_extra_interest_is_not_called_more_interest():
    # The 0% loan above: 100.00 left, +3 months of 33.33/33.33/33.34; nothing more to pay in interest.
    rows = loan_rows("L9", "A9", D(2024, 8, 30), 30_000, 3, 0)
    pays = [("P1", "A9", "L9", D(2024, 9, 30), 10_000), ("P2", "A9", "L9", D(2024, 10, 30), 10_000)]
    as_of = D(2024, 12, 10)
    offers = offer_hardship(features_of([{"account_id": "A9", "dpd": 10}]), ledger_of(rows, pays, as_of).installments,
                            as_of, CFG)
    row = explain_offers(offers, pl.DataFrame({"account_id": ["A9"]}), CFG.explanations, "zh").row(0, named=True)
    assert (row["current_total_repayable_cents"], row["proposed_total_repayable_cents"]) == (10_000, 10_000)
    assert row["explanation_en"].endswith("You would repay 100.00 CNY in total instead of 100.00 CNY, with no "
                                          "extra interest.")
    assert row["explanation"] == row["explanation_zh"] and row["explanation_zh"].endswith(
        "您总计需还款100.00元，原计划为100.00元，不产生额外利息。")
    assert "2024年11月30日延至2025年2月28日" in row["explanation_zh"]


_TEXTS = CFG.explanations.model_dump()


def _with(language: str, key: str, text: str) -> dict:
    templates = {lang: dict(texts) for lang, texts in _TEXTS["templates"].items()}
    templates[language][key] = text
    return {"templates": templates}


@pytest.mark.parametrize(
    "config, fragment",
    [
        (_with("en", "more_interest", "Repay {proposed_totl} CNY"), r"placeholder \{proposed_totl\}"),
        (_with("zh", "more_interest", "需还款{proposed_total:>10}元"), "no format specs"),
        (_with("en", "more_interest", "Repay {proposed_total CNY"), r"templates\.en\.more_interest"),
        (_with("zh", "no_more_interest", " "), r"templates\.zh lacks \['no_more_interest'\]"),
        (_with("en", "cheaper", "x"), "unknown keys"),
        ({"templates": {"en": _TEXTS["templates"]["en"]}}, "exactly the languages"),
    ],
)
def test_hardship_explanation_config_rejects(config: dict, fragment: str):
    with pytest.raises(ValidationError, match=fragment):
        HardshipExplanationConfig.model_validate(config)


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda h: h["explanations"]["templates"]["zh"].update(more_interest="多付利息{extra_intrest}元"),
         "placeholder {extra_intrest}"),
        (lambda h: h.pop("explanations"), "hardship.explanations: Field required"),
    ],
)
def test_a_bad_hardship_text_fails_at_config_load(tmp_path, change, fragment):
    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "riskline.yaml").read_text())
    change(raw["hardship"])
    path = tmp_path / "riskline.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert fragment in str(err.value), str(err.value)
