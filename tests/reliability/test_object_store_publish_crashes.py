"""The four-output publish on S3 killed (SIGKILL) before each of its requests.

Whatever the kill point, once the next run has recovered (``publish.recover``, which every publish and night
does first) the four outputs of the date are all the old night's or all the new night's, each matching the
manifest's sha256, ``_LATEST`` names a date whose outputs are whole, and the next publish leaves each output
with its committed version and the one before it, nothing else. ``s3_publish_outputs_child.py`` publishes in
its own process against moto's S3 server (fixture ``s3_root``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import signal
import subprocess
import sys
from pathlib import Path

from s3_publish_outputs_child import LEASE_SECONDS, frames

from pipelines.config.location import as_location
from pipelines.contracts.outputs import OUTPUTS
from pipelines.store import lake, locks, publish

CHILD = Path(__file__).with_name("s3_publish_outputs_child.py")
D = dt.date(2026, 2, 10)
NEXT = D + dt.timedelta(days=1)


def _kill_points(events: list[str]) -> list[int]:
    """The requests a kill before which changes what is in place: the first one, the first upload of an
    output, the journal, each output's commit, the manifest, ``_LATEST`` and the journal's removal (the
    publish lock's requests are not counted: ``s3_publish_outputs_child.py``). Each step between them only repeats one of these (another file of the same kind)."""
    def first(op: str, *parts: str) -> list[int]:
        return [next(i for i, e in enumerate(events) if e.startswith(op) and all(p in e for p in parts))]

    points = [0, *first("PutObject", "/_v="), *first("PutObject", "/_journal/")]
    points += [i for i, e in enumerate(events) if e.startswith("PutObject") and "/outputs/" in e
               and e.endswith(f"/{lake.SUCCESS}")]
    # the last request removes the journal (a batch delete, whose URL names no key: the HEAD before it does)
    points += [*first("PutObject", "/manifest.json"), *first("PutObject", "/outputs/_LATEST"), len(events) - 1]
    assert "/_journal/" in events[-2] and len(points) == len(set(points)) == 6 + len(OUTPUTS), (points, events)
    return sorted(points)


def _child(root: str, day: dt.date, value: int, kill_after: int, trace: Path) -> int:
    proc = subprocess.run([sys.executable, str(CHILD), root, day.isoformat(), str(value), str(kill_after), str(trace)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode in (0, -signal.SIGKILL), f"child failed on its own (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc.returncode


def _night(root, day: dt.date) -> int:
    """The value of the night whose outputs ``day`` holds; fails on a mix or a file the manifest disowns."""
    manifest = publish.read_manifest(root, day)
    values = set()
    for name in OUTPUTS:
        part = publish.output_dir(root, name, day)
        (file,) = lake.parquet_files(part)
        assert hashlib.sha256(file.read_bytes()).hexdigest() == manifest["outputs"][name]["files"]["part-0.parquet"]
        assert manifest["outputs"][name]["version"] == lake.committed_version(part)
        values |= set(lake.read_partition(part)["v"].to_list())
    assert len(values) == 1 and values == {manifest["value"]}, (day, values, manifest["value"])
    return values.pop()


def _only_live_versions(root, day: dt.date) -> None:
    for name in OUTPUTS:
        part = publish.output_dir(root, name, day)
        names = lake.list_names(part)
        assert [n for n in names if not n.startswith("_v=")] == [lake.SUCCESS], (name, names)
        assert len(names) <= 3, (name, names)  # _SUCCESS, the committed version, the one before it


def _traced(s3_root: str, tmp_path: Path, day: dt.date) -> list[str]:
    """The requests of a publish of ``day`` over a published night D, in order (a run never killed)."""
    trace = tmp_path / "trace.txt"
    base = as_location(f"{s3_root}/trace")
    publish.publish_outputs(base, D, frames(1), {"value": 1})
    assert _child(str(base), day, 2, -1, trace) == 0
    return trace.read_text().splitlines()


def test_four_output_publish_killed_before_any_s3_request_is_all_or_nothing(s3_root: str, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(locks, "LEASE_SECONDS", LEASE_SECONDS)
    events = _traced(s3_root, tmp_path, D)
    points = _kill_points(events)
    outcomes = []
    for k in points:
        root = as_location(f"{s3_root}/k{k}")
        publish.publish_outputs(root, D, frames(1), {"value": 1})
        assert _child(str(root), D, 2, k, tmp_path / f"trace-{k}.txt") == -signal.SIGKILL, f"kill point {k} not reached"
        publish.recover(root)  # the next run's first step (it waits out the dead publisher's lease)
        value = _night(root, D)
        assert publish.read_latest(root) == D
        outcomes.append(value)
        # A republish of the same night, and the next night, each whole, leaving no debris behind.
        publish.publish_outputs(root, D, frames(3), {"value": 3})
        assert _night(root, D) == 3
        _only_live_versions(root, D)
        assert lake.list_names(root / "outputs" / "_journal") == []
    # Killed before the journal the old night stays; killed after it the new night is rolled forward.
    assert outcomes[0] == 1 and outcomes[-1] == 2 and set(outcomes) == {1, 2}, [(events[k], o) for k, o in zip(points, outcomes)]


def test_a_new_night_killed_mid_publish_never_moves_latest_to_a_partial_night(s3_root: str, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(locks, "LEASE_SECONDS", LEASE_SECONDS)
    events = _traced(s3_root, tmp_path, NEXT)
    for k in _kill_points(events)[::2]:  # every other one: the first test covers each
        root = as_location(f"{s3_root}/n{k}")
        publish.publish_outputs(root, D, frames(1), {"value": 1})
        assert _child(str(root), NEXT, 2, k, tmp_path / f"trace-{k}.txt") == -signal.SIGKILL
        latest = publish.read_latest(root)  # before any recovery: what a consumer sees right after the crash
        assert latest in (D, NEXT)
        assert _night(root, latest) == (1 if latest == D else 2)
        publish.recover(root)
        latest = publish.read_latest(root)
        assert _night(root, latest) == (1 if latest == D else 2)
        journal = json.dumps(lake.list_names(root / "outputs" / "_journal"))
        assert journal == "[]", journal
