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
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from pipelines import lake
from pipelines.config import RisklineConfig
from pipelines.contract import CONTRACT, DATASETS, Column, Dataset, valid_key

if TYPE_CHECKING:
    from pipelines.validate import LandingValidation, RangeValidation

QUARANTINE_REASON = "quarantine_reason"
_FILE_ORDER = "_file_order"  # the file's delivery sequence (see DELIVERY_NAME)
_ROW_ORDER = "_row_order"
CURATED_FILE = "part-0.parquet"
# A landing file is named part-<N>[<separator><anything>], N being its delivery's sequence number: later
# deliveries have higher numbers, compared as integers (part-10 comes after part-9; zero padding and a
# UTC timestamp written as digits, part-20261125093000.parquet, sort the same way). Files sharing N are
# one delivery. docs/contracts.md "Delivery order".
DELIVERY_NAME = re.compile(r"part-(\d{1,18})(?:[-_.].*)?", re.DOTALL)
SAMPLE_KEYS = 5
# Curated partitions per pass of the lake-wide key lookup: one pass over a year's 365 files ran the
# streaming engine out of blocking threads and peaked at 1.7 GiB with ids that prune nothing (measured).
_HISTORY_BATCH = 32


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
    redelivered: int = 0  # rows identical to rows already curated on another date, dropped
    side_files: tuple[str, ...] = ()  # entries of the drop ignored on purpose (markers, checksums)

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


def delivery_sequence(name: str) -> int | None:
    """The delivery sequence number in a landing file name (``part-<N>...``), None if it has none."""
    match = DELIVERY_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def keep_latest_delivery(
    frame: pl.DataFrame, key: Sequence[str], compare: Sequence[str] | None = None
) -> tuple[pl.DataFrame, int]:
    """Keep the row of the latest delivery per business key; return the frame sorted by key and the count dropped.

    ``frame`` carries ``_file_order`` (the delivery sequence) and ``_row_order``. A later delivery corrects
    an earlier one (its rows win). Within one delivery, repeated rows that are identical in every column are
    one row delivered twice (dropped, counted); repeated rows that differ leave no way to tell which one
    upstream meant, so they raise rather than let one of them win silently (unless a later delivery
    replaces that key). ``compare``: the columns that make rows different (default all; ingest passes the
    contract's, so an extra audit column upstream adds does not). Rows whose key is null or not a valid
    identifier (empty, padded, odd characters: :func:`~pipelines.contract.valid_key`) are never
    de-duplicated, since two payments with an empty id are two payments; they are kept here and
    quarantined by :func:`split_row_defects`.

    Raises:
        ConflictingDuplicatesError: one delivery holds different rows for one key.
    """
    key = list(key)
    ordered = frame.sort([_FILE_ORDER, _ROW_ORDER], maintain_order=True)
    bad_key = ~valid_key(key)
    keyed = ordered.filter(~bad_key)
    latest = keyed.unique(subset=key, keep="last", maintain_order=True)
    if latest.height < keyed.height:  # only a drop with repeated keys pays for the conflict check
        _refuse_conflicts_within_a_delivery(keyed, key, compare)
    deduped = pl.concat([latest, ordered.filter(bad_key)])
    dropped = frame.height - deduped.height
    return deduped.sort([*key, _FILE_ORDER, _ROW_ORDER], nulls_last=True), dropped


class ConflictingDuplicatesError(ContractError):
    """One delivery holds two different rows for one business key."""


