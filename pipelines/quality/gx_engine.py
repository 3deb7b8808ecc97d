"""Running a committed GX suite over a polars frame: the in-memory GX context, the pandas views, the verdict.

GX has no polars engine, so each frame is handed over as two pandas views (measured: docs/contracts.md):

* the schema view, ``frame.head(0).to_pandas(use_pyarrow_extension_array=True)``: exact Arrow types at no
  cost, for the column and type expectations;
* the value view: only the columns the suite reads, integers as Int64, Date as Datetime(ns), Decimal as
  Float64, then a plain ``to_pandas()``. GX vectorises range checks only for numpy numbers and datetimes;
  on Arrow-backed columns it maps a Python function over every row (about 1 s per million rows and rule).
  Float64 keeps the order of 2-decimal amounts exactly, which is all a range check needs.

:func:`validate_frame` runs a suite and judges each result (passed, quarantined, warning, critical,
skipped). The committed suites are read once per process, like code; GX is imported on first use.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any, TYPE_CHECKING

import polars as pl

from pipelines.config.settings import RisklineConfig
from pipelines.quality.results import REFERENCE_FLAGS, ExpectationOutcome, Kind, Outcome, ValidationReport, jsonable

if TYPE_CHECKING:
    import great_expectations as gx
    import pandas as pd


SAMPLE_ROWS = 5
_KEEP_UNEXPECTED = 20  # unexpected values/indices kept per expectation in the persisted GX result


@dataclass
class _Engine:
    context: Any
    batch_definition: Any
    suites: dict[str, Any]


@cache
def load_engine() -> _Engine:
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


def run_expectations(suite: gx.ExpectationSuite, expectations: list[Any], view: pd.DataFrame,
            parameters: dict[str, Any]) -> list[Any]:
    if not expectations:
        return []
    sub = _sub_suite(suite.name, tuple(e.meta["rule"] for e in expectations))
    batch = load_engine().batch_definition.get_batch(batch_parameters={"dataframe": view})
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

    chosen = [e for e in load_engine().suites[name].expectations if e.meta["rule"] in rules]
    return gx.ExpectationSuite(name=name, expectations=[copy.copy(e) for e in chosen])


@cache
def _schema_results(name: str, rules: tuple[str, ...], schema: tuple[tuple[str, pl.DataType], ...]) -> tuple[Any, ...]:
    """GX results of suite ``name``'s schema expectations (``rules``) on a frame of this schema.

    They read column names and types only and take no parameter, so every date of a range (and every
    night) with the same schema gets the same results: GX runs them once per schema and process, which
    saves a third of the expectations GX evaluates per landing date.
    """
    view = to_schema_view(pl.DataFrame(schema=dict(schema)))
    suite = load_engine().suites[name]
    return tuple(run_expectations(suite, [e for e in suite.expectations if e.meta["rule"] in rules], view, {}))


def columns_read(kw: Mapping[str, Any]) -> set[str]:
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
        columns_read(e.configuration.kwargs)
        for e in load_engine().suites[name].expectations if e.expectation_type not in schema_types
    ))


def to_schema_view(frame: pl.DataFrame) -> pd.DataFrame:
    return frame.head(0).to_pandas(use_pyarrow_extension_array=True)


def parameters_needed(expectation: Any) -> set[str]:
    return {v["$PARAMETER"] for v in expectation.configuration.kwargs.values()
            if isinstance(v, dict) and "$PARAMETER" in v}


def gx_value(value: Any) -> Any:
    """A parameter as GX compares it with the value view's columns."""
    import pandas as pd  # why: pandas loads with GX, only when validating

    if isinstance(value, dt.datetime):
        return pd.Timestamp(value).tz_convert("UTC") if value.tzinfo else pd.Timestamp(value)
    if isinstance(value, dt.date):
        return pd.Timestamp(value)  # dates are compared as naive midnight datetimes in the value view
    return value


def exception_message(result: Any) -> str | None:
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


def _sample_rows(frame: pl.DataFrame, positions: list[int], columns: list[str]) -> tuple[dict[str, Any], ...]:
    cols = [c for c in dict.fromkeys(columns) if c in frame.columns]
    picked = frame[positions[:SAMPLE_ROWS]].select(cols)
    return tuple({k: jsonable(v) for k, v in row.items()} for row in picked.iter_rows(named=True))


def _judge(
    result: Any, frame: pl.DataFrame, key: list[str], cfg: RisklineConfig
) -> tuple[ExpectationOutcome, list[int]]:
    """One GX result -> an outcome, plus the row positions to quarantine (row-level warnings only)."""
    config = result.expectation_config
    meta = config.meta or {}
    common = {"rule": meta["rule"], "expectation": _label(config), "risk": meta["risk"],
              "severity": meta["severity"], "level": meta["level"]}
    error = exception_message(result)
    if error is not None:  # GX could not evaluate it (a column is missing...): fail closed
        return ExpectationOutcome(**common, outcome="critical", observed=f"error: {error}",
                                  note="the expectation could not be evaluated"), []
    r = result.result or {}
    count = r.get("unexpected_count")
    rows = frame.height
    share = (count / rows) if count is not None and rows else None
    observed = jsonable(r.get("observed_value"))
    if result.success:
        return ExpectationOutcome(**common, outcome="passed", observed=observed, unexpected_count=count,
                                  unexpected_share=share), []
    positions = [int(i) for i in r.get("unexpected_index_list") or []]
    if meta["level"] == "row" and positions:
        columns = sorted(columns_read(config.kwargs))
        shown = list(key)
        for col in columns:  # a flag column is shown as the ids it was computed from
            shown += list(REFERENCE_FLAGS.get(col, (col,)))
        sample = _sample_rows(frame, positions, shown)
    else:
        sample = tuple({"value": jsonable(v)} for v in (r.get("partial_unexpected_list") or [])[:SAMPLE_ROWS])
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

    engine = load_engine()
    suite = engine.suites[name]
    missing = dict(missing or {})
    key = list(key)
    order = {e.meta["rule"]: i for i, e in enumerate(suite.expectations)}
    held_back, schema_exps, value_exps = plan_suite(suite, missing)
    value_columns = set().union(*(columns_read(rule_kwargs(name, e.meta["rule"])) for e in value_exps))
    gx_params = {k: gx_value(v) for k, v in parameters.items()}
    results = list(_schema_results(name, tuple(e.meta["rule"] for e in schema_exps), tuple(frame.schema.items())))
    results += run_expectations(suite, value_exps, to_value_view(frame, value_columns), gx_params)
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
        suite_parameters={k: jsonable(v) for k, v in parameters.items()},
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


def plan_suite(suite: gx.ExpectationSuite, missing: Mapping[str, tuple[Outcome, str]]
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
                  frozenset(parameters_needed(exp) | columns_read(exp.configuration.kwargs)))
                 for exp in load_engine().suites[name].expectations)


@cache
def rule_kwargs(name: str, rule: str) -> Mapping[str, Any]:
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
