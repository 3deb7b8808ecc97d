"""Objects on a data root that is an object store: versioned partitions committed by one ``_SUCCESS``
object, and the small-file operations (read, list, remove) every zone uses on either kind of root.

A write uploads its files under ``<partition>/_v=<version>/`` (:func:`upload_version`) and then, last, puts
one ``_SUCCESS`` naming the version and its files (:func:`commit_version`): one PUT is atomic on S3, GCS and
Azure, so readers see the old partition or the new one whole. ``pipelines.store.lake`` is the module callers
use; it re-exports what is here.
"""

from __future__ import annotations

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
from pathlib import Path
from typing import Any

from upath import UPath

from pipelines.config.location import Location, is_remote
from pipelines.store.listing import remembered

SUCCESS = "_SUCCESS"
VERSION_PREFIX = "_v="
COMMIT_FORMAT = "riskline-partition/1"


def _fresh(location: UPath) -> UPath:
    # fsspec file systems cache listings per process; a long-lived worker must see other writers' commits.
    location.fs.invalidate_cache(location.path)
    return location


def _remote_files(partition: UPath, marker: dict[str, Any]) -> list[Location]:
    if marker:  # a riskline commit names its version's files
        names = [f for f in marker["files"] if "/" not in f and not f.startswith((".", "_"))]
        return [partition.joinpath(marker["prefix"], name) for name in sorted(names)]
    try:
        entries = _fresh(partition).fs.ls(partition.path, detail=True)
    except FileNotFoundError:
        entries = []
    names = [posixpath.basename(e["name"].rstrip("/")) for e in entries if e["type"] == "file"]
    return [partition.joinpath(n) for n in sorted(names) if not n.startswith((".", "_"))]


@contextmanager
def local_scratch() -> Iterator[Path]:
    """A private local folder for one write's files before they are uploaded; removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="riskline-stage-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def fetched(files: Sequence[Location]) -> Iterator[list[Path]]:
    """Local paths of ``files`` for the block: local files as they are, object-store files downloaded once
    into a scratch folder (for readers that scan the same files many times, e.g. a range merge)."""
    if not any(is_remote(f) for f in files):
        yield [Path(f) for f in files]
        return
    with local_scratch() as tmp:
        local = []
        for i, f in enumerate(files):
            path = tmp / f"{i:05d}-{f.name}"
            f.fs.get_file(f.path, str(path))
            local.append(path)
        yield local


def _local_tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def upload_version(target: UPath, folder: Path) -> tuple[str, list[str]]:
    """Upload the files of the local ``folder`` as a new, not yet committed version of ``target``.

    Returns the version's prefix and its files; :func:`commit_version` makes it the partition. An upload
    that is never committed is invisible to readers and deleted by the partition's next commit.
    """
    # Sortable by time, unique per write: a rerun of the same date is a new version, never an overwrite.
    prefix = f"{VERSION_PREFIX}{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
    files = _local_tree(folder)
    try:
        for rel in files:
            target.fs.put_file(str(folder / rel), f"{target.path}/{prefix}/{rel}")
    except BaseException:
        _remove_key(target.fs, f"{target.path}/{prefix}")
        raise
    return prefix, files


def committed_version(partition: Location) -> str | None:
    """The prefix of the version an object-store partition's ``_SUCCESS`` commits (None: none, or local)."""
    if not is_remote(partition):
        return None
    marker = _read_marker(partition)
    return marker.get("prefix") if marker else None


def version_holds(target: UPath, prefix: str, files: dict[str, str]) -> bool:
    """The uploaded version ``prefix`` of ``target`` holds exactly ``files`` (name -> sha256)."""
    try:
        return all(hashlib.sha256(_fresh(target.joinpath(prefix, name)).read_bytes()).hexdigest() == sha
                   for name, sha in files.items())
    except FileNotFoundError:
        return False


