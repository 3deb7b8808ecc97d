"""Reading a landing partition: the drop's entries, its files in delivery order, conformed and de-duplicated.

Raises :class:`~pipelines.errors.IngestError` naming dataset, partition, file and column before anything is
written. Used by the ingest stage and by validation's reference loading (the same reader for both).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipelines.config.location import Location, is_remote
from pipelines.config.settings import RisklineConfig
from pipelines.contracts import control_totals
from pipelines.contracts.control_totals import ControlTotals
from pipelines.contracts.landing import CONTRACT, Dataset
from pipelines.domain.conform import (
    ConflictingDuplicatesError, FILE_ORDER, ROW_ORDER, SOURCE_FILE, ResentUnderNewIdsError, conform_to_contract,
    keep_latest_delivery, refuse_resent_under_new_ids,
)
from pipelines.domain.deliveries import DeliveryOrderError, order_deliveries, spark_write_job
from pipelines.errors import ContractError, IngestError
from pipelines.store import lake, zones
from pipelines.vocab import DATASETS


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


def _read_landing(
    root: Path, dataset: Dataset, day: dt.date, money_max_cny: Mapping[str, float] | None = None
) -> tuple[pl.DataFrame, int, tuple[str, ...]]:
    """Read and conform every file of a landing partition; raise IngestError before writing anything.

    Returns the conformed rows, the number of data files and the side files ignored on purpose.
    """
    part = zones.landing(root, dataset.name, day)
    entries = lake.complete_entries(part)
    if entries is None and not lake.exists(part):
        raise IngestError("landing partition not delivered", dataset=dataset.name, date=day,
                          hint=undelivered_hint(root, dataset.name, day))
    if entries is None:
        raise IngestError(
            f"drop is incomplete: no {lake.SUCCESS} marker in "
            f"{zones.landing(lake.delivery_root(root), dataset.name, day)}", dataset=dataset.name, date=day,
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
    ordered = _in_delivery_order(files, dataset, day)
    # the file each row came from, to name it when rows conflict: an Enum column costs 4 bytes a row
    source = pl.Enum([path.name for path, _ in ordered])
    for path, order in ordered:
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
                pl.lit(order, dtype=pl.Int64).alias(FILE_ORDER),
                pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW_ORDER),
                pl.lit(path.name, dtype=source).alias(SOURCE_FILE),
            )
        )
    if not frames:  # a complete drop with no file is an empty day (validation judges whether that is ok)
        empty = pl.DataFrame(schema=dataset.curated_schema())
        return empty.with_columns(
            pl.lit(0, dtype=pl.Int64).alias(FILE_ORDER), pl.lit(0, dtype=pl.Int64).alias(ROW_ORDER),
            pl.lit(None, dtype=source).alias(SOURCE_FILE),
        ), 0, tuple(side)
    try:
        combined = pl.concat(frames, how="diagonal_relaxed")
    except pl.exceptions.PolarsError as exc:
        raise IngestError(
            f"files of one drop disagree on extra columns' types: {exc}", dataset=dataset.name, date=day,
        ) from exc
    return combined, len(files), tuple(side)


def _in_delivery_order(files: Sequence[Path], dataset: Dataset, day: dt.date) -> list[tuple[Path, int]]:
    """The drop's files with their delivery sequence, oldest delivery first (``deliveries.order_deliveries``)."""
    by_name = {path.name: path for path in files}
    try:
        return [(by_name[name], seq) for name, seq in order_deliveries(list(by_name))]
    except DeliveryOrderError as exc:
        raise IngestError(str(exc), dataset=dataset.name, date=day, file=exc.file, hint=exc.hint) from None


def undelivered_hint(root: Path, dataset: str, day: dt.date, then: str = "rerun ingest for this date") -> str:
    """What to do about a missing drop: wait (and then ``then``), unless the date is before anything upstream
    ever delivered, or nothing ever landed under the root."""
    root = lake.delivery_root(root)  # a dry run reads a copy: name where upstream really delivers
    delivered = zones.landing_dates(root, dataset)
    if not delivered:
        return (f"no {dataset} drop has ever landed under {root}: check the data root "
                "(--data-root / RISKLINE_DATA_ROOT), or generate a book with `riskline generate`")
    if day < delivered[0]:
        return (f"{day} is before the first {dataset} drop ({delivered[0]}), so none will come: "
                f"pick a business date from {delivered[0]} on")
    part = zones.landing(root, dataset, day)
    return f"wait for upstream to deliver {part}, then {then}"


