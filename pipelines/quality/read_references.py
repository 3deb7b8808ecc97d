"""Reading a landing dataset's :class:`~pipelines.quality.references.References` from the lake.

Known accounts and loans (curated, else this ingest's own frames, else landing), loans held in quarantine,
trailing row counts and volume drivers, and the row count upstream declared in ``_SUCCESS``. Counts of a
curated partition are cached per partition version, so a range ingest reads each partition once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.config.location import is_remote
from pipelines.config.settings import RisklineConfig
from pipelines.errors import IngestError
from pipelines.quality.references import VOLUME_DRIVERS, References, VolumeHistory
from pipelines.store import lake, zones
from pipelines.store.drops import declared_totals, read_landing


def _curated_ids(root: Path, dataset: str, day: dt.date, column: str) -> pl.Series | None:
    files = lake.complete_files(zones.curated(root, dataset, day))
    if files is None:
        return None
    return lake.scan_parquet(files).select(column).collect().to_series()


def partition_rows(part: Path) -> int | None:
    """Rows of a complete partition (0 when it holds no file); None while it is incomplete."""
    files = lake.complete_files(part)
    if files is None:
        return None
    return int(lake.scan_parquet(files).select(pl.len()).collect().item()) if files else 0


def _known_accounts(root: Path, day: dt.date, cfg: RisklineConfig,
                    in_flight: pl.Series | None) -> tuple[pl.Series | None, str]:
    if in_flight is not None:
        return in_flight, "accounts snapshot of this drop (after its own quarantine)"
    curated = _curated_ids(root, "accounts", day, "account_id")
    if curated is not None:
        return curated, "curated accounts snapshot of the same dt"
    try:
        landed = read_landing(root, "accounts", day, cfg)
    except IngestError as exc:
        return None, f"accounts snapshot of dt={day} unavailable ({exc}); ingest accounts first"
    ids = landed.get_column("account_id").drop_nulls()
    return ids, "landing accounts snapshot of the same dt (not ingested yet)"


def _known_loans(root: Path, day: dt.date, cfg: RisklineConfig, wanted: pl.Series,
                 in_flight: pl.DataFrame | None) -> tuple[pl.DataFrame, str]:
    """``loan_id, account_id`` of the loans among ``wanted`` that installments of any dt <= ``day`` know
    (curated, plus this drop's ``in_flight`` rows with their owner)."""
    wanted = wanted.drop_nulls().unique()
    owner = ["loan_id", "account_id"]
    # only the partitions whose loan ids span one looked for (a range ingest asks this for every date)
    parts = {d: part for d, part in zones.curated_partitions(root, "installments").items() if d <= day}
    drawn = zones.partitions_holding(parts, wanted.to_frame("loan_id"))
    history = (zones.scan_curated(root, "installments", upto=day, dates=drawn).select(owner)
               .filter(pl.col("loan_id").is_in(wanted.implode())).unique().collect())
    source = "curated installments of dt <= D"
    today = in_flight
    if today is None and not lake.is_complete(zones.curated(root, "installments", day)):
        try:
            today = read_landing(root, "installments", day, cfg).select(owner)
            source += " plus the landing installments of D"
        except IngestError:
            source += " (installments of D not delivered yet)"
    elif today is not None:
        source += " plus the installments of this drop"
    if today is not None:
        history = pl.concat([history, today.select(owner).filter(pl.col("loan_id").is_in(wanted.implode()))])
    return history.unique().sort(owner), source


def _row_counts(root: Path, dataset: str, day: dt.date, cfg: RisklineConfig) -> tuple[int, ...]:
    """Row counts of the last ``history_days`` complete curated partitions before ``day``, newest first."""
    band = cfg.validation.volume
    earliest = day - dt.timedelta(days=band.lookback_days)
    parts = zones.curated_partitions(root, dataset)
    newest = sorted((d for d in parts if earliest <= d < day), reverse=True)[: band.history_days]
    return tuple(_count_in(parts[d], "rows") or 0 for d in newest)


# Counts per curated partition version: a range ingest (or a backfill) reads each partition once, and a
# republished partition has a new _SUCCESS (inode, mtime; on an object store a new committed version), so it
# is counted afresh.
_COUNTS: dict[tuple[Any, ...], Any] = {}
_COUNTED = {"rows": None, "open_accounts": pl.col("status") != "closed",
            "cash_draws": pl.col("event_type") == "cash_draw", "loans": "loan_id"}


def _per_version(part: Path, what: str, compute: Any) -> Any:
    """``compute(files)`` for a complete partition (None while incomplete), cached per version."""
    key = None
    if is_remote(part):
        # a riskline commit names its version: a republish is a new one (one GET of _SUCCESS, no data read)
        version = lake.committed_version(part)
        key = (str(part), version, what) if version else None
        if key in _COUNTS:
            return _COUNTS[key]
    else:
        try:
            stat = (part / lake.SUCCESS).stat()
        except FileNotFoundError:
            return None
        key = (str(part), stat.st_ino, stat.st_mtime_ns, what)
        if key in _COUNTS:
            return _COUNTS[key]
    files = lake.complete_files(part)
    if files is None:
        return None
    value = compute(files)
    if key is not None:
        _COUNTS[key] = value
    return value


def _count_in(part: Path, what: str) -> int | None:
    """Rows of a complete curated partition matching ``what`` (rows / open accounts / cash draws)."""
    def count(files: list[Any]) -> int:
        if not files:
            return 0
        scan = lake.scan_parquet(files)
        counted = _COUNTED[what]
        if isinstance(counted, str):
            return int(scan.select(pl.col(counted).n_unique()).collect().item())
        if counted is not None:
            scan = scan.filter(counted)
        return int(scan.select(pl.len()).collect().item())

    return _per_version(part, what, count)


def _loans_due_by_date(files: list[Any]) -> dict[dt.date, int]:
    """Loans with an instalment due on each date, in one curated installments partition (a draw's loans
    are all in its draw day's partition, so these add up across partitions)."""
    if not files:
        return {}
    due = (lake.scan_parquet(files).group_by("due_date").agg(pl.col("loan_id").n_unique().alias("n"))
           .collect())
    return dict(zip(due["due_date"].to_list(), due["n"].to_list(), strict=True))


def _loans_due(root: Path, day: dt.date, dates: Iterable[dt.date]) -> dict[dt.date, int]:
    """Loans falling due on each of ``dates`` per the curated schedule (installments of dt < ``day``)."""
    wanted = dict.fromkeys(dates, 0)
    if not wanted:
        return wanted
    first, last = min(wanted), max(wanted)
    for drawn, part in zones.curated_partitions(root, "installments").items():
        if drawn >= day:
            continue
        # a schedule whose due dates all miss the dates asked for (a loan repaid years ago) is not read:
        # its footer's due_date range says so (zones.value_ranges)
        span = zones.value_ranges(part, ["due_date"])
        if span is not None and (span["due_date"][0] is None or span["due_date"][1] < first
                                 or span["due_date"][0] > last):
            continue
        for due, n in (_per_version(part, "loans_due", _loans_due_by_date) or {}).items():
            if due in wanted:
                wanted[due] += n
    return wanted


def _today_count(root: Path, dataset: str, day: dt.date, cfg: RisklineConfig, what: str,
                 batch: Mapping[str, pl.DataFrame]) -> tuple[int | None, str]:
    """``what`` counted in ``dataset`` of ``day``: this ingest's own frame, else curated, else landing."""
    condition = _COUNTED[what]
    if dataset in batch:
        frame = batch[dataset]
        return (frame.height if condition is None else frame.filter(condition).height), "this drop"
    counted = _count_in(zones.curated(root, dataset, day), what)
    if counted is not None:
        return counted, "curated"
    try:
        frame = read_landing(root, dataset, day, cfg)
    except IngestError as exc:
        return None, f"{dataset} of dt={day} not delivered or unreadable ({str(exc).split(': ', 1)[-1][:120]})"
    return (frame.height if condition is None else frame.filter(condition).height), "landing"


def _volume_history(root: Path, dataset: str, day: dt.date, cfg: RisklineConfig,
                    batch: Mapping[str, pl.DataFrame]) -> VolumeHistory:
    """``dataset``'s volume driver on ``day`` and (dt, rows, driver) of its trailing curated partitions."""
    band = cfg.validation.volume
    driver = VOLUME_DRIVERS[dataset]
    earliest = day - dt.timedelta(days=band.lookback_days)
    # One listing per dataset (each partition's path from it): resolving a path per date and per count
    # cost a range ingest more than the counts themselves (measured).
    parts = zones.curated_partitions(root, dataset)
    own = [d for d in parts if earliest <= d < day]

    unit = "loans" if dataset == "installments" else "rows"  # gx_suites.VOLUME_UNITS

    def rows(d: dt.date) -> int:
        return _count_in(parts[d], unit) or 0

    if dataset == "accounts":
        open_on = {d: _count_in(part, "open_accounts") or 0 for d, part in parts.items()
                   if earliest - dt.timedelta(days=band.lookback_days) <= d < day}
        prev = {d: max((p for p in open_on if p < d), default=None) for d in own}
        days = tuple((d, rows(d), open_on[p]) for d, p in prev.items() if p is not None)
        last = max(open_on, default=None)
        if last is None:
            return VolumeHistory(driver, None, days, f"no curated snapshot within {band.lookback_days} days")
        return VolumeHistory(driver, open_on[last], days)
    if dataset == "payments":
        due = _loans_due(root, day, [*own, day])
        return VolumeHistory(driver, due[day], tuple((d, rows(d), due[d]) for d in own))
    source, what = ("accounts", "open_accounts") if dataset == "behaviour" else ("behaviour", "cash_draws")
    days = []
    sources = zones.curated_partitions(root, source)
    for d in own:
        driven = _count_in(sources[d], what) if d in sources else None
        if driven is not None:
            days.append((d, rows(d), driven))
    today, where = _today_count(root, source, day, cfg, what, batch)
    return VolumeHistory(driver, today, tuple(days), where if today is None else "",
                         exclusive=dataset == "installments", events=dataset == "behaviour")


def _declared_rows(root: Path, dataset: str, day: dt.date, redelivered: int) -> int | None:
    """The records upstream declared, less those dropped as already curated on another date."""
    declared = declared_totals(root, dataset, day)
    return None if declared is None else declared.rows - redelivered


def _held_loans(root: Path, day: dt.date, wanted: pl.Series, known: pl.Series,
                in_flight: pl.Series | None) -> pl.Series:
    """Loan ids among ``wanted`` whose schedule is held in quarantine on a dt <= ``day`` and not curated
    since (``in_flight``: the loans this ingest holds, which replace the lake's quarantine of ``day``)."""
    wanted = wanted.drop_nulls().unique()
    days = [d for d in zones.quarantine_dates(root, "installments")
            if d < day or (d == day and in_flight is None)]
    held = [in_flight] if in_flight is not None else []
    for d in days:
        files = lake.complete_files(zones.quarantine(root, "installments", d)) or []
        if files:
            held.append(lake.scan_parquet(files).select("loan_id").collect().to_series())
    if not held:
        return pl.Series("loan_id", [], dtype=pl.String)
    ids = pl.concat([h.cast(pl.String).rename("loan_id") for h in held]).drop_nulls().unique()
    return ids.filter(ids.is_in(wanted.implode()) & ~ids.is_in(known.implode()))


def load_references(root: Path, dataset: str, day: dt.date, cfg: RisklineConfig, frame: pl.DataFrame,
                    in_flight: Mapping[str, pl.Series] | None = None,
                    batch: Mapping[str, pl.DataFrame] | None = None, redelivered: int | None = None) -> References:
    """Everything ``dataset``'s suite checks ``frame`` against, read from the lake.

    ``in_flight`` holds ids of this ingest's own datasets ("accounts": account_id of the rows about to be
    curated, "installments": their loan_id), which win over what the lake holds for the date; ``batch``
    the frames of this ingest (volume drivers of the day). ``redelivered`` (landing only: records dropped as
    curated on another date) turns on the check of the record count upstream declared in ``_SUCCESS``.
    """
    in_flight = in_flight or {}
    accounts = loans = held = owners = None
    in_flight_loans = None
    if in_flight.get("installments") is not None:  # this drop's curated-to-be loans, with their owners
        in_flight_loans = pl.DataFrame({"loan_id": in_flight["installments"],
                                        "account_id": in_flight["installment_accounts"]})
    notes: dict[str, str] = {}
    if dataset != "accounts" and "account_id" in frame.columns:
        accounts, notes["accounts"] = _known_accounts(root, day, cfg, in_flight.get("accounts"))
    if dataset == "payments" and "loan_id" in frame.columns:
        owners, notes["loans"] = _known_loans(
            root, day, cfg, frame.get_column("loan_id"), in_flight_loans)
        loans = owners.get_column("loan_id").unique().sort()
        held = _held_loans(root, day, frame.get_column("loan_id"), loans, in_flight.get("installments_held"))
        loans = pl.concat([loans.cast(pl.String), held])  # known to exist: held, not unknown
    declared = None if redelivered is None else _declared_rows(root, dataset, day, redelivered)
    return References(accounts=accounts, loans=loans, held_loans=held, loan_owners=owners,
                      row_counts=_row_counts(root, dataset, day, cfg), notes=notes,
                      volume=_volume_history(root, dataset, day, cfg, batch or {}), declared_rows=declared)