def _refuse_conflicts_within_a_delivery(keyed: pl.DataFrame, key: list[str], compare: Sequence[str] | None) -> None:
    per_delivery = [*key, _FILE_ORDER]
    repeated = keyed.filter(pl.struct(per_delivery).is_duplicated())
    if repeated.is_empty():  # every repeat is in a later delivery: a correction, not a conflict
        return
    values = [c for c in (compare or repeated.columns) if c not in (*per_delivery, _ROW_ORDER)]
    distinct = repeated.select(*per_delivery, *values).unique(maintain_order=True)
    conflicting = distinct.filter(pl.struct(per_delivery).is_duplicated())
    # a later delivery of the key replaces the conflicting rows whole: nothing of them would be curated
    latest = keyed.join(conflicting.select(key).unique(), on=key, how="semi").group_by(key).agg(
        pl.col(_FILE_ORDER).max().alias("_latest"))
    conflicting = (conflicting.join(latest, on=key).filter(pl.col(_FILE_ORDER) == pl.col("_latest"))
                   .drop("_latest").sort(per_delivery, maintain_order=True))
    if conflicting.is_empty():
        return
    samples = []
    for (*ids, seq), rows in conflicting.group_by([*key, _FILE_ORDER], maintain_order=True):
        if len(samples) == SAMPLE_KEYS:
            break
        differ = [c for c in values if rows.get_column(c).n_unique() > 1]
        shown = "; ".join(
            f"{c} " + " vs ".join(_show(v) for v in rows.get_column(c).unique(maintain_order=True).to_list())
            for c in differ
        )
        samples.append(f"{'/'.join(map(str, ids))} in delivery part-{seq} ({shown})")
    keys = conflicting.select(key).n_unique()
    raise ConflictingDuplicatesError(
        key[0],
        f"{keys:,} {'/'.join(key)} value(s) delivered more than once with different values in one delivery, "
        f"so which row is right is unknown: " + ", ".join(samples),
    )


def _show(value: object) -> str:
    return "null" if value is None else str(value)


@dataclass(frozen=True)
class Redeliveries:
    """What :func:`split_redeliveries` found: the rows to keep and the rows already curated elsewhere."""

    kept: pl.DataFrame
    dropped: int  # identical to a row curated on another date
    dropped_from: tuple[dt.date, ...]  # the dates those identical rows were curated on
    conflicts: pl.DataFrame  # key columns, ``dt`` (where the key or unit is curated) and ``conflict``


def split_redeliveries(
    frame: pl.DataFrame, earlier: pl.DataFrame, key: Sequence[str], unit: Sequence[str] = ()
) -> Redeliveries:
    """Split ``frame`` against ``earlier``: curated rows of other dates that share its keys (or units).

    A row whose key is already curated is an identical redelivery when every contract column (those of
    ``earlier`` but ``dt``) is equal (nulls equal): it is dropped. Otherwise it is a conflicting correction.
    A row with a new key whose ``unit`` (a loan) is already curated is a conflict too: a unit is delivered
    once. Conflicts are returned, not resolved: the caller stops.
    """
    key, unit = list(key), list(unit)
    columns = [c for c in earlier.columns if c != "dt"]
    empty = pl.DataFrame(schema={**earlier.select(*key, "dt").schema, "conflict": pl.String()})
    if earlier.is_empty() or frame.is_empty():
        return Redeliveries(frame, 0, (), empty)
    row = "_redelivery_row"
    indexed = frame.with_row_index(row)
    identical = indexed.select(row, *columns).join(
        earlier.select(*columns, "dt").unique(subset=columns, keep="first", maintain_order=True),
        on=columns, how="inner", nulls_equal=True,
    )
    same_rows = identical.get_column(row)
    rest = indexed.filter(~pl.col(row).is_in(same_rows.implode()))
    earlier_keys = earlier.select(*key, "dt").unique(subset=key, keep="first", maintain_order=True)
    changed = rest.join(earlier_keys, on=key, how="inner")
    conflicts = [_describe_changes(changed, earlier, key, columns)]
    if unit:
        earlier_units = earlier.select(*unit, "dt").unique(subset=unit, keep="first", maintain_order=True)
        added = rest.join(earlier_keys, on=key, how="anti").join(earlier_units, on=unit, how="inner")
        conflicts.append(added.select(*key, "dt", pl.format(
            "new row for {} {} already curated whole on that date", pl.lit("/".join(unit)),
            pl.concat_str([pl.col(u).cast(pl.String) for u in unit], separator="/"),
        ).alias("conflict")))
    found = pl.concat([c for c in conflicts if c.height] or [empty]).sort([*key, "dt"])
    kept = indexed.filter(~pl.col(row).is_in(same_rows.implode())).drop(row)
    dates = tuple(sorted(set(identical.get_column("dt").to_list())))
    return Redeliveries(kept, identical.height, dates, found)


