"""The one config file (``riskline.yaml``) loaded into typed, validated objects.

Nothing is read at import time: call :func:`load_config` once at the edge (CLI command, Airflow task)
and pass the result down. Every stage gets its own section model; unknown keys are rejected so a typo
in the YAML fails loudly instead of silently falling back to a default.
"""

from __future__ import annotations

import hashlib
import os
import string
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipelines.config.location import as_location, is_remote
from pipelines.contracts.landing import CONTRACT

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "riskline.yaml"
CONFIG_ENV = "RISKLINE_CONFIG"
DATA_ROOT_ENV = "RISKLINE_DATA_ROOT"


class ConfigError(ValueError):
    """The config file is missing, unreadable or invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsConfig(_Section):
    data_root: str = "./data"


class BusinessConfig(_Section):
    timezone: str = "Asia/Shanghai"
    currency: str = "CNY"

    @model_validator(mode="after")
    def _known_zone(self) -> BusinessConfig:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class ProductConfig(_Section):
    min_limit_cny: int = Field(50, gt=0)
    max_limit_cny: int = Field(50_000, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> ProductConfig:
        if self.min_limit_cny >= self.max_limit_cny:
            raise ValueError("product.min_limit_cny must be below product.max_limit_cny")
        return self


# Plausible absolute amount of each money column, in CNY: far above any real value, far below what a unit
# error (cents sent as yuan) or a sentinel (9999999999) produces. riskline.yaml says the same.
_MONEY_MAX_CNY: dict[str, dict[str, float]] = {
    "accounts": {"credit_limit": 1_000_000, "annual_income": 100_000_000},
    "behaviour": {"amount": 1_000_000},
    "installments": {"principal_due": 1_000_000, "interest_due": 1_000_000},
    "payments": {"amount": 1_000_000},
}


class IngestConfig(_Section):
    business_keys: dict[str, list[str]]
    money_max_cny: dict[str, dict[str, float]] = _MONEY_MAX_CNY
    # A payment reaches us after bank settlement: one paid on an earlier business day may arrive in a later
    # drop. Up to this many days late it is curated and applied as paid on its own day (paid_at); older, it
    # is quarantined as paid_at_before_late_window and its account held (docs/contracts.md: Late payments).
    payment_late_days: int = Field(default=7, ge=0, le=90)
    # Money sent in another unit (cents in a CNY column typed float or decimal(p,0)) multiplies every amount:
    # a money column whose median tonight is this many times above or below its median over the recent
    # curated days stops the ingest (docs/contracts.md: Money units and bounds).
    money_unit_ratio: float = Field(default=20.0, gt=1)
    # A cash draw cannot exceed its line: when more than this share of a drop's loans (five or more with a
    # known line) borrow more than their account's credit limit, the schedule's money is in another unit
    # (jiao read as CNY: 10x, under money_unit_ratio) and the ingest stops. 1 turns the check off.
    max_share_of_loans_over_line: float = Field(default=0.5, gt=0, le=1)
    # ... and any one loan of at least this many times its line stops it too (one writer in jiao, a few rows in
    # another unit): a card statement may run over its line by fees and interest, never double it.
    max_loan_to_line_ratio: float = Field(default=2.0, gt=1)
    # Payments 10x/100x/1000x an instalment of their loan (and equal to none): more than this share of a
    # drop's payments (three or more) is money in another unit in part of the rows, and the ingest stops.
    max_share_of_payments_in_another_unit: float = Field(default=0.01, gt=0, le=1)
    # A line that moved exactly 10x/100x/1000x since the previous snapshot is a unit error (riskline never
    # moves one that far): more than this share of the snapshot's accounts stops the ingest (0: any one).
    max_share_of_lines_in_another_unit: float = Field(default=0.0, ge=0, le=1)
    # A loan is one cash draw: a schedule whose loan no cash_draw event of its account and amount accounts
    # for (within this many days before the schedule's date) is a schedule sent again under new ids, and the
    # ingest stops. Judged only on a book whose recent loans all follow draws (a card book's statements do
    # not: off by itself). None turns the check off (docs/contracts.md: Keys over time).
    loan_draw_lag_days: int | None = Field(default=1, ge=0, le=30)

    @model_validator(mode="after")
    def _keys_name_real_columns(self) -> IngestConfig:
        """A business key names contract columns and includes the dataset's own key.

        De-duplication keeps one row per business key, so a key coarser than the contract's (payments by
        account_id) silently drops real rows; a finer one only lets true duplicates through to the
        critical unique-key check, which is safe.
        """

        for dataset, key in self.business_keys.items():
            where = f"ingest.business_keys.{dataset}"
            if dataset not in CONTRACT:
                raise ValueError(f"{where}: unknown dataset {dataset!r} (datasets: {sorted(CONTRACT)})")
            columns = {c.name for c in CONTRACT[dataset].columns}
            unknown = [c for c in key if c not in columns]
            if unknown:
                raise ValueError(f"{where}: {unknown} not contract columns of {dataset} ({sorted(columns)})")
            if len(set(key)) != len(key):
                raise ValueError(f"{where}: {key} repeats a column")
            missing = [c for c in CONTRACT[dataset].key if c not in key]
            if missing:
                raise ValueError(
                    f"{where}: {key} does not include the contract key {list(CONTRACT[dataset].key)}; a coarser "
                    f"key would de-duplicate distinct {dataset} rows away"
                )
        return self

    @model_validator(mode="after")
    def _bounds_name_money_columns(self) -> IngestConfig:

        merged = {ds: {**_MONEY_MAX_CNY.get(ds, {}), **cols} for ds, cols in self.money_max_cny.items()}
        for dataset, bounds in merged.items():
            where = f"ingest.money_max_cny.{dataset}"
            if dataset not in CONTRACT:
                raise ValueError(f"{where}: unknown dataset {dataset!r} (datasets: {sorted(CONTRACT)})")
            money = {c.name for c in CONTRACT[dataset].columns if c.kind == "money"}
            for column, bound in bounds.items():
                if column not in money:
                    raise ValueError(f"{where}: {column!r} is not a money column ({sorted(money)})")
                if not bound > 0:
                    raise ValueError(f"{where}.{column} must be > 0, got {bound}")
        # a dataset given partly keeps the defaults of the columns it does not name
        object.__setattr__(self, "money_max_cny", {**_MONEY_MAX_CNY, **merged})
        return self


class ModelConfig(_Section):
    """The nightly PD retrain and scoring; what the model *is* lives in the definition file (models/)."""

    definition: str = "models/pd_model.yaml"  # relative paths resolve against the config file's folder
    snapshot_interval_days: int = Field(7, gt=0)
    training_snapshots: int = Field(26, ge=2)  # matured snapshots before the out-of-time one
    early_stopping_snapshots: int = Field(2, ge=1)  # the latest of those, held out for early stopping
    training_sample_rate: float = Field(1.0, gt=0, le=1)  # share of accounts (by id hash) in training
    leakage_auc_ceiling: float = Field(0.98, gt=0.5, le=1)
    reason_code_method: Literal["exact", "approx", "mixed"] = "mixed"
    # local: xgboost on this machine; dask: xgboost.dask on the cluster at dask_scheduler_address
    # (empty: a LocalCluster of dask_local_workers workers started for the run), see pipelines/model/train_dask.py
    train_backend: Literal["local", "dask"] = "local"
    dask_scheduler_address: str = ""
    dask_local_workers: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _split_leaves_training_data(self) -> ModelConfig:
        if self.early_stopping_snapshots >= self.training_snapshots:
            raise ValueError("model.early_stopping_snapshots must be below model.training_snapshots")
        return self


class RunConfig(_Section):
    """How the nightly run spreads its per-account stages (pipelines/stages/shards.py)."""

    shards: int = Field(1, ge=1, le=4096)  # account-hash shards; any count gives the same published outputs
    shard_workers: int = Field(1, ge=1)  # shards run at once by `riskline run` (processes); Airflow maps them


class ScheduleConfig(_Section):
    """How the scheduled run waits for upstream's landing drops (the DAG's sensors, pipelines/entry/airflow.py)."""

    # A drop for business date D may arrive until D+1 00:00 + this many hours (business time); after that the
    # sensor fails at once instead of poking, so a backfill of a date upstream never delivered fails in seconds.
    landing_deadline_hours: int = Field(8, ge=1, le=72)
    # A dataset whose newest landing is more than this many days before D is not being fed for D (a demo lake,
    # a feed stopped for days): the run skips with that reason instead of holding max_active_runs for hours.
    stale_landing_days: int = Field(3, ge=1)


class LabelsConfig(_Section):
    """Default labels for PD training (pipelines/domain/labels.py)."""

    horizon_days: int = Field(90, gt=0)  # bad = reaches bad_dpd within (s+gap_days, s+gap_days+horizon_days]
    bad_dpd: int = Field(30, gt=0)
    gap_days: int = Field(7, ge=0)  # days between a snapshot's features and the start of its outcome window


# --- decisions: limit policy, collections, hardship ---------------------------------------------

# The order is the precedence (pipelines/domain/policy.py): the first action whose rule fires wins.
LIMIT_ACTIONS: tuple[str, ...] = ("freeze", "decrease", "unfreeze", "increase", "hold")
# Only amount-changing actions on lines below freeze DPD may be withheld (control) or re-sized
# (challenger); a freeze is a risk control and an unfreeze restores a cured customer, neither is a test.
TESTABLE_ACTIONS: tuple[str, ...] = ("decrease", "increase")
TREATMENTS: tuple[str, ...] = ("auto_reminder", "smart_call", "agent", "hardship_offer", "external_review")
LANGUAGES: tuple[str, ...] = ("en", "zh")
EXPLANATION_KEYS: tuple[str, ...] = (
    "freeze", "decrease", "unfreeze", "increase", "hold", "hold_frozen", "hold_payment_pending",
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


class FreezeRule(_Section):
    min_dpd: int = Field(30, ge=1)


class DecreaseRule(_Section):
    min_dpd: int = Field(1, ge=1)  # DPD min_dpd .. freeze.min_dpd - 1
    from_grade: str = "D"  # a fall to this grade or worse
    pd_rise_margin: float = Field(0.05, gt=0, lt=1)  # absolute PD rise since the previous run
    factor_by_grade: dict[str, float] = {"A": 0.9, "B": 0.85, "C": 0.8, "D": 0.7, "E": 0.5}
    min_days_between_decreases: int = Field(30, ge=0)


class UnfreezeRule(_Section):
    min_days_current: int = Field(30, ge=1)
    max_grade: str = "C"


class IncreaseRule(_Section):
    max_grade: str = "B"
    min_months_on_book: int = Field(6, ge=0)
    clean_days: int = Field(180, ge=1)  # no DPD in this many days
    min_utilization: float = Field(0.30, ge=0, le=1)
    min_days_since_change: int = Field(90, ge=0)
    step_by_grade: dict[str, float] = {"A": 0.30, "B": 0.20}
    income_multiple: float | None = Field(2.0, gt=0)  # cap: this x monthly declared income; null: none


class ChallengerParams(_Section):
    """What the challenger cell changes: per-grade overrides of the champion's factors and steps."""

    decrease_factor_by_grade: dict[str, float] = {"A": 0.95, "B": 0.9, "C": 0.85, "D": 0.75, "E": 0.6}
    increase_step_by_grade: dict[str, float] = {"A": 0.2, "B": 0.1}


