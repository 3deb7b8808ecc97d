"""Config sections of the decisions: the limit policy, collections, hardship and pending payments.

Loaded as part of :class:`~pipelines.config.settings.RisklineConfig` (``policy``, ``collections``,
``hardship``, ``pending_payments`` in ``riskline.yaml``); split from ``settings.py`` to keep each module
small. The rules themselves live in ``pipelines/domain/`` (policy, collections, hardship).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Literal

from pydantic import Field, model_validator

from pipelines.config.section import Section

# The order is the precedence (pipelines/domain/policy.py): the first action whose rule fires wins.
LIMIT_ACTIONS: tuple[str, ...] = ("freeze", "decrease", "unfreeze", "increase", "hold")
# Only amount-changing actions on lines below freeze DPD may be withheld (control) or re-sized
# (challenger); a freeze is a risk control and an unfreeze restores a cured customer, neither is a test.
TESTABLE_ACTIONS: tuple[str, ...] = ("decrease", "increase")
TREATMENTS: tuple[str, ...] = ("auto_reminder", "smart_call", "agent", "hardship_offer", "external_review")
LANGUAGES: tuple[str, ...] = ("en", "zh")
# One template per action, plus the texts of a line whose status says more than its action: a cut or a hold of a
# line that stays frozen must tell the customer that draws remain paused (decrease_frozen, hold_frozen).
EXPLANATION_KEYS: tuple[str, ...] = (
    "freeze", "decrease", "decrease_frozen", "unfreeze", "increase", "hold", "hold_frozen", "hold_payment_pending",
    "hold_grace_period",
)
EXPLANATION_FIELDS: frozenset[str] = frozenset(
    {"previous_limit", "new_limit", "dpd", "overdue_amount", "behaviour", "days_current", "unfreeze_days",
     "freeze_dpd"}
)
EXPLANATION_PHRASES: tuple[str, ...] = (
    "PAST_DUE", "GRADE_DOWNGRADE", "PD_RISE", "GOOD_PAYMENT_HISTORY", "MODEL_FALLBACK"
)


def _grade_table_errors(name: str, table: dict[str, float], grades: tuple[str, ...], top: float) -> list[str]:
    """Problems of a per-grade factor/step table: unknown grades, values outside (0, top], and order.

    A worse grade must never get a gentler cut (a larger factor) or a larger increase step.
    """
    unknown = sorted(set(table) - set(grades))
    if unknown:
        return [f"{name} names unknown grades {unknown} (grades are {list(grades)})"]
    bad = {g: v for g, v in table.items() if not 0 < v <= top}
    if bad:
        return [f"{name} values must be in (0, {top:g}], got {bad}"]
    ordered = [(g, table[g]) for g in grades if g in table]
    for (g1, v1), (g2, v2) in zip(ordered, ordered[1:], strict=False):
        if v2 > v1:
            return [f"{name} is out of order: grade {g2} ({v2:g}) is worse than {g1} but gets more ({v1:g})"]
    return []


MAX_INCOME_MULTIPLE = 100.0  # policy.increase.income_multiple: above it the cap caps nothing a product allows
MAX_LIMIT_STEP_CNY = 1_000_000  # policy.limit_step_cny: ingest's plausible credit line maximum (money_max_cny)


def limit_step_error(step_cny: int, min_limit_cny: int, max_limit_cny: int) -> str | None:
    """Why ``policy.limit_step_cny`` cannot work with the product's bounds (None: it can): it must be no larger
    than ``product.max_limit_cny`` and some multiple of it must lie within the bounds, or the decide step fails."""
    if step_cny > max_limit_cny:
        return (f"policy.limit_step_cny: {step_cny} is larger than product.max_limit_cny ({max_limit_cny}); "
                f"allowed: 1..{max_limit_cny} with a multiple within the product's limits")
    if max_limit_cny // step_cny * step_cny < min_limit_cny:
        return (f"policy.limit_step_cny: no multiple of {step_cny} CNY lies within the product's limits "
                f"{min_limit_cny}..{max_limit_cny} CNY")
    return None


class FreezeRule(Section):
    min_dpd: int = Field(30, ge=1)


class DecreaseRule(Section):
    min_dpd: int = Field(1, ge=1)  # DPD min_dpd .. freeze.min_dpd - 1
    from_grade: str = "D"  # a fall to this grade or worse
    pd_rise_margin: float = Field(0.05, gt=0, lt=1)  # absolute PD rise since the previous run
    factor_by_grade: dict[str, float] = {"A": 0.9, "B": 0.85, "C": 0.8, "D": 0.7, "E": 0.5}
    min_days_between_decreases: int = Field(30, ge=0)


class UnfreezeRule(Section):
    min_days_current: int = Field(30, ge=1)
    max_grade: str = "C"


class IncreaseRule(Section):
    max_grade: str = "B"
    min_months_on_book: int = Field(6, ge=0)
    clean_days: int = Field(180, ge=1)  # no DPD in this many days
    min_utilization: float = Field(0.30, ge=0, le=1)
    min_days_since_change: int = Field(90, ge=0)
    step_by_grade: dict[str, float] = {"A": 0.30, "B": 0.20}
    # cap: this x monthly declared income; null: none. Finite and bounded: an infinite or astronomic cap overflows
    # the decide step's integer cents instead of meaning "no cap" (that is null)
    income_multiple: float | None = Field(2.0, gt=0, le=MAX_INCOME_MULTIPLE, allow_inf_nan=False)


class ChallengerParams(Section):
    """What the challenger cell changes: per-grade overrides of the champion's factors and steps."""

    decrease_factor_by_grade: dict[str, float] = {"A": 0.95, "B": 0.9, "C": 0.85, "D": 0.75, "E": 0.6}
    increase_step_by_grade: dict[str, float] = {"A": 0.2, "B": 0.1}


