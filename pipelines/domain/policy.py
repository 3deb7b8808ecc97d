"""Nightly credit-limit decisions: where a limit is cut, frozen, unfrozen or raised.

:func:`build_policy_input` joins the book of D into one typed row per active or frozen account
(:data:`POLICY_INPUT_SCHEMA`); :func:`decide_limits` turns those rows into exactly one decision each.
Closed accounts get no row. Every threshold is in ``riskline.yaml`` under ``policy:``. The dates of
earlier cuts and raises come from :func:`update_limit_history`, carried from night to night.
An unscored line is never raised; if it is past due it is cut with the worst grade's factor (``NO_SCORE``).

Rules, in precedence order (the first that fires wins; a rule that fires but cannot act is a hold, so a
risk signal never lets a line fall through to an unfreeze or an increase):

1. ``freeze``: DPD >= ``freeze.min_dpd`` (30). No new draws; the limit is kept. Applies to a line that is
   already frozen too (the decision states the line's required state; ``new_status`` says frozen).
2. ``decrease``: risk rose, i.e. DPD in ``decrease.min_dpd`` .. freeze-1 (1-29), or the grade fell to
   ``decrease.from_grade`` or worse from a better previous grade (with no previous grade, on the first run or
   an account's first score, nothing is known to have fallen: cutting thousands of lines on the night the
   system starts would be a policy change nobody decided), or PD rose by
   more than ``decrease.pd_rise_margin`` since the previous run. New limit = max(product floor, limit x
   the grade's factor) rounded down to ``limit_step_cny``, never above the product maximum nor the
   current limit. Only one cut per ``decrease.min_days_between_decreases`` (a 1-29 DPD episode would
   otherwise be cut every night); a cut that cannot lower the line (already at the floor) is a hold.
   Cutting a line only blocks new draws: the outstanding balance stays owed.
   A frozen line is cut by the same rule (e.g. a partial repayment brought its oldest arrears below 30 DPD, or
   its PD jumped) and stays frozen: it is still past due or riskier, the limit is what it reopens to, and holding
   it would treat a line that was 30+ DPD better than an active line at the same DPD. Its customer reads the
   ``decrease_frozen`` text (draws stay paused, and how to lift the pause), not ``decrease``.
3. ``unfreeze``: a frozen line with no DPD for ``unfreeze.min_days_current`` days and a grade of
   ``unfreeze.max_grade`` (C) or better.
4. ``increase``: an active line, grade ``increase.max_grade`` (B) or better, ``min_months_on_book``, no
   DPD in ``clean_days``, utilization >= ``min_utilization``, last limit change >= ``min_days_since_change``
   days ago. New limit = limit x (1 + the grade's step), capped by the product maximum and, when a
   declared income is present, ``income_multiple`` x monthly income; rounded down. If that is not above
   the current limit it is a hold (code ``PRODUCT_MAX`` / ``AFFORDABILITY_CAP``).
5. ``hold`` otherwise.

A payment waiting in quarantine (:mod:`pipelines.domain.pending_payments`: received upstream, not applied yet)
may be this account's, so the ledger may overstate what it owes: while one waits, a freeze or a decrease
becomes a ``hold`` with code ``PAYMENT_PENDING`` and the ``hold_payment_pending`` explanation (the line stays
as it is; an unfreeze or an increase is not withheld, since the missing money can only make the account
look worse than it is). An account whose arrears all fell due within the grace period
(``pending_payments.grace_days``) is held the same way, with code ``GRACE_PERIOD`` and the
``hold_grace_period`` explanation: a payment made on time may still be on its way. Credit on an overdue
account (money applied to no due instalment, e.g. sent against a loan already repaid) holds it the same way
(:func:`~pipelines.domain.pending_payments.unapplied_credit_holds`).

Money is integer cents throughout: factors and steps become basis points and every product is an
integer division, so a limit is never a float of yuan.

Strategy testing: every line is assigned by ``FNV-1a-64("<policy version>:<account_id>") mod 10000``
(:mod:`pipelines.domain.sharding`'s stable hash) to ``control`` (``control_share``), ``challenger``
(``challenger_share``) or ``champion``, whatever its status or DPD (a cell that followed the status moved a line
out of control when upstream sent its status wrong). Only actions listed in
``strategy_test.testable_actions`` (decrease, increase) are affected: a control line keeps its limit
(action ``hold``, code ``TEST_CONTROL``, the champion's would-be action in ``intended_action``); a
challenger line gets the challenger's factors/steps. A freeze is never withheld. The cell is assigned
before the decision, so the cells stay comparable (intention to treat).

Reason codes: policy codes (``DPD_30_PLUS``, ``DPD_1_29``, ``GRADE_DOWNGRADE``, ``PD_RISE``,
``DECREASE_COOLDOWN``, ``AT_FLOOR``, ``LIMIT_FLOOR``, ``CURRENT_FOR_30_DAYS``, ``GOOD_PAYMENT_HISTORY``,
``HIGH_UTILIZATION``, ``PRODUCT_MAX``, ``AFFORDABILITY_CAP``, ``FROZEN``, ``NO_SCORE``, ``TEST_CONTROL``,
``PAYMENT_PENDING``, ``GRACE_PERIOD``, ``NO_TRIGGER``; the DPD ones carry the configured thresholds) followed by the model's ``reason_1..3`` as
``MODEL:<feature>`` (the features that raised PD most; context for every decision).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from pipelines.config.decisions import PolicyConfig
from pipelines.config.settings import ProductConfig
from pipelines.domain.explanations import MODEL_PREFIX, directional_features, explain_limits
from pipelines.domain.ledger import last_unpaid_day_upto
from pipelines.domain.pending_payments import GRACE_PERIOD, PAYMENT_PENDING
from pipelines.domain.sharding import fnv1a_64

DECIDED_STATUSES: tuple[str, ...] = ("active", "frozen")
REASON_COLUMNS: tuple[str, ...] = ("reason_1", "reason_2", "reason_3")
_BP = 10_000  # basis points per unit: factors, steps and shares become integers

POLICY_INPUT_SCHEMA: dict[str, pl.DataType] = {
    # accounts snapshot of D
    "account_id": pl.String(),
    "status": pl.String(),  # active | frozen (other statuses get no decision)
    "credit_limit_cents": pl.Int64(),
    "annual_income_cents": pl.Int64(),  # null: not declared (no affordability cap)
    "opened_on": pl.Date(),
    "language": pl.String(),  # en | zh | null (policy.explanations.default_language)
    # ledger / features of D
    "dpd": pl.Int32(),
    "overdue_cents": pl.Int64(),
    "outstanding_principal_cents": pl.Int64(),
    "days_since_dpd": pl.Int32(),  # days since the last day at 1+ DPD (0 while past due); null: never
    "days_on_book": pl.Int32(),
    "months_on_book": pl.Int32(),
    "utilization": pl.Float64(),  # outstanding principal / limit
    # scores of D and of the previous run
    "pd": pl.Float64(),
    "grade": pl.String(),
    "reason_1": pl.String(),
    "reason_2": pl.String(),
    "reason_3": pl.String(),
    "model_version": pl.String(),
    "previous_pd": pl.Float64(),  # null on the first run or for a newly scored account
    "previous_grade": pl.String(),
    # limit history (from earlier decisions)
    "days_since_limit_change": pl.Int32(),  # any change; null: never (then days_on_book is used)
    "days_since_decrease": pl.Int32(),  # null: never cut
    # payments waiting in quarantine that may be this account's (pipelines.domain.pending_payments); null: none
    "pending_payments": pl.UInt32(),
    # every arrear of the account fell due within the grace period (pending_payments.grace_accounts)
    "in_grace": pl.Boolean(),
}

LIMIT_HISTORY_SCHEMA: dict[str, pl.DataType] = {
    "account_id": pl.String(),
    "last_change_on": pl.Date(),  # the latest increase or decrease
    "last_decrease_on": pl.Date(),
}

DECISION_COLUMNS: tuple[str, ...] = (
    "account_id", "status", "new_status", "previous_limit_cents", "new_limit_cents", "action",
    "intended_action", "reason_codes", "language", "explanation", "explanation_en", "explanation_zh",
    "test_cell", "policy_version", "model_version", "pd", "grade", "dpd",
)


class PolicyInputError(ValueError):
    """The policy input does not match :data:`POLICY_INPUT_SCHEMA` or repeats an account."""


# --- input ------------------------------------------------------------------------------------------


def days_since_dpd(installments: pl.DataFrame, as_of: dt.date) -> pl.DataFrame:
    """Per account with instalments: days since its last day at 1+ DPD (0 while past due; null if never).

    An instalment is at 1+ DPD on day t for ``due_date + 1 <= t < paid_off_date`` (the ledger's
    convention), so its last such day is the day before it was paid off, or D while it is unpaid.
    """
    last_unpaid_day = last_unpaid_day_upto(as_of)
    last_dpd_day = pl.when(last_unpaid_day > pl.col("due_date")).then(last_unpaid_day)
    return installments.group_by("account_id").agg(
        (pl.lit(as_of, dtype=pl.Date()) - last_dpd_day.max()).dt.total_days().cast(pl.Int32).alias("days_since_dpd")
    )


def build_policy_input(
    as_of: dt.date,
    accounts: pl.DataFrame,
    features: pl.DataFrame,
    installments: pl.DataFrame,
    scores: pl.DataFrame,
    previous_scores: pl.DataFrame | None,
    limit_history: pl.DataFrame,
    holds: pl.DataFrame | None = None,
    grace: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per active or frozen account of D in :data:`POLICY_INPUT_SCHEMA`, sorted by account_id.

    Args:
        accounts: the curated accounts snapshot of D (``account_id, status, credit_limit_cents,
            opened_on``; ``annual_income_cents`` and ``language`` when upstream sends them).
        features: :func:`pipelines.domain.features.build_features` of D (``dpd, overdue_cents,
            outstanding_principal_cents, months_on_book, utilization``).
        installments: ``Ledger.installments`` as of D (``due_date, paid_off_date``) for days since DPD.
        scores: the scores of D (``pd, grade, reason_1..3, model_version``).
        previous_scores: the previous run's scores (``pd, grade``); None on the first run.
        limit_history: :data:`LIMIT_HISTORY_SCHEMA`, carried night to night by
            :func:`update_limit_history` (:func:`empty_limit_history` on the first run). Required: without
            it the decrease cooldown cannot work and a 1-29 DPD line would be cut every night.
        holds: :func:`pipelines.domain.pending_payments.pending_holds` of D (``account_id, pending_payments``);
            None: no payment is waiting.
        grace: :func:`pipelines.domain.pending_payments.grace_accounts` of D (``account_id``); None: none.
    """
    as_of_lit = pl.lit(as_of, dtype=pl.Date())
    book = accounts.filter(pl.col("status").is_in(DECIDED_STATUSES))
    if book.get_column("account_id").is_duplicated().any():
        raise PolicyInputError(f"accounts snapshot of {as_of} repeats account ids")
    optional = {"annual_income_cents": pl.Int64(), "language": pl.String()}
    book = book.with_columns(pl.lit(None, dtype=t).alias(c) for c, t in optional.items() if c not in book.columns)
    if previous_scores is None:
        previous_scores = pl.DataFrame(schema={"account_id": pl.String, "pd": pl.Float64, "grade": pl.String})
    if holds is None:
        holds = pl.DataFrame(schema={"account_id": pl.String, "pending_payments": pl.UInt32})
    frame = (
        book.select("account_id", "status", "credit_limit_cents", "annual_income_cents", "opened_on", "language")
        .join(
            features.select("account_id", "dpd", "overdue_cents", "outstanding_principal_cents",
                            "months_on_book", "utilization"),
            on="account_id", how="left",
        )
        .join(days_since_dpd(installments, as_of), on="account_id", how="left")
        .join(scores.select("account_id", "pd", "grade", *REASON_COLUMNS, "model_version"), on="account_id",
              how="left")
        .join(previous_scores.select("account_id", pl.col("pd").alias("previous_pd"),
                                     pl.col("grade").alias("previous_grade")), on="account_id", how="left")
        .join(limit_history.select("account_id", "last_change_on", "last_decrease_on"), on="account_id",
              how="left")
        .join(holds.select("account_id", "pending_payments"), on="account_id", how="left")
        .with_columns(in_grace=pl.col("account_id").is_in(
            (grace["account_id"] if grace is not None else pl.Series(dtype=pl.String)).implode()))
        .with_columns(
            days_on_book=(as_of_lit - pl.col("opened_on")).dt.total_days(),
            days_since_limit_change=(as_of_lit - pl.col("last_change_on")).dt.total_days(),
            days_since_decrease=(as_of_lit - pl.col("last_decrease_on")).dt.total_days(),
            language=pl.col("language").str.to_lowercase().str.slice(0, 2),
        )
    )
    return frame.select(pl.col(c).cast(t) for c, t in POLICY_INPUT_SCHEMA.items()).sort("account_id")


