"""Great Expectations suites, built from the landing contract and the published output contract.

The committed JSON in ``expectations/<name>.json`` is what validation runs; it is generated here from
``pipelines/contracts/landing.py`` (landing) and ``pipelines/contracts/outputs.py`` (published outputs) plus the business
rules below, so columns and types have one source of truth. Regenerate after a contract change with::

    .venv/bin/python -m pipelines.quality.gx_suites

``tests/data/test_suites.py`` fails when the committed JSON and what the contracts imply drift apart.

Every expectation carries in ``meta``:

* ``risk``: what it guards against (schema drift, duplicate keys, duplicate facts, key loss, missing value,
  unknown value, impossible value, referential integrity, leakage, volume, completeness);
* ``severity``: ``critical`` fails the run; ``warning`` on a row-level rule quarantines the offending rows
  while they stay within ``validation.warning_share`` of the rows (else it is critical), on a table-level
  rule it is reported and the run goes on (the native GX ``severity`` field says the same);
* ``level``: ``row`` (offending rows can be named and split off) or ``table`` (a property of the whole
  partition: columns, types, key uniqueness after de-duplication, volume, null share);
* ``quarantine_reason`` (row level): the reason written on a quarantined row.

Values that depend on the run (the business day's bounds in UTC, product limits, the volume band, null
share limits) are GX suite parameters (``{"$PARAMETER": name}``) filled in by ``pipelines/quality/references.py``.
GX has no polars engine and does not join: referential integrity (``account_is_known``, ``loan_is_known``) and
a fact repeated under another id (``payment_is_first_copy``, ``event_is_first_copy``) are checked on flag
columns that references.py pre-computes in polars.

Importing this module imports Great Expectations (slow, ~2 s): only gx_engine.py and references.py import it, lazily.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import great_expectations as gx
import pandas as pd
import polars as pl
import pyarrow as pa
from great_expectations.expectations.core.expect_column_type_to_be import ExpectColumnTypeToBe
from great_expectations.expectations.row_conditions import Column as Where

from pipelines.contracts.landing import (
    CONTRACT, Column, DATASETS, Dataset, IDENTIFIER_CHARSET, IDENTIFIER_MAX_LENGTH, KEY_IS_VALID,
)
from pipelines.contracts.outputs import MONEY, OUTPUTS, OUTPUT_COLUMNS, OUTPUT_KEYS, PD_SOURCES
from pipelines.quality.gx_cents import ExpectMulticolumnCentsToReconcile
from pipelines.store.lake import atomic_write_bytes

EXPECTATIONS_DIR = Path(__file__).resolve().parents[2] / "expectations"
SUITE_NAMES: tuple[str, ...] = DATASETS + OUTPUTS

# Flag columns references.py adds before GX sees a landing frame (GX cannot join).
ACCOUNT_KNOWN = "account_is_known"
LOAN_KNOWN = "loan_is_known"
LOAN_OWNED = "loan_is_owned"

# Expectations GX evaluates on the zero-row Arrow-typed view of a frame (exact types); every other
# expectation runs on the value view (see gx_engine.py for why there are two views).
SCHEMA_EXPECTATIONS: frozenset[str] = frozenset(
    {"expect_table_columns_to_match_set", "expect_table_columns_to_match_ordered_list",
     "expect_column_polars_type_to_be"}
)

# Value sets promised to consumers of the published outputs (decisions issue). They are a contract, not
# a tunable: tests/data/test_suites.py checks that riskline.yaml cannot produce anything outside them.
GRADES: tuple[str, ...] = ("A", "B", "C", "D", "E")
LIMIT_ACTIONS: tuple[str, ...] = ("decrease", "freeze", "unfreeze", "increase", "hold")
BUCKETS: tuple[str, ...] = ("1-7", "8-30", "31-60", "61-90", "90+")
TREATMENTS: tuple[str, ...] = ("auto_reminder", "smart_call", "agent", "hardship_offer", "external_review")
EXTENSION_MONTHS: tuple[int, ...] = (3, 6)


class ExpectColumnPolarsTypeToBe(ExpectColumnTypeToBe):
    """Expect a column's exact type, named as polars names it (``Int64``, ``Decimal(precision=18, scale=2)``).

    GX's own ``expect_column_type_to_be`` cannot name pandas' Arrow decimal and list types, and the
    numpy dtypes of a plain ``to_pandas()`` lose nullability and units. Run on an Arrow-backed pandas
    frame, the Arrow type converts back to the exact polars type of the frame that was validated.
    """

    def _validate_pandas(self, actual_column_type: Any, expected_type: str) -> dict[str, Any]:
        if isinstance(actual_column_type, pd.ArrowDtype):
            empty = pa.array([], type=actual_column_type.pyarrow_dtype)
            observed = str(pl.from_arrow(empty).dtype)  # type: ignore[union-attr]
        else:
            observed = f"{actual_column_type} (not Arrow-backed)"
        return {"success": observed == expected_type, "result": {"observed_value": observed}}


def _expect(
    kind: str,
    *,
    rule: str,
    risk: str,
    severity: str = "critical",
    level: str = "table",
    reason: str | None = None,
    notes: str | None = None,
    **kwargs: Any,
) -> gx.expectations.Expectation:
    meta: dict[str, Any] = {"rule": rule, "risk": risk, "severity": severity, "level": level}
    if reason is not None:
        meta["quarantine_reason"] = reason
    custom = {"ExpectColumnPolarsTypeToBe": ExpectColumnPolarsTypeToBe,
              "ExpectMulticolumnCentsToReconcile": ExpectMulticolumnCentsToReconcile}
    cls = custom.get(kind) or getattr(gx.expectations, kind)
    extra = {"notes": notes} if notes else {}
    return cls(**kwargs, meta=meta, severity=severity, **extra)


def _param(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


def non_null_share_parameter(column: str) -> str:
    return f"min_non_null_share_{column}"


# --- landing suites ------------------------------------------------------------------------------

_REFERENCE_KEYS = ("account_id", "loan_id")


def _row(kind: str, reason: str, risk: str, **kwargs: Any) -> gx.expectations.Expectation:
    return _expect(kind, rule=reason, risk=risk, severity="warning", level="row", reason=reason, **kwargs)


def _min_value_reason(col: Column) -> str:
    if col.min_value == 0:
        return f"{'non_positive' if col.min_exclusive else 'negative'}_{col.name}"
    return f"{col.name}_below_{col.min_value:g}"


def _contract_expectations(dataset: Dataset) -> list[gx.expectations.Expectation]:
    """Columns, types, key uniqueness and the contract's own row rules of one landing dataset."""
    out = [
        _expect(
            "ExpectTableColumnsToMatchSet", rule="columns", risk="schema drift",
            column_set=[c.curated_name for c in dataset.columns], exact_match=False,
            notes="Every contract column is present (extra upstream columns are carried, not judged).",
        )
    ]
    out += [
        _expect("ExpectColumnPolarsTypeToBe", rule=f"type_{c.curated_name}", risk="schema drift",
                column=c.curated_name,
                type_=str(c.curated_dtype))
        for c in dataset.columns
    ]
    key = list(dataset.key)
    unique_note = ("Checked after de-duplication (latest delivery wins): a repeat here is a bug, not a "
                   f"redelivery. Only rows with a valid key ({KEY_IS_VALID}) count: an invalid key is quarantined by its own "
                   "rule and never de-duplicated.")
    valid_only = Where(KEY_IS_VALID) == True  # noqa: E712 (a GX condition, not a Python comparison)
    if len(key) == 1:
        out.append(_expect("ExpectColumnValuesToBeUnique", rule="unique_key", risk="duplicate keys", column=key[0],
                           row_condition=valid_only, notes=unique_note))
    else:
        out.append(_expect("ExpectCompoundColumnsToBeUnique", rule="unique_key", risk="duplicate keys",
                           column_list=key, row_condition=valid_only,
                           notes=unique_note))
    for col in dataset.columns:
        name = col.curated_name
        if not col.nullable:
            risk = "key loss" if col.name in key or col.name in _REFERENCE_KEYS else "missing value"
            out.append(_row("ExpectColumnValuesToNotBeNull", f"null_{col.name}", risk, column=name))
        if col.identifier:
            out.append(_row(
                "ExpectColumnValuesToBeInSet", f"invalid_{col.name}", "key loss", column=col.valid_flag,
                value_set=[True],
                notes=f"{col.valid_flag}: {col.name} is non-empty, unpadded, of [{IDENTIFIER_CHARSET}] and at "
                      f"most {IDENTIFIER_MAX_LENGTH} characters (pre-computed in polars by the test that "
                      "de-duplication uses)."))
        if col.values is not None:
            out.append(_row("ExpectColumnValuesToBeInSet", f"unknown_{col.name}", "unknown value",
                            column=name, value_set=list(col.values)))
        if col.min_value is not None:
            bound = col.min_value * 100 if col.kind == "money" else col.min_value
            out.append(_row("ExpectColumnValuesToBeBetween", _min_value_reason(col), "impossible value",
                            column=name, min_value=int(bound), strict_min=col.min_exclusive))
    if dataset.facts:
        out.append(_first_copy_rule(dataset))
    return out