class StrategyTest(_Section):
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


class ExplanationConfig(_Section):
    """Customer-facing sentences: templates per language and action, phrases per policy code.

    The texts have no defaults here: ``riskline.yaml`` (``policy.explanations``) is their one source, and a
    config file without them fails to load, naming the missing key.
    """

    default_language: Literal["en", "zh"] = "zh"  # when the accounts snapshot carries no language
    templates: dict[str, dict[str, str]]
    phrases: dict[str, dict[str, str]]

    @model_validator(mode="after")
    def _complete(self) -> ExplanationConfig:
        for table, keys in (("templates", EXPLANATION_KEYS), ("phrases", EXPLANATION_PHRASES)):
            by_language = getattr(self, table)
            if sorted(by_language) != sorted(LANGUAGES):
                raise ValueError(f"explanations.{table} must have exactly the languages {list(LANGUAGES)}")
            for language, texts in by_language.items():
                unknown = sorted(set(texts) - set(keys))
                if unknown:
                    raise ValueError(f"explanations.{table}.{language}: unknown keys {unknown}; known: {list(keys)}")
                missing = [k for k in keys if not texts.get(k, "").strip()]
                if missing:
                    raise ValueError(f"explanations.{table}.{language} lacks {missing}")
        for language, texts in self.templates.items():
            for key, text in texts.items():
                try:
                    fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(text) if f is not None]
                except ValueError as exc:
                    raise ValueError(f"explanations.templates.{language}.{key}: {exc}") from None
                for name, spec, conv in fields:
                    if name not in EXPLANATION_FIELDS or spec or conv:
                        raise ValueError(
                            f"explanations.templates.{language}.{key}: placeholder {{{name}}} is not one of "
                            f"{sorted(EXPLANATION_FIELDS)} (no format specs)"
                        )
        return self


