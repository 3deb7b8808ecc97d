"""Validate every landing drop and every published output with Great Expectations (GX Core 1.x).

Ingest reads, conforms and de-duplicates every dataset of a date, then calls
:func:`validate_landing_frames`. Each frame is judged by its committed suite (``expectations/``, built by
``pipelines/quality/gx_suites.py``); only when no expectation failed critically does ingest publish, so a critical
failure leaves the curated zone exactly as it was. Outputs are judged by :func:`validate_output` before
publish, which refuses on any failure.

What a failed expectation does (``meta.severity`` and ``meta.level`` in the suite, ``validation:`` in config):

* critical (table level: columns, types, duplicate keys, too few rows, null share): the run fails with a
  :class:`ValidationError` naming dataset, partition, expectation, observed value, up to 5 offending rows
  and what to do next;
* warning, row level (null keys, unknown values, impossible amounts, unknown accounts/loans, times outside
  the business day): while a defect touches at most ``validation.tolerated_rows(rows)`` rows, those rows are
  quarantined with the rule's ``quarantine_reason`` and the run goes on; above that it is critical;
* warning, table level (a volume spike): reported, the run goes on.

GX has no polars engine, so each frame is handed over as two pandas views (measured: docs/contracts.md):

* the schema view, ``frame.head(0).to_pandas(use_pyarrow_extension_array=True)``: exact Arrow types at no
  cost, for the column and type expectations;
* the value view: only the columns the suite reads, integers as Int64, Date as Datetime(ns), Decimal as
  Float64, then a plain ``to_pandas()``. GX vectorises range checks only for numpy numbers and datetimes;
  on Arrow-backed columns it maps a Python function over every row (about 1 s per million rows and rule).
  Float64 keeps the order of 2-decimal amounts exactly, which is all a range check needs.

Pure functions (frames and config in, reports out; GX runs in memory): :func:`validate_landing`,
:func:`validate_output`. The committed suites are read once per process, like code. I/O entry points at
the bottom: :func:`validate_landing_frames` (ingest), :func:`validate_date` (``riskline validate``),
:func:`write_results` (JSON under ``validation/dt=D/`` and GX Data Docs under ``reports/data_docs/dt=D/``).
"""

from __future__ import annotations

import bisect
import copy
import datetime as dt
import json
import logging
import math
import re
import shutil
import statistics
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any, Literal, TYPE_CHECKING

import polars as pl

from pipelines.config.location import is_remote
from pipelines.config.settings import RisklineConfig, VolumeBand
from pipelines.contracts.landing import CONTRACT, DATASETS, KEY_IS_VALID, valid_identifier, valid_key
from pipelines.contracts.outputs import OUTPUTS, OUTPUT_KEYS
from pipelines.domain.conform import hold_whole_units
from pipelines.errors import IngestError
from pipelines.store import lake, zones
from pipelines.store.drops import read_landing
from pipelines.store.publish import output_dir

if TYPE_CHECKING:
    import great_expectations as gx
    import pandas as pd

log = logging.getLogger(__name__)

Outcome = Literal["passed", "quarantined", "warning", "critical", "skipped"]
Kind = Literal["landing", "curated", "output"]

ACCOUNT_KNOWN = "account_is_known"  # same names as pipelines.quality.gx_suites (kept here so importing is cheap)
LOAN_KNOWN = "loan_is_known"
LOAN_OWNED = "loan_is_owned"  # the payment's loan belongs to its account_id (pipelines.quality.gx_suites)
# A payment for a loan whose schedule is held in quarantine (pipelines.domain.conform.hold_whole_units) is held
# with it: a known cause, already reported on the schedule's date, so it is not judged as an unknown loan.
LOAN_HELD = "loan_held"
SAMPLE_ROWS = 5
_KEEP_UNEXPECTED = 20  # unexpected values/indices kept per expectation in the persisted GX result
_REFERENCE_FLAGS = {ACCOUNT_KNOWN: ("account_id",), LOAN_KNOWN: ("loan_id", "account_id"),
                    LOAN_OWNED: ("loan_id", "account_id")} | {
    c.valid_flag: (c.name,) for ds in CONTRACT.values() for c in ds.columns if c.identifier
}
_NEXT_STEP = {
    "schema drift": "upstream changed the extract: ask the data owner to fix it (or agree a contract change in "
                    "pipelines/contracts/landing.py and regenerate the suites), then rerun",
    "duplicate keys": "keys repeat after de-duplication: a pipeline bug or a key change upstream; escalate to "
                      "the pipeline owner",
    "referential integrity": "check that the accounts snapshot and installments of this date (and earlier "
                             "dates) were delivered and ingested first; if they were, ask the data owner to fix "
                             "the references and redeliver",
    "volume": "a partial or duplicated drop? confirm the row count with the data owner; if it is genuine, widen "
              "validation.volume in the config (RISKLINE_CONFIG) and rerun",
    "completeness": "null share above validation.max_null_share: ask the data owner; if it is expected, raise "
                    "the limit in the config and rerun",
}
_DEFAULT_NEXT_STEP = ("more bad rows than quarantine tolerates: ask the data owner to fix and redeliver the "
                      "partition, then rerun")


# --- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectationOutcome:
    """What one expectation found and what was done about it."""

    rule: str  # unique within the suite (meta.rule); the quarantine reason for row-level rules
    expectation: str  # e.g. "expect_column_values_to_not_be_null(account_id)"
    risk: str
    severity: str  # as declared in the suite
    level: str
    outcome: Outcome
    observed: Any = None
    unexpected_count: int | None = None
    unexpected_share: float | None = None
    tolerated: int | None = None  # row-level warnings: most rows quarantine may take for this rule
    sample: tuple[dict[str, Any], ...] = ()
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome not in ("passed", "skipped")

    def describe(self) -> str:
        what = f"[{self.risk}] {self.expectation}: "
        if self.unexpected_count is not None and self.failed:
            share = self.unexpected_share or 0.0
            what += f"{self.unexpected_count:,} rows ({share:.3%})"
            if self.tolerated is not None:
                what += f", tolerated {self.tolerated:,}"
        else:
            what += f"observed {_short(self.observed)}"
        if self.sample:
            what += "; sample: " + "; ".join(
                ", ".join(f"{k}={_short(v)}" for k, v in row.items()) for row in self.sample
            )
        if self.note:
            what += f" ({self.note})"
        return what


@dataclass(frozen=True)
class ValidationReport:
    """The validation of one frame (a landing dataset, a curated partition or a published output)."""

    name: str
    kind: Kind
    date: dt.date
    rows: int
    outcomes: tuple[ExpectationOutcome, ...]
    quarantined_rows: int = 0
    notes: tuple[str, ...] = ()
    gx_result: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def critical(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if o.outcome == "critical")

    @property
    def ok(self) -> bool:
        return not self.critical

    def count(self, *outcomes: Outcome) -> int:
        return sum(o.outcome in outcomes for o in self.outcomes)

    def describe(self) -> str:
        failed = self.count("quarantined", "warning", "critical")
        line = (
            f"{self.name:<16} dt={self.date} {self.kind:<7} rows={self.rows:,} "
            f"expectations passed={self.count('passed')} failed={failed} "
            f"(critical={self.count('critical')}, warning={self.count('warning')}, "
            f"quarantining={self.count('quarantined')}) skipped={self.count('skipped')} "
            f"quarantined_rows={self.quarantined_rows:,}"
        )
        return line + "".join(f"\n    {o.outcome.upper()} {o.describe()}" for o in self.outcomes if o.failed)

    def to_json_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["date"] = self.date.isoformat()
        out["ok"] = self.ok
        out["gx_result"] = self.gx_result
        return out

    def raise_if_critical(self) -> None:
        if not self.ok:
            raise ValidationError([self]) if self.kind == "output" else LandingValidationError([self])


class ValidationError(Exception):
    """A critical expectation failed: nothing of the date (or of the outputs) was published.

    Raised as is for published outputs (a bug in our own stages: publish refuses); landing failures raise
    :class:`LandingValidationError`, which is also an :class:`IngestError` (a data problem upstream).
    """

    def __init__(self, reports: Iterable[ValidationReport], results_dir: Path | None = None,
                 files: Mapping[str, str] | None = None) -> None:
        self.reports = [r for r in reports if not r.ok]
        first = self.reports[0]
        head = first.critical[0]
        self.dataset, self.date = first.name, first.date
        # One line, like every IngestError: dataset, partition, file (the drop's files: the failure is in
        # their rows) and column of the first critical expectation; all of them follow, "|"-separated.
        self.file = (files or {}).get(first.name) or (f"{first.name}.json" if results_dir is not None else None)
        self.column = _outcome_column(head)
        found: list[str] = []
        risks: list[str] = []
        for report in self.reports:
            for o in report.critical:
                found.append(f"{report.name} dt={report.date} CRITICAL {o.describe()}")
                if o.risk not in risks:
                    risks.append(o.risk)
        if results_dir is not None:
            found.append(f"results in {results_dir}")
        steps = list(dict.fromkeys(_NEXT_STEP.get(r, _DEFAULT_NEXT_STEP) for r in risks))
        if first.kind == "output":
            what = "published outputs"
            steps = ["our own stage produced it: a riskline bug, escalate to its owners"]
        else:
            what = "curated or quarantine partitions"
        where = f"{first.name} dt={first.date.isoformat()}"
        if self.file:
            where += f" file={self.file}"
        if self.column:
            where += f" column={self.column}"
        text = f"{where}: validation failed, no {what} were written: " + " | ".join(found)
        Exception.__init__(self, " ".join(text.split()) + " -> " + "; ".join(steps))