# What a copy of a fact (Dataset.facts) waiting in quarantine means for the night.
_COPY_WAITS = {
    "payments": "its account held, its money reported",
    "behaviour": "the account's activity features count the event once",
}


def _first_copy_rule(dataset: Dataset) -> gx.expectations.Expectation:
    flag, (key,) = dataset.first_copy_flag, dataset.key
    return _row(
        "ExpectColumnValuesToBeInSet", dataset.copy_rule, "duplicate facts", column=flag, value_set=[True],
        notes=f"{flag}: no other {dataset.noun} of the drop has the same {', '.join(dataset.facts)} (times to the "
              f"millisecond, null equal to null) under a smaller {key}. Such a copy is one {dataset.noun} "
              f"minted twice by the extract: held in quarantine ({_COPY_WAITS[dataset.name]}) until upstream "
              "redelivers the day without it (or confirms it, under its own time).")


def _business_rules(name: str) -> list[gx.expectations.Expectation]:
    """Rules beyond single-column contract facts: time windows, product bounds, references."""
    day_window = {"min_value": _param("business_day_start_utc"), "max_value": _param("business_day_end_utc"),
                  "strict_max": True}
    known_account = _row(
        "ExpectColumnValuesToBeInSet", "unknown_account", "referential integrity", column=ACCOUNT_KNOWN,
        value_set=[True],
        notes=f"{ACCOUNT_KNOWN}: account_id is in the accounts snapshot of the same dt (pre-joined in polars).",
    )
    if name == "accounts":
        return [
            _expect("ExpectTableRowCountToBeBetween", rule="not_empty", risk="volume", min_value=1,
                    notes="An empty accounts snapshot would close every line: never publish one."),
            _row("ExpectColumnValuesToBeBetween", "credit_limit_outside_product_bounds", "impossible value",
                 column="credit_limit_cents", min_value=_param("min_credit_limit_cents"),
                 max_value=_param("max_credit_limit_cents"),
                 notes="Within product.min_limit_cny..max_limit_cny (in cents)."),
            _row("ExpectColumnValuesToBeBetween", "opened_after_business_date", "impossible value",
                 column="opened_on", max_value=_param("business_date"),
                 notes="A line cannot open after the snapshot's business date."),
        ]
    if name == "behaviour":
        return [
            _row("ExpectColumnValuesToBeBetween", "event_time_outside_business_day", "leakage",
                 column="event_time", **day_window,
                 notes="Inside the partition's business day (Asia/Shanghai), given in UTC: a later event would "
                       "leak the future into D's features, an earlier one double-counts a past day."),
            _row("ExpectColumnValuesToNotBeNull", "missing_amount", "missing value", column="amount_cents",
                 row_condition=Where("event_type") != "login",
                 notes="Money events carry an amount; only a login has none."),
            known_account,
        ]
    if name == "installments":
        return [
            _row("ExpectColumnValuesToBeBetween", "due_date_not_after_draw_date", "impossible value",
                 column="due_date", min_value=_param("business_date"), strict_min=True,
                 notes="Schedule rows are created on the draw date (the partition's dt); every due date is "
                       "later."),
            known_account,
        ]
    if name == "payments":
        return [
            _row("ExpectColumnValuesToBeBetween", "paid_at_outside_business_day", "leakage",
                 column="paid_at", max_value=_param("business_day_end_utc"), strict_max=True,
                 notes="Not after the partition's business day (Asia/Shanghai), given in UTC: a payment from the "
                       "future would leak into D's ledger."),
            _row("ExpectColumnValuesToBeBetween", "paid_at_before_late_window", "leakage",
                 column="paid_at", min_value=_param("late_window_start_utc"),
                 notes="Paid at most ingest.payment_late_days business days before the partition's (bank "
                       "settlement delivers late): applied by its paid_at. Older: held in quarantine, its "
                       "account held; next step: raise ingest.payment_late_days to cover it (or have it posted "
                       "as an adjustment) and rerun ingest for this date, then rebuild the nights since."),
            known_account,
            _row("ExpectColumnValuesToBeInSet", "unknown_loan", "referential integrity", column=LOAN_KNOWN,
                 value_set=[True],
                 notes=f"{LOAN_KNOWN}: loan_id is in installments of any dt <= D (curated) or of this drop."),
            _row("ExpectColumnValuesToBeInSet", "loan_of_other_account", "referential integrity",
                 column=LOAN_OWNED, value_set=[True],
                 notes=f"{LOAN_OWNED}: the loan's instalments (curated, dt <= D, or of this drop) belong to the "
                       "paying account_id. Paid to another customer's loan, the money cannot be applied to "
                       "either: held in quarantine, both accounts held, until upstream corrects it."),
        ]
    raise KeyError(name)


