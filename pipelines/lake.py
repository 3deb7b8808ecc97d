"""The lake: the only module that knows paths, partitions and how to publish atomically.

Layout under DATA_ROOT::

    landing/<dataset>/dt=YYYY-MM-DD/*.parquet + _SUCCESS      (written by upstream)
    curated/<dataset>/dt=YYYY-MM-DD/part-0.parquet + _SUCCESS  (written by ingest)
    quarantine/<dataset>/dt=YYYY-MM-DD/part-0.parquet + _SUCCESS

A partition is always replaced whole: it is written into a temporary sibling folder, ``_SUCCESS`` is
written last inside it, and the folder is swapped in with one atomic ``renameat2(RENAME_EXCHANGE)``
(Linux); where the kernel or file system refuses that, two renames are used and an interrupted swap is
repaired on the next read or write of that partition. Readers therefore see the old partition or the new
one, never a mix, and never a partition without its ``_SUCCESS``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

SUCCESS = "_SUCCESS"
_TMP_PREFIX = ".tmp-"
_OLD_PREFIX = ".old-"

# Parquet settings shared by every writer so that the same frame always gives the same bytes.
PARQUET_OPTIONS: dict[str, object] = {
    "compression": "zstd",
    "compression_level": 3,
    "statistics": True,
    "row_group_size": 256 * 1024,
}


class PathEscapeError(ValueError):
    """A path built from user input would leave the data root."""


def partition_dir(root: Path, zone: str, dataset: str, date: dt.date, key: str = "dt") -> Path:
    """``root/zone/dataset/<key>=YYYY-MM-DD``, refusing anything that escapes ``root``."""
    if not isinstance(date, dt.date):
        raise TypeError(f"partition date must be a datetime.date, got {type(date).__name__}")
    path = root / zone / dataset / f"{key}={date.isoformat()}"
    return ensure_inside(root, path)


def derived_partition(root: Path, zone: str, date: dt.date, key: str = "as_of_date") -> Path:
    """``root/zone/<key>=YYYY-MM-DD`` for zones computed per run date (features, ledger, labels)."""
    if not isinstance(date, dt.date):
        raise TypeError(f"partition date must be a datetime.date, got {type(date).__name__}")
    return ensure_inside(root, root / zone / f"{key}={date.isoformat()}")


def ensure_inside(root: Path, path: Path) -> Path:
    """Return ``path`` resolved, or raise :class:`PathEscapeError` if it is not under ``root``."""
    root_r = Path(root).resolve()
    path_r = Path(path).resolve()
    if path_r != root_r and root_r not in path_r.parents:
        raise PathEscapeError(f"path {path} escapes the data root {root_r}")
    return path_r


def is_complete(partition: Path) -> bool:
    """A partition is complete when its ``_SUCCESS`` marker exists (written last)."""
    _repair_interrupted_swap(partition)
    return (partition / SUCCESS).is_file()


def parquet_files(partition: Path) -> list[Path]:
    """Data files of a partition in delivery order (by name), hidden and marker files excluded."""
    return sorted(
        p for p in partition.iterdir() if p.is_file() and not p.name.startswith((".", "_"))
    )


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    frame.write_parquet(path, **PARQUET_OPTIONS)  # type: ignore[arg-type]


@contextmanager
def staged_partition(target: Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on clean exit publish it as ``target`` atomically.

    The caller writes its files into the yielded folder. ``_SUCCESS`` is added last, then the folder
    replaces ``target`` whole (no stale file of an earlier, larger write survives). On an exception the
    temporary folder is removed and ``target`` is untouched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    _repair_interrupted_swap(target)
    tmp = target.parent / f"{_TMP_PREFIX}{target.name}-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        yield tmp
        _fsync_dir_files(tmp)
        (tmp / SUCCESS).touch()
        fsync_dir(tmp)
        swap_into_place(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def publish_frames(target: Path, frames: dict[str, pl.DataFrame]) -> Path:
    """Publish ``{file_name: frame}`` as the partition ``target``, replacing it whole."""
    with staged_partition(target) as tmp:
        for name, frame in sorted(frames.items()):
            write_parquet(frame, tmp / name)
    return target


def remove_partition(target: Path) -> None:
    """Remove a partition whole (used when a rerun produces nothing for a zone, e.g. no quarantine)."""
    _repair_interrupted_swap(target)
    if target.exists():
        trash = target.parent / f"{_OLD_PREFIX}{target.name}-{uuid.uuid4().hex}"
        os.replace(target, trash)
        shutil.rmtree(trash, ignore_errors=True)


def read_partition(partition: Path) -> pl.DataFrame:
    """Read a complete partition written by this module; fail if it is incomplete."""
    if not is_complete(partition):
        raise FileNotFoundError(f"partition {partition} is missing or incomplete (no {SUCCESS})")
    files = parquet_files(partition)
    if not files:
        raise FileNotFoundError(f"partition {partition} holds no data file")
    return pl.read_parquet(files)


def complete_partition_dates(root: Path, zone: str, dataset: str, key: str = "dt") -> list[dt.date]:
    """Business dates of the complete partitions (with ``_SUCCESS``) of ``root/zone/dataset``, sorted."""
    base = ensure_inside(root, Path(root) / zone / dataset)
    if not base.is_dir():
        return []
    prefix = f"{key}="
    dates = []
    for child in base.iterdir():
        if not child.is_dir() or not child.name.startswith(prefix):
            continue  # .tmp-/.old- siblings of an in-flight publish are not partitions
        try:
            day = dt.date.fromisoformat(child.name[len(prefix):])
        except ValueError:
            continue
        if is_complete(child):
            dates.append(day)
    return sorted(dates)


def scan_curated(
    root: Path,
    dataset: str,
    upto: dt.date,
    since: dt.date | None = None,
    dates: list[dt.date] | None = None,
) -> pl.LazyFrame:
    """Lazily scan the complete curated partitions of ``dataset`` with ``since <= dt <= upto``.

    Adds the partition's business date as a ``dt`` Date column. Only partitions with ``_SUCCESS`` are
    read, so a partition being published is never half-seen. ``dates`` (a subset of the complete ones)
    restricts the scan to those business dates, e.g. a few account snapshots instead of every day.
    The result has the contract's curated schema plus ``dt``, even when no partition matches.
    """
    from pipelines.contract import CONTRACT

    schema = CONTRACT[dataset].curated_schema()
    required = {c.curated_name for c in CONTRACT[dataset].required}
    wanted = set(dates) if dates is not None else None
    scans: list[pl.LazyFrame] = []
    for day in complete_partition_dates(root, "curated", dataset):
        if day > upto or (since is not None and day < since) or (wanted is not None and day not in wanted):
            continue
        files = parquet_files(partition_dir(root, "curated", dataset, day))
        if not files:
            continue
        for file in files:  # footer reads only; a missing required column must not become nulls
            absent = required - set(pl.read_parquet_schema(file))
            if absent:
                raise ValueError(f"curated file {file} lacks required columns {sorted(absent)}")
        # dt is attached as a literal per partition rather than parsed by hive_partitioning, which
        # would also try to parse any ``key=value`` folder above the data root.
        scans.append(
            pl.scan_parquet(
                files,
                hive_partitioning=False,
                schema=schema,
                # Optional contract columns may be absent in old files; extra landing columns are not ours.
                missing_columns="insert",
                extra_columns="ignore",
            ).with_columns(pl.lit(day, dtype=pl.Date()).alias("dt"))
        )
    if not scans:
        return pl.LazyFrame(schema=pl.Schema({**schema, "dt": pl.Date()}))
    return pl.concat(scans, how="vertical")


def swap_into_place(tmp: Path, target: Path) -> None:
    if target.exists():
        if _rename_exchange(tmp, target):
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the previous partition
            fsync_dir(target.parent)
            return
        old = target.parent / f"{_OLD_PREFIX}{target.name}-{uuid.uuid4().hex}"
        os.replace(target, old)  # a crash here leaves only .old-*: repaired on next access
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
    fsync_dir(target.parent)


def _repair_interrupted_swap(target: Path) -> None:
    """Restore the previous partition if a two-rename swap died between its renames."""
    if target.exists() or not target.parent.is_dir():
        return
    leftovers = sorted(
        (p for p in target.parent.glob(f"{_OLD_PREFIX}{target.name}-*") if (p / SUCCESS).is_file()),
        key=lambda p: p.stat().st_mtime,
    )
    if leftovers:
        os.replace(leftovers[-1], target)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_libc: ctypes.CDLL | None = None


def _rename_exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths with renameat2(2); False when the system cannot."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fn = getattr(_libc, "renameat2", None)
    if fn is None:
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def _fsync_dir_files(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable (the directory entry itself)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path, mode: int = 0o755) -> None:
    """``mkdir -p`` giving every new folder ``mode`` (still narrowed by the umask, never widened).

    ``Path.mkdir(parents=True)`` creates the parents with 0o777: under a lenient umask (0 in some
    containers) published folders would be world-writable, and anyone could rename files inside them.
    """
    if path.is_dir():
        return
    make_dirs(path.parent, mode)
    try:
        path.mkdir(mode)
    except FileExistsError:
        pass


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a small file (JSON, pointer) so that readers see the old or the new content, never half."""
    make_dirs(path.parent)
    tmp = path.parent / f"{_TMP_PREFIX}{path.name}-{uuid.uuid4().hex}"
    # rw-r--r-- whatever the umask allows beyond it: a manifest or pointer is never world-writable
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
