"""Ingest: one landing partition -> the curated zone, enforcing the landing contract.

Per dataset and business date D:

1. the drop must be complete (``_SUCCESS``) and every file readable Parquet;
2. each file is conformed to the contract (:func:`conform_to_contract`): required columns present, types
   cast only where the cast is lossless (money -> integer cents), extra columns carried;
3. rows are de-duplicated on the business key, the latest delivery winning (:func:`keep_latest_delivery`);
4. every dataset of the date is validated by its Great Expectations suite (``pipelines/quality/validate.py``):
   a critical failure raises :class:`~pipelines.quality.results.LandingValidationError` (an :class:`IngestError`); rows
   breaking a row-level rule (null keys, unknown values, impossible amounts, unknown accounts or loans,
   times outside the business day) within the tolerated share are split off with a ``quarantine_reason``
   (:func:`split_row_defects`);
5. the rows about to be curated are checked against what else the lake knows, each a one-line stop
   (``pipelines/stages/lake_checks.py``): money in another unit (against recent days, the credit lines, each
   account's last known line and income, the instalments payments pay), loans without their cash draw
   (schedules re-sent under new ids), a snapshot missing or closing open accounts and a redelivery lacking rows
   curated for its date;
6. curated and quarantine partitions are each replaced whole, atomically (``lake.publish_frames``).

Steps 2-5 are pure functions on frames (``pipelines/domain/conform.py``); reading the drop (step 1) is
``pipelines/store/drops.py``; :func:`ingest_date` wires them and publishes. Any failure in 1-5 raises
:class:`IngestError` naming dataset, partition and file, column or expectation, before anything is
written, so the curated zone is left exactly as it was.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NoReturn

import polars as pl

from pipelines.config.settings import RisklineConfig
from pipelines.contracts.landing import CONTRACT, DATASETS, Dataset
from pipelines.domain.conform import SAMPLE_KEYS, Redeliveries, count_reasons, split_redeliveries, split_row_defects
from pipelines.errors import IngestError
from pipelines.quality.range_pass import RangeValidation  # GX loads on first use
from pipelines.quality.results import LandingValidation
from pipelines.quality.validate import validate_landing_frames
from pipelines.store import lake, zones
from pipelines.stages import lake_checks
from pipelines.store.drops import Landed, land_partition, purged_drops

CURATED_FILE = "part-0.parquet"
# Curated partitions per pass of the lake-wide key lookup: one pass over a year's 365 files ran the
# streaming engine out of blocking threads and peaked at 1.7 GiB with ids that prune nothing (measured).
_HISTORY_BATCH = 32
@dataclass(frozen=True)
class IngestResult:
    dataset: str
    date: dt.date
    files: int
    rows_in: int
    rows_curated: int
    duplicates_dropped: int
    quarantined: int
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    curated_path: str = ""
    expectations_passed: int = 0
    expectations_failed: int = 0  # warnings and quarantining rules (a critical one stops the ingest)
    redelivered: int = 0  # rows identical to rows already curated on another date, dropped
    side_files: tuple[str, ...] = ()  # entries of the drop ignored on purpose (markers, checksums)
    reingest_after: tuple[dt.date, ...] = ()  # later dates of the range holding copies of rows kept here

    def describe(self) -> str:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.quarantine_reasons.items()))
        return (
            f"{self.dataset:<12} dt={self.date} files={self.files} rows_in={self.rows_in} "
            f"curated={self.rows_curated} duplicates={self.duplicates_dropped} redelivered={self.redelivered} "
            f"quarantined={self.quarantined}" + (f" ({reasons})" if reasons else "")
            + f" expectations passed={self.expectations_passed} failed={self.expectations_failed}"
            + (f" side_files_ignored={len(self.side_files)}" if self.side_files else "")
        )


# --- pure steps ----------------------------------------------------------------------------------


# --- I/O ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    result: IngestResult
    curated: pl.DataFrame
    quarantined: pl.DataFrame
    manifest: bytes | None = None  # the control totals of the drop, kept in the curated partition's _SUCCESS


def _drop_redeliveries(root: Path, landed: Landed, day: dt.date, cfg: RisklineConfig,
                       reingesting: Collection[dt.date] = ()) -> tuple[Landed, Redeliveries, list[dt.date]]:
    """Drop rows already curated identically on an earlier date; stop on a conflicting one (both dates
    named), or on rows curated first on a later date (this date owns them: it must be ingested first).
    Also returns the later dates of ``reingesting`` that hold copies of this drop's rows (see
    :func:`_earlier_rows`)."""
    dataset = CONTRACT[landed.dataset]
    # The contract's key, not ingest.business_keys (de-duplication within a drop): unique_over_time is
    # declared for the contract key, and a coarser configured key would make every repeat a conflict.
    key = list(dataset.key)
    if not dataset.unique_over_time:
        return landed, Redeliveries(landed.frame, 0, (), pl.DataFrame()), []
    earlier, owed = _earlier_rows(root, dataset, day, landed.frame, key, reingesting)
    found = split_redeliveries(landed.frame, earlier, key, dataset.unit)
    if found.conflicts.height:
        _refuse_curated_rows(
            found.conflicts, key, dataset.name, day, "conflict with rows already curated on",
            f"a {'/'.join(key)} names one fact for the lake's life; a correction is never applied silently",
            lambda where: _conflict_hint(day, where),
        )
    # The earliest date owns a fact, whatever the ingest order: dropping these rows here would leave every
    # night from this date to the later one without them (a payment unseen: its customer cut and queued).
    later = found.dropped_keys.filter(pl.col("dt") > day)
    if later.height:
        _refuse_curated_rows(
            later, key, dataset.name, day, "identical to rows already curated on the later",
            "curated there first because that date was ingested before this one; this date owns them",
            lambda where: f"re-ingest the dates in order in one call: riskline ingest --from-date {day} "
                          f"--to-date {where[-1]} (nights published since then become stale)",
        )
    return replace(landed, frame=found.kept), found, owed


def _conflict_hint(day: dt.date, where: list[dt.date]) -> str:
    """The next step for rows of ``day`` that conflict with rows curated on ``where``."""
    earlier, later = [d for d in where if d < day], [d for d in where if d > day]
    if not later:
        return (f"ask upstream which is right: if this drop is, have the earlier drop corrected and rerun ingest "
                f"for dt={earlier[0]} first (nights published since then become stale); if not, have these rows "
                "removed from this drop; then rerun ingest for this date")
    # A later date holds them (ingested before this one): this date owns the fact, so whichever copy is
    # right, the dates must be rebuilt in order in one call (a single re-ingest of either is refused again).
    return (f"ask upstream which is right, have the wrong drop corrected, then rebuild the dates in order in one "
            f"call: riskline ingest --from-date {min(day, *where)} --to-date {later[-1]} (nights published since "
            "then become stale)")


def _refuse_curated_rows(rows: pl.DataFrame, key: list[str], dataset: str, day: dt.date, what: str, why: str,
                         hint: Callable[[list[dt.date]], str]) -> NoReturn:
    """Raise the one-line error on ``rows`` of this drop found curated on other dates (key columns, ``dt``
    and maybe ``conflict``): how many, the first few dates, why, a sample of keys; ``hint`` gets the dates."""
    where = sorted(set(rows.get_column("dt").to_list()))
    dates = ", ".join(f"dt={d}" for d in where[:SAMPLE_KEYS]) + (" ..." if len(where) > SAMPLE_KEYS else "")
    sample = ", ".join(
        f"{'/'.join(str(r[k]) for k in key)} (dt={r['dt']}{': ' + r['conflict'] if 'conflict' in r else ''})"
        for r in rows.head(SAMPLE_KEYS).iter_rows(named=True)
    )
    raise IngestError(f"{rows.height:,} row(s) {what} {dates} ({why}): {sample}",
                      dataset=dataset, date=day, column="/".join(key), hint=hint(where))


def _earlier_rows(root: Path, dataset: Dataset, day: dt.date, frame: pl.DataFrame, key: list[str],
                  reingesting: Collection[dt.date] = ()) -> tuple[pl.DataFrame, list[dt.date]]:
    """Curated rows of every other date sharing a key (or a unit) with ``frame``, with their ``dt``; and
    the dates of ``reingesting`` later than ``day`` that hold such rows.

    Those later dates are left out of the rows: the same call replaces them next, so their current content
    (curated before ``day`` was) must not take this date's rows; their re-ingest then finds the rows here
    and drops its copies, as an ingest in date order would. Until then they hold copies (the caller marks
    them: :func:`~pipelines.store.zones.mark_for_reingest`).

    Cheap on a long history (docs/contracts.md, Keys over time, has the cost measured): lazy scans read
    only the key and unit columns; a partition whose key range (its min and max, read once per process and
    partition version: :func:`~pipelines.store.zones.partitions_holding`) misses this drop's is skipped
    unread, which with ids that grow over time is nearly every one; the rest streams through a hash
    semi-join against this drop's keys, ``_HISTORY_BATCH`` partitions at a time. Whole rows are read only
    from the partitions that matched.
    """
    empty = pl.DataFrame(schema={**dataset.curated_schema(), "dt": pl.Date()})
    probes = [(cols, wanted) for cols in [list(key), *([u] for u in dataset.unit)]
              if not (wanted := frame.select(cols).drop_nulls().unique()).is_empty()]
    parts = zones.curated_partitions(root, dataset.name) if probes else {}
    later = {d for d in reingesting if d > day}
    held = set().union(*(zones.partitions_holding(parts, w) for _, w in probes))
    dates = [d for d in parts if d != day and d in held]
    if not dates:
        return empty, []

    def _matches(scan: pl.LazyFrame) -> list[pl.LazyFrame]:
        # (an is_in over the scan instead rebuilds its hash set per batch: 10x slower, measured)
        return [
            scan.filter(*(pl.col(c).is_between(pl.lit(w[c].min()), pl.lit(w[c].max())) for c in cols))
            .join(w.lazy(), on=cols, how="semi")
            for cols, w in probes
        ]

    columns = list(dict.fromkeys(c for cols, _ in probes for c in cols))
    matched: set[dt.date] = set()
    for start in range(0, len(dates), _HISTORY_BATCH):
        batch = dates[start:start + _HISTORY_BATCH]
        scan = zones.scan_curated(root, dataset.name, upto=max(batch), dates=batch).select(*columns, "dt")
        hits = pl.concat(_matches(scan)).select("dt").unique().collect(engine="streaming")
        matched.update(hits.get_column("dt").to_list())
    owed = sorted(matched & later)
    days = sorted(matched - later)
    if not days:
        return empty, owed
    rows = zones.scan_curated(root, dataset.name, upto=days[-1], dates=days)
    found = pl.concat(_matches(rows)).unique().collect(engine="streaming")
    return found.sort(["dt", *found.columns[:-1]]), owed  # streaming order varies; the oldest date first


def _delivered_elsewhere(root: Path, dataset: Dataset, day: dt.date, cfg: RisklineConfig, rows: pl.DataFrame,
                         reingesting: Collection[dt.date]) -> pl.DataFrame:
    """The key and unit columns of ``rows`` (curated for ``day``, missing from its redelivery) that live on
    another date: curated there (:func:`_earlier_rows`), or in the landing drop of a later date this same call
    re-ingests next (upstream moved them there; that date curates them before the range ends)."""
    columns = [*dataset.key, *dataset.unit]
    found = [_earlier_rows(root, dataset, day, rows, list(dataset.key), reingesting)[0].select(columns)]
    for later in sorted(d for d in reingesting if d > day):
        try:
            found.append(land_partition(root, dataset.name, later, cfg, check_totals=False).frame.select(columns))
        except IngestError:  # that date's own ingest reports its drop
            continue
    return pl.concat(found, how="vertical_relaxed")


def _prepare(root: Path, landed: Landed, day: dt.date, validation: LandingValidation,
             redelivered: int = 0, reingest_after: Sequence[dt.date] = ()) -> _Prepared:
    good, bad = split_row_defects(landed.frame, validation.reasons)
    passed = validation.report.count("passed")
    failed = validation.report.count("quarantined", "warning", "critical")
    result = IngestResult(
        dataset=landed.dataset, date=day, files=landed.files, rows_in=landed.rows_in, rows_curated=good.height,
        duplicates_dropped=landed.duplicates_dropped, quarantined=bad.height,
        quarantine_reasons=count_reasons(bad),
        curated_path=str(zones.curated(root, landed.dataset, day)),
        expectations_passed=passed, expectations_failed=failed, side_files=landed.side_files,
        redelivered=redelivered, reingest_after=tuple(reingest_after),
    )
    return _Prepared(result, good, bad, landed.manifest)


def _publish(root: Path, prepared: _Prepared, done: list[str]) -> None:
    """Replace the curated and quarantine partitions; ``done`` collects each one replaced (for errors)."""
    res = prepared.result
    lake.publish_frames(zones.curated(root, res.dataset, res.date), {CURATED_FILE: prepared.curated},
                        manifest=prepared.manifest)
    done.append(f"curated/{res.dataset}")
    quarantine = zones.quarantine(root, res.dataset, res.date)
    if prepared.quarantined.height:
        lake.publish_frames(quarantine, {CURATED_FILE: prepared.quarantined})
    else:
        lake.remove_partition(quarantine)  # a clean rerun must not leave an earlier run's quarantine behind
    done.append(f"quarantine/{res.dataset}")


class LakeStorageError(IngestError):
    """The lake could not be read or written (read-only data root, disk full): says what state it left."""

    def __init__(self, exc: BaseException, datasets: Sequence[str], date: dt.date, done: Sequence[str]) -> None:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if done:
            state = (f"already replaced: {', '.join(done)}; every other partition of dt={date.isoformat()} "
                     "keeps its previous content")
        else:
            state = f"nothing of dt={date.isoformat()} was published (curated and quarantine unchanged)"
        super().__init__(
            f"storage failed ({first}); {state}", dataset="+".join(datasets), date=date,
            hint="make the data root writable or free space, then rerun ingest for this date (every partition "
                 "is replaced whole, so the rerun completes it)",
        )


def judge_range(root: Path, days: Sequence[dt.date], cfg: RisklineConfig, datasets: Iterable[str] | None = None,
                ranged: RangeValidation | None = None) -> RangeValidation:
    """Judge the row rules of the first of ``days`` in one GX pass per dataset, before they are ingested.

    Dates are taken in order until their landing rows reach ``validation.range_rows`` (the pass holds them
    in memory); ``ranged`` (the previous chunk's) carries on what it learnt. A drop that cannot be read is
    left out: ingesting its date reports the problem as usual.
    """
    ranged = ranged or RangeValidation()
    names = [n for n in (datasets or DATASETS) if n in CONTRACT]
    frames: dict[str, dict[dt.date, pl.DataFrame]] = {n: {} for n in names}
    rows = 0
    for day in days:
        for name in names:
            try:
                frames[name][day] = land_partition(root, name, day, cfg, check_totals=False).frame
            except IngestError:  # each date's own ingest stops on it (and checks its control totals)
                continue
            rows += frames[name][day].height
        if rows >= cfg.validation.range_rows:
            break
    for name in names:
        ranged.judge(name, frames[name], cfg)
    return ranged


def ranged_days(root: Path, days: Sequence[dt.date], cfg: RisklineConfig,
                datasets: Iterable[str] | None = None) -> Iterator[tuple[dt.date, RangeValidation | None]]:
    """``days`` in order, each with the range judgement to ingest it with (:func:`ingest_date`'s
    ``in_range``): a history load or backfill validates its row rules in one GX pass per chunk of dates
    (:func:`judge_range`) instead of paying GX's fixed cost per date. A single date gets None."""
    ranged = None
    for i, day in enumerate(days):
        if len(days) > 1 and (ranged is None or day not in ranged.days):
            ranged = judge_range(root, days[i:], cfg, datasets, ranged)
        yield day, ranged


def ingest_date(
    root: Path, day: dt.date, cfg: RisklineConfig, datasets: Iterable[str] | None = None, data_docs: bool = True,
    in_range: RangeValidation | None = None, reingesting: Collection[dt.date] = (),
) -> list[IngestResult]:
    """Ingest every (or the given) dataset for ``day`` (``in_range``: see :func:`judge_range`).

    ``reingesting``: the dates this same call ingests after ``day`` (a range); their current curated rows are
    not looked up as redeliveries (:func:`_earlier_rows`), so re-ingesting in order rebuilds the in-order lake.

    All datasets are read, conformed and validated before any is written, so a contract or critical
    validation failure in one dataset (raised as :class:`IngestError`) leaves the curated zone of every
    dataset untouched for that date. Validation results land in ``validation/dt=D/`` either way.
    """
    names = list(datasets) if datasets else list(DATASETS)
    unknown = [n for n in names if n not in CONTRACT]
    if unknown:
        raise IngestError(f"unknown dataset(s) {unknown}; known: {list(DATASETS)}", dataset=unknown[0], date=day)
    done: list[str] = []
    try:
        # Everything is read and validated before anything is written: the lake's listings are taken once.
        with lake.read_phase():
            delivered, landed, redelivered, owed = {}, {}, {}, {}
            for name in names:
                delivered[name] = land_partition(root, name, day, cfg, defer_resent_loans=True)
                landed[name], redelivered[name], owed[name] = _drop_redeliveries(
                    root, delivered[name], day, cfg, reingesting)
                lake_checks.refuse_unit_drift(root, landed[name], day, cfg)
            notes = {
                n: [f"{r.dropped:,} rows already curated identically on "
                    f"{', '.join(f'dt={d}' for d in r.dropped_from)} dropped before validation (redelivered)"]
                for n, r in redelivered.items() if r.dropped
            }
            validations = validate_landing_frames(
                root, day, cfg, {n: item.frame for n, item in landed.items()},
                duplicates={n: item.duplicates_dropped for n, item in landed.items()},
                redelivered={n: r.dropped for n, r in redelivered.items()}, data_docs=data_docs,
                notes=notes, in_range=in_range,
            )
            prepared = [_prepare(root, landed[n], day, validations[n], redelivered[n].dropped, owed[n])
                        for n in names]
            # every delivered row, before redeliveries of other dates are dropped (those stay curated there)
            for name in names:
                lake_checks.refuse_curated_rows_removed(
                    root, delivered[name], day, cfg,
                    lambda rows, name=name: _delivered_elsewhere(root, CONTRACT[name], day, cfg, rows, reingesting),
                )
            known = lake_checks.last_known_accounts(root, day) if "accounts" in landed else None
            if known is not None:
                lake_checks.refuse_open_accounts_lost(root, delivered["accounts"], day, cfg, known)
                lake_checks.refuse_stale_snapshot(root, {**landed, "accounts": delivered["accounts"]}, day, cfg)
            if "installments" in landed:  # the loans to be curated: a loan held whole misstates nothing
                schedules = prepared[names.index("installments")].curated
                lake_checks.refuse_loans_over_their_lines(root, landed, day, cfg, schedules)
                judged = lake_checks.refuse_loans_without_a_draw(root, landed, day, cfg, schedules)
                if landed["installments"].resent is not None and not judged:
                    # the draws cannot tell re-sent schedules from equal real loans here: refuse them
                    raise landed["installments"].resent
            if known is not None:
                lake_checks.refuse_amounts_in_another_unit(root, day, cfg, prepared[names.index("accounts")].curated,
                                                           known)
            if "payments" in landed:
                payments = prepared[names.index("payments")].curated
                lake_checks.refuse_payments_in_another_unit(root, landed, day, cfg, payments)
                lake_checks.refuse_payments_resent_under_new_ids(root, day, cfg, payments)
    except OSError as exc:  # a read-only root or a full disk while reading or writing validation results
        raise LakeStorageError(exc, names, day, done) from exc
    # Later dates of this range that hold copies of rows this date now keeps are marked before this date is
    # published (a crash in between only marks them needlessly): nights refuse the history until they are
    # re-ingested, whatever stops this range before it reaches them.
    for name, later in owed.items():
        for other in later:
            zones.mark_for_reingest(root, name, other, day)
    for item in prepared:
        try:
            _publish(root, item, done)
        except (OSError, pl.exceptions.PolarsError) as exc:  # polars reports a failed write as ComputeError
            raise LakeStorageError(exc, names, day, done) from exc
    return [item.result for item in prepared]


def ingest_night(root: Path, day: dt.date, cfg: RisklineConfig, datasets: Iterable[str] | None = None,
                 ) -> tuple[list[IngestResult], dict[str, dt.datetime | None]]:
    """A night's ingest of ``day``: every (or the given) landing drop is ingested (:func:`ingest_date`), but
    one that upstream purged once it was ingested (a retention policy; ``drops.purged_drops``: no drop at
    all, a complete curated partition) is not: the night reads that curated partition as it was ingested.

    Returns the ingest results and the datasets kept as curated, with when each was ingested. A rerun or
    rebuild of a published night whose drops are purged thus reads what its first run read: the same curated
    bytes, so the same outputs and the same input fingerprints in its manifest. A drop that is there, even
    one redelivered after the purge, is ingested as ever (it wins), and a dataset with neither drop nor
    curated partition is refused by :func:`ingest_date` as before (``landing partition not delivered``).
    """
    names = list(datasets) if datasets else list(DATASETS)
    kept = purged_drops(root, day, [n for n in names if n in CONTRACT])
    fresh = [n for n in names if n not in kept]
    # (never ingest_date(..., []): an empty list there means every dataset)
    return (ingest_date(root, day, cfg, fresh) if fresh else []), kept


def describe_purged(day: dt.date, kept: Mapping[str, dt.datetime | None]) -> str:
    """The one line a night logs for the datasets :func:`ingest_night` kept as curated."""
    stamps: dict[str, list[str]] = {}
    for name, at in sorted(kept.items()):
        stamps.setdefault(f"{at:%Y-%m-%d %H:%M} UTC" if at else "a date the store does not record", []).append(name)
    if len(stamps) == 1:
        when = f"{next(iter(stamps))} ({', '.join(sorted(kept))})"
    else:
        when = ", ".join(f"{stamp} ({', '.join(names)})" for stamp, names in sorted(stamps.items()))
    return (f"landing of {day} purged: the night reads its curated partitions as ingested on {when}, and "
            "re-ingests nothing of them")