# Volume counted in distinct values of a column rather than rows: a schedule's rows per loan vary with the
# term (3-12), its loans follow the day's cash draws one for one.
VOLUME_UNITS: dict[str, str] = {"installments": "loan_id"}


def _volume_low(dataset: Dataset) -> gx.expectations.Expectation:
    notes = ("At least validation.volume.min_ratio x the expected {unit} (today's driver x the lowest "
             "ratio to it over the trailing curated partitions): fewer means a partial drop. On a small count "
             "never stricter than the mean day less validation.volume.noise_sigmas x its square root (its "
             "day-to-day noise), yet never below validation.volume.never_below x expected (but behaviour's "
             "events): half a drop stays critical. A driver of 0 expects nothing. Skipped (with a note) "
             "without enough history.")
    unit = VOLUME_UNITS.get(dataset.name)
    if unit is None:
        return _expect("ExpectTableRowCountToBeBetween", rule="volume_low", risk="volume",
                       min_value=_param("min_rows"), notes=notes.format(unit="rows"))
    return _expect("ExpectColumnUniqueValueCountToBeBetween", rule="volume_low", risk="volume", column=unit,
                   min_value=_param("min_rows"), notes=notes.format(unit=f"distinct {unit}"))


def _table_rules(dataset: Dataset) -> list[gx.expectations.Expectation]:
    out = [
        _expect("ExpectTableRowCountToEqual", rule="volume_declared", risk="volume",
                value=_param("declared_rows"),
                notes="The rows upstream declared in _SUCCESS ({\"rows\": N}), less redelivered duplicates: any "
                      "other count is a lost or extra file. Skipped under a plain empty _SUCCESS."),
        _volume_low(dataset),
        _expect("ExpectTableRowCountToBeBetween", rule="volume_high", risk="volume", severity="warning",
                max_value=_param("max_rows"),
                notes="At most validation.volume.max_ratio x the trailing median: a spike (campaign, 11.11) is "
                      "reported, not fatal."),
    ]
    out += [
        _expect("ExpectColumnProportionOfNonNullValuesToBeBetween", rule=f"null_share_{c.curated_name}",
                risk="completeness",
                column=c.curated_name, min_value=_param(non_null_share_parameter(c.curated_name)),
                notes="1 - the null share this drop's row count allows: validation.max_null_share of this column "
                      "plus what a column at that limit shows by chance on so few rows (critical only when the "
                      "null count is improbable at validation.null_share_alpha; the results' notes give the "
                      "count). No limit configured: 0, observed only. Skipped on an empty drop, and for an "
                      "optional column not delivered (absent or all null).")
        for c in dataset.columns
        if c.nullable
    ]
    return out


