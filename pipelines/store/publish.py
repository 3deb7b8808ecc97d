"""Publish the four outputs of a business date all-or-nothing, with a run manifest.

Protocol (what a consumer may rely on):

1. every output frame is validated by its output suite first; a critical failure publishes nothing;
2. each output is staged in a temporary sibling of ``outputs/<name>/as_of_date=D`` with ``_SUCCESS`` last;
3. a journal ``outputs/_journal/as_of_date=D.json`` naming the staged folders and the manifest is written
   atomically: from here on the publish is decided and a crash is rolled forward by :func:`recover`;
4. the staged folders are swapped into place (one atomic exchange each), then the manifest
   ``outputs/_manifests/as_of_date=D/manifest.json`` is written (a different manifest it replaces is kept
   first as ``_manifests/as_of_date=D/history/<n>-<sha256 prefix>.json``: a rerun that changed the outputs
   leaves a trace), then ``outputs/_LATEST`` moves to D (never backwards: a backfill of an older date
   leaves it), then the journal is removed.

Publishes (and recoveries) of any dates take turns on ``DATA_ROOT/_locks/publish.lock``: a run must not
roll forward another run's journal while that run is still swapping, nor move ``_LATEST`` from a stale read.

On an object store (no rename) step 2 uploads each output as a new, uncommitted version
(``outputs/<name>/as_of_date=D/_v=<version>/``, ``lake.upload_version``), the journal names those versions,
and step 4's swap is one PUT of each output's ``_SUCCESS`` naming its version (``lake.commit_version``); the
manifest names each output's version too. The publish lock is then a leased lock object (``locks``).

A consumer reads the date named by ``_LATEST`` (or the Airflow asset event), and may check the sha256 of
each file against the manifest. Before the journal exists the old outputs are untouched; after it, the
next run (or any call to :func:`recover`) completes the swap, so a crash never leaves limits of D beside a
queue of D-1 once publication has been decided.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from upath import UPath

import polars as pl

from pipelines.config.location import Location, is_remote
from pipelines.contracts.outputs import OUTPUTS, SCHEMA_VERSION
from pipelines.store import lake, locks
from pipelines.store.chain import write_latest_status

PART_FILE = "part-0.parquet"
LATEST = "_LATEST"


class PublishError(RuntimeError):
    """Outputs failed their contract or validation; nothing was published."""


class PublishIncompleteError(RuntimeError):
    """The publish was decided (journal written) but could not finish; the message says what is in place."""


def output_dir(root: Location, name: str, as_of: dt.date) -> Location:
    return lake.partition_dir(root, "outputs", name, as_of, key="as_of_date")


def manifest_path(root: Location, as_of: dt.date) -> Location:
    return lake.partition_dir(root, "outputs", "_manifests", as_of, key="as_of_date") / "manifest.json"


def journal_path(root: Location, as_of: dt.date) -> Location:
    """The publish journal of ``as_of``: present only while a publish of that night is decided and unfinished."""
    return lake.ensure_inside(root, root / "outputs" / "_journal" / f"as_of_date={as_of.isoformat()}.json")


def canonical_json(obj: Any) -> bytes:
    """JSON with sorted keys and a trailing newline: the same object always gives the same bytes."""
    return (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, default=str) + "\n").encode()


def publish_outputs(
    root: Location,
    as_of: dt.date,
    frames: dict[str, pl.DataFrame],
    manifest: dict[str, Any],
) -> Location:
    """Publish the four published frames (already in contract shape) and the run manifest for ``as_of``.

    ``manifest`` holds what the caller knows (versions, inputs, timings); row counts, file fingerprints
    and the schema version are added here. Returns the manifest path.
    """
    if sorted(frames) != sorted(OUTPUTS):
        raise PublishError(f"publish needs exactly the outputs {list(OUTPUTS)}, got {sorted(frames)}")
    with _publish_lock(root):
        _recover_locked(root)
        staged: dict[str, str] = {}
        try:
            outputs_meta: dict[str, Any] = {}
            for name in OUTPUTS:
                target = output_dir(root, name, as_of)
                staged[name], outputs_meta[name] = _stage_output(root, target, frames[name])
            full_manifest = {**manifest, "as_of_date": as_of.isoformat(), "schema_version": SCHEMA_VERSION,
                             "outputs": outputs_meta}
            lake.atomic_write_bytes(
                journal_path(root, as_of),
                canonical_json({"as_of_date": as_of.isoformat(), "staged": staged, "manifest": full_manifest}),
            )
        except BaseException:
            for name, tmp in staged.items():
                _discard(output_dir(root, name, as_of), tmp)
            raise
        try:
            _roll_forward(root, journal_path(root, as_of))
        except OSError as exc:  # disk full, read-only, I/O error: the publish is decided, say what is in place
            raise PublishIncompleteError(_incomplete_state(root, as_of, exc)) from exc
    return manifest_path(root, as_of)


def _stage_output(root: Location, target: Location, frame: pl.DataFrame) -> tuple[str, dict[str, Any]]:
    """Stage one output beside ``target``: a temporary folder, or an uploaded version on an object store.

    Returns what the journal names (the folder, or the version's prefix) and the output's manifest entry.
    """
    meta: dict[str, Any] = {"path": str(target.relative_to(root)), "rows": frame.height}
    if is_remote(target):
        with lake.local_scratch() as tmp:
            lake.write_parquet(frame, tmp / PART_FILE)
            meta["files"] = {PART_FILE: lake.file_sha256(tmp / PART_FILE)}
            prefix, _ = lake.upload_version(target, tmp)
        meta["version"] = prefix
        return prefix, meta
    assert isinstance(target, Path)
    lake.make_dirs(target.parent)
    tmp = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex}"
    tmp.mkdir(0o755)  # explicit modes: published files must not be world-writable under any umask
    try:
        lake.write_parquet(frame, tmp / PART_FILE)
        os.chmod(tmp / PART_FILE, 0o644)
        (tmp / lake.SUCCESS).touch(0o644)
        meta["files"] = {PART_FILE: lake.file_sha256(tmp / PART_FILE)}
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(tmp), meta


def _discard(target: Location, staged: str) -> None:
    """Remove what :func:`_stage_output` staged for a publish that was not decided."""
    if is_remote(target):
        lake.drop_version(target, staged)
    else:
        shutil.rmtree(staged, ignore_errors=True)


def _incomplete_state(root: Location, as_of: dt.date, exc: OSError) -> str:
    """What a decided publish of ``as_of`` left in place when it stopped, and how to finish it."""
    journal = journal_path(root, as_of)
    try:
        entry = json.loads(lake.read_bytes(journal) or b"")
        new = [n for n in OUTPUTS
               if _holds(output_dir(root, n, as_of), entry["manifest"]["outputs"][n]["files"], entry["staged"][n])]
        manifest_done = lake.read_bytes(manifest_path(root, as_of)) == canonical_json(entry["manifest"])
    except (OSError, ValueError, KeyError):
        new, manifest_done = [], False
    old = [n for n in OUTPUTS if n not in new]
    return (
        f"the publish of {as_of} was decided (journal {journal}) but stopped: {exc.strerror or exc}. "
        f"In place now: new outputs of {as_of}: {', '.join(new) or 'none'}; not yet swapped: {', '.join(old) or 'none'}; "
        f"manifest {'written' if manifest_done else 'not yet written'}; "
        f"_LATEST names {read_latest(root) or 'no date yet'}. "
        f"Free space or fix the file system, then rerun the night for {as_of} (or any riskline run): "
        "it completes this publish from the journal before anything else"
    )


def recover(root: Location) -> list[dt.date]:
    """Finish every publish that was decided (journal written) but interrupted; return their dates."""
    with _publish_lock(root):
        return _recover_locked(root)


@contextmanager
def _publish_lock(root: Location) -> Iterator[None]:
    with locks.file_lock(lake.ensure_inside(root, root / "_locks" / "publish.lock")):
        yield


def _recover_locked(root: Location) -> list[dt.date]:
    journal_dir = root / "outputs" / "_journal"
    return [_roll_forward(root, journal_dir / name) for name in lake.list_names(journal_dir)
            if name.startswith("as_of_date=") and name.endswith(".json")]


def _holds(folder: Location, files: dict[str, str], staged: str | None = None) -> bool:
    """``folder`` is a complete partition holding exactly ``files`` (name -> sha256); on an object store,
    its committed version is ``staged`` (the version this publish uploaded)."""
    if is_remote(folder):
        return staged is not None and lake.committed_version(folder) == staged
    return (folder / lake.SUCCESS).is_file() and all(
        (folder / name).is_file() and lake.file_sha256(folder / name) == sha for name, sha in files.items()
    )


def _roll_forward(root: Location, journal: Location) -> dt.date:
    entry = json.loads(lake.read_bytes(journal) or b"")
    as_of = dt.date.fromisoformat(entry["as_of_date"])
    for name, tmp in entry["staged"].items():
        target = output_dir(root, name, as_of)
        files = entry["manifest"]["outputs"][name]["files"]
        if is_remote(target):
            _commit_remote(target, tmp, files, as_of, name, journal)
            continue
        staged = Path(tmp)
        # Judge by content, not by which folder exists: after the atomic exchange the staged path holds
        # the *previous* partition (or what a crash left of its removal), which must never be swapped back.
        if not _holds(target, files):
            if not _holds(staged, files):
                raise PublishError(
                    f"cannot finish the publish of {as_of}: the staged {name} ({staged}) is missing or damaged. "
                    f"Remove {journal} and rerun the night for {as_of}."
                )
            lake.swap_into_place(staged, target)
        shutil.rmtree(staged, ignore_errors=True)
    _write_manifest(root, as_of, canonical_json(entry["manifest"]))
    latest = read_latest(root)
    if latest is None or as_of >= latest:
        lake.atomic_write_bytes(root / "outputs" / LATEST, f"{as_of.isoformat()}\n".encode())
    write_latest_status(root)  # after the pointer: the flag describes the date _LATEST names
    lake.remove_file(journal)
    return as_of


def _commit_remote(target: UPath, prefix: str, files: dict[str, str], as_of: dt.date, name: str,
                   journal: Location) -> None:
    """The object-store swap: commit the uploaded version unless it is committed already."""
    if lake.committed_version(target) == prefix:
        return
    if not lake.version_holds(target, prefix, files):
        raise PublishError(
            f"cannot finish the publish of {as_of}: the uploaded {name} ({target}/{prefix}) is missing or damaged. "
            f"Remove {journal} and rerun the night for {as_of}."
        )
    lake.commit_version(target, prefix, sorted(files))


def _write_manifest(root: Location, as_of: dt.date, content: bytes) -> None:
    """Write D's manifest, first keeping a different one it replaces in ``history/`` (never overwritten)."""
    path = manifest_path(root, as_of)
    old = lake.read_bytes(path)
    if old is not None and old != content:
        history = path.parent / "history"
        sha = hashlib.sha256(old).hexdigest()[:16]
        kept = [n for n in lake.list_names(history) if n.endswith(".json")]
        if not any(n.removesuffix(".json").endswith(sha) for n in kept):  # a crash after this copy: kept once
            lake.atomic_write_bytes(history / f"{len(kept) + 1:04d}-{sha}.json", old)
    lake.atomic_write_bytes(path, content)


def manifest_history(root: Location, as_of: dt.date) -> list[Location]:
    """The manifests D's current one replaced, oldest first."""
    history = manifest_path(root, as_of).parent / "history"
    return [history / n for n in lake.list_names(history) if n.endswith(".json")]


def read_latest(root: Location) -> dt.date | None:
    """The newest fully published business date, or None before the first publish."""
    raw = lake.read_bytes(root / "outputs" / LATEST)
    return None if raw is None else dt.date.fromisoformat(raw.decode().strip())


def describe_latest(root: Location) -> str:
    """Which published outputs readers keep seeing after a night failed: named, never assumed to be yesterday's."""
    latest = read_latest(root)
    if latest is None:
        return "no outputs have been published yet"
    return f"the outputs of {latest} remain the latest ({root / 'outputs' / LATEST})"


def read_output(root: Location, name: str, as_of: dt.date, columns: list[str] | None = None) -> pl.DataFrame:
    """Read one published output of a date (for the next night's run, the report and tests)."""
    return lake.read_partition(output_dir(root, name, as_of), columns=columns)


def read_manifest(root: Location, as_of: dt.date) -> dict[str, Any]:
    """The run manifest published with the outputs of ``as_of``; FileNotFoundError if nothing was published."""
    path = manifest_path(root, as_of)
    raw = lake.read_bytes(path)
    if raw is None:
        raise FileNotFoundError(f"nothing was published for {as_of} (no {path})")
    return json.loads(raw)