def undelivered_dataset(root: Path, day: dt.date) -> str | None:
    """The first dataset whose landing drop of ``day`` has not arrived at all and was never curated (what
    stops a night's ingest first, with :func:`undelivered_hint`), or None when every drop is there (complete
    or not) or purged once ingested (:func:`purged_drops`: the night reads its curated partition)."""
    return next((name for name in DATASETS if not lake.exists(zones.landing(root, name, day))
                 and not lake.is_complete(zones.curated(root, name, day))), None)


def purged_drops(root: Location, day: dt.date, datasets: Sequence[str]) -> dict[str, dt.datetime | None]:
    """The datasets of ``datasets`` whose landing drop of ``day`` is gone (upstream purged it once ingested: a
    retention policy) while a complete curated partition of ``day`` holds what was ingested, each with when
    that partition was written (UTC; None where the store does not say).

    Only a drop absent altogether counts: one present, even without its ``_SUCCESS`` yet, is a (re)delivery
    in progress, and a night waits for it and ingests it, so redelivered data still wins.
    """
    kept = {}
    for name in datasets:
        curated = zones.curated(root, name, day)
        if not lake.exists(zones.landing(root, name, day)) and lake.is_complete(curated):
            kept[name] = _written_at(curated / lake.SUCCESS)  # written last, when the ingest published it
    return kept


def _written_at(marker: Location) -> dt.datetime | None:
    """When ``marker`` was last written, in UTC: its mtime, or what an object store's listing says."""
    if not is_remote(marker):
        return dt.datetime.fromtimestamp(Path(marker).stat().st_mtime, dt.UTC)
    try:
        info = marker.fs.info(marker.path)
    except OSError:
        return None
    stamp = info.get("LastModified") or info.get("mtime") or info.get("last_modified") or info.get("created")
    if isinstance(stamp, dt.datetime):
        return stamp.astimezone(dt.UTC) if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
    if isinstance(stamp, int | float):
        return dt.datetime.fromtimestamp(stamp, dt.UTC)
    return None  # a store that keeps no time (or an unparsed string): the note says it does not record one


@dataclass(frozen=True)
class Landed:
    """A landing partition conformed and de-duplicated, not yet validated."""

    dataset: str
    frame: pl.DataFrame
    files: int
    rows_in: int
    duplicates_dropped: int
    side_files: tuple[str, ...] = ()
    # schedules a later delivery repeats under new ids, left for the ingest stage to judge against the
    # cash draws (two real equal loans have two draws); raised there when the draws cannot tell
    resent: IngestError | None = None
    declared: ControlTotals | None = None  # the control totals upstream declared (checked), kept with the curated

    @property
    def manifest(self) -> bytes | None:
        """The ``_SUCCESS`` of the curated partition: the totals it was curated from (None: declared none)."""
        return None if self.declared is None else control_totals.manifest_bytes(self.declared)


def land_partition(root: Path, dataset_name: str, day: dt.date, cfg: RisklineConfig,
                   defer_resent_loans: bool = False, check_totals: bool = True) -> Landed:
    """Read, conform and de-duplicate a landing drop. ``defer_resent_loans``: a later delivery repeating
    an earlier one's schedules under new ids is returned in ``Landed.resent`` instead of raised;
    ``check_totals``: judge its control totals (the drop's own ingest does; a read for references does not)."""
    dataset = CONTRACT[dataset_name]
    key = cfg.ingest.business_keys.get(dataset_name, list(dataset.key))
    landed, n_files, side = _read_landing(root, dataset, day, cfg.ingest.money_max_cny.get(dataset_name))
    resent = None
    try:
        try:
            refuse_resent_under_new_ids(landed, dataset_name, list(dataset.curated_schema()))
        except ResentUnderNewIdsError as exc:
            resent = IngestError(str(exc), dataset=dataset_name, date=day, column=exc.column, hint=exc.hint)
            if not (defer_resent_loans and dataset_name == "installments"):
                raise resent from exc
        deduped, dropped = keep_latest_delivery(landed, key, list(dataset.curated_schema()))
    except ConflictingDuplicatesError as exc:
        # task files of one Spark write are one delivery (docs/contracts.md, Delivery order): say so, or a
        # reader takes part-00001 for a correction of part-00000
        spark = "; Spark task files are one delivery, their task numbers order nothing" if any(
            spark_write_job(f) for f in exc.files) else ""
        raise IngestError(
            f"{exc}{spark}", dataset=dataset_name, date=day, file=_file_list(exc.files), column=exc.column,
            hint="ask upstream which row is right and to redeliver the drop with one row per key, "
                 "then rerun ingest for this date",
        ) from exc
    records = deduped.drop(FILE_ORDER, ROW_ORDER, SOURCE_FILE)
    declared = check_control_totals(root, dataset, day, cfg, records) if check_totals else None
    return Landed(dataset_name, records, n_files, landed.height, dropped, side, resent, declared)