def build_landing_suite(name: str) -> gx.ExpectationSuite:
    dataset = CONTRACT[name]
    expectations = _contract_expectations(dataset) + _business_rules(name) + _table_rules(dataset)
    return gx.ExpectationSuite(
        name=name,
        expectations=expectations,
        meta={"kind": "landing", "generated_by": "pipelines/quality/gx_suites.py",
              "source": "pipelines/contracts/landing.py", "description": dataset.description},
    )


# --- published output suites ---------------------------------------------------------------------

_REQUIRED_OUTPUT_COLUMNS: dict[str, tuple[str, ...]] = {
    "scores": ("account_id", "as_of_date", "pd", "score", "grade", "model_version"),
    "limits": ("account_id", "as_of_date", "previous_limit", "new_limit", "action", "reason_codes",
               "explanation", "policy_version"),
    "collection_queue": ("account_id", "as_of_date", "dpd", "bucket", "overdue_amount", "outstanding_balance",
                         "pd", "expected_loss", "treatment", "priority", "pd_source"),
    "hardship_offers": ("account_id", "loan_id", "as_of_date", "outstanding_principal", "current_instalment",
                        "extension_months", "new_instalment", "new_end_date", "current_total_repayable",
                        "current_total_interest", "proposed_total_repayable", "proposed_total_interest",
                        "interest_arrears", "explanation", "explanation_en"),
}