def empty_limit_history() -> pl.DataFrame:
    """The limit history before the first run: no line has been changed by the policy yet."""
    return pl.DataFrame(schema=LIMIT_HISTORY_SCHEMA)


def update_limit_history(history: pl.DataFrame, decisions: pl.DataFrame, as_of: dt.date) -> pl.DataFrame:
    """The limit history after the decisions of D: a line increased or decreased on D records D.

    Per account, so it shards like the decisions; accounts without a decision (closed) keep their row.
    """
    day = pl.lit(as_of, dtype=pl.Date())
    changed = decisions.filter(pl.col("action").is_in(["increase", "decrease"])).select(
        "account_id",
        day.alias("_changed_on"),
        pl.when(pl.col("action") == "decrease").then(day).alias("_decreased_on"),
    )
    return (
        history.join(changed, on="account_id", how="full", coalesce=True)
        .select(
            "account_id",
            pl.coalesce("_changed_on", "last_change_on").alias("last_change_on"),
            pl.coalesce("_decreased_on", "last_decrease_on").alias("last_decrease_on"),
        )
        .cast(LIMIT_HISTORY_SCHEMA)
        .sort("account_id")
    )


# --- decision ---------------------------------------------------------------------------------------


def _bp(value: float) -> int:
    return round(value * _BP)