def _describe_changes(changed: pl.DataFrame, earlier: pl.DataFrame, key: list[str],
                      columns: list[str]) -> pl.DataFrame:
    """Per conflicting row: its key, the date it is curated on and which columns differ (first few rows)."""
    if changed.is_empty():
        return pl.DataFrame()
    head = changed.sort(key).head(SAMPLE_KEYS)
    before = head.select(*key, "dt").join(earlier, on=[*key, "dt"], how="left", suffix="_curated")
    notes = []
    for now, then in zip(head.iter_rows(named=True), before.iter_rows(named=True)):
        diffs = [f"{c} {_show(then[c])} curated, {_show(now[c])} now" for c in columns
                 if c not in key and then[c] != now[c]]
        notes.append("; ".join(diffs) or "differs")
    described = head.select(*key, "dt").with_columns(pl.Series("conflict", notes, dtype=pl.String))
    more = changed.sort(key).slice(SAMPLE_KEYS).select(*key, "dt").with_columns(
        pl.lit("differs", dtype=pl.String).alias("conflict"))
    return pl.concat([described, more])


def hold_whole_units(frame: pl.DataFrame, reasons: pl.Series, unit: Sequence[str]) -> pl.Series:
    """Quarantine reasons widened to whole units: a unit (a loan) with one defective row is held whole.

    The unit's clean rows get ``held_with_<unit>:<the defective rows' rules>``, so the quarantine says why;
    rows with a null unit cannot be grouped and keep their own reason.
    """
    if not unit or reasons.len() == 0 or bool((reasons == "").all()):
        return reasons
    unit = list(unit)
    name = "held_with_" + "_".join(unit)
    tagged = frame.select(unit).with_columns(reasons.alias("_reason"))
    rules = (
        tagged.filter(pl.col("_reason") != "", *(pl.col(u).is_not_null() for u in unit))
        .select(*unit, pl.col("_reason").str.split(";").alias("_rules"))
        .explode("_rules")
        .group_by(unit)
        .agg(pl.col("_rules").unique().sort().str.join("+").alias("_held"))
    )
    widened = tagged.join(rules, on=unit, how="left", maintain_order="left")
    return widened.select(
        pl.when((pl.col("_reason") == "") & pl.col("_held").is_not_null())
        .then(pl.lit(name + ":") + pl.col("_held"))
        .otherwise(pl.col("_reason"))
        .alias(reasons.name)
    ).to_series()


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
        raise IngestError("landing partition not delivered", dataset=dataset.name, date=day,
                          hint=_undelivered_hint(root, dataset, day))
    if entries is None:
        raise IngestError(
            f"drop is incomplete: no {lake.SUCCESS} marker in "
            f"{lake.partition_dir(lake.delivery_root(root), 'landing', dataset.name, day)}", dataset=dataset.name, date=day,
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
    for path, order in _in_delivery_order(files, dataset, day):
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
                pl.lit(order, dtype=pl.Int64).alias(_FILE_ORDER),
                pl.int_range(pl.len(), dtype=pl.Int64).alias(_ROW_ORDER),
            )
        )
    if not frames:  # a complete drop with no file is an empty day (validation judges whether that is ok)
        empty = pl.DataFrame(schema=dataset.curated_schema())
        return empty.with_columns(
            pl.lit(0, dtype=pl.Int64).alias(_FILE_ORDER), pl.lit(0, dtype=pl.Int64).alias(_ROW_ORDER)
        ), 0, tuple(side)
    try:
        combined = pl.concat(frames, how="diagonal_relaxed")
    except pl.exceptions.PolarsError as exc:
        raise IngestError(
            f"files of one drop disagree on extra columns' types: {exc}", dataset=dataset.name, date=day,
        ) from exc
    return combined, len(files), tuple(side)


def _in_delivery_order(files: Sequence[Path], dataset: Dataset, day: dt.date) -> list[tuple[Path, int]]:
    """The drop's files with their delivery sequence, oldest delivery first (name order within one)."""
    ordered = []
    for path in files:
        seq = delivery_sequence(path.name)
        if seq is None:
            raise IngestError(
                "file name carries no delivery sequence: expected part-<N>[-suffix].parquet, N the delivery's "
                "sequence number (later deliveries higher)", dataset=dataset.name, date=day, file=path.name,
                hint="ask upstream to name the file by the contract (docs/contracts.md, Delivery order), "
                     "then rerun ingest for this date",
            )
        ordered.append((seq, path.name, path))
    return [(path, seq) for seq, _, path in sorted(ordered, key=lambda t: t[:2])]