class StrategyTest(Section):
    control_share: float = Field(0.05, ge=0, le=0.5)
    challenger_share: float = Field(0.05, ge=0, le=0.5)
    testable_actions: tuple[str, ...] = TESTABLE_ACTIONS
    challenger: ChallengerParams = ChallengerParams()

    @model_validator(mode="after")
    def _testable(self) -> StrategyTest:
        for action in self.testable_actions:
            if action not in LIMIT_ACTIONS:
                raise ValueError(f"unknown action {action!r} in testable_actions; actions are {list(LIMIT_ACTIONS)}")
            if action not in TESTABLE_ACTIONS:
                raise ValueError(
                    f"action {action!r} cannot be tested (only {list(TESTABLE_ACTIONS)}): a freeze is a risk "
                    "control and an unfreeze restores a cured customer"
                )
        return self


def _check_placeholders(where: str, text: str, fields: frozenset[str]) -> None:
    """Refuse a customer template that cannot be rendered: a placeholder outside ``fields``, a format spec
    (the renderers format money and dates themselves), or broken braces. ``where`` names it in the error."""
    try:
        parsed = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    for name, spec, conv in parsed:
        if name not in fields or spec or conv:
            raise ValueError(f"{where}: placeholder {{{name}}} is not one of {sorted(fields)} (no format specs)")


def _check_text_table(
    where: str, by_language: dict[str, dict[str, str]], keys: Sequence[str], fields: frozenset[str] | None
) -> None:
    """Refuse a table of customer texts (language -> key -> text) that is not complete: exactly the languages,
    exactly ``keys`` each non-blank, and (``fields`` given) only placeholders the renderer fills."""
    if sorted(by_language) != sorted(LANGUAGES):
        raise ValueError(f"{where} must have exactly the languages {list(LANGUAGES)}")
    for language, texts in by_language.items():
        unknown = sorted(set(texts) - set(keys))
        if unknown:
            raise ValueError(f"{where}.{language}: unknown keys {unknown}; known: {list(keys)}")
        missing = [k for k in keys if not texts.get(k, "").strip()]
        if missing:
            raise ValueError(f"{where}.{language} lacks {missing}")
        for key, text in texts.items():
            if fields is not None:
                _check_placeholders(f"{where}.{language}.{key}", text, fields)


class ExplanationConfig(Section):
    """Customer-facing sentences: templates per language and action, phrases per policy code.

    The texts have no defaults here: ``riskline.yaml`` (``policy.explanations``) is their one source, and a
    config file without them fails to load, naming the missing key.
    """

    default_language: Literal["en", "zh"] = "zh"  # when the accounts snapshot carries no language
    templates: dict[str, dict[str, str]]
    phrases: dict[str, dict[str, str]]

    @model_validator(mode="after")
    def _complete(self) -> ExplanationConfig:
        _check_text_table("explanations.templates", self.templates, EXPLANATION_KEYS, EXPLANATION_FIELDS)
        _check_text_table("explanations.phrases", self.phrases, EXPLANATION_PHRASES, None)
        return self