def _file_list(names: Sequence[str], shown: int = 2) -> str | None:
    """Files for an error line: ``a.parquet,b.parquet`` and ``,+N`` beyond ``shown``; None for none."""
    if not names:
        return None
    return ",".join(names[:shown]) + (f",+{len(names) - shown}" if len(names) > shown else "")


_MANIFEST_HINT = ('ask upstream to write _SUCCESS empty or as {"rows": N, "sums": {"<money column>": "<CNY>"}} '
                  "(docs/contracts.md: declared row counts and control totals) and redeliver, then rerun ingest "
                  "for this date")


def declared_totals(root: Path, dataset_name: str, day: dt.date) -> ControlTotals | None:
    """The control totals upstream declared in the drop's ``_SUCCESS``; None for a plain marker."""
    try:
        raw = lake.declared_manifest(zones.landing(root, dataset_name, day))
        return None if raw is None else control_totals.parse(raw, CONTRACT[dataset_name])
    except ValueError as exc:
        raise IngestError(f"{lake.SUCCESS} is not a control-totals manifest: {exc}", dataset=dataset_name,
                          date=day, file=lake.SUCCESS, hint=_MANIFEST_HINT) from None


def _declared_on(root: Path, dataset: str, day: dt.date) -> ControlTotals | None:
    """What upstream declared for ``day``'s drop: its landing marker, or the curated partition's, which keeps
    the totals after upstream purged its landing drops (retention must not switch the rule below off)."""
    for part in (zones.landing(root, dataset, day), zones.curated(root, dataset, day)):
        try:
            raw = lake.declared_manifest(part)
            if raw is not None:
                return control_totals.parse(raw, CONTRACT[dataset])
        except ValueError:
            continue  # that date's own ingest judged its marker
    return None


def _required_totals(root: Path, dataset: Dataset, day: dt.date,
                     cfg: RisklineConfig) -> tuple[frozenset[str], dt.date | None]:
    """The totals tonight's drop must declare, and the latest earlier drop that declared one: every field a
    drop of the last ``keep_declaring_days`` declared, and all of them for a dataset in ``required_for``."""
    rules = cfg.ingest.control_totals
    required: set[str] = set()
    if dataset.name in rules.required_for:
        required = {control_totals.ROWS} | {
            f"sums.{c.name}" for c in dataset.columns if c.kind == "money" and c.required}
    latest = None
    # the window's dates probed one by one: listing a year of partitions for every drop cost a fifth of a
    # history load (measured)
    for back in range(1, rules.keep_declaring_days + 1):
        earlier = day - dt.timedelta(days=back)
        totals = _declared_on(root, dataset.name, earlier)
        if totals is not None:
            required |= totals.fields
            latest = latest or earlier
    return frozenset(required), latest


_REDELIVER_HINT = ("ask upstream to redeliver the drop whole (files and _SUCCESS), then rerun ingest for this date "
                   "(nothing of the date was written)")