_RULE_PREFIX = {
    "ExpectColumnValuesToBeBetween": "range",
    "ExpectColumnValuesToBeInSet": "value_set",
    "ExpectColumnValuesToNotBeNull": "not_null",
    "ExpectColumnValueLengthsToBeBetween": "length",
}


def _value(kind: str, risk: str = "impossible value", **kwargs: Any) -> gx.expectations.Expectation:
    # A published row cannot be quarantined: every defect refuses the publish.
    if kind == "ExpectColumnPairValuesAToBeGreaterThanB":
        rule = f"{kwargs['column_A']}_above_{kwargs['column_B']}"
    else:
        rule = f"{_RULE_PREFIX[kind]}_{kwargs['column']}"
    return _expect(kind, rule=rule, risk=risk, level="row", **kwargs)


def _output_rules(name: str) -> list[gx.expectations.Expectation]:
    pd_range = _value("ExpectColumnValuesToBeBetween", column="pd", min_value=0, max_value=1)
    if name == "scores":
        return [pd_range,
                _value("ExpectColumnValuesToBeInSet", "unknown value", column="grade", value_set=list(GRADES))]
    if name == "limits":
        return [
            _value("ExpectColumnValuesToBeBetween", column="new_limit", min_value=0,
                   max_value=_param("max_limit_cny"), notes="0 .. product.max_limit_cny; never negative."),
            _value("ExpectColumnValuesToBeBetween", column="previous_limit", min_value=0),
            _value("ExpectColumnValuesToBeInSet", "unknown value", column="action", value_set=list(LIMIT_ACTIONS)),
            _value("ExpectColumnValueLengthsToBeBetween", "missing value", column="explanation", min_value=1,
                   notes="Every decision tells the customer why, in words."),
        ]
    if name == "collection_queue":
        return [
            _value("ExpectColumnValuesToBeBetween", column="dpd", min_value=1),
            _value("ExpectColumnValuesToBeInSet", "unknown value", column="bucket", value_set=list(BUCKETS)),
            _value("ExpectColumnValuesToBeBetween", column="overdue_amount", min_value=0, strict_min=True),
            _value("ExpectColumnValuesToBeBetween", column="outstanding_balance", min_value=0),
            pd_range,
            _value("ExpectColumnValuesToBeBetween", column="expected_loss", min_value=0),
            _value("ExpectColumnValuesToBeInSet", "unknown value", column="treatment", value_set=list(TREATMENTS)),
            _value("ExpectColumnValuesToBeBetween", column="priority", min_value=1),
            _value("ExpectColumnValuesToBeInSet", "unknown value", column="pd_source", value_set=list(PD_SOURCES),
                   notes="model: the PD of D; fallback: collections.unscored_pd for an overdue account without "
                         "a score (e.g. missing from tonight's snapshot)."),
        ]
    if name == "hardship_offers":
        return [
            _value("ExpectColumnValuesToBeInSet", "unknown value", column="extension_months",
                   value_set=list(EXTENSION_MONTHS)),
            _value("ExpectColumnValuesToBeBetween", column="outstanding_principal", min_value=0, strict_min=True),
            _value("ExpectColumnValuesToBeBetween", column="new_instalment", min_value=0, strict_min=True),
            _value("ExpectColumnPairValuesAToBeGreaterThanB", column_A="current_instalment",
                   column_B="new_instalment", notes="An extension must lower the instalment."),
            _value("ExpectColumnValuesToBeBetween", "leakage", column="new_end_date",
                   min_value=_param("as_of_date"), strict_min=True),
            # The offer's cost (schema 1.3; docs/contracts.md), exact: sums in whole cents (gx_cents.py), each
            # comparison of two published decimals as they are.
            *(_expect("ExpectMulticolumnCentsToReconcile", rule=f"reconcile_{total}", risk="impossible value",
                      level="row", column_list=[*parts, total],
                      notes=f"{total} = {' + '.join(parts)}, to the cent.")
              for parts, total in ((("outstanding_principal", "current_total_interest"), "current_total_repayable"),
                                   (("outstanding_principal", "proposed_total_interest"), "proposed_total_repayable"))),
            *(_value("ExpectColumnValuesToBeBetween", column=col, min_value=0)
              for col in ("current_total_interest", "proposed_total_interest", "interest_arrears")),
            *(_value("ExpectColumnPairValuesAToBeGreaterThanB", column_A=total, column_B="outstanding_principal",
                     or_equal=True, notes="A total repayable is the outstanding principal plus interest (>= 0).")
              for total in ("current_total_repayable", "proposed_total_repayable")),
            *(_value("ExpectColumnPairValuesAToBeGreaterThanB", column_A=interest, column_B="interest_arrears",
                     or_equal=True, notes="Interest already due and unpaid stays owed under either plan.")
              for interest in ("current_total_interest", "proposed_total_interest")),
            *(_value("ExpectColumnValueLengthsToBeBetween", "missing value", column=col, min_value=1,
                     notes="Every offer tells the customer its cost, in words.")
              for col in ("explanation", "explanation_en")),
        ]
    raise KeyError(name)


