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

The data root may also be an fsspec URL (``s3://bucket/riskline``, ``gs://``, ``abfs://``, ``memory://``),
held as a ``upath.UPath``. Object stores cannot rename, so there a partition is *versioned*: a write
uploads its files under ``dt=D/_v=<version>/`` and then, last, puts one small ``dt=D/_SUCCESS`` object
(JSON naming the version and its files). One PUT is atomic on S3, GCS and Azure, so readers again see the
old partition or the new one, never a mix. The previous version is kept for readers that listed it just
before the commit; older ones, and uploads of writes that died before their commit, are deleted by the
next commit. A plain (empty) ``_SUCCESS`` written by upstream beside flat files is read as before.
Credentials come from the usual fsspec/SDK environment (``AWS_*``, ``GOOGLE_*``, ...), never from config.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import hashlib
import json
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import polars as pl
from upath import UPath

from pipelines.config.location import Location, is_remote
from pipelines.store.listing import local_files, local_partitions, parse_date, read_phase, remembered  # noqa: F401
from pipelines.store.objects import (  # noqa: F401  (re-exported: lake is where callers look)
    COMMIT_FORMAT as _COMMIT_FORMAT, SUCCESS, _fresh, _local_tree, _read_marker, _remote_files, _remove_key,
    commit_version, committed_sha256, committed_version, drop_version, fetched, glob, is_file, list_names,
    local_scratch, read_bytes, remove_file, upload_version, version_holds,
)
from pipelines.store.paths import (  # noqa: F401  (re-exported: lake is where callers look)
    PathEscapeError, derived_partition, ensure_inside, partition_dir,
)

_TMP_PREFIX = ".tmp-"
_OLD_PREFIX = ".old-"

# Parquet settings shared by every writer so that the same frame always gives the same bytes.
PARQUET_OPTIONS: dict[str, object] = {
    "compression": "zstd",
    "compression_level": 3,
    "statistics": True,
    "row_group_size": 256 * 1024,
}


DRY_RUN_MARKER = "_DRY_RUN"  # in a dry run's staging root, DATA_ROOT/staging/as_of_date=D (pipelines.stages.night)


def delivery_root(root: Location) -> Location:
    """Where upstream delivers for ``root``: ``root`` itself, or for a dry run's staging copy the data root
    it was copied from (upstream never writes into the copy, so "wait for <path>" must name the real one)."""
    return root.parent.parent if is_file(root / DRY_RUN_MARKER) else root


def exists(partition: Location) -> bool:
    """Whether anything was delivered at ``partition`` (complete or not)."""
    if is_remote(partition):
        return _fresh(partition).exists()
    return partition.is_dir()


def is_complete(partition: Location) -> bool:
    """A partition is complete when its ``_SUCCESS`` marker exists (written last)."""
    if is_remote(partition):
        return _fresh(partition.joinpath(SUCCESS)).is_file()
    _repair_interrupted_swap(partition)
    return (partition / SUCCESS).is_file()


def parquet_files(partition: Location) -> list[Location]:
    """Data files of a partition in delivery order (by name), hidden and marker files excluded.

    On an object store these are the files of the version that ``_SUCCESS`` commits, or, under a plain
    upstream ``_SUCCESS``, the flat files beside it.
    """
    if is_remote(partition):
        return _remote_files(partition, _read_marker(partition) or {})
    return list(remembered(("files", str(partition)), lambda: local_files(partition)))


def complete_files(partition: Location) -> list[Location] | None:
    """:func:`parquet_files` of a complete partition, None while it is incomplete.

    On an object store one read of ``_SUCCESS`` answers both (rather than a HEAD, then a GET).
    """
    if is_remote(partition):
        marker = _read_marker(partition)
        return None if marker is None else _remote_files(partition, marker)
    return parquet_files(partition) if is_complete(partition) else None


EntryKind = Literal["file", "folder", "dangling_link", "special"]


@dataclass(frozen=True)
class Entry:
    """One entry of a partition as a reader finds it; ``name`` is relative to the partition (a nested file
    of an object-store commit keeps its ``/``)."""

    name: str
    kind: EntryKind
    location: Location


def complete_entries(partition: Location) -> list[Entry] | None:
    """Every entry of a complete partition, markers included, sorted by name; None while it is incomplete.

    Unlike :func:`complete_files` nothing is left out: folders, dangling links, hidden and marker files are
    all listed, so that the landing reader can account for each (read it, ignore it on purpose, or refuse
    the drop). On an object store: the files a riskline commit names, or the flat listing beside a plain
    upstream ``_SUCCESS`` (a "folder" is a common key prefix there).
    """
    if is_remote(partition):
        marker = _read_marker(partition)
        if marker is None:
            return None
        if marker:
            return [Entry(SUCCESS, "file", partition.joinpath(SUCCESS))] + [
                Entry(name, "file", partition.joinpath(marker["prefix"], *name.split("/")))
                for name in sorted(marker["files"])
            ]
        entries = _fresh(partition).fs.ls(partition.path, detail=True)
        found = []
        for e in entries:
            name = posixpath.basename(e["name"].rstrip("/"))
            kind: EntryKind = "file" if e["type"] == "file" else "folder" if e["type"] == "directory" else "special"
            found.append(Entry(name, kind, partition.joinpath(name)))
        return sorted(found, key=lambda e: e.name)
    if not is_complete(partition):
        return None
    found = []
    for child in partition.iterdir():
        if child.is_symlink() and not child.exists():
            kind = "dangling_link"
        elif child.is_dir():
            kind = "folder"
        elif child.is_file():
            kind = "file"
        else:  # a FIFO, socket or device: never data
            kind = "special"
        found.append(Entry(child.name, kind, child))
    return sorted(found, key=lambda e: e.name)


def partition_file(partition: Location, name: str) -> Location:
    """The file ``name`` of a complete partition (inside the committed version on an object store)."""
    commit = _read_marker(partition) if is_remote(partition) else None
    return partition.joinpath(commit["prefix"], *name.split("/")) if commit else partition / name


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    """Write into a (local) staging folder; object stores get the folder uploaded by ``staged_partition``."""
    frame.write_parquet(path, **PARQUET_OPTIONS)  # type: ignore[arg-type]


def parquet_sources(files: Location | Sequence[Location]) -> Any:
    """What polars reads: local paths as they are, object-store files as their bytes.

    polars reads s3/gs/az itself only with its own credential options; going through fsspec keeps one
    credential path (the file system's) for every store, at the cost of fetching whole files.
    """
    if isinstance(files, (Path, UPath)):
        return files.read_bytes() if is_remote(files) else files
    return [parquet_sources(f) for f in files]


def read_parquet(files: Location | Sequence[Location], **options: Any) -> pl.DataFrame:
    """``pl.read_parquet`` over local paths or object-store URLs alike."""
    return pl.read_parquet(parquet_sources(files), **options)


def read_parquet_schema(file: Location) -> pl.Schema:
    """The schema in one Parquet file's footer, local or on an object store."""
    if is_remote(file):
        with file.fs.open(file.path, "rb") as fh:  # the footer only, by range reads
            return pl.read_parquet_schema(fh)
    return pl.read_parquet_schema(file)


def scan_parquet(files: Location | Sequence[Location], **options: Any) -> pl.LazyFrame:
    """``pl.scan_parquet`` over local paths or object-store URLs alike (URLs are fetched whole)."""
    return pl.scan_parquet(parquet_sources(files), **options)


@contextmanager
def staged_partition(target: Location, marker: bool = True, manifest: bytes | None = None) -> Iterator[Path]:
    """Yield an empty temporary folder; on clean exit publish it as ``target`` atomically.

    The caller writes its files into the yielded folder. ``_SUCCESS`` is added last, then the folder
    replaces ``target`` whole (no stale file of an earlier, larger write survives). On an exception the
    temporary folder is removed and ``target`` is untouched. On an object store the yielded folder is
    local and is uploaded as a new version of ``target`` (module docstring).

    ``marker=False`` publishes the files without ``_SUCCESS``: only the fault generator wants that, to
    imitate an upstream drop that never finished. ``manifest``: the marker's content, an upstream's control
    totals (``contracts.control_totals``; on an object store kept in the commit as ``declared``).
    """
    if is_remote(target):
        with _staged_version(target, marker, manifest) as tmp:
            yield tmp
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    _repair_interrupted_swap(target)
    tmp = target.parent / f"{_TMP_PREFIX}{target.name}-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        yield tmp
        if marker and manifest:  # readers see none of the folder before the swap below
            (tmp / SUCCESS).write_bytes(manifest)
        elif marker:
            (tmp / SUCCESS).touch()  # keeps a marker the caller wrote itself
        _fsync_dir_files(tmp)
        fsync_dir(tmp)
        swap_into_place(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def _staged_version(target: UPath, marker: bool, manifest: bytes | None = None) -> Iterator[Path]:
    fs = target.fs
    tmp = Path(tempfile.mkdtemp(prefix="riskline-stage-"))
    try:
        yield tmp
        if not marker:  # flat files and no marker, like an unfinished upstream drop
            remove_partition(target)
            for rel in _local_tree(tmp):
                fs.put_file(str(tmp / rel), f"{target.path}/{rel}")
            return
        prefix, files = upload_version(target, tmp)
        try:
            commit_version(target, prefix, files, json.loads(manifest) if manifest else None,
                           {rel: file_sha256(tmp / rel) for rel in files})
        except BaseException:
            _remove_key(fs, f"{target.path}/{prefix}")  # the half-uploaded version was never committed
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique: ``{"rows": 5, "rows": 50}`` has no meaning to take the last of."""
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"key(s) {', '.join(map(repr, repeated))} given twice")
    return dict(pairs)


def declared_manifest(partition: Location) -> dict[str, Any] | None:
    """What upstream declared for its drop in ``_SUCCESS`` (``{"rows": N, "sums": {...}}``, numbers parsed
    as ``Decimal``; ``contracts.control_totals`` judges it); None for a plain (empty) marker or none.

    On an object store a drop riskline itself wrote (the generator) carries the manifest in its commit; so
    does a curated partition, which keeps the totals of the drop it was curated from.

    Raises:
        ValueError: the marker is neither empty nor a JSON object.
    """
    marker = partition.joinpath(SUCCESS)
    try:
        raw = (_fresh(marker) if is_remote(partition) else marker).read_bytes()
    except FileNotFoundError:
        return None
    if not raw.strip():
        return None
    try:
        manifest = json.loads(raw, parse_float=Decimal, object_pairs_hook=_unique_keys)
    except ValueError as exc:
        raise ValueError(f"{SUCCESS} is neither empty nor JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise ValueError(f'{SUCCESS} must be empty or a JSON object like {{"rows": N}}, got {raw[:80]!r}')
    if manifest.get("format") == _COMMIT_FORMAT:
        return manifest.get("declared")  # riskline's own commit of a version
    return manifest


def publish_frames(target: Location, frames: dict[str, pl.DataFrame], manifest: bytes | None = None) -> Location:
    """Publish ``{file_name: frame}`` as the partition ``target``, replacing it whole (``manifest``: the
    ``_SUCCESS`` content, see :func:`staged_partition`)."""
    with staged_partition(target, manifest=manifest) as tmp:
        for name, frame in sorted(frames.items()):
            write_parquet(frame, tmp / name)
    return target


def move_file(source: Location, local_target: Path) -> None:
    """Move ``source`` to a local (staging) path; from an object store it is copied, and the caller
    removes the source partition whole afterwards."""
    if is_remote(source):
        source.fs.get_file(source.path, str(local_target))
    else:
        os.replace(source, local_target)


def remove_partition(target: Location) -> None:
    """Remove a partition whole (used when a rerun produces nothing for a zone, e.g. no quarantine)."""
    if is_remote(target):
        # the marker goes first: from then on readers see no partition, whatever the rest of the delete does
        _remove_key(target.fs, target.joinpath(SUCCESS).path)
        _remove_key(target.fs, target.path)
        return
    _repair_interrupted_swap(target)
    _count_replacement(target)
    if target.exists():
        trash = target.parent / f"{_OLD_PREFIX}{target.name}-{uuid.uuid4().hex}"
        os.replace(target, trash)
        shutil.rmtree(trash, ignore_errors=True)


def read_partition(partition: Location, **options: Any) -> pl.DataFrame:
    """Read a complete partition written by this module (``options`` go to polars); fail if it is incomplete."""
    files = complete_files(partition)
    if files is None:
        raise FileNotFoundError(f"partition {partition} is missing or incomplete (no {SUCCESS})")
    if not files:
        raise FileNotFoundError(f"partition {partition} holds no data file")
    return read_parquet(files, **options)


def complete_partition_dates(
    root: Location, zone: str, dataset: str | None = None, key: str = "dt"
) -> list[dt.date]:
    """Business dates of the complete partitions (with ``_SUCCESS``) of ``root/zone/dataset``, sorted.

    Without ``dataset``, those of a derived zone, ``root/zone/<key>=D`` (e.g. ``key="as_of_date"``).
    """
    return list(complete_partitions(root, zone, dataset, key))


def complete_partitions(
    root: Location, zone: str, dataset: str | None = None, key: str = "dt"
) -> dict[dt.date, Location]:
    """:func:`complete_partition_dates` with each partition's location (what :func:`partition_dir` gives),
    oldest first, from one listing: a range ingest looks over the whole history for every date it ingests,
    and resolving each partition's path on its own cost more than reading it (measured)."""
    return dict(remembered(("partitions", str(root), zone, dataset, key),
                           lambda: _list_complete_partitions(root, zone, dataset, key)))


def _list_complete_partitions(root: Location, zone: str, dataset: str | None, key: str) -> dict[dt.date, Location]:
    base = ensure_inside(root, root / zone / dataset if dataset else root / zone)
    prefix = f"{key}="
    if is_remote(base):  # one listing for the whole dataset instead of a request per date
        # a recursive listing (find: 1 request per 1,000 keys), 20x faster than s3fs's glob on the same keys
        try:
            keys = _fresh(base).fs.find(base.path)
        except FileNotFoundError:
            keys = []
        depth = base.path.rstrip("/").count("/") + 2
        names = [posixpath.basename(posixpath.dirname(k)) for k in keys
                 if k.endswith(f"/{SUCCESS}") and k.count("/") == depth]
        days = sorted(d for d in (parse_date(n[len(prefix):]) for n in names if n.startswith(prefix)) if d)
        return {d: base.joinpath(f"{prefix}{d.isoformat()}") for d in days}
    return local_partitions(root, base, prefix, SUCCESS)


# How often this process replaced or removed each local partition (by real path). It is part of the key of
# every per-process cache of a partition's content (pipelines.store.zones), so this process never reads its
# own republished partition from memory, even where the file system hands the freed inode back within one
# timestamp tick; another process's republish is told by the files' (inode, mtime, ctime, size).
_REPLACED: dict[str, int] = {}


def replacements(partition: Path) -> int:
    """Times this process replaced or removed ``partition`` (a resolved path, as partition_dir gives)."""
    return _REPLACED.get(str(partition), 0)


def _count_replacement(target: Path) -> None:
    real = os.path.realpath(target)
    _REPLACED[real] = _REPLACED.get(real, 0) + 1


def swap_into_place(tmp: Path, target: Path) -> None:
    _count_replacement(target)
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


def file_sha256(path: Path) -> str:
    """sha256 of a local file, read in 1 MiB blocks (manifests and the chain's input fingerprints)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: Location, data: bytes) -> None:
    """Write a small file (JSON, pointer) so that readers see the old or the new content, never half."""
    if is_remote(path):
        path.write_bytes(data)  # one PUT: an object is replaced whole or not at all
        return
    make_dirs(path.parent)
    tmp = path.parent / f"{_TMP_PREFIX}{path.name}-{uuid.uuid4().hex}"
    # rw-r--r-- whatever the umask allows beyond it: a manifest or pointer is never world-writable
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def sha256_of(path: Location) -> str | None:
    """sha256 of a file's bytes, local or on an object store; None when there is no such file."""
    if not is_remote(path):
        return file_sha256(path) if path.is_file() else None
    data = read_bytes(path)
    return None if data is None else hashlib.sha256(data).hexdigest()


def remove_tree(target: Location) -> None:
    """Remove a private folder whole (a dry run's copy of the lake before it is made again)."""
    if is_remote(target):
        _remove_key(target.fs, target.path)
    else:
        shutil.rmtree(target, ignore_errors=True)


def copy_tree(source: Location, target: Location, skip: tuple[str, ...] = ()) -> int:
    """:func:`link_tree` for any root: on an object store every object under ``source`` (but ``skip``) is
    copied to ``target`` server-side (no bytes pass through this machine). Returns the number of files."""
    if not is_remote(source):
        assert isinstance(target, Path)
        return link_tree(source, target, skip)
    fs = _fresh(source).fs
    base = source.path.rstrip("/")
    count = 0
    for key in sorted(fs.find(base)):
        rel = key[len(base) + 1:]
        if any(rel == s or rel.startswith(s + "/") for s in skip) or f"/{_TMP_PREFIX}" in f"/{rel}":
            continue
        fs.copy(key, f"{target.path.rstrip('/')}/{rel}")
        count += 1
    return count


def link_tree(source: Path, target: Path, skip: tuple[str, ...] = ()) -> int:
    """Make ``target`` a copy of the lake ``source`` whose files are hard links (a dry run's private lake).

    Every riskline write replaces a file by rename (``atomic_write_bytes``, ``staged_partition``, the
    registry's folder rename), never in place, so writing through the copy re-points its own links and
    leaves ``source``'s files untouched, at the cost of directory entries only. ``skip`` names paths
    relative to ``source`` that are not copied (the staging area itself, locks, in-flight journals);
    temporary ``.tmp-`` siblings of in-flight writes are never copied. Across file systems a file is
    copied instead. Returns the number of files.
    """
    count = 0
    for folder, dirs, files in os.walk(source):
        here = Path(folder)
        rel = here.relative_to(source)
        dirs[:] = sorted(d for d in dirs if not d.startswith(_TMP_PREFIX) and str(rel / d) not in skip)
        make_dirs(target / rel)
        for name in files:
            if name.startswith(_TMP_PREFIX) or str(rel / name) in skip:
                continue
            try:
                os.link(here / name, target / rel / name, follow_symlinks=False)
            except OSError:
                shutil.copy2(here / name, target / rel / name, follow_symlinks=False)
            count += 1
    return count