def check_control_totals(root: Path, dataset: Dataset, day: dt.date, cfg: RisklineConfig,
                         records: pl.DataFrame) -> ControlTotals | None:
    """Refuse a drop whose records or money sums differ from what upstream declared, or that stopped
    declaring them; return what it declared.

    ``records``: the drop's conformed rows de-duplicated by key (latest delivery wins); the totals count them
    less the copies of another record's facts under a larger id (``Dataset.is_first_copy``).
    Validation counts again what is left after rows curated on other dates are dropped (``volume_declared``).
    """
    declared = declared_totals(root, dataset.name, day)
    required, latest = _required_totals(root, dataset, day, cfg)
    # an optional money column not delivered tonight has no sum to declare (review 28, N7)
    delivered = {c.name for c in dataset.columns if c.curated_name in records.columns
                 and records.get_column(c.curated_name).null_count() < records.height}
    required -= {f"sums.{c.name}" for c in dataset.columns if not c.required and c.name not in delivered}
    missing = sorted(required - (declared.fields if declared else frozenset()))
    if missing:
        why = (f"upstream declared them up to {latest}" if latest else
               f"ingest.control_totals.required_for lists {dataset.name}")
        harm = " (a missing payment makes its payer past due)" if dataset.name == "payments" else ""
        raise IngestError(
            f"the drop declares no control totals ({', '.join(missing)}) in {lake.SUCCESS} while {why}: a drop "
            f"without them cannot be told whole from one missing {dataset.noun}s{harm}",
            dataset=dataset.name, date=day, file=lake.SUCCESS,
            hint="ask upstream to redeliver the drop with its totals in _SUCCESS (docs/contracts.md: declared "
                 "row counts and control totals), then rerun ingest for this date; if the feed stopped "
                 "declaring them for good, set ingest.control_totals.keep_declaring_days: 0 in riskline.yaml",
        )
    if declared is None:
        return None
    if dataset.facts and set(dataset.facts) <= set(records.columns):
        # a payment minted twice under two ids is one payment: the copy (quarantined later) must not stand in
        # for a record left out of the drop (review 28, N2)
        distinct = records.height
        records = records.filter(dataset.is_first_copy())
        copies = distinct - records.height
    else:
        copies = 0
    got = control_totals.totals_of(records, dataset)
    key = dataset.key[0]
    counted = (f"distinct {key}s, less {copies:,} repeating another {dataset.noun}'s "
               f"{', '.join(dataset.facts)} under a new id" if copies else f"distinct {key}s")
    # a copy is either the extract's (it must not stand in for a record left out) or two genuine records in one
    # millisecond, which upstream must tell apart by their times
    hint = _REDELIVER_HINT + ("; if the repeats are genuine, have upstream send them with times a millisecond "
                              "or more apart" if copies else "")
    for name, cents in sorted(declared.sums.items()):
        have = got.sums.get(name, 0)
        if have != cents:
            records_text = f"{got.rows:,} records" + (f" ({counted})" if copies else "")
            rows = (records_text if got.rows == declared.rows else
                    f"{records_text} against {declared.rows:,} declared")
            raise IngestError(
                f"the drop's {name} sums to {control_totals.cny(have)} CNY over {rows}; upstream's control "
                f"total in {lake.SUCCESS} is {control_totals.cny(cents)} CNY (off by "
                f"{control_totals.cny(have - cents)}): records lost, added or changed, or amounts in another unit",
                dataset=dataset.name, date=day, file=landing_file_names(root, dataset.name, day), column=name,
                hint=hint,
            )
    if got.rows != declared.rows:
        raise IngestError(
            f"the drop holds {got.rows:,} records ({counted}; rows repeated in its files count once), "
            f"upstream's control total in {lake.SUCCESS} is {declared.rows:,}: records lost or added",
            dataset=dataset.name, date=day, file=landing_file_names(root, dataset.name, day), column=key,
            hint=hint,
        )
    return declared


def landing_file_names(root: Path, dataset: str, day: dt.date) -> str:
    """The data files of a landing drop, for an error line: ``part-0.parquet`` or ``part-0.parquet,+2``;
    ``_SUCCESS`` for a drop of no data file (its marker is all it holds: an empty or declared-empty drop)."""
    files = lake.complete_files(zones.landing(root, dataset, day)) or []
    names = sorted(f.name for f in files)
    return (names[0] + (f",+{len(names) - 1}" if len(names) > 1 else "")) if names else lake.SUCCESS


def read_landing(root: Path, dataset_name: str, day: dt.date, cfg: RisklineConfig) -> pl.DataFrame:
    """The landing partition of ``day`` conformed and de-duplicated (validation reads references with it)."""
    return land_partition(root, dataset_name, day, cfg, check_totals=False).frame  # the ingest checks them
