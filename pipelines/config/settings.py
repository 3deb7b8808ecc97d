"""The one config file (``riskline.yaml``) loaded into typed, validated objects.

Nothing is read at import time: call :func:`load_config` once at the edge (CLI command, Airflow task)
and pass the result down. Every stage gets its own section model; unknown keys are rejected so a typo
in the YAML fails loudly instead of silently falling back to a default.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, ValidationError, model_validator

from pipelines.config.decisions import (
    CollectionsConfig, HardshipConfig, PendingPaymentsConfig, PolicyConfig, limit_step_error,
)
from pipelines.config.location import as_location, is_remote
from pipelines.config.section import ConfigError, Section
from pipelines.config.source import CONFIG_ENV, DEFAULT_CONFIG_PATH, config_path  # noqa: F401 (their old home)
from pipelines.contracts.landing import CONTRACT

DATA_ROOT_ENV = "RISKLINE_DATA_ROOT"


class PathsConfig(Section):
    data_root: str = "./data"


class BusinessConfig(Section):
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


class ProductConfig(Section):
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


class ControlTotalsConfig(Section):
    """Control totals upstream declares in ``_SUCCESS`` (docs/contracts.md: declared row counts and control
    totals): a payment missing from a drop cannot be told from one not made, a declared count and sum can."""

    # Datasets whose every drop must declare its row count and the sums of its required money columns (a
    # lender whose payment feed is reconciled with the channel's settlement sets [payments]). Empty by
    # default: a real upstream's plain _SUCCESS must not stop its first night.
    required_for: list[str] = []
    # A feed that declared a total on any drop of the last this many days must keep declaring it: a drop
    # whose _SUCCESS lost its totals (an extract rewritten, a marker touched by hand) would otherwise pass
    # unproven. 0 turns it off.
    keep_declaring_days: int = Field(default=7, ge=0, le=90)

    @model_validator(mode="after")
    def _datasets_exist(self) -> ControlTotalsConfig:
        unknown = sorted(set(self.required_for) - set(CONTRACT))
        if unknown:
            raise ValueError(f"ingest.control_totals.required_for: unknown dataset(s) {unknown} "
                             f"(datasets: {sorted(CONTRACT)})")
        return self


class IngestConfig(Section):
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
    # A line this many times above or below the account's last known line (7 snapshots) is a unit error
    # (riskline never moves one that far): more than max_share of the accounts stops the ingest (0: any one).
    max_line_move_ratio: float = Field(default=5.0, gt=2)
    max_share_of_lines_in_another_unit: float = Field(default=0.0, ge=0, le=1)
    # Self-declared income is re-declared seldom (never on the demo book), but a genuine update of one account
    # may be large (a new job, a typo fixed), so one income this many times above or below the account's last
    # known one (7 snapshots) is no fault; more than max_share of the accounts with an income in both (and 3 or
    # more) moving that far in one night is the column in another unit (income /10 in a whole snapshot is under
    # money_unit_ratio's 20x, and the affordability cap then withholds increases), and the ingest stops. Its own
    # ratio, not max_line_move_ratio's: that one rests on how far riskline moves a line, this on how incomes move.
    max_income_move_ratio: float = Field(default=5.0, gt=2)
    max_share_of_incomes_in_another_unit: float = Field(default=0.01, ge=0, le=1)
    # A loan is one cash draw: a schedule whose loan no cash_draw event of its account and amount accounts
    # for (within this many days before the schedule's date) is a schedule sent again under new ids, and the
    # ingest stops. Judged only on a book whose recent loans all follow draws (a card book's statements do
    # not: off by itself). None turns the check off (docs/contracts.md: Keys over time).
    loan_draw_lag_days: int | None = Field(default=1, ge=0, le=30)
    # A snapshot keeps its accounts (a closed one comes as a closed row), and a book closes few in a night: more
    # than this share of the accounts open in their last known row (7 snapshots) missing tonight or closed in
    # it is a partial snapshot or a status mapping fault, and the ingest stops. Generated books close at most
    # 0.06% of their open accounts in a night (20,000 accounts, 300 nights; 0.13% on 1,500 to 5,000: one to four
    # lines), so 1% is a fault. A few may leave legitimately (charged off and purged, or closed, upstream; a
    # missing one, and a closed one still overdue, are held for pending_payments.max_hold_days). The name
    # predates closed accounts counting; kept so existing configs load.
    max_share_of_open_accounts_missing: float = Field(default=0.01, ge=0, le=1)
    # Redelivering a date replaces its curated rows: a payment or instalment curated for it (or a payment of it
    # waiting in quarantine), missing from the redelivery and curated on no other date, or carried with other
    # values, would be lost or changed silently (money received, a loan's schedule), so more than this many
    # stop the ingest (raise it for the rerun of an agreed removal or correction).
    max_curated_rows_removed: int = Field(default=0, ge=0)
    # A snapshot identical, row for row, to the last one delivered before it while tonight's events, schedules
    # or payments name accounts it lacks is yesterday's extract re-sent as today's: the ingest stops. (An
    # identical snapshot alone is a quiet book.) False lets a rerun through.
    refuse_stale_snapshot: bool = True
    control_totals: ControlTotalsConfig = ControlTotalsConfig()

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


class ModelConfig(Section):
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


class RunConfig(Section):
    """How the nightly run spreads its per-account stages (pipelines/stages/shards.py)."""

    shards: int = Field(1, ge=1, le=4096)  # account-hash shards; any count gives the same published outputs
    shard_workers: int = Field(1, ge=1)  # shards run at once by `riskline run` (processes); Airflow maps them
    # Start the ledger from the last night's state and apply only the drops since (pipelines/stages/ledger_state.py);
    # false reads the whole curated history every night (same bytes, slower): `riskline run --rebuild-ledger`.
    incremental_ledger: bool = True


class ScheduleConfig(Section):
    """How the scheduled run waits for upstream's landing drops (the DAG's sensors, pipelines/entry/airflow.py)."""

    # A drop for business date D may arrive until D+1 00:00 + this many hours (business time); after that the
    # sensor fails at once instead of poking, so a backfill of a date upstream never delivered fails in seconds.
    landing_deadline_hours: int = Field(8, ge=1, le=72)
    # A dataset whose newest landing is more than this many days before D is not being fed for D (a demo lake,
    # a feed stopped for days): the run skips with that reason instead of holding max_active_runs for hours.
    stale_landing_days: int = Field(3, ge=1)


class LabelsConfig(Section):
    """Default labels for PD training (pipelines/domain/labels.py)."""

    horizon_days: int = Field(90, gt=0)  # bad = reaches bad_dpd within (s+gap_days, s+gap_days+horizon_days]
    bad_dpd: int = Field(30, gt=0)
    gap_days: int = Field(7, ge=0)  # days between a snapshot's features and the start of its outcome window


class VolumeBand(Section):
    """How many rows a drop should hold, from what is known before it arrives (pipelines/quality/references.py).

    Each dataset's count follows a driver known independently of its drop (``references.VOLUME_DRIVERS``: the
    previous snapshot's open accounts, loans falling due per the curated schedule, today's open accounts,
    today's cash draws). Expected = today's driver x the lowest rows-per-driver ratio of the trailing
    curated days (the quietest weekday and month-end in the window are in that minimum); fewer rows than
    ``min_ratio`` x expected is critical, loosened on small counts to the mean day less ``noise_sigmas`` x
    its square root but (except for behaviour's independent events) never below ``never_below`` x expected.
    A driver of 0 expects nothing, so a legitimately empty day passes.
    """

    history_days: int = Field(7, ge=1)  # earlier complete partitions with a non-zero driver needed to judge
    lookback_days: int = Field(14, ge=1)  # ... searched for this far back; fewer found: the check is skipped
    min_ratio: float = Field(0.75, gt=0, le=1)  # below expected x min_ratio: critical (a partial drop)
    noise_sigmas: float = Field(4.0, ge=0)  # never stricter than the mean day - this x sqrt(mean day) ...
    # ... nor (but behaviour) below this x expected, rounded up: above 0.5, so half a drop is always critical
    never_below: float = Field(0.6, gt=0.5, le=1)
    max_ratio: float = Field(3.0, ge=1)  # above the trailing median x max_ratio: warning (a spike)
    min_median_rows: int = Field(200, ge=0)  # a smaller median is too noisy for the spike warning: skipped

    @model_validator(mode="after")
    def _window(self) -> VolumeBand:
        if self.lookback_days < self.history_days:
            raise ValueError("validation.volume.lookback_days must be >= validation.volume.history_days")
        return self


class ValidationConfig(Section):
    """Data validation with Great Expectations (pipelines/quality/validate.py, suites in expectations/)."""

    warning_share: float = Field(0.001, ge=0, lt=1)
    warning_min_rows: int = Field(5, ge=0)
    volume: VolumeBand = VolumeBand()
    max_null_share: dict[str, dict[str, float]] = {}  # dataset -> nullable column -> max share of nulls
    # A drop's null count is critical only when this improbable for a column whose true null share were at its
    # limit (one-sided binomial test; references.allowed_nulls)
    null_share_alpha: float = Field(0.001, gt=0, lt=0.1)
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


class ReportConfig(Section):
    """The nightly run report (pipelines/report/report.py): one self-contained HTML page per business date."""

    # exact TreeSHAP is costly: training computes the page's mean |SHAP| once, on this many OOT accounts
    shap_sample_accounts: int = Field(2000, ge=1)
    trend_versions: int = Field(12, ge=1)  # registered model versions shown in the OOT metric trend
    top_features: int = Field(15, ge=1)  # features shown by gain and by mean |SHAP|
    swap_set_rows: int = Field(20, ge=0)  # accounts of the swap set listed on the page
    curve_points: int = Field(400, ge=10)  # points kept per ROC/KS curve, so the page stays small
    trend_nights: int = Field(90, ge=1)  # published nights (D and before) in the trend strip
    # the 30-day roll compares D with the published night nearest D - 30 within this many days
    roll30_tolerance_days: int = Field(5, ge=0, le=15)


class SimulateConfig(Section):
    """The policy what-if page (``riskline simulate``, pipelines/stages/whatif.py)."""

    harsher_rows: int = Field(50, ge=0)  # accounts listed whose outcome the candidate makes harsher (all counted)
    sample_explanations: int = Field(10, ge=0)  # affected accounts whose candidate explanations (en, zh) are shown
    max_candidate_bytes: int = Field(1_000_000, ge=1_000)  # a larger candidate is refused before it is read whole


class CellsConfig(Section):
    """The strategy test readout (pipelines/domain/cells.py): ``riskline cells`` and the report's section."""

    windows_days: tuple[int, ...] = (30, 60, 90)  # outcome windows after the assignment night
    confidence: float = Field(0.95, gt=0.5, lt=1.0)  # of every interval, and of "significant"
    min_accounts: int = Field(30, ge=1)  # fewer matured accounts in a cell: never called significant
    report_days: int = Field(120, ge=1)  # the report reads out the nights of the last this many days

    @model_validator(mode="after")
    def _windows(self) -> CellsConfig:
        if not self.windows_days or any(w <= 0 for w in self.windows_days):
            raise ValueError("cells.windows_days must list positive numbers of days")
        if list(self.windows_days) != sorted(set(self.windows_days)):
            raise ValueError("cells.windows_days must be increasing, each once")
        return self


class RisklineConfig(Section):
    paths: PathsConfig = PathsConfig()
    business: BusinessConfig = BusinessConfig()
    product: ProductConfig = ProductConfig()
    ingest: IngestConfig
    model: ModelConfig = ModelConfig()
    labels: LabelsConfig = LabelsConfig()
    policy: PolicyConfig  # required: its explanations (customer texts) have no defaults
    collections: CollectionsConfig = CollectionsConfig()
    hardship: HardshipConfig  # required: its explanations (customer texts) have no defaults
    pending_payments: PendingPaymentsConfig = PendingPaymentsConfig()
    validation: ValidationConfig = ValidationConfig()
    run: RunConfig = RunConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    report: ReportConfig = ReportConfig()
    simulate: SimulateConfig = SimulateConfig()
    cells: CellsConfig = CellsConfig()
    # Where the file came from; relative paths in it resolve against this folder.
    source_dir: Path = Field(default=Path("."), exclude=True)
    source_sha256: str = Field(default="", exclude=True)

    @model_validator(mode="after")
    def _step_fits_product(self) -> RisklineConfig:
        problem = limit_step_error(self.policy.limit_step_cny, self.product.min_limit_cny, self.product.max_limit_cny)
        if problem:
            raise ValueError(problem)
        return self

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