def _outcome_column(outcome: ExpectationOutcome) -> str | None:
    """The contract column(s) an expectation read, from its label ``type(col, ...)``; a pre-joined flag
    column is named by the ids it was computed from; None for a table-level expectation."""
    match = re.fullmatch(r"[^(]*\((.*)\)", outcome.expectation)
    if not match:
        return None
    columns = [c.strip() for c in match.group(1).split(",")]
    named = [n for c in columns for n in _REFERENCE_FLAGS.get(c, (c,))]
    return "/".join(dict.fromkeys(named))


class LandingValidationError(ValidationError, IngestError):
    """A landing drop failed a critical expectation; ingest wrote nothing for the date."""


@dataclass(frozen=True)
class LandingValidation:
    """A landing frame's report and, per row, the ';'-joined reasons to quarantine it ("" = keep)."""

    report: ValidationReport
    reasons: pl.Series


@dataclass(frozen=True)
class References:
    """What a landing dataset is checked against; GX does not join, so flags are pre-joined in polars.

    ``None`` means the reference could not be read (the note says why): a dataset with rows then fails
    its referential check critically rather than pass unchecked.
    """

    accounts: pl.Series | None = None  # account_id of the accounts snapshot of the same dt
    loans: pl.Series | None = None  # loan_id known on the date (installments of any dt <= D)
    loan_owners: pl.DataFrame | None = None  # loan_id, account_id of those loans (not of held ones)
    held_loans: pl.Series | None = None  # loan_id whose schedule is in quarantine (dt <= D), not curated
    row_counts: tuple[int, ...] = ()  # curated row counts of the trailing partitions (spike warning)
    notes: Mapping[str, str] = field(default_factory=dict)  # "accounts"/"loans"/"volume" -> where from / why not
    volume: VolumeHistory | None = None  # what the expected row count is built from (None: not judged)
    declared_rows: int | None = None  # rows expected after de-duplication, as upstream declared them


# What each dataset's row count follows: known before (or independently of) the drop itself.
VOLUME_DRIVERS: dict[str, str] = {
    "accounts": "open accounts in the previous snapshot",
    "installments": "cash draws in the day's behaviour",  # counted in loans (gx_suites.VOLUME_UNITS)
    "payments": "loans with an instalment falling due on the day",
    "behaviour": "open accounts in the day's snapshot",
}


@dataclass(frozen=True)
class VolumeHistory:
    """A dataset's volume driver today and, per trailing curated partition, (dt, rows, driver)."""

    driver: str
    today: int | None  # None: unknown (``note`` says why)
    days: tuple[tuple[dt.date, int, int], ...] = ()
    note: str = ""
    # Each counted unit comes from one driver unit (a loan from a cash draw): a trailing day with more units
    # than drivers shows the driver does not govern this upstream (a card book's statements): check off.
    exclusive: bool = False
    # Counts of independent events of many accounts (behaviour): a quiet day varies by about sqrt(expected),
    # which on a small or sparse book is more than the trailing minimum shows.
    events: bool = False


# --- the GX engine (one ephemeral context per process) ---------------------------------------------


@dataclass
class _Engine:
    context: Any
    batch_definition: Any
    suites: dict[str, Any]


@cache
def _engine() -> _Engine:
    """Import GX, build an in-memory context and load the committed suites, once per process (~2 s)."""
    # why: Great Expectations takes seconds to import; only validating pays for it
    import great_expectations as gx
    import great_expectations.execution_engine.pandas_execution_engine as gx_pandas
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # why: keeps Great Expectations out of importing validation (GX loads on first use)
    from pipelines.quality import gx_suites

    # GX fingerprints every pandas batch by hashing all of it, only to label the batch: twice per validation,
    # ~0.5 s on the 1M-row accounts view (docs/contracts.md). Frames above the threshold are not hashed.
    gx_pandas.HASH_THRESHOLD = 0
    context = gx.get_context(
        project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        ),
        mode="ephemeral",
    )
    asset = context.data_sources.add_pandas("riskline").add_dataframe_asset("frame")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole")
    suites = {}
    for name in gx_suites.SUITE_NAMES:
        suites[name] = context.suites.add(gx_suites.load_suite(name))
    return _Engine(context, batch_definition, suites)


def _gx_run(suite: gx.ExpectationSuite, expectations: list[Any], view: pd.DataFrame,
            parameters: dict[str, Any]) -> list[Any]:
    if not expectations:
        return []
    sub = _sub_suite(suite.name, tuple(e.meta["rule"] for e in expectations))
    batch = _engine().batch_definition.get_batch(batch_parameters={"dataframe": view})
    with _gx_overhead_memoized():
        result = batch.validate(
            sub,
            result_format={"result_format": "COMPLETE", "partial_unexpected_count": SAMPLE_ROWS,
                           "return_unexpected_index_query": False},
            expectation_parameters=parameters,
        )
    return list(result.results)


@contextmanager
def _gx_overhead_memoized() -> Iterator[None]:
    """Within one GX validation, compute two of GX's pure bookkeeping values once instead of on every use.

    Profiled on a history ingest, most of GX's CPU per landing date is planning, not computing metrics:

    * ``Expectation.configuration`` is a property that re-serialises the pydantic model and builds a new
      ``ExpectationConfiguration`` on every read; planning one expectation reads it about 70 times. GX only
      reads these objects while it validates (it deep-copies one before changing it) and an expectation
      object does not change during a run, so the first build equals every later one. Entries keep their
      expectation alive, so an ``id`` is never reused within the run.
    * ``IDDict.to_id`` (the id of every metric's kwargs) JSON-serialises and hashes the dict each time: about
      5,800 times per landing date for 47 distinct dicts. It is memoised only for dicts of plain JSON values,
      keyed by value *and* type (``1``, ``1.0`` and ``True`` stay apart), so equal keys mean an equal id.

    Verdicts, rows and persisted results are identical (tests/data/test_gx_speed.py compares a faulty range
    with GX's own code paths byte for byte). GX's originals are restored on exit.
    """
    # why: Great Expectations takes seconds to import; only validating pays for it
    from great_expectations.core.id_dict import IDDict
    from great_expectations.expectations.expectation import Expectation

    configuration_property = Expectation.__dict__["configuration"]
    to_id = IDDict.__dict__["to_id"]
    if not _FAST_GX or not isinstance(configuration_property, property):
        yield
        return
    built: dict[int, tuple[Any, Any]] = {}
    ids: dict[Any, Any] = {}

    def configuration(self: Any) -> Any:
        hit = built.get(id(self))
        if hit is None or hit[0] is not self:
            hit = built[id(self)] = (self, configuration_property.fget(self))
        return hit[1]

    def memoized_to_id(self: Any, id_keys: Any = None, id_ignore_keys: Any = None) -> Any:
        key = _plain_key(self) if id_keys is None and id_ignore_keys is None else None
        if key is None:
            return to_id(self, id_keys, id_ignore_keys)
        if key not in ids:
            ids[key] = to_id(self)
        return ids[key]

    Expectation.configuration = property(configuration)  # type: ignore[method-assign]
    IDDict.to_id = memoized_to_id  # type: ignore[method-assign]
    try:
        yield
    finally:
        Expectation.configuration = configuration_property  # type: ignore[method-assign]
        IDDict.to_id = to_id  # type: ignore[method-assign]


_PLAIN = (str, int, float, bool, type(None))


def _plain_key(value: Any) -> Any:
    """A hashable key equal only for equal plain JSON values of equal types (containers included); None for
    anything else (a timestamp, a row condition...), which is then not memoised."""
    if isinstance(value, _PLAIN):
        return type(value), value
    if isinstance(value, list | tuple):
        items = [_plain_key(v) for v in value]
        return None if any(i is None for i in items) else (type(value), tuple(items))
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        pairs = [(k, _plain_key(v)) for k, v in value.items()]
        return None if any(p[1] is None for p in pairs) else (type(value), tuple(pairs))
    return None


# Switch for tests that compare against GX's own (slow) code paths; never turned off in production.
_FAST_GX = True


@cache
def _sub_suite(name: str, rules: tuple[str, ...]) -> gx.ExpectationSuite:
    """The expectations of suite ``name`` with these rules, as a suite built once per process and rule set.

    Copying an expectation deep-copies the whole suite it belongs to (GX keeps a bound method of it):
    done per call, that was a sixth of a history ingest's CPU time. Parameters are given per run
    (``expectation_parameters``), so the same sub-suite serves every date.
    """
    # why: Great Expectations takes seconds to import; only validating pays for it
    import great_expectations as gx

    chosen = [e for e in _engine().suites[name].expectations if e.meta["rule"] in rules]
    return gx.ExpectationSuite(name=name, expectations=[copy.copy(e) for e in chosen])


@cache
def _schema_results(name: str, rules: tuple[str, ...], schema: tuple[tuple[str, pl.DataType], ...]) -> tuple[Any, ...]:
    """GX results of suite ``name``'s schema expectations (``rules``) on a frame of this schema.

    They read column names and types only and take no parameter, so every date of a range (and every
    night) with the same schema gets the same results: GX runs them once per schema and process, which
    saves a third of the expectations GX evaluates per landing date.
    """
    view = to_schema_view(pl.DataFrame(schema=dict(schema)))
    suite = _engine().suites[name]
    return tuple(_gx_run(suite, [e for e in suite.expectations if e.meta["rule"] in rules], view, {}))


# --- pure: views, parameters, judging --------------------------------------------------------------