class PolicyConfig(_Section):
    """The limit policy (pipelines/domain/policy.py). ``version`` is stamped on every decision and seeds test cells."""

    version: str = Field("limits-2026.11.1", min_length=1)
    grades: tuple[str, ...] = ("A", "B", "C", "D", "E")  # best to worst, as the model definition labels them
    limit_step_cny: int = Field(50, gt=0)  # every changed line is rounded down to a multiple of this
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


class CollectionBucket(_Section):
    name: str = Field(min_length=1)
    min_dpd: int = Field(ge=0)  # the bucket runs to the next bucket's min_dpd - 1
    treatment: str


class CollectionsConfig(_Section):
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


class PendingPaymentsConfig(_Section):
    """Payments held in quarantine (pipelines/domain/pending_payments.py)."""

    # A waiting payment holds its accounts' freezes, cuts and collections contacts for this many days after
    # its business date; then the hold lapses (the payment stays reported until upstream redelivers it).
    max_hold_days: int = Field(30, ge=0)


class HardshipConfig(_Section):
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


class VolumeBand(_Section):
    """How many rows a drop should hold, from what is known before it arrives (pipelines/quality/references.py).

    Each dataset's count follows a driver known independently of its drop (``references.VOLUME_DRIVERS``: the
    previous snapshot's open accounts, loans falling due per the curated schedule, today's open accounts,
    today's cash draws). Expected = today's driver x the lowest rows-per-driver ratio of the trailing
    curated days (the quietest weekday and month-end in the window are in that minimum); fewer rows than
    ``min_ratio`` x expected is critical. A driver of 0 expects nothing, so a legitimately empty day passes.
    """

    history_days: int = Field(7, ge=1)  # earlier complete partitions with a non-zero driver needed to judge
    lookback_days: int = Field(14, ge=1)  # ... searched for this far back; fewer found: the check is skipped
    min_ratio: float = Field(0.75, gt=0, le=1)  # below expected x min_ratio: critical (a partial drop)
    noise_sigmas: float = Field(3.0, ge=0)  # behaviour: never stricter than the mean - this x sqrt(mean)
    max_ratio: float = Field(3.0, ge=1)  # above the trailing median x max_ratio: warning (a spike)
    min_median_rows: int = Field(200, ge=0)  # a smaller median is too noisy for the spike warning: skipped

    @model_validator(mode="after")
    def _window(self) -> VolumeBand:
        if self.lookback_days < self.history_days:
            raise ValueError("validation.volume.lookback_days must be >= validation.volume.history_days")
        return self