class PolicyConfig(Section):
    """The limit policy (pipelines/domain/policy.py). ``version`` is stamped on every decision and seeds test cells."""

    version: str = Field("limits-2026.11.1", min_length=1)
    grades: tuple[str, ...] = ("A", "B", "C", "D", "E")  # best to worst, as the model definition labels them
    # every changed line is rounded down to a multiple of this; within the product's bounds (RisklineConfig checks
    # limit_step_error against product:, the what-if's candidate too), and below an absolute bound here
    limit_step_cny: int = Field(50, gt=0, le=MAX_LIMIT_STEP_CNY)
    freeze: FreezeRule = FreezeRule()
    decrease: DecreaseRule = DecreaseRule()
    unfreeze: UnfreezeRule = UnfreezeRule()
    increase: IncreaseRule = IncreaseRule()
    strategy_test: StrategyTest = StrategyTest()
    explanations: ExplanationConfig  # no default: the customer texts live in riskline.yaml alone

    def grade_rank(self, grade: str, where: str) -> int:
        if grade not in self.grades:
            raise ValueError(f"policy.{where}: unknown grade {grade!r}; grades are {list(self.grades)}")
        return self.grades.index(grade)

    @model_validator(mode="after")
    def _consistent(self) -> PolicyConfig:
        if not self.grades or len(set(self.grades)) != len(self.grades):
            raise ValueError("policy.grades must be distinct and not empty")
        inc = self.grade_rank(self.increase.max_grade, "increase.max_grade")
        unf = self.grade_rank(self.unfreeze.max_grade, "unfreeze.max_grade")
        dec = self.grade_rank(self.decrease.from_grade, "decrease.from_grade")
        if not inc <= unf < dec:
            raise ValueError(
                "policy grade cut-offs are out of order: want increase.max_grade "
                f"({self.increase.max_grade}) <= unfreeze.max_grade ({self.unfreeze.max_grade}) < "
                f"decrease.from_grade ({self.decrease.from_grade}) in the order {list(self.grades)}"
            )
        if self.decrease.min_dpd >= self.freeze.min_dpd:
            raise ValueError("policy.decrease.min_dpd must be below policy.freeze.min_dpd")
        challenger = self.strategy_test.challenger
        factors = self.decrease.factor_by_grade
        steps = self.increase.step_by_grade
        problems = (
            _grade_table_errors("policy.decrease.factor_by_grade", factors, self.grades, 1.0)
            + _grade_table_errors("policy.increase.step_by_grade", steps, self.grades, 1.0)
            + _grade_table_errors("policy.strategy_test.challenger.decrease_factor_by_grade",
                                  {**factors, **challenger.decrease_factor_by_grade}, self.grades, 1.0)
            + _grade_table_errors("policy.strategy_test.challenger.increase_step_by_grade",
                                  {**steps, **challenger.increase_step_by_grade}, self.grades, 1.0)
        )
        if problems:
            raise ValueError(problems[0])
        missing = [g for g in self.grades if g not in factors]
        if missing:
            raise ValueError(f"policy.decrease.factor_by_grade lacks grades {missing}")
        eligible = list(self.grades[: inc + 1])
        if sorted(steps) != sorted(eligible) or not set(challenger.increase_step_by_grade) <= set(eligible):
            raise ValueError(
                "policy.increase.step_by_grade must name exactly the grades up to increase.max_grade "
                f"{eligible} (the challenger's a subset), got {sorted(steps)} and "
                f"{sorted(challenger.increase_step_by_grade)}"
            )
        if self.strategy_test.control_share + self.strategy_test.challenger_share > 1:
            raise ValueError("policy.strategy_test shares must sum to at most 1")
        return self


class CollectionBucket(Section):
    name: str = Field(min_length=1)
    min_dpd: int = Field(ge=0)  # the bucket runs to the next bucket's min_dpd - 1
    treatment: str


class CollectionsConfig(Section):
    """The collections queue (pipelines/domain/collections.py)."""

    version: str = Field("collections-2026.11.1", min_length=1)
    lgd: float = Field(0.85, gt=0, le=1)  # expected loss = pd x outstanding balance x lgd
    unscored_pd: float = Field(1.0, ge=0, le=1)  # PD used for ranking an account without a score
    agent_daily_capacity: int = Field(2000, ge=0)
    overflow_treatment: str = "smart_call"
    buckets: tuple[CollectionBucket, ...] = (
        CollectionBucket(name="1-7", min_dpd=1, treatment="auto_reminder"),
        CollectionBucket(name="8-30", min_dpd=8, treatment="smart_call"),
        CollectionBucket(name="31-60", min_dpd=31, treatment="agent"),
        CollectionBucket(name="61-90", min_dpd=61, treatment="agent"),
        CollectionBucket(name="90+", min_dpd=91, treatment="external_review"),
    )
    channels: dict[str, str] = {
        "auto_reminder": "push_sms", "smart_call": "ivr", "agent": "phone_agent",
        "hardship_offer": "in_app_offer", "external_review": "letter",
    }

    @model_validator(mode="after")
    def _consistent(self) -> CollectionsConfig:
        if not self.buckets or self.buckets[0].min_dpd != 1:
            # The published queue promises dpd >= 1 (see riskline.yaml): DPD 0 is the due date itself.
            raise ValueError("collections.buckets must start at min_dpd 1 so every account 1+ DPD has a bucket")
        bounds = [b.min_dpd for b in self.buckets]
        if any(b <= a for a, b in zip(bounds, bounds[1:], strict=False)):
            raise ValueError(f"collections.buckets must have strictly ascending min_dpd, got {bounds}")
        if len({b.name for b in self.buckets}) != len(self.buckets):
            raise ValueError("collections.buckets names must be distinct")
        for treatment in [b.treatment for b in self.buckets] + [self.overflow_treatment]:
            if treatment not in TREATMENTS:
                raise ValueError(f"collections: unknown treatment {treatment!r}; treatments are {list(TREATMENTS)}")
        if self.overflow_treatment == "agent":
            raise ValueError("collections.overflow_treatment cannot be agent: it takes the agent queue's overflow")
        if sorted(self.channels) != sorted(TREATMENTS):
            raise ValueError(f"collections.channels must name a channel for exactly {list(TREATMENTS)}")
        return self


