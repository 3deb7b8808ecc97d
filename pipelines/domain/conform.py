"""Conforming delivered landing rows to the contract: pure steps on frames (no paths, no clock).

Casts (money to exact integer cents, only where lossless), de-duplication by delivery order, redeliveries
against earlier dates, whole-unit holds and the split of row-level defects into quarantine. The ingest
stage (``pipelines/stages/ingest.py``) wires them; ``pipelines/store/drops.py`` reads the files.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import polars as pl

from pipelines.errors import ContractError
from pipelines.contracts.landing import Column, Dataset, valid_key


QUARANTINE_REASON = "quarantine_reason"
FILE_ORDER = "_file_order"  # the file's delivery sequence (pipelines/domain/deliveries.py)
ROW_ORDER = "_row_order"
SOURCE_FILE = "_source_file"  # the landing file a row came from, to name it in an error (optional)
SAMPLE_KEYS = 5


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


def keep_latest_delivery(
    frame: pl.DataFrame, key: Sequence[str], compare: Sequence[str] | None = None
) -> tuple[pl.DataFrame, int]:
    """Keep the row of the latest delivery per business key; return the frame sorted by key and the count dropped.

    ``frame`` carries ``_file_order`` (the delivery sequence) and ``_row_order``, and may carry
    ``_source_file`` (the file's name, for the error; never compared). A later delivery corrects
    an earlier one (its rows win). Within one delivery, repeated rows that are identical in every column are
    one row delivered twice (dropped, counted); repeated rows that differ leave no way to tell which one
    upstream meant, so they raise rather than let one of them win silently (unless a later delivery
    replaces that key). ``compare``: the columns that make rows different (default all; ingest passes the
    contract's, so an extra audit column upstream adds does not). Rows whose key is null or not a valid
    identifier (empty, padded, odd characters: :func:`~pipelines.contracts.landing.valid_key`) are never
    de-duplicated, since two payments with an empty id are two payments; they are kept here and
    quarantined by :func:`split_row_defects`.

    Raises:
        ConflictingDuplicatesError: one delivery holds different rows for one key.
    """
    key = list(key)
    ordered = frame.sort([FILE_ORDER, ROW_ORDER], maintain_order=True)
    bad_key = ~valid_key(key)
    keyed = ordered.filter(~bad_key)
    latest = keyed.unique(subset=key, keep="last", maintain_order=True)
    if latest.height < keyed.height:  # only a drop with repeated keys pays for the conflict check
        _refuse_conflicts_within_a_delivery(keyed, key, compare)
    deduped = pl.concat([latest, ordered.filter(bad_key)])
    dropped = frame.height - deduped.height
    return deduped.sort([*key, FILE_ORDER, ROW_ORDER], nulls_last=True), dropped


# Ids an extract mints (re-extracting gives new ones), per dataset; account_id and a payment's loan_id are
# references to facts that already exist, so they stay in the content compared below.
MINTED_IDS: dict[str, tuple[str, ...]] = {
    "behaviour": ("event_id",), "installments": ("installment_id", "loan_id"), "payments": ("payment_id",),
}


class ResentUnderNewIdsError(ContractError):
    """A later delivery of a drop repeats an earlier delivery's rows under other ids."""


def refuse_resent_under_new_ids(frame: pl.DataFrame, dataset: str, columns: Sequence[str]) -> None:
    """Refuse a drop in which a later delivery (``part-<N>`` file) repeats rows of an earlier one with every
    column equal but the ids the extract mints (:data:`MINTED_IDS`): a source that mints ids on each extract
    and sent the same facts twice. De-duplication by key cannot see them, and counting them twice would
    double balances or activity (and cut customers for it). Within one delivery, a payment or event repeated
    under another id is quarantined as a copy instead (``same_as_another_<noun>``, the contract's ``facts``),
    so only repeats across deliveries are refused here.

    ``frame`` carries ``_file_order``; ``columns``: the contract's columns present in it.
    """
    minted = [c for c in MINTED_IDS.get(dataset, ()) if c in frame.columns]
    content = [c for c in columns if c in frame.columns and c not in minted]
    if not minted or not content or frame.get_column(FILE_ORDER).n_unique() < 2:
        return
    rows = frame.select(*content, *minted, FILE_ORDER).with_row_index("_row")
    earlier = rows.select(*content, pl.col(minted[0]).alias("_was"), pl.col(FILE_ORDER).alias("_first"))
    pairs = rows.join(earlier, on=content, how="inner", nulls_equal=True).filter(pl.col("_first") < pl.col(FILE_ORDER))
    # a row sent again under its own id (a correction, or the same row twice) is the key's business
    again = (pairs.group_by("_row", maintain_order=True)
             .agg(pl.all().first(), (pl.col("_was") == pl.col(minted[0])).any().alias("_same_id"))
             .filter(~pl.col("_same_id")))
    if again.is_empty():
        return
    sample = ", ".join(f"{r[minted[0]]} (part-{r[FILE_ORDER]}) repeats {r['_was']} (part-{r['_first']})"
                       for r in again.head(SAMPLE_KEYS).iter_rows(named=True))
    raise ResentUnderNewIdsError(
        minted[0],
        f"{again.height:,} row(s) of a later delivery repeat an earlier delivery's rows with every column equal "
        f"but {'/'.join(minted)}: the same facts sent again under new ids would be counted twice: {sample}",
        hint="ask upstream whether the later part re-sends the earlier one: if so, have it removed (or ids kept "
             "stable across extracts) and rerun ingest for this date; if these are distinct facts, have them "
             "sent in one delivery",
    )


class ConflictingDuplicatesError(ContractError):
    """One delivery holds two different rows for one business key; ``files``: the files holding the sampled
    rows (sorted; empty when the frame does not say)."""

    def __init__(self, column: str, message: str, files: Sequence[str] = ()) -> None:
        super().__init__(column, message)
        self.files = tuple(files)


def _refuse_conflicts_within_a_delivery(keyed: pl.DataFrame, key: list[str], compare: Sequence[str] | None) -> None:
    per_delivery = [*key, FILE_ORDER]
    repeated = keyed.filter(pl.struct(per_delivery).is_duplicated())
    if repeated.is_empty():  # every repeat is in a later delivery: a correction, not a conflict
        return
    values = [c for c in (compare or repeated.columns) if c not in (*per_delivery, ROW_ORDER, SOURCE_FILE)]
    distinct = repeated.select(*per_delivery, *values).unique(maintain_order=True)
    conflicting = distinct.filter(pl.struct(per_delivery).is_duplicated())
    # a later delivery of the key replaces the conflicting rows whole: nothing of them would be curated
    latest = keyed.join(conflicting.select(key).unique(), on=key, how="semi").group_by(key).agg(
        pl.col(FILE_ORDER).max().alias("_latest"))
    conflicting = (conflicting.join(latest, on=key).filter(pl.col(FILE_ORDER) == pl.col("_latest"))
                   .drop("_latest").sort(per_delivery, maintain_order=True))
    if conflicting.is_empty():
        return
    named = SOURCE_FILE in keyed.columns  # the files are named once, in the error's file=, not per key
    samples: list[str] = []
    sampled: list[tuple[object, ...]] = []
    for (*ids, seq), rows in conflicting.group_by([*key, FILE_ORDER], maintain_order=True):
        if len(samples) == SAMPLE_KEYS:
            break
        differ = [c for c in values if rows.get_column(c).n_unique() > 1]
        shown = "; ".join(
            f"{c} " + " vs ".join(_show(v) for v in rows.get_column(c).unique(maintain_order=True).to_list())
            for c in differ
        )
        samples.append(f"{'/'.join(map(str, ids))}{'' if named else f' in delivery part-{seq}'} ({shown})")
        sampled.append((*ids, seq))
    files: list[str] = []
    if named:
        where = pl.DataFrame(sampled, schema={**keyed.select(per_delivery).schema}, orient="row")
        held = keyed.join(where, on=per_delivery, how="semi", nulls_equal=True).get_column(SOURCE_FILE)
        files = sorted(str(f) for f in held.cast(pl.String).unique().drop_nulls())
    keys = conflicting.select(key).n_unique()
    raise ConflictingDuplicatesError(
        key[0],
        f"{keys:,} {'/'.join(key)} value(s) delivered more than once with different values in one delivery, "
        f"so which row is right is unknown: " + ", ".join(samples),
        files,
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
    # per dropped row: key columns and ``dt``, the earliest date it is curated on (the caller refuses a row
    # whose earliest date is later than the drop's: that date was ingested first, but this one owns the fact)
    dropped_keys: pl.DataFrame = field(default_factory=pl.DataFrame)


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
        return Redeliveries(frame, 0, (), empty, empty.drop("conflict"))
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
    return Redeliveries(kept, identical.height, dates, found, identical.select(*key, "dt").sort([*key, "dt"]))


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
