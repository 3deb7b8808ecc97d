"""What validation reports: an expectation's outcome, a frame's report and the one-line validation error.

Pure dataclasses and text, no Great Expectations: ingest, publish and the CLI read reports without paying
for the GX import. The names of the flag columns pre-joined before GX sees a landing frame
(:func:`pipelines.quality.references.add_reference_flags`) are here too, because a report names a flag by
the ids it was computed from.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from pipelines.contracts.landing import CONTRACT
from pipelines.errors import IngestError

Outcome = Literal["passed", "quarantined", "warning", "critical", "skipped"]
Kind = Literal["landing", "curated", "output"]


ACCOUNT_KNOWN = "account_is_known"  # same names as pipelines.quality.gx_suites (kept here so importing is cheap)
LOAN_KNOWN = "loan_is_known"
LOAN_OWNED = "loan_is_owned"  # the payment's loan belongs to its account_id (pipelines.quality.gx_suites)
# A payment for a loan whose schedule is held in quarantine (pipelines.domain.conform.hold_whole_units) is held
# with it: a known cause, already reported on the schedule's date, so it is not judged as an unknown loan.
LOAN_HELD = "loan_held"
REFERENCE_FLAGS = {ACCOUNT_KNOWN: ("account_id",), LOAN_KNOWN: ("loan_id", "account_id"),
                    LOAN_OWNED: ("loan_id", "account_id")} | {
    c.valid_flag: (c.name,) for ds in CONTRACT.values() for c in ds.columns if c.identifier
} | {ds.first_copy_flag: (*ds.key, *ds.facts) for ds in CONTRACT.values() if ds.facts}
_NEXT_STEP = {
    "schema drift": "upstream changed the extract: ask the data owner to fix it (or agree a contract change in "
                    "pipelines/contracts/landing.py and regenerate the suites), then rerun",
    "duplicate keys": "keys repeat after de-duplication: a pipeline bug or a key change upstream; escalate to "
                      "the pipeline owner",
    "duplicate facts": "the extract wrote the same facts again under new ids (every fact equal, times to the "
                       "millisecond): ask the data owner to redeliver the partition without the copies (a real "
                       "repeat has its own time), then rerun",
    "referential integrity": "check that the accounts snapshot and installments of this date (and earlier "
                             "dates) were delivered and ingested first; if they were, ask the data owner to fix "
                             "the references and redeliver",
    "volume": "a partial or duplicated drop? confirm the row count with the data owner (a count declared in "
              "_SUCCESS proves the files, not the extract; one that differs needs the drop redelivered with "
              "its true count, which no setting changes); if a low count is genuine, widen validation.volume "
              "in the config (RISKLINE_CONFIG) and rerun",
    "completeness": "more nulls than validation.max_null_share allows on this many rows, beyond chance: ask "
                    "the data owner; if it is expected, raise the limit in the config and rerun",
}
_DEFAULT_NEXT_STEP = ("more bad rows than quarantine tolerates: ask the data owner to fix and redeliver the "
                      "partition, then rerun")


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
    named = [n for c in columns for n in REFERENCE_FLAGS.get(c, (c,))]
    return "/".join(dict.fromkeys(named))


class LandingValidationError(ValidationError, IngestError):
    """A landing drop failed a critical expectation; ingest wrote nothing for the date."""


@dataclass(frozen=True)
class LandingValidation:
    """A landing frame's report and, per row, the ';'-joined reasons to quarantine it ("" = keep)."""

    report: ValidationReport
    reasons: pl.Series


def _short(value: Any, width: int = 80) -> str:
    text = value.isoformat() if isinstance(value, dt.date) else str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def jsonable(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)
