"""Landing validation of a range of dates (history loads, backfills) with one GX run per dataset and chunk.

:class:`RangeValidation` judges a chunk's row rules in one pass and builds a clean date's results from a
template GX made for another date; every date it cannot vouch for is validated alone, exactly as outside
a range.
"""

from __future__ import annotations

import bisect
import copy
import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl

from pipelines.config.settings import RisklineConfig
from pipelines.quality.gx_engine import (
    columns_read, exception_message, gx_value, load_engine, parameters_needed, plan_suite, rule_kwargs,
    run_expectations, suite_columns, to_value_view,
)
from pipelines.quality.references import References, add_key_flags, landing_parameters
from pipelines.quality.results import ACCOUNT_KNOWN, LOAN_KNOWN, LOAN_OWNED, Outcome, ValidationReport, jsonable

log = logging.getLogger(__name__)


# Per-date rules judged outside the range's GX pass (GX would judge them over the whole range at once):
# volume and null share are counted per date in polars, key uniqueness is checked per date in polars.
_AGGREGATE_TYPES = frozenset({"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal",
                              "expect_column_unique_value_count_to_be_between",
                              "expect_column_proportion_of_non_null_values_to_be_between"})
_UNIQUE_TYPES = frozenset({"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"})
# Parameters that move with the date: a row rule using them is judged in the range pass on values moved by
# the parameter's own move between the chunk's first date and the row's date, against that first date's
# bounds (same verdict per row). A column whose rules' parameters move by different amounts on a date (a
# daylight-saving change in the business time zone) sends that date to GX alone.
_DAY_SHIFT = frozenset({"business_date", "business_day_start_utc", "business_day_end_utc", "late_window_start_utc"})
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
        suite = load_engine().suites[dataset]
        _, _, value_exps = plan_suite(suite, {})
        rows = [e for e in value_exps if e.expectation_type not in _AGGREGATE_TYPES | _UNIQUE_TYPES]
        if not days or any(e.meta["level"] != "row" for e in rows):
            return
        specs = {d: _speculative_flags(frames[d], dataset) for d in days}
        origin = days[0]
        params = landing_parameters(dataset, origin, cfg, References(), 1)[0]
        failed: set[dt.date] = set()
        for moving in (False, True):
            exps = [e for e in rows if bool(parameters_needed(e) & _DAY_SHIFT) == moving]
            if not exps:
                continue
            columns = set().union(*(columns_read(rule_kwargs(dataset, e.meta["rule"])) for e in exps))
            shifts = _shifted_columns(dataset, exps) if moving else {}
            if shifts is None:
                return
            parts, ends, total = [], [], 0
            for day in days:
                part = specs[day].select([c for c in specs[day].columns if c in columns])
                if moving:
                    part, uniform = _shift_to(part, shifts, landing_parameters(dataset, day, cfg, References(), 1)[0],
                                              params)
                    if not uniform:
                        failed.add(day)
                parts.append(part)
                total += part.height
                ends.append(total)
            try:
                view = to_value_view(pl.concat(parts), columns)
            except pl.exceptions.PolarsError:  # dates disagree on a type: each is validated alone
                return
            for result in run_expectations(suite, exps, view, {k: gx_value(v) for k, v in params.items()}):
                r = result.result or {}
                positions = r.get("unexpected_index_list")
                if exception_message(result) is not None or positions is None or len(positions) != r.get("unexpected_count"):
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
        suite = load_engine().suites[dataset]
        held_back, _, value_exps = plan_suite(suite, missing)
        if any(o.outcome != "skipped" for o in held_back):
            return None
        gx_result = copy.deepcopy(template.gx_result)
        by_rule = {r["expectation_config"]["meta"]["rule"]: r for r in gx_result["results"]}
        for exp in value_exps:
            if not _fill_result(by_rule[exp.meta["rule"]], dataset, exp, flagged, params):
                return None
        gx_result["suite_parameters"] = {k: jsonable(v) for k, v in params.items()}
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
            outcomes.append(replace(o, observed=jsonable(r.get("observed_value")), unexpected_count=count,
                                    unexpected_share=count / flagged.height if count is not None else None))
        return ValidationReport(name=dataset, kind="landing", date=day, rows=flagged.height,
                                outcomes=tuple(outcomes), notes=tuple(notes), gx_result=gx_result)


def _template_key(dataset: str, missing: Mapping[str, tuple[Outcome, str]]) -> tuple[str, frozenset[str]]:
    """Dates of a dataset share a template when the same rules ran (e.g. volume once history allows)."""
    held_back, _, _ = plan_suite(load_engine().suites[dataset], missing)
    return dataset, frozenset(o.rule for o in held_back)


def _report_json(report: ValidationReport) -> str:
    return json.dumps(report.to_json_dict(), indent=2, sort_keys=True, default=jsonable)


def _speculative_flags(frame: pl.DataFrame, dataset: str) -> pl.DataFrame:
    """``frame`` flagged as ingest would flag it if every account and loan it names were known."""
    known = []
    if dataset != "accounts" and "account_id" in frame.columns:
        known.append(pl.lit(True).alias(ACCOUNT_KNOWN))
    if dataset == "payments" and "loan_id" in frame.columns:
        known.append(pl.lit(True).alias(LOAN_KNOWN))
        if "account_id" in frame.columns:
            known.append(pl.lit(True).alias(LOAN_OWNED))
    return add_key_flags(frame.with_columns(known), dataset)


def _shifted_columns(dataset: str, expectations: list[Any]) -> dict[str, set[str]] | None:
    """Column -> the date-bound parameters its rules compare it with; None for a rule without one column."""
    shifts: dict[str, set[str]] = {}
    for exp in expectations:
        column = rule_kwargs(dataset, exp.meta["rule"]).get("column")
        if column is None:
            return None
        shifts.setdefault(column, set()).update(parameters_needed(exp) & _DAY_SHIFT)
    return shifts


def _shift_to(part: pl.DataFrame, shifts: Mapping[str, set[str]], day_params: Mapping[str, Any],
              origin_params: Mapping[str, Any]) -> tuple[pl.DataFrame, bool]:
    """``part`` with its date-bound columns moved by their parameters' move from the chunk's first date onto
    this one; and whether every column's parameters moved alike (if not, the moved verdict could differ)."""
    moved, uniform = [], True
    for column, names in shifts.items():
        deltas = {day_params[n] - origin_params[n] for n in names}
        uniform &= len(deltas) == 1
        moved.append(pl.col(column) - pl.lit(min(deltas)))
    return part.with_columns(moved), uniform


def _fill_result(entry: dict[str, Any], dataset: str, exp: Any, frame: pl.DataFrame,
                 params: Mapping[str, Any]) -> bool:
    """Write ``exp``'s clean per-date result into ``entry`` (a template's); False when it would not pass
    (or is of a kind this cannot count: the date is then validated alone)."""
    kwargs = rule_kwargs(dataset, exp.meta["rule"])
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
    return json.loads(json.dumps(convert_to_json_serializable(gx_value(value)), default=str))
