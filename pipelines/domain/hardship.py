"""Hardship offers: a longer term instead of harder collection for a customer hit by a temporary shock.

Eligibility (:func:`hardship_eligibility`, thresholds under ``hardship:`` in riskline.yaml), per account:

* DPD within ``min_dpd`` .. ``max_dpd`` (1-30);
* a good prior record: no day at 1+ DPD in the ``clean_days_before_episode`` (180) days before this
  episode began. The episode began on D - dpd + 1, the first day the oldest unpaid instalment was past
  due; the ledger's rolling windows end at D and would count the episode itself, so the window is
  computed here from the instalments;
* signs of a temporary shock, from the features of D: spending fell (``spend_trend_30d``, daily spend of
  the last 30 days over that of the 60 before, at or below ``spend_trend_max``) and/or cash draws rose
  (daily cash-draw amount of the last 30 days over that of the 60 before, from ``cash_draw_amount_30d_cents``
  and ``cash_draw_amount_90d_cents``, at or above ``cash_draw_trend_min``, with at least
  ``cash_draw_min_count`` draws in the last 30 days; a first draw after 60 quiet days counts as a rise).

Offer (:func:`offer_hardship`), per open loan of an eligible account with outstanding principal:

* **Re-amortization.** The outstanding principal P (past-due principal included) is spread over
  n = (instalments not yet due) + extension months: each instalment repays ``P // n`` cents and the last
  one also the remainder, so the principal parts sum to P exactly. Interest is charged on the principal
  outstanding before each instalment at the loan's own monthly rate, rounded half up to the cent, as
  the loan was originated. The rate is derived from the loan's schedule: total interest / sum of
  principal outstanding before each instalment, rounded to a whole basis point. Interest already due
  and unpaid is not capitalized: it stays owed as arrears.
* **Dates.** The instalments not yet due keep their due dates; the extension months follow the loan's
  end date, ``new_end_date`` = end date + extension months (month-end safe: Jan 31 + 1 month = Feb 28/29).
* **Which extension.** The shortest of ``extension_months`` (3, 6) whose first new instalment is at most
  ``target_instalment_ratio`` (70%) of the current one; if none is, the longest (the most relief on offer).
* ``new_instalment_cents`` is the first new instalment as charged (principal + interest, before the credit
  below): the largest regular one, as the interest falls with the balance (the last one may be a few cents
  above it by the remainder), and the one the extension is chosen by: the credit is one-off.
* ``current_instalment_cents`` is the loan's oldest unpaid instalment as scheduled (principal + interest).

Credit of what was paid ahead. Payments pay each instalment's interest, then its principal, in order, so
money beyond what is due (a current loan of an eligible account, overpaid) sits on instalments not yet due.
Their principal paid ahead is already out of the outstanding principal (due - paid, summed). Their interest
paid ahead, ``interest_paid_ahead_cents``, is interest of months the new schedule charges again (the kept
instalments): it is credited, so no customer pays the same interest twice. It covers the new schedule's
interest from the first instalment on, each instalment's at most (its interest due never below 0), the rest
carried to the next; the schedule's ``interest_due_cents`` is what is left to pay. Credit beyond the whole
schedule's interest (principal largely paid ahead, so the new schedule charges little) is not turned into
principal: no new interest is left to pay, the plan repays exactly the outstanding principal.

Cost (issue 20: an offer states what it costs), per offered loan, in integer cents, exact:

* **Current plan**: what the customer still owes on the loan as scheduled, over all its instalments (due
  and not yet due): ``current_total_interest_cents`` = sum of (interest due - interest paid);
  ``current_total_repayable_cents`` = outstanding principal + ``current_total_interest_cents``.
* **Interest arrears**: ``interest_arrears_cents`` = the unpaid interest of the instalments due on or before
  D. The re-amortization does not capitalize it: it stays owed under either plan.
* **Proposed plan**: what is still to be paid under it: ``proposed_total_interest_cents`` = the re-amortized
  schedule's interest left to pay (charged - credit) + ``interest_arrears_cents``;
  ``proposed_total_repayable_cents`` = the schedule's principal (the outstanding principal) +
  ``proposed_total_interest_cents``.
* So proposed - current (repayable and interest alike) = the schedule's interest charged - the interest of
  the instalments not yet due as scheduled (the interest paid ahead cancels out, when the schedule's interest
  covers it): the interest the longer term adds (the past-due principal bearing interest again from D on,
  and more months). It is usually positive; it is 0 at a 0% rate, and can be negative only for a schedule
  upstream built otherwise than the loan's derived rate re-creates, or for a credit beyond the schedule's
  interest (then the proposed plan has no interest left to pay).
* Checked before anything is published (:class:`HardshipTotalsError`): the current total equals the sum of
  every instalment's unpaid amount (due - paid), the interest arrears plus the unpaid interest not yet due
  equal the current interest, the credit equals the interest paid ahead or, when less, the schedule's whole
  interest, no instalment's interest left to pay is negative, and the proposed total equals the sum of the
  new schedule's instalments (what is left to pay) plus the interest arrears.

Held: an account a payment waiting in quarantine may belong to (:func:`pipelines.domain.pending_payments.pending_holds`)
gets no offer tonight. Its DPD may be the ledger missing that payment, and an offer re-amortizes the loan
(a longer term, more interest) on that DPD: a consequence of the fault, not of the customer. It is judged
again once the payment is applied or the hold lapses, like its limit and its collections contact.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from pipelines.config.decisions import HardshipConfig
from pipelines.domain.feature_dictionary import BEHAVIOUR_WINDOWS, TREND_PRIOR_DAYS, TREND_RECENT_DAYS
from pipelines.domain.ledger import LOAN_KEY, last_unpaid_day_upto

_BP = 10_000
_CASH_RECENT = f"cash_draw_amount_{TREND_RECENT_DAYS}d_cents"
_CASH_WIDE = f"cash_draw_amount_{TREND_RECENT_DAYS + TREND_PRIOR_DAYS}d_cents"
_CASH_COUNT = f"cash_draw_count_{TREND_RECENT_DAYS}d"
if TREND_RECENT_DAYS + TREND_PRIOR_DAYS not in BEHAVIOUR_WINDOWS:  # the prior window is the wide one minus the recent
    raise RuntimeError(f"the feature set lacks {_CASH_WIDE}: the cash-draw trend cannot be computed")

OFFER_COLUMNS: tuple[str, ...] = (
    "account_id", "loan_id", "dpd", "outstanding_principal_cents", "current_instalment_cents", "monthly_rate_bp",
    "extension_months", "new_installment_count", "new_instalment_cents", "end_date", "new_end_date",
    "schedule_principal_cents", "policy_version", "current_total_repayable_cents", "current_total_interest_cents",
    "proposed_total_repayable_cents", "proposed_total_interest_cents", "interest_arrears_cents",
)
COST_COLUMNS: list[str] = [
    "current_total_repayable_cents", "current_total_interest_cents", "proposed_total_repayable_cents",
    "proposed_total_interest_cents", "interest_arrears_cents",
]


class HardshipScheduleError(AssertionError):
    """A re-amortized schedule does not repay exactly the outstanding principal (a bug, never published)."""


class HardshipTotalsError(HardshipScheduleError):
    """An offer's stated totals do not reconcile with the instalments they sum (a bug, never published)."""