def commit_version(target: UPath, prefix: str, files: list[str], declared: Any = None,
                   sha256: dict[str, str] | None = None) -> None:
    """Make the uploaded version ``prefix`` the partition ``target``: one PUT of ``_SUCCESS`` naming it.

    ``sha256`` (file -> digest, hashed from the local copy before upload) is kept in the commit, so that a
    reader fingerprinting the partition (``chain.curated_digest``) need not fetch its files again to hash them.
    The version it replaces is kept for readers that listed it just before; older ones go.
    """
    previous = _read_marker(target)
    commit: dict[str, Any] = {"format": COMMIT_FORMAT, "version": prefix.removeprefix(VERSION_PREFIX),
                              "prefix": prefix, "files": files}
    if declared is not None:
        commit["declared"] = declared
    if sha256:
        commit["sha256"] = sha256
    target.joinpath(SUCCESS).write_bytes(json.dumps(commit, sort_keys=True).encode())
    keep = {prefix} | ({previous["prefix"]} if previous else set())
    _drop_versions(target, keep)


def committed_sha256(partition: UPath, name: str) -> str | None:
    """The sha256 the commit of an object-store partition records for its file ``name`` (None: not recorded)."""
    marker = _read_marker(partition)
    return (marker or {}).get("sha256", {}).get(name)


def drop_version(target: UPath, prefix: str) -> None:
    """Delete an uploaded version that was never committed (or is no longer wanted)."""
    if committed_version(target) != prefix:
        _remove_key(target.fs, f"{target.path}/{prefix}")


def _read_marker(partition: UPath) -> dict[str, Any] | None:
    """A partition's ``_SUCCESS``: None when absent, ``{}`` for a plain upstream marker, else the riskline
    commit naming its version and files. Read once per read phase (``listing.read_phase``): one GET each."""
    return remembered(("marker", str(partition)), lambda: _read_marker_now(partition))


def _read_marker_now(partition: UPath) -> dict[str, Any] | None:
    try:
        raw = _fresh(partition.joinpath(SUCCESS)).read_bytes()
    except FileNotFoundError:
        return None
    if not raw.strip():
        return {}
    try:
        commit = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{partition}/{SUCCESS} is neither empty nor a riskline commit: {exc}") from None
    if isinstance(commit, dict) and "format" not in commit and "rows" in commit:
        return {}  # an upstream manifest beside flat files (declared_manifest reads it)
    if not isinstance(commit, dict) or commit.get("format") != COMMIT_FORMAT:
        raise ValueError(f"{partition}/{SUCCESS} is not a riskline commit (format {commit!r:.80})")
    return commit


def _drop_versions(target: UPath, keep: set[str]) -> None:
    """After a commit: remove every object of the partition but ``_SUCCESS`` and the versions in ``keep``
    (older versions, uploads that were never committed, markers of the partition it replaced)."""
    fs = _fresh(target).fs
    for entry in fs.ls(target.path, detail=False):
        name = posixpath.basename(str(entry).rstrip("/"))
        if name != SUCCESS and name not in keep:
            _remove_key(fs, f"{target.path}/{name}")


def _remove_key(fs: Any, key: str) -> None:
    try:
        fs.rm(key, recursive=True)
    except FileNotFoundError:
        pass


def read_bytes(path: Location) -> bytes | None:
    """A small file's bytes (a pointer, a journal, a JSON record), None when there is none."""
    try:
        return (_fresh(path) if is_remote(path) else path).read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def glob(folder: Location, pattern: str) -> list[str]:
    """The paths under ``folder`` matching ``pattern`` (``as_of_date=*/manifest.json``), relative, sorted."""
    if is_remote(folder):
        fs = _fresh(folder).fs
        base = folder.path.rstrip("/")
        return sorted(str(p)[len(base) + 1:] for p in fs.glob(f"{base}/{pattern}"))
    return sorted(p.relative_to(folder).as_posix() for p in folder.glob(pattern)) if folder.is_dir() else []


def is_file(path: Location) -> bool:
    return (_fresh(path) if is_remote(path) else path).is_file()


def list_names(folder: Location) -> list[str]:
    """The names of the entries directly in ``folder`` (files and folders, a common prefix on an object
    store), sorted; empty when it does not exist."""
    if is_remote(folder):
        try:
            entries = _fresh(folder).fs.ls(folder.path, detail=False)
        except FileNotFoundError:
            return []
        return sorted({posixpath.basename(str(e).rstrip("/")) for e in entries} - {""})
    try:
        return sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []


def remove_file(path: Location) -> None:
    """Remove one file (an object); no error when it is gone already."""
    if is_remote(path):
        _remove_key(path.fs, path.path)
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