def _undelivered_hint(root: Path, dataset: Dataset, day: dt.date) -> str:
    """What to do about a missing drop: wait, unless the date is before anything upstream ever delivered."""
    root = lake.delivery_root(root)  # a dry run reads a copy: name where upstream really delivers
    delivered = lake.complete_partition_dates(root, "landing", dataset.name)
    if not delivered:
        return (f"no {dataset.name} drop has ever landed under {root}: check the data root "
                "(--data-root / RISKLINE_DATA_ROOT), or generate a book with `riskline generate`")
    if day < delivered[0]:
        return (f"{day} is before the first {dataset.name} drop ({delivered[0]}), so none will come: "
                f"pick a business date from {delivered[0]} on")
    part = lake.partition_dir(root, "landing", dataset.name, day)
    return f"wait for upstream to deliver {part}, then rerun ingest for this date"


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
    try:
        deduped, dropped = keep_latest_delivery(landed, key, list(dataset.curated_schema()))
    except ConflictingDuplicatesError as exc:
        raise IngestError(
            str(exc), dataset=dataset_name, date=day, column=exc.column,
            hint="ask upstream which row is right and to redeliver the drop with one row per key, "
                 "then rerun ingest for this date",
        ) from exc
    return _Landed(dataset_name, deduped.drop(_FILE_ORDER, _ROW_ORDER), n_files, landed.height, dropped, side)


def _drop_redeliveries(root: Path, landed: _Landed, day: dt.date, cfg: RisklineConfig) -> tuple[_Landed, Redeliveries]:
    """Drop rows already curated identically on another date; stop on a conflicting one (both dates named)."""
    dataset = CONTRACT[landed.dataset]
    # The contract's key, not ingest.business_keys (de-duplication within a drop): unique_over_time is
    # declared for the contract key, and a coarser configured key would make every repeat a conflict.
    key = list(dataset.key)
    earlier = _earlier_rows(root, dataset, day, landed.frame, key) if dataset.unique_over_time else None
    if earlier is None:
        return landed, Redeliveries(landed.frame, 0, (), pl.DataFrame())
    found = split_redeliveries(landed.frame, earlier, key, dataset.unit)
    if found.conflicts.height:
        where = sorted(set(found.conflicts.get_column("dt").to_list()))
        sample = ", ".join(
            f"{'/'.join(str(r[k]) for k in key)} (dt={r['dt']}: {r['conflict']})"
            for r in found.conflicts.head(SAMPLE_KEYS).iter_rows(named=True)
        )
        raise IngestError(
            f"{found.conflicts.height:,} row(s) conflict with rows already curated on "
            f"{', '.join(f'dt={d}' for d in where[:SAMPLE_KEYS])}{' ...' if len(where) > SAMPLE_KEYS else ''} "
            f"(a {'/'.join(key)} names one fact for the lake's life; a correction is never applied silently): "
            f"{sample}",
            dataset=dataset.name, date=day, column="/".join(key),
            hint=f"ask upstream which is right: if this drop is, have the earlier drop corrected and rerun "
                 f"ingest for dt={where[0]} first (nights published since then become stale); if not, have "
                 f"these rows removed from this drop; then rerun ingest for this date",
        )
    return replace(landed, frame=found.kept), found