def _past_due_between(lo: pl.Expr, hi: pl.Expr, as_of: dt.date) -> pl.Expr:
    """Per instalment: was it at 1+ DPD on any day lo..hi (per-row bounds; empty when lo > hi)?

    1+ DPD on day t means due_date + 1 <= t < paid_off_date (and t <= D: nothing later is known).
    """
    first = pl.max_horizontal(lo, pl.col("due_date") + pl.duration(days=1))
    return first <= pl.min_horizontal(hi, last_unpaid_day_upto(as_of))


def hardship_eligibility(
    features: pl.DataFrame, installments: pl.DataFrame, as_of: dt.date, cfg: HardshipConfig
) -> pl.DataFrame:
    """Per account of the feature snapshot: ``dpd, clean_record, spend_fell, cash_draws_rose, eligible``."""
    as_of_lit = pl.lit(as_of, dtype=pl.Date())
    in_range = features.filter(pl.col("dpd").is_between(cfg.min_dpd, cfg.max_dpd)).select(
        "account_id", pl.col("dpd").cast(pl.Int32), "spend_trend_30d", _CASH_RECENT, _CASH_WIDE, _CASH_COUNT
    )
    episode_start = as_of_lit - pl.duration(days=pl.col("dpd") - 1)
    dirty = (
        installments.join(in_range.select("account_id", "dpd"), on="account_id", how="inner")
        .filter(
            _past_due_between(
                episode_start - pl.duration(days=cfg.clean_days_before_episode),
                episode_start - pl.duration(days=1),
                as_of,
            )
        )
        .select("account_id")
        .unique()
        .with_columns(pl.lit(True).alias("_dirty"))
    )
    recent = pl.col(_CASH_RECENT).fill_null(0)
    prior = pl.col(_CASH_WIDE).fill_null(0) - recent
    signals: list[pl.Expr] = []
    spend_fell = pl.lit(False)
    if cfg.spend_trend_max is not None:
        spend_fell = (pl.col("spend_trend_30d") <= cfg.spend_trend_max).fill_null(False)
        signals.append(pl.col("spend_fell"))
    draws_rose = pl.lit(False)
    if cfg.cash_draw_trend_min is not None:
        # recent/30 >= ratio x prior/60 in integer cents: recent x 60 x 10000 >= ratio_bp x prior x 30
        draws_rose = (
            (recent * TREND_PRIOR_DAYS * _BP >= round(cfg.cash_draw_trend_min * _BP) * prior * TREND_RECENT_DAYS)
            & (recent > 0)
            & (pl.col(_CASH_COUNT).fill_null(0) >= cfg.cash_draw_min_count)
        )
        signals.append(pl.col("cash_draws_rose"))
    shock = pl.any_horizontal(signals) if cfg.signals_required == "any" else pl.all_horizontal(signals)
    return (
        in_range.join(dirty, on="account_id", how="left")
        .with_columns(
            clean_record=pl.col("_dirty").is_null(),
            spend_fell=spend_fell,
            cash_draws_rose=draws_rose,
        )
        .with_columns(eligible=pl.col("clean_record") & shock)
        .select("account_id", "dpd", "clean_record", "spend_fell", "cash_draws_rose", "eligible")
        .sort("account_id")
    )


