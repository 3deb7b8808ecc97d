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

Entry points here: :func:`validate_landing` and :func:`validate_output` (pure: frames and config in,
reports out; GX runs in memory), :func:`validate_landing_frames` (ingest) and :func:`validate_date`
(``riskline validate``). The parts, each importable on its own:

* ``results.py``: outcomes, reports and the one-line :class:`ValidationError` (no GX import);
* ``references.py``: what a landing frame is judged against (references, volume, suite parameters, flags);
* ``read_references.py``: reading those references from the lake;
* ``gx_engine.py``: running a suite over a frame (the GX context, the two pandas views, the verdicts);
* ``range_pass.py``: a range of dates in one GX pass (history loads, backfills);
* ``data_docs.py``: results JSON under ``validation/dt=D/`` and GX Data Docs under ``reports/data_docs/dt=D/``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

import polars as pl

from pipelines.config.settings import RisklineConfig
from pipelines.contracts.landing import CONTRACT, DATASETS
from pipelines.contracts.outputs import OUTPUTS, OUTPUT_KEYS
from pipelines.domain.conform import hold_whole_units
from pipelines.quality.data_docs import results_dir, write_results
from pipelines.quality.gx_engine import validate_frame
from pipelines.quality.range_pass import RangeValidation
from pipelines.quality.read_references import load_references, partition_rows
from pipelines.quality.references import References, add_key_flags, add_reference_flags, landing_parameters
from pipelines.quality.results import (
    LOAN_HELD, Kind, LandingValidation, LandingValidationError, ValidationReport,
)
from pipelines.store import lake, zones
from pipelines.store.drops import landing_file_names
from pipelines.store.publish import output_dir

log = logging.getLogger(__name__)


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


# Accounts first (others check their account ids against it), installments before payments (loans).
_VALIDATION_ORDER = ("accounts", "installments", "payments", "behaviour")


def validate_landing_frames(
    root: Path, day: dt.date, cfg: RisklineConfig, frames: Mapping[str, pl.DataFrame],
    duplicates: Mapping[str, int] | None = None, data_docs: bool = True,
    notes: Mapping[str, Iterable[str]] | None = None, in_range: RangeValidation | None = None,
    redelivered: Mapping[str, int] | None = None,
) -> dict[str, LandingValidation]:
    """Validate ingest's prepared frames of ``day`` (conformed, de-duplicated); persist the results.

    ``in_range``: the range ingest's one-pass judgement (:class:`RangeValidation`), if any. ``duplicates``: rows
    dropped by de-duplication (noted); ``redelivered``: records dropped as curated on another date, which the
    count upstream declared still holds.

    Raises:
        LandingValidationError: some expectation failed critically (after the results were written), so ingest
        publishes nothing for the date.
    """
    out: dict[str, LandingValidation] = {}
    in_flight: dict[str, pl.Series] = {}
    for name in sorted(frames, key=_VALIDATION_ORDER.index):
        frame = frames[name]
        dropped = (duplicates or {}).get(name, 0)
        refs = load_references(root, name, day, cfg, frame, in_flight, batch=frames,
                               redelivered=(redelivered or {}).get(name, 0))
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
            r.name: landing_file_names(root, r.name, day) for r in reports if not r.ok})
    return out


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
        held = partition_rows(zones.quarantine(root, name, day))
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