def _columns_read(kw: Mapping[str, Any]) -> set[str]:
    """Columns an expectation reads, its row condition's included."""
    cols = {kw[k] for k in ("column", "column_A", "column_B") if kw.get(k)}
    cols |= set(kw.get("column_list") or [])
    condition = kw.get("row_condition")
    stack = [condition.dict() if hasattr(condition, "dict") else condition]
    while stack:  # a GX Condition: {"column": {"name": ...}, ...}, possibly nested under "conditions"
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("column"), dict) and "name" in node["column"]:
                cols.add(node["column"]["name"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return cols


def to_value_view(frame: pl.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """The pandas frame GX evaluates values on: only ``columns``, in types GX vectorises (see module doc)."""
    exprs = []
    for name in [c for c in frame.columns if c in set(columns)]:
        dtype = frame.schema[name]
        col = pl.col(name)
        if dtype.is_integer():
            col = col.cast(pl.Int64)  # -> int64, or float64 with nulls; int32 would take GX's slow path
        elif dtype == pl.Date:
            col = col.cast(pl.Datetime("ns"))
        elif isinstance(dtype, pl.Decimal):
            col = col.cast(pl.Float64)
        exprs.append(col)
    return frame.select(exprs).to_pandas()


def suite_columns(name: str) -> set[str]:
    """Columns (and pre-joined flags) the value expectations of suite ``name`` read."""
    schema_types = _schema_expectation_types()
    return set().union(*(
        _columns_read(e.configuration.kwargs)
        for e in _engine().suites[name].expectations if e.expectation_type not in schema_types
    ))


def to_schema_view(frame: pl.DataFrame) -> pd.DataFrame:
    return frame.head(0).to_pandas(use_pyarrow_extension_array=True)


def _parameters_needed(expectation: Any) -> set[str]:
    return {v["$PARAMETER"] for v in expectation.configuration.kwargs.values()
            if isinstance(v, dict) and "$PARAMETER" in v}


def _gx_value(value: Any) -> Any:
    """A parameter as GX compares it with the value view's columns."""
    import pandas as pd

    if isinstance(value, dt.datetime):
        return pd.Timestamp(value).tz_convert("UTC") if value.tzinfo else pd.Timestamp(value)
    if isinstance(value, dt.date):
        return pd.Timestamp(value)  # dates are compared as naive midnight datetimes in the value view
    return value


def _exception(result: Any) -> str | None:
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def _label(config: Any) -> str:
    kw = config.kwargs
    cols = [kw[k] for k in ("column", "column_A", "column_B") if kw.get(k)] or list(kw.get("column_list") or [])
    return f"{config.type}({', '.join(cols)})" if cols and len(cols) <= 3 else config.type


def _short(value: Any, width: int = 80) -> str:
    text = value.isoformat() if isinstance(value, dt.date) else str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _sample_rows(frame: pl.DataFrame, positions: list[int], columns: list[str]) -> tuple[dict[str, Any], ...]:
    cols = [c for c in dict.fromkeys(columns) if c in frame.columns]
    picked = frame[positions[:SAMPLE_ROWS]].select(cols)
    return tuple({k: _jsonable(v) for k, v in row.items()} for row in picked.iter_rows(named=True))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def _judge(
    result: Any, frame: pl.DataFrame, key: list[str], cfg: RisklineConfig
) -> tuple[ExpectationOutcome, list[int]]:
    """One GX result -> an outcome, plus the row positions to quarantine (row-level warnings only)."""
    config = result.expectation_config
    meta = config.meta or {}
    common = {"rule": meta["rule"], "expectation": _label(config), "risk": meta["risk"],
              "severity": meta["severity"], "level": meta["level"]}
    error = _exception(result)
    if error is not None:  # GX could not evaluate it (a column is missing...): fail closed
        return ExpectationOutcome(**common, outcome="critical", observed=f"error: {error}",
                                  note="the expectation could not be evaluated"), []
    r = result.result or {}
    count = r.get("unexpected_count")
    rows = frame.height
    share = (count / rows) if count is not None and rows else None
    observed = _jsonable(r.get("observed_value"))
    if result.success:
        return ExpectationOutcome(**common, outcome="passed", observed=observed, unexpected_count=count,
                                  unexpected_share=share), []
    positions = [int(i) for i in r.get("unexpected_index_list") or []]
    if meta["level"] == "row" and positions:
        columns = sorted(_columns_read(config.kwargs))
        shown = list(key)
        for col in columns:  # a flag column is shown as the ids it was computed from
            shown += list(_REFERENCE_FLAGS.get(col, (col,)))
        sample = _sample_rows(frame, positions, shown)
    else:
        sample = tuple({"value": _jsonable(v)} for v in (r.get("partial_unexpected_list") or [])[:SAMPLE_ROWS])
    tolerated = None
    if meta["level"] == "row" and meta["severity"] == "warning":
        tolerated = cfg.validation.tolerated_rows(rows)
        # Quarantine only what GX named row by row: rows it counted but did not name would be published.
        named = count is not None and len(positions) == count
        outcome: Outcome = "quarantined" if named and count <= tolerated else "critical"
    else:
        outcome = "critical" if meta["severity"] == "critical" else "warning"
    judged = ExpectationOutcome(**common, outcome=outcome, observed=observed, unexpected_count=count,
                                unexpected_share=share, tolerated=tolerated, sample=sample)
    return judged, positions if outcome == "quarantined" else []


def _trim_result(result_dict: dict[str, Any]) -> dict[str, Any]:
    """A GX result small and deterministic enough to persist (and to render Data Docs from)."""
    out = json.loads(json.dumps(result_dict, default=str))
    meta = out.get("meta") or {}
    meta.pop("batch_markers", None)  # load time and fingerprint: not about the data
    for res in out.get("results", []):
        body = res.get("result") or {}
        for key in ("unexpected_list", "unexpected_index_list"):
            if isinstance(body.get(key), list) and len(body[key]) > _KEEP_UNEXPECTED:
                body[key] = body[key][:_KEEP_UNEXPECTED]
                body[f"{key}_truncated"] = True
        res.get("expectation_config", {}).get("kwargs", {}).pop("batch_id", None)
        info = res.get("exception_info") or {}
        for holder in [info, *(v for v in info.values() if isinstance(v, dict))]:
            if holder.get("exception_traceback"):
                holder["exception_traceback"] = None  # GX's stack, not the data's problem
    return out


def validate_frame(
    name: str,
    frame: pl.DataFrame,
    *,
    kind: Kind,
    date: dt.date,
    cfg: RisklineConfig,
    parameters: Mapping[str, Any],
    missing: Mapping[str, tuple[Outcome, str]] | None = None,
    key: Iterable[str] = (),
    notes: Iterable[str] = (),
) -> tuple[ValidationReport, pl.Series]:
    """Run suite ``name`` on ``frame``; return the report and the per-row quarantine reasons.

    ``missing`` maps a suite parameter or flag column that could not be computed to the outcome of every
    expectation needing it and why ("skipped" for a volume check without history, "critical" for a
    reference that could not be read): such expectations are not run.
    """
    # why: Great Expectations takes seconds to import; only validating pays for it
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult

    engine = _engine()
    suite = engine.suites[name]
    missing = dict(missing or {})
    key = list(key)
    order = {e.meta["rule"]: i for i, e in enumerate(suite.expectations)}
    held_back, schema_exps, value_exps = _plan(suite, missing)
    value_columns = set().union(*(_columns_read(_kwargs(name, e.meta["rule"])) for e in value_exps))
    gx_params = {k: _gx_value(v) for k, v in parameters.items()}
    results = list(_schema_results(name, tuple(e.meta["rule"] for e in schema_exps), tuple(frame.schema.items())))
    results += _gx_run(suite, value_exps, to_value_view(frame, value_columns), gx_params)
    results.sort(key=lambda r: order[r.expectation_config.meta["rule"]])

    judged: list[ExpectationOutcome] = list(held_back)
    quarantine: list[tuple[str, list[int]]] = []
    for result in results:
        outcome, positions = _judge(result, frame, key, cfg)
        judged.append(outcome)
        if positions:
            quarantine.append((outcome.rule, positions))
    judged.sort(key=lambda o: order[o.rule])

    reasons = _reasons(frame.height, quarantine)
    combined = ExpectationSuiteValidationResult(
        success=all(r.success for r in results), results=results, suite_name=name,
        suite_parameters={k: _jsonable(v) for k, v in parameters.items()},
        statistics=_statistics(results),
        meta={"great_expectations_version": gx.__version__, "run": f"{kind} dt={date.isoformat()}",
              "active_batch_definition": {"datasource_name": "riskline", "data_connector_name": "fluent",
                                          "data_asset_name": name, "batch_identifiers": {"dt": date.isoformat()}}},
    )
    report = ValidationReport(
        name=name, kind=kind, date=date, rows=frame.height, outcomes=tuple(judged),
        quarantined_rows=int((reasons != "").sum()), notes=tuple(notes),
        gx_result=_trim_result(combined.to_json_dict()),
    )
    return report, reasons


def _plan(suite: gx.ExpectationSuite, missing: Mapping[str, tuple[Outcome, str]]
          ) -> tuple[list[ExpectationOutcome], list[Any], list[Any]]:
    """Split ``suite``: expectations held back (needing something ``missing``), schema ones, value ones."""
    schema_types = _schema_expectation_types()
    held_back: list[ExpectationOutcome] = []
    schema_exps, value_exps = [], []
    for exp, label, reads in _suite_index(suite.name):
        needs = reads & set(missing)
        if needs:
            outcome, why = missing[sorted(needs)[0]]
            held_back.append(ExpectationOutcome(
                rule=exp.meta["rule"], expectation=label, risk=exp.meta["risk"],
                severity=exp.meta["severity"], level=exp.meta["level"], outcome=outcome, note=why))
        elif exp.expectation_type in schema_types:
            schema_exps.append(exp)
        else:
            value_exps.append(exp)
    return held_back, schema_exps, value_exps


@cache
def _suite_index(name: str) -> tuple[tuple[Any, str, frozenset[str]], ...]:
    """Each expectation of committed suite ``name`` with its label and the parameters and columns it reads.

    Built once per process: GX rebuilds ``Expectation.configuration`` on every read (a deep copy), which
    per date and dataset was a tenth of a range ingest's time once GX itself ran once per range.
    """
    return tuple((exp, _label(exp.configuration),
                  frozenset(_parameters_needed(exp) | _columns_read(exp.configuration.kwargs)))
                 for exp in _engine().suites[name].expectations)


@cache
def _kwargs(name: str, rule: str) -> Mapping[str, Any]:
    """The kwargs of rule ``rule`` of suite ``name`` (read once: see :func:`_suite_index`)."""
    (kwargs,) = [e.configuration.kwargs for e, _, _ in _suite_index(name) if e.meta["rule"] == rule]
    return kwargs


@cache
def _schema_expectation_types() -> frozenset[str]:
    # why: keeps Great Expectations out of importing validation (GX loads on first use)
    from pipelines.quality.gx_suites import SCHEMA_EXPECTATIONS

    return SCHEMA_EXPECTATIONS


def _statistics(results: list[Any]) -> dict[str, Any]:
    good = sum(bool(r.success) for r in results)
    return {"evaluated_expectations": len(results), "successful_expectations": good,
            "unsuccessful_expectations": len(results) - good,
            "success_percent": 100.0 * good / len(results) if results else None}


def _reasons(height: int, quarantine: list[tuple[str, list[int]]]) -> pl.Series:
    if not quarantine:
        return pl.Series("reasons", [""] * height, dtype=pl.String)
    row = pl.int_range(height, dtype=pl.Int64)
    expr = pl.concat_str(
        [pl.when(row.is_in(positions)).then(pl.lit(reason)) for reason, positions in quarantine],
        separator=";", ignore_nulls=True,
    )
    return pl.select(expr.alias("reasons")).to_series()


def expected_min_rows(history: VolumeHistory | None, band: VolumeBand) -> tuple[int | None, str]:
    """The fewest rows a complete drop can hold, from its driver and the trailing history; and why.

    Expected rows = today's driver x the lowest rows-per-driver ratio among the trailing partitions whose
    driver was non-zero (the quietest weekday and month-end of the window are in that minimum, so a normal
    quiet day is never a partial drop); the drop must hold ``band.min_ratio`` of it. A driver of 0 today
    expects nothing: a legitimately empty day (no instalment falls due) passes. None: cannot be judged.
    """
    if history is None:
        return None, "volume check skipped: no volume driver"
    if history.today is None:
        return None, f"volume check skipped: {history.driver} unknown ({history.note})"
    if history.today == 0:
        return 0, f"volume: no rows expected ({history.driver}: 0)"
    unexplained = [d for d, rows, driver in history.days if rows > driver]
    if history.exclusive and unexplained:
        return None, (f"volume check skipped: {max(unexplained)} had more than one per {history.driver}, so "
                      f"the count does not follow them here")
    usable = [(rows, driver) for _, rows, driver in history.days if driver > 0]
    if len(usable) < band.history_days:
        return None, (f"volume check skipped: only {len(usable)} of {band.history_days} earlier curated "
                      f"partitions with {history.driver} within {band.lookback_days} days")
    highest = max(driver for _, driver in usable)
    if history.today > band.max_ratio * highest:  # e.g. phantom cash draws in today's behaviour drop
        return None, (f"volume check skipped: {history.driver} today ({history.today:,}) is above "
                      f"{band.max_ratio:g} x the most in the window ({highest:,}): a spike, judged where it is")
    lowest = min(Fraction(rows, driver) for rows, driver in usable)  # exact: the bound is a whole row count
    min_rows = math.floor(Fraction(str(band.min_ratio)) * lowest * history.today)
    note = (f"volume: at least {min_rows:,} = {band.min_ratio:g} x {history.today:,} ({history.driver}) x "
            f"{float(lowest):.4g} per driver (the lowest ratio of the last {len(usable)} curated partitions)")
    if history.events:
        mean = Fraction(sum(r for r, _ in usable), sum(d for _, d in usable)) * history.today
        noise = math.floor(float(mean) - band.noise_sigmas * math.sqrt(mean))
        if noise < min_rows:
            min_rows = max(noise, 0)
            note = (f"volume: at least {min_rows:,} = the expected {float(mean):.1f} ({history.driver} x the "
                    f"mean ratio of the last {len(usable)} curated partitions) less {band.noise_sigmas:g} x its "
                    f"square root (a small count's day-to-day noise)")
    return min_rows, note


def landing_parameters(dataset: str, day: dt.date, cfg: RisklineConfig, refs: References, rows: int,
                       undelivered: Iterable[str] = ()) -> tuple[dict[str, Any], dict[str, tuple[Outcome, str]],
                                                                 list[str]]:
    """Suite parameters of a landing dataset on ``day``; what could not be computed; notes.

    ``undelivered``: optional columns the drop does not carry (absent or null in every row).
    """
    tz = cfg.business.tz
    start = dt.datetime.combine(day, dt.time(0), tz).astimezone(dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tz).astimezone(dt.UTC)
    late = dt.datetime.combine(day - dt.timedelta(days=cfg.ingest.payment_late_days), dt.time(0), tz)
    params: dict[str, Any] = {
        "business_date": day, "business_day_start_utc": start, "business_day_end_utc": end,
        "late_window_start_utc": late.astimezone(dt.UTC),
        "min_credit_limit_cents": cfg.product.min_limit_cny * 100,
        "max_credit_limit_cents": cfg.product.max_limit_cny * 100,
    }
    from pipelines.quality.gx_suites import non_null_share_parameter  # why: imports GX: keep it out of module import

    limits = cfg.validation.max_null_share.get(dataset, {})
    for col in CONTRACT[dataset].columns:
        if col.nullable:
            params[non_null_share_parameter(col.curated_name)] = 1.0 - limits.get(col.name, 1.0)
    missing: dict[str, tuple[Outcome, str]] = {}
    notes = [f"{k}: {v}" for k, v in sorted(refs.notes.items())]
    if rows == 0:  # nothing to measure: whether empty is right is the volume rules' question alone
        for col in CONTRACT[dataset].columns:
            if col.nullable:
                missing[non_null_share_parameter(col.curated_name)] = ("skipped", "empty drop: no rows to measure")
    for name in undelivered:
        col = CONTRACT[dataset].column(name)
        missing[non_null_share_parameter(col.curated_name)] = ("skipped", f"not delivered: {col.absent_means}")
        notes.append(f"optional column {name} not delivered (absent or all null): {col.absent_means}")
    band = cfg.validation.volume
    if refs.declared_rows is not None:
        params["declared_rows"] = refs.declared_rows
        why = f"upstream declared the row count in {lake.SUCCESS} (checked exactly by volume_declared)"
        missing["min_rows"] = missing["max_rows"] = ("skipped", why)
        notes.append(f"volume: {refs.declared_rows:,} rows declared by upstream (after de-duplication)")
        return params, missing, notes
    missing["declared_rows"] = ("skipped", f"plain {lake.SUCCESS}: no declared row count")
    min_rows, note = expected_min_rows(refs.volume, band)
    notes.append(note)
    if min_rows is None:
        missing["min_rows"] = ("skipped", note)
    else:
        params["min_rows"] = min_rows
    median = statistics.median(refs.row_counts[: band.history_days]) if refs.row_counts else 0
    if len(refs.row_counts) < band.history_days or median < band.min_median_rows:
        missing["max_rows"] = ("skipped", f"spike warning needs {band.history_days} earlier partitions with a "
                                          f"median of at least {band.min_median_rows} rows")
    else:
        params["max_rows"] = math.floor(median * band.max_ratio)
        notes.append(f"volume: spike warning above {params['max_rows']:,} rows ({band.max_ratio:g} x the median "
                     f"{median:g} of the last {band.history_days} curated partitions)")
    for flag, series, what in ((ACCOUNT_KNOWN, refs.accounts, "accounts"), (LOAN_KNOWN, refs.loans, "loans"),
                               (LOAN_OWNED, refs.loan_owners, "loans")):
        if series is None:
            why = refs.notes.get(what, f"{what} reference unavailable")
            missing[flag] = ("skipped", why) if rows == 0 else ("critical", why)
    return params, missing, notes


def add_reference_flags(frame: pl.DataFrame, refs: References) -> pl.DataFrame:
    """Pre-join the references GX cannot: ``account_is_known`` / ``loan_is_known`` (True for a null id,
    which its own not-null rule reports)."""
    flags = []
    if "account_id" in frame.columns and refs.accounts is not None:
        flags.append((pl.col("account_id").is_in(refs.accounts.implode()) | pl.col("account_id").is_null())
                     .alias(ACCOUNT_KNOWN))
    if "loan_id" in frame.columns and refs.loans is not None:
        flags.append((pl.col("loan_id").is_in(refs.loans.implode()) | pl.col("loan_id").is_null())
                     .alias(LOAN_KNOWN))
    if {"loan_id", "account_id"} <= set(frame.columns) and refs.loan_owners is not None:
        # The pair, not the loan alone: a payment naming another customer's loan would otherwise be
        # curated and left unallocated on the payer while the loan's owner goes past due. An unknown or
        # held loan is judged by its own rule, a null id by its not-null rule.
        pair = pl.struct(pl.col("loan_id"), pl.col("account_id"))
        owners = refs.loan_owners.select(pl.struct("loan_id", "account_id")).to_series()
        flags.append((pair.is_in(owners.implode()) | ~pl.col("loan_id").is_in(refs.loan_owners["loan_id"].implode())
                      | pl.col("loan_id").is_null() | pl.col("account_id").is_null()).alias(LOAN_OWNED))
    return frame.with_columns(flags) if flags else frame


def add_key_flags(frame: pl.DataFrame, dataset: str) -> pl.DataFrame:
    """Pre-compute identifier validity with the very expressions de-duplication uses (contract.py), so the
    rows ingest refused to de-duplicate are exactly the rows quarantined as ``invalid_<column>``."""
    flags = [valid_identifier(c.name).fill_null(True).alias(c.valid_flag)
             for c in CONTRACT[dataset].columns if c.identifier and c.name in frame.columns]
    key = list(CONTRACT[dataset].key)
    if set(key) <= set(frame.columns):
        flags.append(valid_key(key).alias(KEY_IS_VALID))
    return frame.with_columns(flags)


def validate_landing(
    frame: pl.DataFrame, dataset: str, day: dt.date, cfg: RisklineConfig, refs: References,
    *, kind: Kind = "landing", notes: Iterable[str] = (), in_range: RangeValidation | None = None,
) -> LandingValidation:
    """Validate one conformed, de-duplicated landing (or curated) frame of ``dataset`` for ``day``.

    ``in_range``: the range ingest this date belongs to; a date it judged clean in its one pass is not run
    through GX again (:class:`RangeValidation`).
    """
    undelivered = [c.name for c in CONTRACT[dataset].columns if not c.required and frame.height
                   and frame.get_column(c.curated_name).null_count() == frame.height]
    params, missing, extra_notes = landing_parameters(dataset, day, cfg, refs, frame.height, undelivered)
    flagged = add_key_flags(add_reference_flags(frame, refs), dataset)
    said = [*notes, *extra_notes]
    report = None
    if in_range is not None and kind == "landing":
        report = in_range.report_for(dataset, day, flagged, params, missing, said)
    if report is not None:
        reasons = pl.Series("reasons", [""] * frame.height, dtype=pl.String)
    else:
        report, reasons = validate_frame(
            dataset, flagged, kind=kind, date=day, cfg=cfg, parameters=params, missing=missing,
            key=list(CONTRACT[dataset].key), notes=said,
        )
        if in_range is not None and kind == "landing":
            in_range.learn(dataset, day, flagged, params, missing, said, report)
    held = hold_whole_units(frame, reasons, CONTRACT[dataset].unit)
    if refs.held_loans is not None and "loan_id" in frame.columns:
        with_loan = pl.DataFrame({"r": held, "h": frame.get_column("loan_id").is_in(refs.held_loans.implode())})
        held = with_loan.select(
            pl.when(pl.col("h")).then(pl.concat_str([pl.col("r"), pl.lit(LOAN_HELD)], separator=";")
                                      .str.strip_prefix(";")).otherwise(pl.col("r"))
        ).to_series().alias(reasons.name)
    widened = int((held != "").sum()) - report.quarantined_rows
    if widened:
        report = replace(report, quarantined_rows=report.quarantined_rows + widened, notes=(
            *report.notes, f"{widened:,} rows held with their loan (a loan is curated whole or held whole)"))
    return LandingValidation(report, held)


def validate_output(
    name: str, frame: pl.DataFrame, as_of: dt.date, cfg: RisklineConfig, *, raise_on_critical: bool = True,
) -> ValidationReport:
    """Validate a published output frame (already in contract shape) for ``as_of``.

    Every failure of an output is critical (a published row cannot be quarantined). Raises
    :class:`ValidationError` on one unless ``raise_on_critical`` is False (then check ``report.ok``).
    """
    if name not in OUTPUTS:
        raise KeyError(f"unknown output {name!r}; outputs are {list(OUTPUTS)}")

    params = {"as_of_date": as_of, "max_limit_cny": cfg.product.max_limit_cny}
    report, _ = validate_frame(name, frame, kind="output", date=as_of, cfg=cfg, parameters=params,
                               key=list(OUTPUT_KEYS[name]))
    log.info("%s", report.describe())
    if raise_on_critical:
        report.raise_if_critical()
    return report


# --- a range in one pass (history loads, backfills) ------------------------------------------------

# Per-date rules judged outside the range's GX pass (GX would judge them over the whole range at once):
# volume and null share are counted per date in polars, key uniqueness is checked per date in polars.
_AGGREGATE_TYPES = frozenset({"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal",
                              "expect_column_unique_value_count_to_be_between",
                              "expect_column_proportion_of_non_null_values_to_be_between"})
_UNIQUE_TYPES = frozenset({"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"})
# Parameters that move with the date: a row rule using them is judged in the range pass on values moved by
# the date's distance from the chunk's first date, against that first date's bounds (same verdict per row).
_DAY_SHIFT = {"business_date": "days", "business_day_start_utc": "time", "business_day_end_utc": "time"}
_KNOWN_KWARGS = frozenset({"column", "column_list", "value_set", "min_value", "max_value", "strict_min",
                           "strict_max", "value", "row_condition"})


@dataclass
class RangeValidation:
    """Landing validation of many dates (``riskline ingest --from --to``) with one GX run per dataset.

    A per-date GX run costs about 0.2 s of planning per dataset whatever its rows: a year of history paid
    minutes for it. Instead, before a chunk of dates is ingested, :meth:`judge` runs each dataset's row
    rules once over the chunk's landing frames concatenated (references assumed known, the dates' bounds
    shifted onto one date), and notes the dates where no row failed. Ingest still goes date by date, in
    order (a date's references are the lake after the dates before it): a date is taken from the range pass
    only when its exact validation input (flags from the lake's real references included) equals what the
    pass judged, and its per-date rules (volume, null share, key uniqueness, computed in polars) pass too;
    its results JSON is then built from a clean date GX validated alone. Every other date (a defect, a
    redelivery, an unknown account, a skipped rule not skipped before...) is validated alone by GX exactly
    as outside a range, so it fails or quarantines the same. Before a dataset's dates are taken from the
    pass, its second clean GX-validated date must equal what would have been built for it, byte for byte
    (else the whole range is validated per date): the build is checked against GX on every run.
    """

    days: set[dt.date] = field(default_factory=set)  # dates judged so far
    clean: dict[tuple[str, dt.date], pl.DataFrame] = field(default_factory=dict)
    # per (dataset, rules held back): a clean report GX made alone, its frame's schema, and whether a build
    # from it matched GX's own report of another date
    templates: dict[tuple[str, frozenset[str]], tuple[ValidationReport, pl.Schema]] = field(default_factory=dict)
    trusted: dict[tuple[str, frozenset[str]], bool] = field(default_factory=dict)
    taken: int = 0  # dataset-dates whose results came from the range pass

    def judge(self, dataset: str, frames: Mapping[dt.date, pl.DataFrame], cfg: RisklineConfig) -> None:
        """One GX run (two with date-bound rules) over ``frames`` (landing, de-duplicated) of ``dataset``."""
        days = sorted(d for d, f in frames.items() if f.height)
        self.days.update(frames)
        suite = _engine().suites[dataset]
        _, _, value_exps = _plan(suite, {})
        rows = [e for e in value_exps if e.expectation_type not in _AGGREGATE_TYPES | _UNIQUE_TYPES]
        if not days or any(e.meta["level"] != "row" for e in rows):
            return
        specs = {d: _speculative_flags(frames[d], dataset) for d in days}
        origin = days[0]
        params = landing_parameters(dataset, origin, cfg, References(), 1)[0]
        failed: set[dt.date] = set()
        for moving in (False, True):
            exps = [e for e in rows if bool(_parameters_needed(e) & set(_DAY_SHIFT)) == moving]
            if not exps:
                continue
            columns = set().union(*(_columns_read(_kwargs(dataset, e.meta["rule"])) for e in exps))
            shifts = _shifted_columns(dataset, exps) if moving else {}
            if shifts is None:
                return
            parts, ends, total = [], [], 0
            for day in days:
                part = specs[day].select([c for c in specs[day].columns if c in columns])
                if moving:
                    part, same_length = _shift_to(part, shifts, day, origin, cfg)
                    if not same_length:
                        failed.add(day)
                parts.append(part)
                total += part.height
                ends.append(total)
            try:
                view = to_value_view(pl.concat(parts), columns)
            except pl.exceptions.PolarsError:  # dates disagree on a type: each is validated alone
                return
            for result in _gx_run(suite, exps, view, {k: _gx_value(v) for k, v in params.items()}):
                r = result.result or {}
                positions = r.get("unexpected_index_list")
                if _exception(result) is not None or positions is None or len(positions) != r.get("unexpected_count"):
                    return
                failed.update(days[bisect.bisect_right(ends, int(p))] for p in positions)
        read = suite_columns(dataset)
        for day in days:
            if day not in failed:
                self.clean[(dataset, day)] = specs[day].select([c for c in specs[day].columns if c in read])

    def report_for(self, dataset: str, day: dt.date, flagged: pl.DataFrame, params: Mapping[str, Any],
                   missing: Mapping[str, tuple[Outcome, str]], notes: list[str]) -> ValidationReport | None:
        """The report of a date the range pass judged clean; None: validate it alone with GX."""
        judged = self.clean.pop((dataset, day), None)
        if judged is None or not self.trusted.get(_template_key(dataset, missing)):
            return None
        if judged.columns != [c for c in flagged.columns if c in set(judged.columns)]:
            return None
        if not flagged.select(judged.columns).equals(judged):
            return None
        report = self._build(dataset, day, flagged, params, missing, notes)
        if report is not None:
            self.taken += 1
        return report

    def learn(self, dataset: str, day: dt.date, flagged: pl.DataFrame, params: Mapping[str, Any],
              missing: Mapping[str, tuple[Outcome, str]], notes: list[str], report: ValidationReport) -> None:
        """Keep the first clean GX report of ``dataset`` (per set of rules run) as the template; check the
        build against GX on the second."""
        key = _template_key(dataset, missing)
        if key in self.trusted or not flagged.height or report.quarantined_rows or any(
                o.outcome not in ("passed", "skipped") for o in report.outcomes):
            return
        if key not in self.templates:
            self.templates[key] = (report, flagged.schema)
            return
        built = self._build(dataset, day, flagged, params, missing, notes)
        if built is None:  # a per-date rule this build does not count (see _fill_result): try the next date
            return
        self.trusted[key] = _report_json(built) == _report_json(report)
        if not self.trusted[key]:
            log.warning("range validation of %s: the built results differ from GX's for dt=%s; its dates "
                        "are validated one by one", dataset, day)

    def _build(self, dataset: str, day: dt.date, flagged: pl.DataFrame, params: Mapping[str, Any],
               missing: Mapping[str, tuple[Outcome, str]], notes: list[str]) -> ValidationReport | None:
        """The date's report when all its per-date rules pass, built from the template; else None."""
        template, schema = self.templates[_template_key(dataset, missing)]
        if flagged.schema != schema or not flagged.height:
            return None
        suite = _engine().suites[dataset]
        held_back, _, value_exps = _plan(suite, missing)
        if any(o.outcome != "skipped" for o in held_back):
            return None
        gx_result = copy.deepcopy(template.gx_result)
        by_rule = {r["expectation_config"]["meta"]["rule"]: r for r in gx_result["results"]}
        for exp in value_exps:
            if not _fill_result(by_rule[exp.meta["rule"]], dataset, exp, flagged, params):
                return None
        gx_result["suite_parameters"] = {k: _jsonable(v) for k, v in params.items()}
        gx_result["meta"]["run"] = f"landing dt={day.isoformat()}"
        gx_result["meta"]["active_batch_definition"]["batch_identifiers"]["dt"] = day.isoformat()
        skipped = {o.rule: o for o in held_back}
        outcomes = []
        for o in template.outcomes:
            if o.outcome == "skipped":
                outcomes.append(skipped[o.rule])
                continue
            r = by_rule[o.rule]["result"]
            count = r.get("unexpected_count")
            outcomes.append(replace(o, observed=_jsonable(r.get("observed_value")), unexpected_count=count,
                                    unexpected_share=count / flagged.height if count is not None else None))
        return ValidationReport(name=dataset, kind="landing", date=day, rows=flagged.height,
                                outcomes=tuple(outcomes), notes=tuple(notes), gx_result=gx_result)


def _template_key(dataset: str, missing: Mapping[str, tuple[Outcome, str]]) -> tuple[str, frozenset[str]]:
    """Dates of a dataset share a template when the same rules ran (e.g. volume once history allows)."""
    held_back, _, _ = _plan(_engine().suites[dataset], missing)
    return dataset, frozenset(o.rule for o in held_back)


def _report_json(report: ValidationReport) -> str:
    return json.dumps(report.to_json_dict(), indent=2, sort_keys=True, default=_jsonable)


def _speculative_flags(frame: pl.DataFrame, dataset: str) -> pl.DataFrame:
    """``frame`` flagged as ingest would flag it if every account and loan it names were known."""
    known = []
    if dataset != "accounts" and "account_id" in frame.columns:
        known.append(pl.lit(True).alias(ACCOUNT_KNOWN))
    if dataset == "payments" and "loan_id" in frame.columns:
        known.append(pl.lit(True).alias(LOAN_KNOWN))
    return add_key_flags(frame.with_columns(known), dataset)


def _shifted_columns(dataset: str, expectations: list[Any]) -> dict[str, str] | None:
    """Column -> how it moves with the date ("days" or "time"); None when one column would move two ways."""
    shifts: dict[str, str] = {}
    for exp in expectations:
        kinds = {_DAY_SHIFT[p] for p in _parameters_needed(exp) & set(_DAY_SHIFT)}
        column = _kwargs(dataset, exp.meta["rule"]).get("column")
        if len(kinds) != 1 or column is None or shifts.get(column, kinds.copy().pop()) not in kinds:
            return None
        shifts[column] = kinds.pop()
    return shifts


def _shift_to(part: pl.DataFrame, shifts: Mapping[str, str], day: dt.date, origin: dt.date,
              cfg: RisklineConfig) -> tuple[pl.DataFrame, bool]:
    """``part`` of ``day`` with its date-bound columns moved onto ``origin``; and whether the two business
    days are equally long (if not, say across a daylight-saving change, the moved verdict would differ)."""
    tz = cfg.business.tz

    def bounds(d: dt.date) -> tuple[dt.datetime, dt.datetime]:
        return (dt.datetime.combine(d, dt.time(0), tz).astimezone(dt.UTC),
                dt.datetime.combine(d + dt.timedelta(days=1), dt.time(0), tz).astimezone(dt.UTC))

    (start, end), (start0, end0) = bounds(day), bounds(origin)
    moved = []
    for column, how in shifts.items():
        delta = dt.timedelta(days=(day - origin).days) if how == "days" else start - start0
        moved.append(pl.col(column) - pl.lit(delta))
    return part.with_columns(moved), end - start == end0 - start0


def _fill_result(entry: dict[str, Any], dataset: str, exp: Any, frame: pl.DataFrame,
                 params: Mapping[str, Any]) -> bool:
    """Write ``exp``'s clean per-date result into ``entry`` (a template's); False when it would not pass
    (or is of a kind this cannot count: the date is then validated alone)."""
    kwargs = _kwargs(dataset, exp.meta["rule"])
    if set(kwargs) - _KNOWN_KWARGS:
        return False
    values = {k: (params[v["$PARAMETER"]] if isinstance(v, dict) and "$PARAMETER" in v else v)
              for k, v in kwargs.items()}
    config = entry["expectation_config"]["kwargs"]
    for k, v in kwargs.items():
        if isinstance(v, dict) and "$PARAMETER" in v:
            written = _gx_json(values[k])
            if isinstance(config[k], float) and isinstance(written, int):  # GX keeps a float bound a float
                written = float(written)
            config[k] = written
    kind = exp.expectation_type
    result = entry["result"]
    if kind in _AGGREGATE_TYPES:
        if kind == "expect_column_unique_value_count_to_be_between":
            observed: Any = frame.get_column(values["column"]).drop_nulls().n_unique()
        elif kind == "expect_column_proportion_of_non_null_values_to_be_between":
            column = frame.get_column(values["column"])
            observed = (column.len() - column.null_count()) / column.len()
            # a proportion within rounding of its bound: let GX itself decide
            if any(abs(observed - values[b]) < 1e-9 for b in ("min_value", "max_value") if values.get(b) is not None):
                return False
        else:
            observed = frame.height
        result["observed_value"] = observed
        if kind == "expect_table_row_count_to_equal":
            return observed == values["value"]
        return _within(observed, values)
    rows = frame
    condition = values.get("row_condition")
    if condition is not None:
        mask = _condition_mask(frame, condition)
        if mask is None:
            return False
        rows = frame.filter(mask)
    if kind in _UNIQUE_TYPES:
        key = values.get("column_list") or [values["column"]]
        if rows.select(key).is_duplicated().any():
            return False
    elements = rows.height
    column = values.get("column")
    nulls = rows.get_column(column).null_count() if column is not None else 0
    if not elements or nulls == elements or entry.get("success") is not True:
        return False
    result["element_count"] = elements
    if "missing_count" in result:
        result["missing_count"] = nulls
        result["missing_percent"] = nulls / elements * 100
    return True


def _within(value: float, bounds: Mapping[str, Any]) -> bool:
    low, high = bounds.get("min_value"), bounds.get("max_value")
    if low is not None and (value <= low if bounds.get("strict_min") else value < low):
        return False
    return high is None or (value < high if bounds.get("strict_max") else value <= high)


def _condition_mask(frame: pl.DataFrame, condition: Any) -> pl.Series | None:
    """A GX comparison row condition (``column ==/!= value``) as pandas evaluates it (a null row compares
    unequal); None for any other condition."""
    node = condition.dict() if hasattr(condition, "dict") else condition
    if not isinstance(node, dict) or node.get("type") != "comparison" or node.get("operator") not in ("==", "!="):
        return None
    name = (node.get("column") or {}).get("name")
    if name not in frame.columns:
        return None
    equal = frame.get_column(name).eq_missing(node.get("parameter"))
    return equal if node["operator"] == "==" else ~equal


def _gx_json(value: Any) -> Any:
    """A parameter as GX writes it into a persisted result's expectation kwargs."""
    # why: Great Expectations takes seconds to import; only validating pays for it
    from great_expectations.util import convert_to_json_serializable

    if isinstance(value, bool | int | float):  # kept as given (GX does not turn 5000.0 into 5000 here)
        return value
    return json.loads(json.dumps(convert_to_json_serializable(_gx_value(value)), default=str))


# --- I/O -------------------------------------------------------------------------------------------


def results_dir(root: Path, day: dt.date) -> Path:
    return lake.derived_partition(root, "validation", day, key="dt")


def data_docs_dir(root: Path, day: dt.date) -> Path:
    return lake.partition_dir(root, "reports", "data_docs", day)


def _curated_ids(root: Path, dataset: str, day: dt.date, column: str) -> pl.Series | None:
    files = lake.complete_files(zones.curated(root, dataset, day))
    if files is None:
        return None
    return lake.scan_parquet(files).select(column).collect().to_series()


def _partition_rows(part: Path) -> int | None:
    """Rows of a complete partition (0 when it holds no file); None while it is incomplete."""
    files = lake.complete_files(part)
    if files is None:
        return None
    return int(lake.scan_parquet(files).select(pl.len()).collect().item()) if files else 0


def _known_accounts(root: Path, day: dt.date, cfg: RisklineConfig,
                    in_flight: pl.Series | None) -> tuple[pl.Series | None, str]:
    if in_flight is not None:
        return in_flight, "accounts snapshot of this drop (after its own quarantine)"
    curated = _curated_ids(root, "accounts", day, "account_id")
    if curated is not None:
        return curated, "curated accounts snapshot of the same dt"
    try:
        landed = read_landing(root, "accounts", day, cfg)
    except IngestError as exc:
        return None, f"accounts snapshot of dt={day} unavailable ({exc}); ingest accounts first"
    ids = landed.get_column("account_id").drop_nulls()
    return ids, "landing accounts snapshot of the same dt (not ingested yet)"


def _known_loans(root: Path, day: dt.date, cfg: RisklineConfig, wanted: pl.Series,
                 in_flight: pl.DataFrame | None) -> tuple[pl.DataFrame, str]:
    """``loan_id, account_id`` of the loans among ``wanted`` that installments of any dt <= ``day`` know
    (curated, plus this drop's ``in_flight`` rows with their owner)."""
    wanted = wanted.drop_nulls().unique().implode()
    owner = ["loan_id", "account_id"]
    history = (zones.scan_curated(root, "installments", upto=day).select(owner)
               .filter(pl.col("loan_id").is_in(wanted)).unique().collect())
    source = "curated installments of dt <= D"
    today = in_flight
    if today is None and not lake.is_complete(zones.curated(root, "installments", day)):
        try:
            today = read_landing(root, "installments", day, cfg).select(owner)
            source += " plus the landing installments of D"
        except IngestError:
            source += " (installments of D not delivered yet)"
    elif today is not None:
        source += " plus the installments of this drop"
    if today is not None:
        history = pl.concat([history, today.select(owner).filter(pl.col("loan_id").is_in(wanted))])
    return history.unique().sort(owner), source


def _row_counts(root: Path, dataset: str, day: dt.date, cfg: RisklineConfig) -> tuple[int, ...]:
    """Row counts of the last ``history_days`` complete curated partitions before ``day``, newest first."""
    band = cfg.validation.volume
    earliest = day - dt.timedelta(days=band.lookback_days)
    days = [d for d in zones.curated_dates(root, dataset) if earliest <= d < day]
    newest = sorted(days, reverse=True)[: band.history_days]
    return tuple(_count_in(zones.curated(root, dataset, d), "rows") or 0 for d in newest)


# Counts per curated partition version: a range ingest (or a backfill) reads each partition once, and a
# republished partition has a new _SUCCESS (inode, mtime), so it is counted afresh.
_COUNTS: dict[tuple[Any, ...], Any] = {}
_COUNTED = {"rows": None, "open_accounts": pl.col("status") != "closed",
            "cash_draws": pl.col("event_type") == "cash_draw", "loans": "loan_id"}


def _per_version(part: Path, what: str, compute: Any) -> Any:
    """``compute(files)`` for a complete partition (None while incomplete), cached per version when local."""
    key = None
    if not is_remote(part):
        try:
            stat = (part / lake.SUCCESS).stat()
        except FileNotFoundError:
            return None
        key = (str(part), stat.st_ino, stat.st_mtime_ns, what)
        if key in _COUNTS:
            return _COUNTS[key]
    files = lake.complete_files(part)
    if files is None:
        return None
    value = compute(files)
    if key is not None:
        _COUNTS[key] = value
    return value


def _count_in(part: Path, what: str) -> int | None:
    """Rows of a complete curated partition matching ``what`` (rows / open accounts / cash draws)."""
    def count(files: list[Any]) -> int:
        if not files:
            return 0
        scan = lake.scan_parquet(files)
        counted = _COUNTED[what]
        if isinstance(counted, str):
            return int(scan.select(pl.col(counted).n_unique()).collect().item())
        if counted is not None:
            scan = scan.filter(counted)
        return int(scan.select(pl.len()).collect().item())

    return _per_version(part, what, count)


def _loans_due_by_date(files: list[Any]) -> dict[dt.date, int]:
    """Loans with an instalment due on each date, in one curated installments partition (a draw's loans
    are all in its draw day's partition, so these add up across partitions)."""
    if not files:
        return {}
    due = (lake.scan_parquet(files).group_by("due_date").agg(pl.col("loan_id").n_unique().alias("n"))
           .collect())
    return dict(zip(due["due_date"].to_list(), due["n"].to_list(), strict=True))


def _loans_due(root: Path, day: dt.date, dates: Iterable[dt.date]) -> dict[dt.date, int]:
    """Loans falling due on each of ``dates`` per the curated schedule (installments of dt < ``day``)."""
    wanted = dict.fromkeys(dates, 0)
    for drawn in zones.curated_dates(root, "installments"):
        if drawn >= day:
            continue
        part = zones.curated(root, "installments", drawn)
        for due, n in (_per_version(part, "loans_due", _loans_due_by_date) or {}).items():
            if due in wanted:
                wanted[due] += n
    return wanted


def _today_count(root: Path, dataset: str, day: dt.date, cfg: RisklineConfig, what: str,
                 batch: Mapping[str, pl.DataFrame]) -> tuple[int | None, str]:
    """``what`` counted in ``dataset`` of ``day``: this ingest's own frame, else curated, else landing."""
    condition = _COUNTED[what]
    if dataset in batch:
        frame = batch[dataset]
        return (frame.height if condition is None else frame.filter(condition).height), "this drop"
    counted = _count_in(zones.curated(root, dataset, day), what)
    if counted is not None:
        return counted, "curated"
    try:
        frame = read_landing(root, dataset, day, cfg)
    except IngestError as exc:
        return None, f"{dataset} of dt={day} not delivered or unreadable ({str(exc).split(': ', 1)[-1][:120]})"
    return (frame.height if condition is None else frame.filter(condition).height), "landing"


def _volume_history(root: Path, dataset: str, day: dt.date, cfg: RisklineConfig,
                    batch: Mapping[str, pl.DataFrame]) -> VolumeHistory:
    """``dataset``'s volume driver on ``day`` and (dt, rows, driver) of its trailing curated partitions."""
    band = cfg.validation.volume
    driver = VOLUME_DRIVERS[dataset]
    earliest = day - dt.timedelta(days=band.lookback_days)
    own = [d for d in zones.curated_dates(root, dataset) if earliest <= d < day]

    unit = "loans" if dataset == "installments" else "rows"  # gx_suites.VOLUME_UNITS

    def rows(d: dt.date) -> int:
        return _count_in(zones.curated(root, dataset, d), unit) or 0

    if dataset == "accounts":
        snaps = [d for d in zones.curated_dates(root, "accounts") if d < day]
        open_on = {d: _count_in(zones.curated(root, "accounts", d), "open_accounts") or 0
                   for d in snaps if d >= earliest - dt.timedelta(days=band.lookback_days)}
        prev = {d: max((p for p in open_on if p < d), default=None) for d in own}
        days = tuple((d, rows(d), open_on[p]) for d, p in prev.items() if p is not None)
        last = max(open_on, default=None)
        if last is None:
            return VolumeHistory(driver, None, days, f"no curated snapshot within {band.lookback_days} days")
        return VolumeHistory(driver, open_on[last], days)
    if dataset == "payments":
        due = _loans_due(root, day, [*own, day])
        return VolumeHistory(driver, due[day], tuple((d, rows(d), due[d]) for d in own))
    source, what = ("accounts", "open_accounts") if dataset == "behaviour" else ("behaviour", "cash_draws")
    days = []
    for d in own:
        driven = _count_in(zones.curated(root, source, d), what)
        if driven is not None:
            days.append((d, rows(d), driven))
    today, where = _today_count(root, source, day, cfg, what, batch)
    return VolumeHistory(driver, today, tuple(days), where if today is None else "",
                         exclusive=dataset == "installments", events=dataset == "behaviour")


def _declared_rows(root: Path, dataset: str, day: dt.date, duplicates: int) -> int | None:
    part = zones.landing(root, dataset, day)
    try:
        declared = lake.declared_rows(part)
    except ValueError as exc:
        raise IngestError(str(exc), dataset=dataset, date=day, file=lake.SUCCESS,
                          hint='ask upstream to write an empty _SUCCESS or {"rows": N} (docs/contracts.md), '
                               "then rerun ingest for this date") from None
    return None if declared is None else declared - duplicates


def _held_loans(root: Path, day: dt.date, wanted: pl.Series, known: pl.Series,
                in_flight: pl.Series | None) -> pl.Series:
    """Loan ids among ``wanted`` whose schedule is held in quarantine on a dt <= ``day`` and not curated
    since (``in_flight``: the loans this ingest holds, which replace the lake's quarantine of ``day``)."""
    wanted = wanted.drop_nulls().unique()
    days = [d for d in zones.quarantine_dates(root, "installments")
            if d < day or (d == day and in_flight is None)]
    held = [in_flight] if in_flight is not None else []
    for d in days:
        files = lake.complete_files(zones.quarantine(root, "installments", d)) or []
        if files:
            held.append(lake.scan_parquet(files).select("loan_id").collect().to_series())
    if not held:
        return pl.Series("loan_id", [], dtype=pl.String)
    ids = pl.concat([h.cast(pl.String).rename("loan_id") for h in held]).drop_nulls().unique()
    return ids.filter(ids.is_in(wanted.implode()) & ~ids.is_in(known.implode()))


def load_references(root: Path, dataset: str, day: dt.date, cfg: RisklineConfig, frame: pl.DataFrame,
                    in_flight: Mapping[str, pl.Series] | None = None,
                    batch: Mapping[str, pl.DataFrame] | None = None, duplicates: int | None = None) -> References:
    """Everything ``dataset``'s suite checks ``frame`` against, read from the lake.

    ``in_flight`` holds ids of this ingest's own datasets ("accounts": account_id of the rows about to be
    curated, "installments": their loan_id), which win over what the lake holds for the date; ``batch``
    the frames of this ingest (volume drivers of the day). ``duplicates`` (landing only: rows dropped by
    de-duplication) turns on the check of a row count upstream declared in ``_SUCCESS``.
    """
    in_flight = in_flight or {}
    accounts = loans = held = owners = None
    in_flight_loans = None
    if in_flight.get("installments") is not None:  # this drop's curated-to-be loans, with their owners
        in_flight_loans = pl.DataFrame({"loan_id": in_flight["installments"],
                                        "account_id": in_flight["installment_accounts"]})
    notes: dict[str, str] = {}
    if dataset != "accounts" and "account_id" in frame.columns:
        accounts, notes["accounts"] = _known_accounts(root, day, cfg, in_flight.get("accounts"))
    if dataset == "payments" and "loan_id" in frame.columns:
        owners, notes["loans"] = _known_loans(
            root, day, cfg, frame.get_column("loan_id"), in_flight_loans)
        loans = owners.get_column("loan_id").unique().sort()
        held = _held_loans(root, day, frame.get_column("loan_id"), loans, in_flight.get("installments_held"))
        loans = pl.concat([loans.cast(pl.String), held])  # known to exist: held, not unknown
    declared = None if duplicates is None else _declared_rows(root, dataset, day, duplicates)
    return References(accounts=accounts, loans=loans, held_loans=held, loan_owners=owners,
                      row_counts=_row_counts(root, dataset, day, cfg), notes=notes,
                      volume=_volume_history(root, dataset, day, cfg, batch or {}), declared_rows=declared)


# Accounts first (others check their account ids against it), installments before payments (loans).
_VALIDATION_ORDER = ("accounts", "installments", "payments", "behaviour")


def validate_landing_frames(
    root: Path, day: dt.date, cfg: RisklineConfig, frames: Mapping[str, pl.DataFrame],
    duplicates: Mapping[str, int] | None = None, data_docs: bool = True,
    notes: Mapping[str, Iterable[str]] | None = None, in_range: RangeValidation | None = None,
) -> dict[str, LandingValidation]:
    """Validate ingest's prepared frames of ``day`` (conformed, de-duplicated); persist the results.

    ``in_range``: the range ingest's one-pass judgement (:class:`RangeValidation`), if any.

    Raises:
        LandingValidationError: some expectation failed critically (after the results were written), so ingest
        publishes nothing for the date.
    """
    out: dict[str, LandingValidation] = {}
    in_flight: dict[str, pl.Series] = {}
    for name in sorted(frames, key=_VALIDATION_ORDER.index):
        frame = frames[name]
        dropped = (duplicates or {}).get(name, 0)
        refs = load_references(root, name, day, cfg, frame, in_flight, batch=frames, duplicates=dropped)
        said = list((notes or {}).get(name, ()))
        if dropped:
            said.append(f"{dropped:,} redelivered rows dropped before validation (latest delivery wins)")
        validation = validate_landing(frame, name, day, cfg, refs, notes=said, in_range=in_range)
        out[name] = validation
        kept = frame.filter(validation.reasons == "")
        if name == "accounts":
            in_flight["accounts"] = kept.get_column("account_id")
        elif name == "installments":
            in_flight["installments"] = kept.get_column("loan_id")
            in_flight["installment_accounts"] = kept.get_column("account_id")
            in_flight["installments_held"] = frame.filter(validation.reasons != "").get_column("loan_id")
    reports = [v.report for v in out.values()]
    for report in reports:
        log.info("%s", report.describe())
    write_results(root, day, reports, cfg, data_docs=data_docs)
    if any(not r.ok for r in reports):
        raise LandingValidationError(reports, results_dir(root, day), files={
            r.name: _landing_file_names(root, r.name, day) for r in reports if not r.ok})
    return out


def _landing_file_names(root: Path, dataset: str, day: dt.date) -> str:
    """The data files of a landing drop, for an error line: ``part-0.parquet`` or ``part-0.parquet,+2``."""
    files = lake.complete_files(zones.landing(root, dataset, day)) or []
    names = sorted(f.name for f in files)
    return (names[0] + (f",+{len(names) - 1}" if len(names) > 1 else "")) if names else ""


def validate_date(root: Path, day: dt.date, cfg: RisklineConfig) -> list[ValidationReport]:
    """Re-validate what the lake holds for ``day`` (``riskline validate``); nothing but results is written.

    The curated partitions of every landing dataset that has one are judged by the landing suites, against
    references read from the curated zone (quarantined rows are counted from the quarantine partition);
    published outputs of ``day`` are judged by their output suites. Missing partitions are not errors.
    """

    reports: list[ValidationReport] = []
    for name in DATASETS:
        part = zones.curated(root, name, day)
        if not lake.is_complete(part):
            continue
        frame = lake.read_partition(part)
        refs = load_references(root, name, day, cfg, frame)
        report = validate_landing(frame, name, day, cfg, refs, kind="curated").report
        held = _partition_rows(zones.quarantine(root, name, day))
        if held is not None:
            report = replace(report, quarantined_rows=held)
        log.info("%s", report.describe())
        reports.append(report)
    for name in OUTPUTS:
        part = output_dir(root, name, day)
        if lake.is_complete(part):
            reports.append(validate_output(name, lake.read_partition(part), day, cfg, raise_on_critical=False))
    if reports:
        write_results(root, day, reports, cfg)
    return reports


def write_results(
    root: Path, day: dt.date, reports: Iterable[ValidationReport], cfg: RisklineConfig, data_docs: bool = True
) -> Path:
    """Persist each report as ``validation/dt=D/<name>.json`` (atomically) and rebuild that date's Data Docs.

    The Data Docs of a date are rendered from every result JSON of the date (ingest's and publish's), so a
    later writer never hides an earlier one.
    """
    folder = results_dir(root, day)
    for report in reports:
        body = json.dumps(report.to_json_dict(), indent=2, sort_keys=True, default=_jsonable) + "\n"
        lake.atomic_write_bytes(folder / f"{report.name}.json", body.encode())
    if cfg.validation.data_docs and data_docs:
        build_data_docs(root, day)
    return folder


def build_data_docs(root: Path, day: dt.date) -> Path:
    """Render GX Data Docs for ``day`` alone from its persisted results; replace the folder atomically."""
    # why: Great Expectations takes seconds to import; only validating pays for it
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResultSchema
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    context = _engine().context
    target = data_docs_dir(root, day)
    keys = []
    rows: list[dict[str, Any]] = []
    site = f"riskline-{day.isoformat()}"
    with lake.staged_partition(target) as tmp:
        context.add_data_docs_site(site, {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(tmp)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        try:
            for path in sorted(results_dir(root, day).glob("*.json")):
                stored = json.loads(path.read_text())
                if not stored.get("gx_result"):
                    continue
                result = ExpectationSuiteValidationResultSchema().load(stored["gx_result"])
                key = ValidationResultIdentifier(
                    expectation_suite_identifier=ExpectationSuiteIdentifier(name=stored["name"]),
                    run_id=RunIdentifier(run_name=f"{stored['kind']}-{day.isoformat()}",
                                         run_time=dt.datetime.combine(day, dt.time(0), dt.UTC)),
                    batch_identifier=stored["name"],
                )
                context.validation_results_store.set(key, result)
                keys.append(key)
                stats = result.statistics or {}
                rows.append({"name": stored["name"], "kind": stored["kind"], "success": bool(result.success),
                             "evaluated": stats.get("evaluated_expectations", 0),
                             "unsuccessful": stats.get("unsuccessful_expectations", 0)})
            context.build_data_docs(site_names=[site])
            _make_offline(tmp, day, rows)
            _prune_static(tmp)
        finally:
            for key in keys:
                context.validation_results_store.remove_key(key)
            context.delete_data_docs_site(site)
    return target


_TEMPLATES = Path(__file__).resolve().parent / "templates"
_OFFLINE_CSS = "static/styles/data_docs_offline.css"
# GX pages take Bootstrap, Font Awesome, jQuery, bootstrap-table and Vega from CDNs: offline (a bank's
# closed network, a laptop on a train) the index is blank, since its table is drawn by script, and the pages
# lose their styling. Those tags go; one bundled stylesheet replaces them.
_CDN_TAG = re.compile(
    r'<link\b[^>]*href="https?://[^"]*"[^>]*>\s*|<script\b[^>]*src="https?://[^"]*"[^>]*>\s*</script>\s*',
    re.IGNORECASE)
# Remote images (the GX logo, fetched with a timestamp on every view) become their alt text; remote CSS
# backgrounds go.
_REMOTE_IMG = re.compile(r'<img\b[^>]*src="https?://[^"]*"[^>]*>', re.IGNORECASE)
_REMOTE_URL = re.compile(r"url\(['\"]?https?://[^)]*\)", re.IGNORECASE)


def _alt_text(match: re.Match[str]) -> str:
    alt = re.search(r'alt="([^"]*)"', match.group(0))
    return alt.group(1) if alt else ""


def _make_offline(site: Path, day: dt.date, rows: list[dict[str, Any]]) -> None:
    """Make a rendered Data Docs site readable with no network: local styling, and an index without script.

    ``rows``: one per validation result (name, kind, success, evaluated, unsuccessful), for the index.
    """
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    css = site / _OFFLINE_CSS
    css.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_TEMPLATES / "data_docs_offline.css", css)
    for page in site.rglob("*.html"):
        depth = len(page.relative_to(site).parts) - 1
        link = f'<link rel="stylesheet" href="{"../" * depth}{_OFFLINE_CSS}">\n</head>'
        html = _CDN_TAG.sub("", page.read_text(encoding="utf-8"))
        html = _REMOTE_URL.sub("none", _REMOTE_IMG.sub(_alt_text, html))
        page.write_text(html.replace("</head>", link, 1), encoding="utf-8")
    for row in rows:
        found = sorted(site.glob(f"validations/{row['name']}/{row['kind']}-{day.isoformat()}/*/*.html"))
        row["href"] = found[0].relative_to(site).as_posix() if found else None
    suites = [{"name": p.stem, "href": p.relative_to(site).as_posix()} for p in sorted(site.glob("expectations/*.html"))]
    env = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    index = env.get_template("data_docs_index.html.j2").render(day=day.isoformat(), validations=rows, suites=suites)
    (site / "index.html").write_text(index, encoding="utf-8")


def _prune_static(site: Path) -> None:
    """Drop the site builder's static files no page links to (3.4 MB of images and fonts per date)."""
    pages = "".join(p.read_text(errors="replace") for p in site.rglob("*.html"))
    for path in sorted((site / "static").rglob("*"), reverse=True):
        if path.is_file() and path.relative_to(site).as_posix() not in pages:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