def _grade_map(table: dict[str, float]) -> pl.Expr:
    """Per row: the grade's value in basis points (null for a grade the table lacks)."""
    return pl.col("grade").replace_strict({g: _bp(v) for g, v in table.items()}, default=None,
                                          return_dtype=pl.Int64)


def assign_test_cells(account_id: pl.Expr, policy: PolicyConfig) -> pl.Expr:
    """``control`` / ``challenger`` / ``champion`` by a stable hash of (policy version, account id)."""
    test = policy.strategy_test
    bucket = (
        pl.concat_str(pl.lit(f"{policy.version}:"), account_id)
        .map_batches(fnv1a_64, return_dtype=pl.UInt64, is_elementwise=True)
        .mod(_BP)
    )
    control = _bp(test.control_share)
    challenger = control + _bp(test.challenger_share)
    return (
        pl.when(bucket < control).then(pl.lit("control"))
        .when(bucket < challenger).then(pl.lit("challenger"))
        .otherwise(pl.lit("champion"))
    )


def _check_input(inputs: pl.DataFrame) -> None:
    missing = [c for c in POLICY_INPUT_SCHEMA if c not in inputs.columns]
    if missing:
        raise PolicyInputError(f"policy input lacks columns {missing}; build it with build_policy_input")
    if inputs.get_column("account_id").is_duplicated().any():
        raise PolicyInputError("policy input repeats account ids: one decision per account")


