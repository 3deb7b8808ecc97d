"""A publish to S3 killed (SIGKILL) before each of its requests: readers see the old partition or the new
one, never a mix and never an error, and the next publish leaves no debris.

``s3_publish_child.py`` does the publish in its own process against moto's S3 server (fixture ``s3_root``).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
from s3_publish_child import DAY, frames

from pipelines.config.location import as_location
from pipelines.store import lake

CHILD = Path(__file__).with_name("s3_publish_child.py")


def _child(root: str, value: int, kill_after: int, trace: Path) -> int:
    proc = subprocess.run([sys.executable, str(CHILD), root, str(value), str(kill_after), str(trace)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode in (0, -signal.SIGKILL), f"child failed on its own (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc.returncode


def _as_frame(value: int) -> pl.DataFrame:
    return pl.concat(list(frames(value).values()))


def test_publish_killed_before_any_s3_request_is_all_or_nothing(s3_root: str, tmp_path: Path):
    # The kill points: every request of a publish over an existing partition.
    trace = tmp_path / "trace.txt"
    lake.publish_frames(lake.partition_dir(as_location(f"{s3_root}/trace"), "curated", "payments", DAY), frames(1))
    assert _child(f"{s3_root}/trace", 2, -1, trace) == 0
    events = trace.read_text().splitlines()
    assert "PutObject" in events and len(events) >= 5, events

    outcomes = []
    for k in range(len(events)):
        root = as_location(f"{s3_root}/k{k}")
        part = lake.partition_dir(root, "curated", "payments", DAY)
        lake.publish_frames(part, frames(1))
        rc = _child(str(root), 2, k, tmp_path / f"trace-{k}.txt")
        assert rc == -signal.SIGKILL, f"kill point {k} ({events[k]}) was never reached"
        seen = lake.read_partition(part)
        assert seen.equals(_as_frame(1)) or seen.equals(_as_frame(2)), (k, events[k], seen)
        outcomes.append(int(seen["x"][0]))
        # The next night publishes again: its version and the last committed one remain, nothing else.
        lake.publish_frames(part, frames(3))
        assert lake.read_partition(part).equals(_as_frame(3))
        versions = sorted(p.name for p in part.iterdir() if p.name.startswith("_v="))
        assert len(versions) == 2, (k, events[k], versions)
    # Killed before its commit the old partition stays; killed after it the new one is whole.
    assert outcomes[0] == 1 and 2 in outcomes, list(zip(events, outcomes))
