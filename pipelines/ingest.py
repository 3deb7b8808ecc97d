"""Ingest: one landing partition -> the curated zone, enforcing the landing contract.

Per dataset and business date D:

1. the drop must be complete (``_SUCCESS``) and every file readable Parquet;
2. each file is conformed to the contract (:func:`conform_to_contract`): required columns present, types
   cast only where the cast is lossless (money -> integer cents), extra columns carried;
3. rows are de-duplicated on the business key, the latest delivery winning (:func:`keep_latest_delivery`);
4. every dataset of the date is validated by its Great Expectations suite (``pipelines/validate.py``):
   a critical failure raises :class:`~pipelines.validate.LandingValidationError` (an :class:`IngestError`); rows
   breaking a row-level rule (null keys, unknown values, impossible amounts, unknown accounts or loans,
   times outside the business day) within the tolerated share are split off with a ``quarantine_reason``
   (:func:`split_row_defects`);
5. curated and quarantine partitions are each replaced whole, atomically (``lake.publish_frames``).

Steps 2-4 are pure functions on frames; :func:`ingest_date` and :func:`read_landing` are the only parts
that touch the disk. Any failure in 1, 2 or 4 raises :class:`IngestError` naming dataset, partition and
file, column or expectation, before anything is written, so the curated zone is left exactly as it was.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from pipelines import lake
from pipelines.config import RisklineConfig
from pipelines.contract import CONTRACT, DATASETS, Column, Dataset, valid_key

if TYPE_CHECKING:
    from pipelines.validate import LandingValidation

QUARANTINE_REASON = "quarantine_reason"
_FILE_ORDER = "_file_order"
_ROW_ORDER = "_row_order"
CURATED_FILE = "part-0.parquet"


class IngestError(Exception):
    """The landing partition breaks the contract; nothing was written."""

    def __init__(
        self,
        message: str,
        *,
        dataset: str,
        date: dt.date,
        file: str | None = None,
        column: str | None = None,
        hint: str = "",
    ) -> None:
        self.dataset, self.date, self.file, self.column = dataset, date, file, column
        where = f"{dataset} dt={date.isoformat()}"
        if file:
            where += f" file={file}"
        if column:
            where += f" column={column}"
        text = f"{where}: {message}"
        if hint:
            text += f" -> {hint}"
        super().__init__(text)


class ContractError(ValueError):
    """A frame cannot be conformed to the contract (raised by the pure step, wrapped by ingest).

    ``hint`` is the next step when it is not the default one (schema drift upstream).
    """

    def __init__(self, column: str, message: str, hint: str = "") -> None:
        self.column, self.hint = column, hint
        super().__init__(message)


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
    side_files: tuple[str, ...] = ()  # entries of the drop ignored on purpose (markers, checksums)

    def describe(self) -> str:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.quarantine_reasons.items()))
        return (
            f"{self.dataset:<12} dt={self.date} files={self.files} rows_in={self.rows_in} "
            f"curated={self.rows_curated} duplicates={self.duplicates_dropped} "
            f"quarantined={self.quarantined}" + (f" ({reasons})" if reasons else "")
            + f" expectations passed={self.expectations_passed} failed={self.expectations_failed}"
            + (f" side_files_ignored={len(self.side_files)}" if self.side_files else "")
        )


# --- pure steps ----------------------------------------------------------------------------------


def conform_to_contract(
    frame: pl.DataFrame, dataset: Dataset, money_max_cny: Mapping[str, float] | None = None
) -> pl.DataFrame:
    """Cast one delivered file to the curated schema; extra columns are carried unchanged.

    ``money_max_cny`` bounds each money column's absolute value in CNY (``ingest.money_max_cny`` of the
    dataset); whatever the bound, a value must fit int64 cents.

    Raises:
        ContractError: a required column is missing, a column cannot be cast losslessly, or money is
            ambiguous (integers without a declared unit), not finite or beyond its bound.
    """
    frame, in_cents = _declared_cents(frame, dataset)
    missing = [c.name for c in dataset.required if c.name not in frame.columns]
    if missing:
        raise ContractError(missing[0], f"required column(s) missing: {', '.join(missing)}")
    out = []
    bounds = money_max_cny or {}
    for col in dataset.columns:
        if col.name in frame.columns:
            out.append(_cast_column(frame.get_column(col.name), col, bounds.get(col.name), col.name in in_cents))
        else:  # optional column not delivered: present as nulls so the curated schema is stable
            out.append(pl.Series(col.curated_name, [None] * frame.height, dtype=col.curated_dtype))
    contract_names = {c.name for c in dataset.columns}
    extras = [frame.get_column(n) for n in frame.columns if n not in contract_names]
    return pl.DataFrame(out + extras)


# The largest amount whose cents fit int64, in CNY: any bound is capped by it so no cast can overflow.
_INT64_CENTS_MAX_CNY = (2**63 - 1) // 100
_FLOAT_EXACT_CENTS_MAX_CNY = 2**53 // 100
_MONEY_HINT = ("ask upstream to fix the extract and redeliver; if the amount is genuine, raise "
               "ingest.money_max_cny in the config, then rerun")
_UNIT_HINT = ("send money as decimal(18,2) CNY, or integer cents in a column named <name>_cents "
              "(docs/contracts.md: money units), then rerun")


def _declared_cents(frame: pl.DataFrame, dataset: Dataset) -> tuple[pl.DataFrame, set[str]]:
    """Rename ``<money>_cents`` integer columns to the contract's money name; return the names so renamed.

    The unit is declared by the name, so an integer there is unambiguous; an integer under the plain name
    is refused by :func:`_cast_column`. Both names in one file would be two amounts for one column.
    """
    renames = {}
    for col in dataset.columns:
        cents = col.curated_name
        if col.kind != "money" or cents not in frame.columns:
            continue
        if col.name in frame.columns:
            raise ContractError(col.name, f"both {col.name} and {cents} delivered: which amount is it?",
                                hint=_UNIT_HINT)
        dtype = frame.schema[cents]
        if not (dtype.is_integer() or dtype == pl.Null):
            raise ContractError(cents, f"{cents} must hold integer cents, got {dtype}", hint=_UNIT_HINT)
        renames[cents] = col.name
    return frame.rename(renames), set(renames.values())


def _cast_column(s: pl.Series, col: Column, max_cny: float | None = None, in_cents: bool = False) -> pl.Series:
    dtype = s.dtype
    name = col.curated_name
    if dtype == pl.Null:
        return pl.Series(name, [None] * s.len(), dtype=col.curated_dtype)
    if col.kind == "string":
        if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
            return s.cast(pl.String).alias(name)
    elif col.kind == "date":
        if dtype == pl.Date:
            return s.alias(name)
        if isinstance(dtype, pl.Datetime):
            day = s.dt.date()
            if (s.dt.replace_time_zone(None) != day.cast(pl.Datetime(dtype.time_unit))).any():
                raise ContractError(col.name, f"expected a date, got {dtype} with a time of day")
            return day.alias(name)
    elif col.kind == "timestamp":
        if isinstance(dtype, pl.Datetime):
            # The contract says UTC; a zone-aware column is converted (lossless), a naive one is taken as UTC.
            s = s.dt.convert_time_zone("UTC") if dtype.time_zone else s.dt.replace_time_zone("UTC")
            return s.cast(pl.Datetime("us", "UTC")).alias(name)
    elif col.kind == "money":
        return _cast_money(s, col, max_cny, in_cents)
    elif col.kind == "int":
        if dtype.is_integer():
            try:
                return s.cast(pl.Int32, strict=True).alias(name)
            except pl.exceptions.InvalidOperationError:
                raise ContractError(col.name, f"integer out of range for Int32 ({dtype})") from None
    raise ContractError(col.name, f"type {dtype} cannot be cast losslessly to {col.kind} ({col.curated_dtype})")


def _cast_money(s: pl.Series, col: Column, max_cny: float | None, in_cents: bool) -> pl.Series:
    """Money in CNY (decimal or float), or integer cents under a ``_cents`` name, to exact int64 cents.

    Every check runs before the cast, so polars never raises on a value: an error names the column and
    the first offending value.
    """
    dtype = s.dtype
    name = col.curated_name
    bound = min(max_cny, _INT64_CENTS_MAX_CNY) if max_cny is not None else _INT64_CENTS_MAX_CNY
    if in_cents:  # integers, checked by _declared_cents; compared as Int128 so no unsigned value wraps
        _refuse_beyond(s, s.cast(pl.Int128).abs() > bound * 100, col, bound, s / 100)
        return s.cast(pl.Int64).alias(name)
    if isinstance(dtype, pl.Decimal):
        scale = dtype.scale or 0
        _refuse_beyond(s, s.abs() > decimal.Decimal(bound), col, bound, s)
        cents = s.cast(pl.Decimal(38, 2))  # rounds: compared back below, so nothing is lost unseen
        if scale > 2:
            lost = cents.cast(pl.Decimal(38, scale)) != s
            if lost.any():
                raise ContractError(col.name, f"money with fractions of a cent ({dtype}): "
                                              f"{s.filter(lost)[0]}", hint=_UNIT_HINT)
        return (cents * 100).cast(pl.Int64).alias(name)
    if dtype.is_float():
        bad = ~s.is_finite()
        if bad.any():
            raise ContractError(col.name, f"money is not a finite number: {s.filter(bad)[0]}", hint=_MONEY_HINT)
        # above 2**53 cents a float no longer holds whole cents, and near 2**63 the cast itself would overflow
        bound = min(bound, _FLOAT_EXACT_CENTS_MAX_CNY)
        _refuse_beyond(s, s.abs() > bound, col, bound, s)
        # float64 is accepted by the contract and rounded to cents (half away from zero).
        return (s * 100).round(0, mode="half_away_from_zero").cast(pl.Int64).alias(name)
    if dtype.is_integer():
        raise ContractError(col.name, f"integer money ({dtype}) is ambiguous: yuan or cents?", hint=_UNIT_HINT)
    raise ContractError(col.name, f"type {dtype} cannot be cast losslessly to money ({col.curated_dtype})")


def _refuse_beyond(s: pl.Series, beyond: pl.Series, col: Column, bound: float, cny: pl.Series) -> None:
    """Raise when any value's absolute amount is above ``bound`` CNY (``cny``: the values in CNY)."""
    beyond = beyond.fill_null(False)
    if beyond.any():
        raise ContractError(
            col.name, f"{int(beyond.sum())} amount(s) beyond the plausible bound of {bound:,.0f} CNY, "
                      f"e.g. {cny.filter(beyond)[0]} CNY", hint=_MONEY_HINT)