class ValidationConfig(_Section):
    """Data validation with Great Expectations (pipelines/quality/validate.py, suites in expectations/)."""

    warning_share: float = Field(0.001, ge=0, lt=1)
    warning_min_rows: int = Field(5, ge=0)
    volume: VolumeBand = VolumeBand()
    max_null_share: dict[str, dict[str, float]] = {}  # dataset -> nullable column -> max share of nulls
    data_docs: bool = True
    # A range ingest judges row rules in one GX pass per chunk of dates holding about this many landing rows
    # (held in memory as pandas views: about 1 GB per 5 million rows, measured on the demo book).
    range_rows: int = Field(2_000_000, ge=1)

    @model_validator(mode="after")
    def _known_columns(self) -> ValidationConfig:

        for dataset, columns in self.max_null_share.items():
            if dataset not in CONTRACT:
                raise ValueError(f"validation.max_null_share: unknown dataset {dataset!r}")
            nullable = {c.name for c in CONTRACT[dataset].columns if c.nullable}
            for column, share in columns.items():
                if column not in nullable:
                    raise ValueError(
                        f"validation.max_null_share.{dataset}: {column!r} is not a nullable contract column "
                        f"(nullable: {sorted(nullable)})"
                    )
                if not 0 <= share <= 1:
                    raise ValueError(f"validation.max_null_share.{dataset}.{column} must be in 0..1, got {share}")
        return self

    def tolerated_rows(self, rows: int) -> int:
        """How many rows one row-level defect may touch and still be quarantined rather than fail the run."""
        return max(self.warning_min_rows, int(self.warning_share * rows))