def build_output_suite(name: str) -> gx.ExpectationSuite:
    columns = OUTPUT_COLUMNS[name]
    key = list(OUTPUT_KEYS[name])
    expectations = [
        _expect("ExpectTableColumnsToMatchOrderedList", rule="columns", risk="schema drift",
                column_list=[c for c, _ in columns],
                notes="Exactly the published columns, in order: consumers read them by position too."),
    ]
    expectations += [
        _expect("ExpectColumnPolarsTypeToBe", rule=f"type_{col}", risk="schema drift", column=col,
                type_=str(dtype),
                **({"notes": "Money is published as decimal(18,2) CNY."} if dtype == MONEY else {}))
        for col, dtype in columns
    ]
    if len(key) == 1:
        expectations.append(_expect("ExpectColumnValuesToBeUnique", rule="unique_key", risk="duplicate keys",
                                    column=key[0]))
    else:
        expectations.append(_expect("ExpectCompoundColumnsToBeUnique", rule="unique_key", risk="duplicate keys",
                                    column_list=key))
    expectations += [
        _value("ExpectColumnValuesToNotBeNull", "key loss" if col in key else "missing value", column=col)
        for col in _REQUIRED_OUTPUT_COLUMNS[name]
    ]
    expectations.append(
        _value("ExpectColumnValuesToBeBetween", "leakage", column="as_of_date", min_value=_param("as_of_date"),
               max_value=_param("as_of_date"), notes="Every row belongs to the run's business date.")
    )
    expectations += _output_rules(name)
    return gx.ExpectationSuite(
        name=name,
        expectations=expectations,
        meta={"kind": "output", "generated_by": "pipelines/quality/gx_suites.py", "source": "pipelines/contracts/outputs.py"},
    )


# --- JSON ----------------------------------------------------------------------------------------


def build_suite(name: str) -> gx.ExpectationSuite:
    return build_landing_suite(name) if name in CONTRACT else build_output_suite(name)