def keep_latest_delivery(frame: pl.DataFrame, key: Sequence[str]) -> tuple[pl.DataFrame, int]:
    """Keep the last delivered row per business key; return the frame sorted by key and the count dropped.

    ``frame`` carries ``_file_order`` and ``_row_order``; later files win, then later rows within a file.
    Rows whose key is null or not a valid identifier (empty, padded, odd characters:
    :func:`~pipelines.contract.valid_key`) are never de-duplicated, since two payments with an empty id are
    two payments; they are kept here and quarantined by :func:`split_row_defects`.
    """
    key = list(key)
    ordered = frame.sort([_FILE_ORDER, _ROW_ORDER])
    bad_key = ~valid_key(key)
    keyed = ordered.filter(~bad_key).unique(subset=key, keep="last", maintain_order=True)
    deduped = pl.concat([keyed, ordered.filter(bad_key)])
    dropped = frame.height - deduped.height
    return deduped.sort([*key, _FILE_ORDER, _ROW_ORDER], nulls_last=True), dropped


def split_row_defects(frame: pl.DataFrame, reasons: pl.Series) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split off the rows with a quarantine reason (validation's ';'-joined rule names, "" = keep).

    The rules themselves live in the validation suites (``expectations/``), so quarantine and the
    validation report can never disagree about which rows are bad.
    """
    if reasons.len() != frame.height:
        raise ValueError(f"{reasons.len()} quarantine reasons for {frame.height} rows")
    tagged = frame.with_columns(reasons.alias(QUARANTINE_REASON))
    bad = tagged.filter(pl.col(QUARANTINE_REASON) != "")
    good = tagged.filter(pl.col(QUARANTINE_REASON) == "").drop(QUARANTINE_REASON)
    return good, bad


def count_reasons(quarantined: pl.DataFrame) -> dict[str, int]:
    if quarantined.is_empty():
        return {}
    counts = (
        quarantined.select(pl.col(QUARANTINE_REASON).str.split(";").explode())
        .group_by(QUARANTINE_REASON)
        .len()
    )
    return {r: int(n) for r, n in counts.iter_rows()}


# Files that writers leave beside the data, ignored on purpose (and counted in the result): the completion
# marker, Databricks' transactional-commit markers, Parquet summary files (footers only, no rows) and
# Hadoop's checksum files (``.<file>.crc``). Anything else that is not a flat data file stops the ingest.
_SIDE_FILE_NAMES = frozenset({lake.SUCCESS, "_metadata", "_common_metadata"})
_SIDE_FILE_PREFIXES = ("_committed_", "_started_")


def account_for_entries(entries: Sequence[tuple[str, str]]) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """Split a landing partition's ``(name, kind)`` entries into data files (read, in name order), side
    files (ignored on purpose) and refused entries ``(name, why)``: every entry lands in exactly one.

    A data file is any flat regular file whose name starts with neither ``.`` nor ``_``; it must then read
    as Parquet (a CSV named ``part-0.csv`` fails that read rather than being skipped).
    """
    data, side, refused = [], [], []
    for name, kind in sorted(entries):
        if kind == "folder":
            why = ("an unfinished Spark/Hadoop write (_temporary)" if name == "_temporary"
                   else "a folder: landing reads only flat files")
            refused.append((name, why))
        elif kind == "dangling_link":
            refused.append((name, "a dangling symbolic link"))
        elif kind != "file":
            refused.append((name, "not a regular file"))
        elif "/" in name:
            refused.append((name, "a file in a subfolder: landing reads only flat files"))
        elif name in _SIDE_FILE_NAMES or name.startswith(_SIDE_FILE_PREFIXES) or (
                name.startswith(".") and name.endswith(".crc")):
            side.append(name)
        elif name.startswith("."):
            refused.append((name, "a hidden file (only .<file>.crc checksums may be hidden)"))
        elif name.startswith("_"):
            refused.append((name, "an unknown marker file"))
        else:
            data.append(name)
    return data, side, refused


# --- I/O ------------------------------------------------------------------------------------------


def _read_landing(
    root: Path, dataset: Dataset, day: dt.date, money_max_cny: Mapping[str, float] | None = None
) -> tuple[pl.DataFrame, int, tuple[str, ...]]:
    """Read and conform every file of a landing partition; raise IngestError before writing anything.

    Returns the conformed rows, the number of data files and the side files ignored on purpose.
    """
    part = lake.partition_dir(root, "landing", dataset.name, day)
    entries = lake.complete_entries(part)
    if entries is None and not lake.exists(part):
        raise IngestError(
            "landing partition not delivered", dataset=dataset.name, date=day,
            hint=f"wait for upstream to deliver {part}, then rerun ingest for this date",
        )
    if entries is None:
        raise IngestError(
            f"drop is incomplete: no {lake.SUCCESS} marker in {part}", dataset=dataset.name, date=day,
            hint="upstream writes _SUCCESS last; wait for it or ask upstream to finish the drop, then rerun",
        )
    names, side, refused = account_for_entries([(e.name, e.kind) for e in entries])
    if refused:
        listed = "; ".join(f"{name} is {why}" for name, why in refused[:3])
        more = f" (and {len(refused) - 3} more)" if len(refused) > 3 else ""
        raise IngestError(
            f"{len(refused)} entr{'y' if len(refused) == 1 else 'ies'} of the drop cannot be read: {listed}{more}",
            dataset=dataset.name, date=day, file=refused[0][0],
            hint="ask upstream to deliver only flat data files plus _SUCCESS (docs/contracts.md: landing "
                 "layout) and redeliver, then rerun ingest for this date",
        )
    by_name = {e.name: e.location for e in entries}
    files = [by_name[name] for name in names]
    side = [name for name in side if name != lake.SUCCESS]  # the marker was read: it made the drop complete
    frames = []
    for order, path in enumerate(files):
        try:
            raw = lake.read_parquet(path)
        except Exception as exc:  # polars raises several types for corrupt or non-Parquet files
            raise IngestError(
                f"file is not readable Parquet ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                dataset=dataset.name, date=day, file=path.name,
                hint="ask upstream to redeliver the file, then rerun ingest for this date",
            ) from exc
        try:
            conformed = conform_to_contract(raw, dataset, money_max_cny)
        except ContractError as exc:
            raise IngestError(
                str(exc), dataset=dataset.name, date=day, file=path.name, column=exc.column,
                hint=exc.hint or "schema drift upstream: fix the extract (or the contract, if the change is agreed)",
            ) from exc
        frames.append(
            conformed.with_columns(
                pl.lit(order, dtype=pl.Int32).alias(_FILE_ORDER),
                pl.int_range(pl.len(), dtype=pl.Int64).alias(_ROW_ORDER),
            )
        )
    if not frames:  # a complete drop with no file is an empty day (validation judges whether that is ok)
        empty = pl.DataFrame(schema=dataset.curated_schema())
        return empty.with_columns(
            pl.lit(0, dtype=pl.Int32).alias(_FILE_ORDER), pl.lit(0, dtype=pl.Int64).alias(_ROW_ORDER)
        ), 0, tuple(side)
    try:
        combined = pl.concat(frames, how="diagonal_relaxed")
    except pl.exceptions.PolarsError as exc:
        raise IngestError(
            f"files of one drop disagree on extra columns' types: {exc}", dataset=dataset.name, date=day,
        ) from exc
    return combined, len(files), tuple(side)


@dataclass(frozen=True)
class _Landed:
    """A landing partition conformed and de-duplicated, not yet validated."""

    dataset: str
    frame: pl.DataFrame
    files: int
    rows_in: int
    duplicates_dropped: int
    side_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Prepared:
    result: IngestResult
    curated: pl.DataFrame
    quarantined: pl.DataFrame


def _land(root: Path, dataset_name: str, day: dt.date, cfg: RisklineConfig) -> _Landed:
    dataset = CONTRACT[dataset_name]
    key = cfg.ingest.business_keys.get(dataset_name, list(dataset.key))
    landed, n_files, side = _read_landing(root, dataset, day, cfg.ingest.money_max_cny.get(dataset_name))
    deduped, dropped = keep_latest_delivery(landed, key)
    return _Landed(dataset_name, deduped.drop(_FILE_ORDER, _ROW_ORDER), n_files, landed.height, dropped, side)


def read_landing(root: Path, dataset_name: str, day: dt.date, cfg: RisklineConfig) -> pl.DataFrame:
    """The landing partition of ``day`` conformed and de-duplicated (validation reads references with it)."""
    return _land(root, dataset_name, day, cfg).frame


def _prepare(root: Path, landed: _Landed, day: dt.date, validation: LandingValidation) -> _Prepared:
    good, bad = split_row_defects(landed.frame, validation.reasons)
    passed = validation.report.count("passed")
    failed = validation.report.count("quarantined", "warning", "critical")
    result = IngestResult(
        dataset=landed.dataset, date=day, files=landed.files, rows_in=landed.rows_in, rows_curated=good.height,
        duplicates_dropped=landed.duplicates_dropped, quarantined=bad.height,
        quarantine_reasons=count_reasons(bad),
        curated_path=str(lake.partition_dir(root, "curated", landed.dataset, day)),
        expectations_passed=passed, expectations_failed=failed, side_files=landed.side_files,
    )
    return _Prepared(result, good, bad)


def _publish(root: Path, prepared: _Prepared, done: list[str]) -> None:
    """Replace the curated and quarantine partitions; ``done`` collects each one replaced (for errors)."""
    res = prepared.result
    lake.publish_frames(lake.partition_dir(root, "curated", res.dataset, res.date), {CURATED_FILE: prepared.curated})
    done.append(f"curated/{res.dataset}")
    quarantine = lake.partition_dir(root, "quarantine", res.dataset, res.date)
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


def ingest_date(
    root: Path, day: dt.date, cfg: RisklineConfig, datasets: Iterable[str] | None = None, data_docs: bool = True
) -> list[IngestResult]:
    """Ingest every (or the given) dataset for ``day``.

    All datasets are read, conformed and validated before any is written, so a contract or critical
    validation failure in one dataset (raised as :class:`IngestError`) leaves the curated zone of every
    dataset untouched for that date. Validation results land in ``validation/dt=D/`` either way.
    """
    from pipelines.validate import validate_landing_frames  # imports Great Expectations: slow, keep lazy

    names = list(datasets) if datasets else list(DATASETS)
    unknown = [n for n in names if n not in CONTRACT]
    if unknown:
        raise IngestError(f"unknown dataset(s) {unknown}; known: {list(DATASETS)}", dataset=unknown[0], date=day)
    done: list[str] = []
    try:
        landed = {name: _land(root, name, day, cfg) for name in names}
        validations = validate_landing_frames(
            root, day, cfg, {n: item.frame for n, item in landed.items()},
            duplicates={n: item.duplicates_dropped for n, item in landed.items()}, data_docs=data_docs,
        )
        prepared = [_prepare(root, landed[n], day, validations[n]) for n in names]
    except OSError as exc:  # a read-only root or a full disk while reading or writing validation results
        raise LakeStorageError(exc, names, day, done) from exc
    for item in prepared:
        try:
            _publish(root, item, done)
        except (OSError, pl.exceptions.PolarsError) as exc:  # polars reports a failed write as ComputeError
            raise LakeStorageError(exc, names, day, done) from exc
    return [item.result for item in prepared]