def decide_limits(inputs: pl.DataFrame, policy: PolicyConfig, product: ProductConfig) -> pl.DataFrame:
    """One limit decision per active or frozen account (rules and precedence: the module docstring).

    Args:
        inputs: rows in :data:`POLICY_INPUT_SCHEMA` (see :func:`build_policy_input`).

    Returns:
        :data:`DECISION_COLUMNS`, sorted by account_id: limits in cents, ``action`` and
        ``intended_action`` (before a control cell's hold), ``reason_codes``, the explanations,
        ``test_cell``, ``policy_version`` and the score columns the decision used.
    """
    _check_input(inputs)
    step = policy.limit_step_cny * 100
    floor_cents = -(-product.min_limit_cny * 100 // step) * step  # the product floor, rounded up to a step
    max_cents = product.max_limit_cny * 100 // step * step
    if floor_cents > max_cents:
        raise ValueError(f"no multiple of {policy.limit_step_cny} CNY lies within the product's limit bounds")
    challenger = policy.strategy_test.challenger
    arms = {
        "champion": (policy.decrease.factor_by_grade, policy.increase.step_by_grade),
        "challenger": ({**policy.decrease.factor_by_grade, **challenger.decrease_factor_by_grade},
                       {**policy.increase.step_by_grade, **challenger.increase_step_by_grade}),
    }
    frame = (
        inputs.lazy()
        .select(*POLICY_INPUT_SCHEMA)
        .filter(pl.col("status").is_in(DECIDED_STATUSES))
        .with_columns(**_triggers(policy))
        .with_columns(on_decrease=~pl.col("t_freeze") & (pl.col("t_dpd") | pl.col("t_grade") | pl.col("t_pd")))
        .with_columns(on_unfreeze=~pl.col("t_freeze") & ~pl.col("on_decrease") & pl.col("t_unfreeze"))
        .with_columns(
            on_increase=~pl.col("t_freeze") & ~pl.col("on_decrease") & ~pl.col("on_unfreeze") & pl.col("t_increase")
        )
    )
    for arm, (factors, steps) in arms.items():
        frame = frame.with_columns(_size_arm(arm, factors, steps, policy, floor_cents, max_cents))
    frame = _apply_test_cells(frame, policy).with_columns(
        new_status=pl.when(pl.col("action") == "freeze").then(pl.lit("frozen"))
        .when(pl.col("action") == "unfreeze").then(pl.lit("active"))
        .otherwise(pl.col("status")),
    )
    frame = frame.with_columns(
        reason_codes=_reason_codes(policy),
        previous_limit_cents=pl.col("credit_limit_cents"),
        policy_version=pl.lit(policy.version, dtype=pl.String),
        dpd=pl.col("dpd").fill_null(0).cast(pl.Int32),
        **_explanation_keys(),
    )
    explained = ("template", "behaviour", "overdue_cents", "days_current")
    pending = [c for c in DECISION_COLUMNS if not c.startswith("explanation")]
    decisions = explain_limits(
        frame.select(*pending, *explained).collect(), policy.explanations, freeze_dpd=policy.freeze.min_dpd,
        unfreeze_days=policy.unfreeze.min_days_current,
    )
    return decisions.select(DECISION_COLUMNS).sort("account_id")


def _triggers(policy: PolicyConfig) -> dict[str, pl.Expr]:
    """Which rules fire, before precedence; plus the cooldown, the affordability cap and the test cell."""
    freeze, dec, unf, inc = policy.freeze, policy.decrease, policy.unfreeze, policy.increase
    rank = {g: i for i, g in enumerate(policy.grades)}
    grade_rank = pl.col("grade").replace_strict(rank, default=None, return_dtype=pl.Int32)
    previous_rank = pl.col("previous_grade").replace_strict(rank, default=None, return_dtype=pl.Int32)
    dpd = pl.col("dpd").fill_null(0)

    def clean_for(days: int) -> pl.Expr:
        return pl.col("days_since_dpd").is_null() | (pl.col("days_since_dpd") >= days)

    return {
        "t_freeze": dpd >= freeze.min_dpd,
        "t_dpd": dpd.is_between(dec.min_dpd, freeze.min_dpd - 1),
        # a fall: worse than last run, or no grade last run
        "t_grade": ((grade_rank >= rank[dec.from_grade]) & (previous_rank.is_not_null() & (grade_rank > previous_rank)))
        .fill_null(False),
        "t_pd": ((pl.col("pd") - pl.col("previous_pd")) > dec.pd_rise_margin).fill_null(False),
        "cooldown": (pl.col("days_since_decrease") < dec.min_days_between_decreases).fill_null(False),
        # a payment of this account may be waiting in quarantine: no freeze or cut until it is applied
        "t_pending": pl.col("pending_payments").fill_null(0) > 0,
        # every arrear is within the grace period: a payment made on time may still be on its way
        "t_grace": pl.col("in_grace").fill_null(False),
        "t_unfreeze": (
            (pl.col("status") == "frozen") & (dpd == 0) & clean_for(unf.min_days_current)
            & (grade_rank <= rank[unf.max_grade])
        ).fill_null(False),
        "t_increase": (
            (pl.col("status") == "active") & (dpd == 0) & (grade_rank <= rank[inc.max_grade])
            & (pl.col("months_on_book") >= inc.min_months_on_book) & clean_for(inc.clean_days)
            & (pl.col("utilization").fill_null(0.0) >= inc.min_utilization)
            & (pl.col("days_since_limit_change").fill_null(pl.col("days_on_book")) >= inc.min_days_since_change)
        ).fill_null(False),
        # in cents; null (no cap) when no income is declared. An income of 0 is none declared: an extract that
        # writes COALESCE(income, 0) must not cap every increase at nothing (review 28R, P3)
        "afford_cap": (
            pl.when(pl.col("annual_income_cents") > 0)
            .then(pl.col("annual_income_cents") * _bp(inc.income_multiple) // (12 * _BP))
            if inc.income_multiple is not None else pl.lit(None, dtype=pl.Int64)
        ),
        # by the account alone, never by its status or DPD: a status sent wrong (review 28, N5: a tenth of the
        # book flagged frozen) moved control lines out of their cell and cut them
        "test_cell": assign_test_cells(pl.col("account_id"), policy),
    }


def _size_arm(
    arm: str, factors: dict[str, float], steps: dict[str, float], policy: PolicyConfig, floor_cents: int,
    max_cents: int,
) -> list[pl.Expr]:
    """``<arm>_action`` and ``<arm>_limit`` with one arm's factors and steps, plus what bound the size."""
    step = policy.limit_step_cny * 100
    limit = pl.col("credit_limit_cents")
    # An unscored line that is past due is cut as the worst grade: no score is no reason for leniency.
    factor = _grade_map(factors).fill_null(_bp(factors[policy.grades[-1]]))
    cut = (limit * factor // _BP) // step * step
    # never below the floor, never above the product maximum, never above the current line
    dec_limit = pl.min_horizontal(limit, pl.lit(max_cents), pl.max_horizontal(pl.lit(floor_cents), cut))
    target = limit * (_BP + _grade_map(steps).fill_null(0)) // _BP
    inc_limit = pl.min_horizontal(target, pl.lit(max_cents), pl.col("afford_cap")) // step * step
    held = pl.col("t_pending") | pl.col("t_grace")
    cuts = pl.col("on_decrease") & ~pl.col("cooldown") & (dec_limit < limit) & ~held
    raises = pl.col("on_increase") & (inc_limit > limit)
    # a held freeze falls through to hold: on_unfreeze and on_increase are off while t_freeze fires
    return [
        pl.when(pl.col("t_freeze") & ~held).then(pl.lit("freeze"))
        .when(cuts).then(pl.lit("decrease"))
        .when(pl.col("on_unfreeze")).then(pl.lit("unfreeze"))
        .when(raises).then(pl.lit("increase"))
        .otherwise(pl.lit("hold"))
        .alias(f"{arm}_action"),
        pl.when(cuts).then(dec_limit).when(raises).then(inc_limit).otherwise(limit).alias(f"{arm}_limit"),
        (dec_limit >= limit).alias(f"{arm}_at_floor"),
        (dec_limit == floor_cents).alias(f"{arm}_floor_bound"),
        (target >= max_cents).alias(f"{arm}_max_bound"),
        (pl.col("afford_cap") < pl.min_horizontal(target, pl.lit(max_cents))).fill_null(False)
        .alias(f"{arm}_afford_bound"),
    ]


def _apply_test_cells(frame: pl.LazyFrame, policy: PolicyConfig) -> pl.LazyFrame:
    """Pick each line's arm; a control line holds where the champion would take a testable action."""
    in_test = pl.col("champion_action").is_in(list(policy.strategy_test.testable_actions))
    challenged = (pl.col("test_cell") == "challenger") & in_test

    def by_arm(name: str) -> pl.Expr:
        return pl.when(challenged).then(pl.col(f"challenger_{name}")).otherwise(pl.col(f"champion_{name}"))

    limit = pl.col("credit_limit_cents")
    return frame.with_columns(
        intended_action=by_arm("action"),
        _intended_limit=by_arm("limit"),
        _at_floor=by_arm("at_floor"),
        _floor_bound=by_arm("floor_bound"),
        _max_bound=by_arm("max_bound"),
        _afford_bound=by_arm("afford_bound"),
        _control_hold=(pl.col("test_cell") == "control") & in_test,
    ).with_columns(
        action=pl.when(pl.col("_control_hold")).then(pl.lit("hold")).otherwise(pl.col("intended_action")),
        new_limit_cents=pl.when(pl.col("_control_hold")).then(limit).otherwise(pl.col("_intended_limit")),
    )


def _reason_codes(policy: PolicyConfig) -> pl.Expr:
    """Policy codes of the path the decision took, then the model's reasons as ``MODEL:<feature>``."""
    freeze, dec, unf = policy.freeze, policy.decrease, policy.unfreeze
    intended = pl.col("intended_action")
    on_dec, on_inc = pl.col("on_decrease"), pl.col("on_increase")
    frozen_hold = (pl.col("status") == "frozen") & (intended == "hold") & ~on_dec
    codes = {
        f"DPD_{freeze.min_dpd}_PLUS": pl.col("t_freeze"),
        f"DPD_{dec.min_dpd}_{freeze.min_dpd - 1}": on_dec & pl.col("t_dpd"),
        "GRADE_DOWNGRADE": on_dec & pl.col("t_grade"),
        "PD_RISE": on_dec & pl.col("t_pd"),
        "DECREASE_COOLDOWN": on_dec & pl.col("cooldown"),
        "AT_FLOOR": on_dec & ~pl.col("cooldown") & pl.col("_at_floor"),
        "LIMIT_FLOOR": (intended == "decrease") & pl.col("_floor_bound"),
        f"CURRENT_FOR_{unf.min_days_current}_DAYS": pl.col("on_unfreeze"),
        "GOOD_PAYMENT_HISTORY": on_inc,
        "HIGH_UTILIZATION": on_inc,
        "PRODUCT_MAX": on_inc & pl.col("_max_bound"),
        "AFFORDABILITY_CAP": on_inc & pl.col("_afford_bound"),
        "FROZEN": frozen_hold,
        "NO_SCORE": pl.col("grade").is_null(),
        "TEST_CONTROL": pl.col("_control_hold"),
        PAYMENT_PENDING: _payment_hold(),
        GRACE_PERIOD: _grace_hold(),
    }
    # Joined as text and split once: list building per code is ~10x slower on a big book (measured).
    policy_codes = pl.concat_str(
        [pl.when(cond.fill_null(False)).then(pl.lit(code)) for code, cond in codes.items()],
        separator=",",
        ignore_nulls=True,
    )
    policy_codes = pl.when(policy_codes == "").then(pl.lit("NO_TRIGGER")).otherwise(policy_codes)
    model_codes = [pl.concat_str(pl.lit(MODEL_PREFIX), pl.col(c)) for c in REASON_COLUMNS]
    return pl.concat_str([policy_codes, *model_codes], separator=",", ignore_nulls=True).str.split(",")


def _payment_hold() -> pl.Expr:
    """A freeze or a cut that fired and was withheld because a payment is waiting."""
    return pl.col("t_pending") & (pl.col("t_freeze") | pl.col("on_decrease"))


def _grace_hold() -> pl.Expr:
    """A freeze or a cut that fired and was withheld because the account's arrears are within the grace period
    (a waiting payment names the hold first: the customer has paid, which says more)."""
    return pl.col("t_grace") & ~pl.col("t_pending") & (pl.col("t_freeze") | pl.col("on_decrease"))


def _explanation_keys() -> dict[str, pl.Expr]:
    """Which template explains the decision and which behaviour it names."""
    action = pl.col("action")
    # the first model reason a customer can be told truthfully (see pipelines.domain.explanations)
    directional = directional_features()
    top_reason = pl.concat_str(
        pl.lit(MODEL_PREFIX),
        pl.coalesce(pl.when(pl.col(c).is_in(directional)).then(pl.col(c)) for c in REASON_COLUMNS),
    )

    def model_or(fallback: str) -> pl.Expr:
        return pl.coalesce(top_reason, pl.lit(fallback))
    return {
        "template": pl.when((action == "hold") & _payment_hold()).then(pl.lit("hold_payment_pending"))
        .when((action == "hold") & _grace_hold()).then(pl.lit("hold_grace_period"))
        .when((action == "hold") & (pl.col("new_status") == "frozen")).then(pl.lit("hold_frozen"))
        # a cut keeps the status: a frozen line cut stays frozen, and the plain decrease text would let the customer
        # believe the lower line can be drawn on
        .when((action == "decrease") & (pl.col("new_status") == "frozen")).then(pl.lit("decrease_frozen"))
        .otherwise(action),
        "behaviour": pl.when(action == "decrease").then(
            pl.when(pl.col("t_dpd")).then(pl.lit("PAST_DUE"))
            .when(pl.col("t_grade")).then(model_or("GRADE_DOWNGRADE"))
            .otherwise(model_or("PD_RISE"))
        )
        .when(action == "increase").then(pl.lit("GOOD_PAYMENT_HISTORY"))
        .otherwise(model_or("MODEL_FALLBACK")),
        "days_current": pl.coalesce("days_since_dpd", "days_on_book"),
    }