def loan_terms(installments: pl.DataFrame, as_of: dt.date) -> pl.DataFrame:
    """Per loan with outstanding principal: what a re-amortization starts from.

    Returns ``account_id, loan_id, outstanding_principal_cents, current_instalment_cents, monthly_rate_bp,
    future_installments, end_date, current_total_interest_cents, interest_arrears_cents,
    interest_paid_ahead_cents, future_interest_cents, unpaid_cents`` (from the eighth on: the module
    docstring's cost and credit; the last two, the unpaid interest of the instalments not yet due and the
    sum of due - paid, for the check).
    """
    unpaid = pl.col("due_cents") - pl.col("paid_cents") > 0
    interest_left = pl.col("interest_due_cents") - pl.col("interest_paid_cents")
    principal_total = pl.col("principal_due_cents").sum().over(LOAN_KEY)
    balance_before = principal_total - (
        pl.col("principal_due_cents").cum_sum().over(LOAN_KEY) - pl.col("principal_due_cents")
    )
    terms = (
        installments.sort(*LOAN_KEY, "installment_no")
        .with_columns(_balance_before=balance_before)
        .group_by(LOAN_KEY)
        .agg(
            (pl.col("principal_due_cents") - pl.col("principal_paid_cents")).sum().alias("outstanding_principal_cents"),
            pl.col("due_cents").filter(unpaid).first().alias("current_instalment_cents"),
            pl.col("interest_due_cents").sum().alias("_interest"),
            pl.col("_balance_before").sum().alias("_balances"),
            (pl.col("due_date") > as_of).sum().cast(pl.Int32).alias("future_installments"),
            pl.col("due_date").max().alias("end_date"),
            interest_left.sum().alias("current_total_interest_cents"),
            interest_left.filter(pl.col("due_date") <= as_of).sum().alias("interest_arrears_cents"),
            pl.col("interest_paid_cents").filter(pl.col("due_date") > as_of).sum().alias("interest_paid_ahead_cents"),
            interest_left.filter(pl.col("due_date") > as_of).sum().alias("future_interest_cents"),
            (pl.col("due_cents") - pl.col("paid_cents")).sum().alias("unpaid_cents"),
        )
    )
    return (
        terms.filter(pl.col("outstanding_principal_cents") > 0)
        .with_columns(
            # round(interest / balances x 10000) half up, in integers
            monthly_rate_bp=pl.when(pl.col("_balances") > 0)
            .then((2 * pl.col("_interest") * _BP + pl.col("_balances")) // (2 * pl.col("_balances")))
            .otherwise(0)
            .cast(pl.Int64)
        )
        .drop("_interest", "_balances")
        .sort(LOAN_KEY)
    )


def _first_instalment(extension: int) -> pl.Expr:
    n = pl.col("future_installments") + extension
    principal = pl.col("outstanding_principal_cents")
    return principal // n + (principal * pl.col("monthly_rate_bp") + _BP // 2) // _BP


def reamortize(terms: pl.DataFrame, future_due_dates: pl.DataFrame) -> pl.DataFrame:
    """The new schedule of each loan: one row per new instalment, what is still to be paid on it.

    Args:
        terms: :func:`loan_terms` rows with an ``extension_months`` column.
        future_due_dates: ``account_id, loan_id, due_date`` of the instalments not yet due (kept).

    Returns:
        ``account_id, loan_id, installment_no, due_date, principal_due_cents, interest_charged_cents,
        interest_credit_cents, interest_due_cents, due_cents`` sorted by loan and instalment: the interest
        the instalment charges, the part of it the interest paid ahead covers (module docstring: from the
        first instalment on, each at most its own interest, the rest carried to the next), what is left to
        pay (charged - credit) and ``due_cents`` = principal + that.
    """
    kept = future_due_dates.sort(*LOAN_KEY, "due_date").with_columns(
        installment_no=pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over(LOAN_KEY)
    )
    added = (
        terms.select(*LOAN_KEY, "future_installments", "end_date", "extension_months")
        .with_columns(month=pl.int_ranges(1, pl.col("extension_months") + 1, dtype=pl.Int32))
        .explode("month")
        .with_columns(
            installment_no=pl.col("future_installments") + pl.col("month"),
            # offset from the end date, month-end safe (Jan 31 + 1mo -> Feb 28/29)
            due_date=pl.col("end_date").dt.offset_by(pl.concat_str(pl.col("month").cast(pl.String), pl.lit("mo"))),
        )
        .select(*LOAN_KEY, "installment_no", "due_date")
    )
    n = pl.col("future_installments") + pl.col("extension_months")
    principal = pl.col("outstanding_principal_cents")
    base = principal // n
    return (
        pl.concat([kept.select(*LOAN_KEY, "installment_no", "due_date"), added])
        .join(terms.select(*LOAN_KEY, "outstanding_principal_cents", "monthly_rate_bp", "future_installments",
                           "extension_months", "interest_paid_ahead_cents"), on=LOAN_KEY, how="inner")
        .with_columns(
            principal_due_cents=pl.when(pl.col("installment_no") == n)
            .then(principal - base * (n - 1))
            .otherwise(base),
            _balance_before=principal - base * (pl.col("installment_no") - 1),
        )
        .with_columns(
            interest_charged_cents=(pl.col("_balance_before") * pl.col("monthly_rate_bp") + _BP // 2) // _BP,
        )
        .sort(*LOAN_KEY, "installment_no")
        .with_columns(
            # the credit left when this instalment comes: paid ahead - the interest of the instalments before it
            _credit_left=pl.col("interest_paid_ahead_cents")
            - (pl.col("interest_charged_cents").cum_sum() - pl.col("interest_charged_cents")).over(LOAN_KEY),
        )
        .with_columns(
            interest_credit_cents=pl.min_horizontal(pl.col("interest_charged_cents"),
                                                    pl.max_horizontal(pl.col("_credit_left"), pl.lit(0))),
        )
        .with_columns(interest_due_cents=pl.col("interest_charged_cents") - pl.col("interest_credit_cents"))
        .with_columns(due_cents=pl.col("principal_due_cents") + pl.col("interest_due_cents"))
        .select(*LOAN_KEY, "installment_no", "due_date", "principal_due_cents", "interest_charged_cents",
                "interest_credit_cents", "interest_due_cents", "due_cents")
    )


def offer_hardship(
    features: pl.DataFrame, installments: pl.DataFrame, as_of: dt.date, cfg: HardshipConfig,
    holds: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Hardship offers of D: one row per open loan of every eligible account (:data:`OFFER_COLUMNS`).

    Args:
        features: :func:`pipelines.domain.features.build_features` of D.
        installments: ``Ledger.installments`` as of D (schedule, what was paid, when it was paid off).
        holds: accounts held for a waiting payment (``account_id``): no offer (module docstring); None: none.

    Raises:
        HardshipScheduleError: a new schedule's principal does not sum to the outstanding principal.
        HardshipTotalsError: an offer's totals do not reconcile with the instalments they sum.
    """
    if holds is not None:
        features = features.join(holds.select("account_id"), on="account_id", how="anti")
    eligible = hardship_eligibility(features, installments, as_of, cfg).filter("eligible")
    terms = loan_terms(installments.join(eligible.select("account_id"), on="account_id", how="semi"), as_of)
    choice = pl.lit(cfg.extension_months[-1])
    for extension in reversed(cfg.extension_months):  # the shortest affordable one wins
        affordable = _first_instalment(extension) * _BP <= round(cfg.target_instalment_ratio * _BP) * pl.col(
            "current_instalment_cents"
        )
        choice = pl.when(affordable).then(pl.lit(extension)).otherwise(choice)
    terms = terms.with_columns(extension_months=choice.cast(pl.Int32))
    future = installments.filter(pl.col("due_date") > as_of).select(*LOAN_KEY, "due_date")
    schedule = reamortize(terms, future)
    per_loan = schedule.group_by(LOAN_KEY).agg(
        pl.col("principal_due_cents").sum().alias("schedule_principal_cents"),
        pl.len().cast(pl.Int32).alias("new_installment_count"),
        # as charged: the regular instalment the customer is told, before the one-off credit of the first ones
        (pl.col("principal_due_cents") + pl.col("interest_charged_cents")).sort_by("installment_no").first()
        .alias("new_instalment_cents"),
        pl.col("due_date").max().alias("_last_due"),
        pl.col("interest_charged_cents").sum().alias("_schedule_charged"),
        pl.col("interest_credit_cents").sum().alias("_schedule_credit"),
        pl.col("interest_due_cents").sum().alias("_schedule_interest"),
        pl.col("due_cents").sum().alias("_schedule_due"),
        (pl.col("interest_due_cents") < 0).any().alias("_negative_interest"),
    )
    offers = (
        terms.join(per_loan, on=LOAN_KEY, how="left")
        .join(eligible.select("account_id", "dpd"), on="account_id", how="left")
        .with_columns(
            new_end_date=pl.col("end_date").dt.offset_by(
                pl.concat_str(pl.col("extension_months").cast(pl.String), pl.lit("mo"))
            ),
            policy_version=pl.lit(cfg.version, dtype=pl.String),
            current_total_repayable_cents=pl.col("outstanding_principal_cents")
            + pl.col("current_total_interest_cents"),
            proposed_total_interest_cents=pl.col("_schedule_interest") + pl.col("interest_arrears_cents"),
        )
        .with_columns(
            proposed_total_repayable_cents=pl.col("schedule_principal_cents")
            + pl.col("proposed_total_interest_cents"),
        )
    )
    wrong = offers.filter(
        (pl.col("schedule_principal_cents") != pl.col("outstanding_principal_cents"))
        | (pl.col("_last_due") != pl.col("new_end_date"))
        | pl.col("schedule_principal_cents").is_null()
    )
    if wrong.height:
        loans = wrong["loan_id"].to_list()[:10]
        raise HardshipScheduleError(f"re-amortized schedules do not repay the principal: {loans}")
    _check_totals(offers)
    return offers.select(OFFER_COLUMNS).sort(LOAN_KEY)


def _check_totals(offers: pl.DataFrame) -> None:
    """Each total, computed from its parts, equals the same money summed another way (module docstring)."""
    unreconciled = offers.filter(
        (pl.col("current_total_repayable_cents") != pl.col("unpaid_cents"))
        | (pl.col("proposed_total_repayable_cents") != pl.col("_schedule_due") + pl.col("interest_arrears_cents"))
        # due on or before D, or after it: every unpaid cent of interest is in exactly one of the two
        | (pl.col("interest_arrears_cents") + pl.col("future_interest_cents") != pl.col("current_total_interest_cents"))
        # the credit: all the interest paid ahead, or all the schedule charges when it is less; never below 0
        | (pl.col("_schedule_credit") != pl.min_horizontal("interest_paid_ahead_cents", "_schedule_charged"))
        | (pl.col("_schedule_interest") != pl.col("_schedule_charged") - pl.col("_schedule_credit"))
        | pl.col("_negative_interest")
        | (pl.min_horizontal(COST_COLUMNS) < 0)
        | pl.any_horizontal(pl.col(COST_COLUMNS).is_null())
    )
    if unreconciled.height:
        loans = unreconciled["loan_id"].to_list()[:10]
        raise HardshipTotalsError(f"hardship offer totals do not reconcile with their instalments: {loans}")