def _earlier_rows(root: Path, dataset: Dataset, day: dt.date, frame: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """Curated rows of every other date sharing a key (or a unit) with ``frame``, with their ``dt``.

    Cheap on a long history (docs/contracts.md, Keys over time, has the cost measured): lazy scans read
    only the key and unit columns; a partition whose key range (Parquet min/max statistics; curated files
    are sorted by key) misses this drop's is skipped unread, which with ids that grow over time is nearly
    every one; the rest streams through a hash semi-join against this drop's keys, ``_HISTORY_BATCH``
    partitions at a time. Whole rows are read only from the partitions that matched.
    """
    dates = [d for d in lake.complete_partition_dates(root, "curated", dataset.name) if d != day]
    empty = pl.DataFrame(schema={**dataset.curated_schema(), "dt": pl.Date()})
    probes = [(cols, wanted) for cols in [list(key), *([u] for u in dataset.unit)]
              if not (wanted := frame.select(cols).drop_nulls().unique()).is_empty()]
    if not dates or not probes:
        return empty

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
        scan = lake.scan_curated(root, dataset.name, upto=max(batch), dates=batch).select(*columns, "dt")
        hits = pl.concat(_matches(scan)).select("dt").unique().collect(engine="streaming")
        matched.update(hits.get_column("dt").to_list())
    if not matched:
        return empty
    days = sorted(matched)
    rows = lake.scan_curated(root, dataset.name, upto=days[-1], dates=days)
    found = pl.concat(_matches(rows)).unique().collect(engine="streaming")
    return found.sort(["dt", *found.columns[:-1]])  # streaming order varies; the oldest date first


def read_landing(root: Path, dataset_name: str, day: dt.date, cfg: RisklineConfig) -> pl.DataFrame:
    """The landing partition of ``day`` conformed and de-duplicated (validation reads references with it)."""
    return _land(root, dataset_name, day, cfg).frame


def _prepare(root: Path, landed: _Landed, day: dt.date, validation: LandingValidation,
             redelivered: int = 0) -> _Prepared:
    good, bad = split_row_defects(landed.frame, validation.reasons)
    passed = validation.report.count("passed")
    failed = validation.report.count("quarantined", "warning", "critical")
    result = IngestResult(
        dataset=landed.dataset, date=day, files=landed.files, rows_in=landed.rows_in, rows_curated=good.height,
        duplicates_dropped=landed.duplicates_dropped, quarantined=bad.height,
        quarantine_reasons=count_reasons(bad),
        curated_path=str(lake.partition_dir(root, "curated", landed.dataset, day)),
        expectations_passed=passed, expectations_failed=failed, side_files=landed.side_files,
        redelivered=redelivered,
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


def judge_range(root: Path, days: Sequence[dt.date], cfg: RisklineConfig, datasets: Iterable[str] | None = None,
                ranged: RangeValidation | None = None) -> RangeValidation:
    """Judge the row rules of the first of ``days`` in one GX pass per dataset, before they are ingested.

    Dates are taken in order until their landing rows reach ``validation.range_rows`` (the pass holds them
    in memory); ``ranged`` (the previous chunk's) carries on what it learnt. A drop that cannot be read is
    left out: ingesting its date reports the problem as usual.
    """
    from pipelines.validate import RangeValidation  # imports Great Expectations: slow, keep lazy

    ranged = ranged or RangeValidation()
    names = [n for n in (datasets or DATASETS) if n in CONTRACT]
    frames: dict[str, dict[dt.date, pl.DataFrame]] = {n: {} for n in names}
    rows = 0
    for day in days:
        for name in names:
            try:
                frames[name][day] = _land(root, name, day, cfg).frame
            except IngestError:
                continue
            rows += frames[name][day].height
        if rows >= cfg.validation.range_rows:
            break
    for name in names:
        ranged.judge(name, frames[name], cfg)
    return ranged


def ingest_date(
    root: Path, day: dt.date, cfg: RisklineConfig, datasets: Iterable[str] | None = None, data_docs: bool = True,
    in_range: RangeValidation | None = None,
) -> list[IngestResult]:
    """Ingest every (or the given) dataset for ``day`` (``in_range``: see :func:`judge_range`).

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
        landed, redelivered = {}, {}
        for name in names:
            landed[name], redelivered[name] = _drop_redeliveries(root, _land(root, name, day, cfg), day, cfg)
        notes = {
            n: [f"{r.dropped:,} rows already curated identically on "
                f"{', '.join(f'dt={d}' for d in r.dropped_from)} dropped before validation (redelivered)"]
            for n, r in redelivered.items() if r.dropped
        }
        validations = validate_landing_frames(
            root, day, cfg, {n: item.frame for n, item in landed.items()},
            duplicates={n: item.duplicates_dropped for n, item in landed.items()}, data_docs=data_docs,
            notes=notes, in_range=in_range,
        )
        prepared = [_prepare(root, landed[n], day, validations[n], redelivered[n].dropped) for n in names]
    except OSError as exc:  # a read-only root or a full disk while reading or writing validation results
        raise LakeStorageError(exc, names, day, done) from exc
    for item in prepared:
        try:
            _publish(root, item, done)
        except (OSError, pl.exceptions.PolarsError) as exc:  # polars reports a failed write as ComputeError
            raise LakeStorageError(exc, names, day, done) from exc
    return [item.result for item in prepared]