def suite_json(name: str) -> str:
    """The committed JSON text of suite ``name`` (stable: sorted keys, trailing newline)."""
    return json.dumps(build_suite(name).to_json_dict(), indent=2, sort_keys=True) + "\n"


def load_suite(name: str, folder: Path = EXPECTATIONS_DIR) -> gx.ExpectationSuite:
    """Read a committed suite (importing this module registers the custom expectation it may use)."""
    return gx.ExpectationSuite(**json.loads((folder / f"{name}.json").read_text()))


def write_suites(folder: Path = EXPECTATIONS_DIR) -> list[Path]:
    """Regenerate every committed suite JSON; return the files written."""

    written = []
    for name in SUITE_NAMES:
        path = folder / f"{name}.json"
        atomic_write_bytes(path, suite_json(name).encode())
        written.append(path)
    return written


# --- docs/contracts.md -----------------------------------------------------------------------------

CONTRACT_DOC = Path(__file__).resolve().parents[2] / "docs" / "contracts.md"
DOC_BEGIN = "<!-- BEGIN GENERATED by `python -m pipelines.quality.gx_suites`: do not edit by hand -->"
DOC_END = "<!-- END GENERATED -->"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_contract_markdown() -> str:
    """The generated part of docs/contracts.md: each landing dataset's columns and its suite's rules."""
    lines = [DOC_BEGIN, ""]
    for name in DATASETS:
        ds = CONTRACT[name]
        lines += [f"### {name}", "", f"{ds.description} Key: `{', '.join(ds.key)}`"
                  + (" (full snapshot)." if ds.snapshot else "."), "",
                  "| column | curated column | curated type | required | nullable | rule | description |",
                  "|---|---|---|---|---|---|---|"]
        for c in ds.columns:
            rule = []
            if c.values is not None:
                rule.append("in {" + ", ".join(c.values) + "}")
            if c.min_value is not None:
                unit = " CNY" if c.kind == "money" else ""
                rule.append(f"{'>' if c.min_exclusive else '>='} {c.min_value:g}{unit}")
            if c.identifier:
                rule.append(f"identifier: [{IDENTIFIER_CHARSET}]{{1,{IDENTIFIER_MAX_LENGTH}}}")
            if c.protected:
                rule.append("protected: never a model feature")
            lines.append(f"| `{c.name}` | `{c.curated_name}` | {_cell(c.curated_dtype)} | "
                         f"{'yes' if c.required else 'no; without it: ' + c.absent_means} | "
                         f"{'yes' if c.nullable else 'no'} | "
                         f"{_cell('; '.join(rule))} | {_cell(c.description)} |")
        lines += ["", f"Suite `expectations/{name}.json` (plus a critical `type_<column>` rule per column):", "",
                  "| rule | expectation | risk | severity | level |", "|---|---|---|---|---|"]
        for exp in build_landing_suite(name).expectations:
            if exp.meta["rule"].startswith("type_"):
                continue  # one per column, listed above as "curated type"
            kw = exp.configuration.kwargs
            target = kw.get("column") or ", ".join(kw.get("column_list") or kw.get("column_set") or [])
            lines.append(f"| `{exp.meta['rule']}` | {exp.expectation_type}({_cell(target)}) | "
                         f"{exp.meta['risk']} | {exp.meta['severity']} | {exp.meta['level']} |")
        lines.append("")
    lines.append(DOC_END)
    return "\n".join(lines)


def contract_doc_text(current: str) -> str:
    """``current`` (docs/contracts.md) with its generated section replaced by :func:`render_contract_markdown`."""
    head, sep, rest = current.partition(DOC_BEGIN)
    _, sep2, tail = rest.partition(DOC_END)
    if not sep or not sep2:
        raise ValueError(f"docs/contracts.md lacks the markers {DOC_BEGIN!r} ... {DOC_END!r}")
    return head + render_contract_markdown() + tail


if __name__ == "__main__":
    for path in write_suites():
        print(f"wrote {path}")
    atomic_write_bytes(CONTRACT_DOC, contract_doc_text(CONTRACT_DOC.read_text()).encode())
    print(f"updated {CONTRACT_DOC}")