class ReportConfig(_Section):
    """The nightly run report (pipelines/report/report.py): one self-contained HTML page per business date."""

    # exact TreeSHAP is costly: training computes the page's mean |SHAP| once, on this many OOT accounts
    shap_sample_accounts: int = Field(2000, ge=1)
    trend_versions: int = Field(12, ge=1)  # registered model versions shown in the OOT metric trend
    top_features: int = Field(15, ge=1)  # features shown by gain and by mean |SHAP|
    swap_set_rows: int = Field(20, ge=0)  # accounts of the swap set listed on the page
    curve_points: int = Field(400, ge=10)  # points kept per ROC/KS curve, so the page stays small


class RisklineConfig(_Section):
    paths: PathsConfig = PathsConfig()
    business: BusinessConfig = BusinessConfig()
    product: ProductConfig = ProductConfig()
    ingest: IngestConfig
    model: ModelConfig = ModelConfig()
    labels: LabelsConfig = LabelsConfig()
    policy: PolicyConfig  # required: its explanations (customer texts) have no defaults
    collections: CollectionsConfig = CollectionsConfig()
    hardship: HardshipConfig = HardshipConfig()
    pending_payments: PendingPaymentsConfig = PendingPaymentsConfig()
    validation: ValidationConfig = ValidationConfig()
    run: RunConfig = RunConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    report: ReportConfig = ReportConfig()
    # Where the file came from; relative paths in it resolve against this folder.
    source_dir: Path = Field(default=Path("."), exclude=True)
    source_sha256: str = Field(default="", exclude=True)

    def data_root(self, override: str | os.PathLike[str] | None = None) -> Path:
        """The data root: ``override`` (``--data-root``), else ``$RISKLINE_DATA_ROOT``, else the config's.

        A local folder comes back as an absolute ``Path``; an object-store URL (``s3://bucket/riskline``)
        as a ``upath.UPath`` (see ``pipelines.config.location``).
        """

        raw = override or os.environ.get(DATA_ROOT_ENV) or self.paths.data_root
        location = as_location(raw)
        if is_remote(location):
            return location  # type: ignore[return-value]
        path = Path(location).expanduser()
        if not path.is_absolute():
            path = (Path.cwd() if (override or os.environ.get(DATA_ROOT_ENV)) else self.source_dir) / path
        return path.resolve()


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The config file: ``path``, else ``$RISKLINE_CONFIG``, else the repo's ``riskline.yaml``."""
    return Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH).expanduser().resolve()


def load_config(path: str | os.PathLike[str] | None = None) -> RisklineConfig:
    """Load and validate the config file (:func:`config_path`)."""
    cfg_path = config_path(path)
    try:
        raw_bytes = cfg_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {cfg_path}: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(raw_bytes) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {cfg_path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {cfg_path} must hold a mapping at the top level")
    try:
        return RisklineConfig(
            **raw, source_dir=cfg_path.parent, source_sha256=hashlib.sha256(raw_bytes).hexdigest()
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"config file {cfg_path} is invalid: {problems}") from exc