class PendingPaymentsConfig(Section):
    """Payments held in quarantine (pipelines/domain/pending_payments.py)."""

    # A waiting payment holds its accounts' freezes, cuts and collections contacts for this many days after
    # its business date; then the hold lapses (the payment stays reported until upstream redelivers it).
    max_hold_days: int = Field(30, ge=0)
    # The product's grace period after a due date (Jiebei and Huabei give three days), which is also how late a
    # payment made on its due date may reach us (bank settlement, a delivery a day late): an account whose
    # arrears all fell due within it (DPD <= grace_days) is not known to be unpaid yet, so its freezes, cuts,
    # collections contacts and hardship offers are held (code GRACE_PERIOD). 0 switches the grace off.
    grace_days: int = Field(3, ge=0, le=29)


# The texts of a hardship offer (pipelines/domain/explanations.py: explain_offers): the longer term costs
# more interest, or (a loan at 0%, a schedule upstream built otherwise) it does not; one template each, so
# no customer is told of extra interest that is not there.
HARDSHIP_EXPLANATION_KEYS: tuple[str, ...] = ("more_interest", "no_more_interest")
HARDSHIP_EXPLANATION_FIELDS: frozenset[str] = frozenset(
    {"outstanding_principal", "current_instalment", "new_instalment", "extension_months", "installment_count",
     "end_date", "new_end_date", "current_total", "proposed_total", "current_interest", "proposed_interest",
     "extra_interest", "interest_arrears"}
)


class HardshipExplanationConfig(Section):
    """The customer's sentences of a hardship offer, per language and :data:`HARDSHIP_EXPLANATION_KEYS`.

    No defaults: ``riskline.yaml`` (``hardship.explanations``) is their one source. The customer's language
    falls back to ``policy.explanations.default_language``, the one default for every customer text.
    """

    templates: dict[str, dict[str, str]]

    @model_validator(mode="after")
    def _complete(self) -> HardshipExplanationConfig:
        _check_text_table("hardship.explanations.templates", self.templates, HARDSHIP_EXPLANATION_KEYS,
                          HARDSHIP_EXPLANATION_FIELDS)
        return self


class HardshipConfig(Section):
    """Hardship offers (pipelines/domain/hardship.py)."""

    version: str = Field("hardship-2026.11.1", min_length=1)
    min_dpd: int = Field(1, ge=1)
    max_dpd: int = Field(30, ge=1)
    clean_days_before_episode: int = Field(180, ge=0)  # no DPD in this many days before the episode began
    # Shock signals (need one, or all with signals_required: all); null switches a signal off.
    spend_trend_max: float | None = Field(0.6, gt=0)  # spend_trend_30d at or below: spending fell
    cash_draw_trend_min: float | None = Field(1.5, gt=0)  # recent / prior daily cash-draw amount at or above
    cash_draw_min_count: int = Field(2, ge=1)  # ... with at least this many draws in the recent window
    signals_required: Literal["any", "all"] = "any"
    extension_months: tuple[int, ...] = (3, 6)
    target_instalment_ratio: float = Field(0.7, gt=0, le=1)
    explanations: HardshipExplanationConfig  # no default: the customer texts live in riskline.yaml alone

    @model_validator(mode="after")
    def _consistent(self) -> HardshipConfig:
        if self.min_dpd > self.max_dpd:
            raise ValueError("hardship.min_dpd must not be above hardship.max_dpd")
        ext = self.extension_months
        if not ext or any(b <= a for a, b in zip(ext, ext[1:], strict=False)) or not all(1 <= m <= 24 for m in ext):
            raise ValueError(f"hardship.extension_months must be strictly ascending months in 1..24, got {list(ext)}")
        if self.spend_trend_max is None and self.cash_draw_trend_min is None:
            raise ValueError("hardship needs at least one shock signal (spend_trend_max or cash_draw_trend_min)")
        return self


