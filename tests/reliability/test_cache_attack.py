"""Hostile review of the per-process caches of the lake (paths, partition frames, id ranges): each test is a
way a first version of them gave a wrong answer, not a slow one (each failed then and passed before them):

* the data-root escape check (``ensure_inside``) is remembered per path string, so a folder of the lake
  that becomes a symlink out of the root after its first use is followed, for reading and for writing;
* a data root reached through a symlink keeps its first target for the process's life: re-pointing the
  link (a blue/green lake swap, a restored copy) sends later reads and writes to the old lake;
* a republished partition is recognised only by (inode, mtime_ns[, size]); ext4 hands the freed inodes
  of a partition straight back to the next publish but one, so on a file system with coarse timestamps
  (1 s: HFS+, ext4 with 128-byte inodes, some NFS/SMB mounts; 2 s: FAT/exFAT) two publishes in the same
  second serve the older version's frame and min/max ranges;
* a whole partition is now decoded (every contract column) where a lazy scan read only the projected
  columns: an unused optional column stored with another type in an old file now fails every reader.

Small and local: no published-lake fixture, a few KB of Parquet in ``tmp_path``.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import polars as pl
import pytest

from pipelines.contracts.landing import CONTRACT
from pipelines.store import lake, zones

DAY = dt.date(2024, 3, 1)


def _payments(ids: list[str]) -> pl.DataFrame:
    n = len(ids)
    return pl.DataFrame({
        "payment_id": ids, "account_id": ["A1"] * n, "loan_id": ["L1"] * n,
        "paid_at": [dt.datetime(2024, 3, 1, 3, tzinfo=dt.UTC)] * n, "amount_cents": [100] * n,
    }, schema=CONTRACT["payments"].curated_schema())


def _publish(root: Path, day: dt.date, ids: list[str]) -> Path:
    part = zones.curated(root, "payments", day)
    lake.publish_frames(part, {"part-0.parquet": _payments(ids)})
    return part


# --- 1. the escape check is remembered ------------------------------------------------------------------


def test_a_zone_made_a_symlink_out_of_the_root_after_first_use_is_refused(tmp_path: Path):
    root, elsewhere = tmp_path / "lake", tmp_path / "elsewhere"
    root.mkdir()
    _publish(root, DAY, ["P1"])  # first use: the paths are checked (inside) and remembered
    assert lake.ensure_inside(root, root / "curated" / "payments")
    # someone with write access to the lake swaps a zone for a link out of it (what test_security guards)
    (root / "curated").rename(elsewhere)
    (root / "curated").symlink_to(elsewhere, target_is_directory=True)
    before = sorted(p.name for p in (elsewhere / "payments").iterdir())
    with pytest.raises(lake.PathEscapeError, match="escapes the data root"):
        lake.ensure_inside(root, root / "curated" / "payments")  # exports.export_agent_queue's check
    with pytest.raises(lake.PathEscapeError, match="escapes the data root"):
        _publish(root, DAY + dt.timedelta(days=1), ["P2"])  # a write through the link
    assert sorted(p.name for p in (elsewhere / "payments").iterdir()) == before


# --- 2. a data root reached through a symlink keeps its first target --------------------------------------


def test_a_repointed_data_root_link_is_followed_to_its_new_lake(tmp_path: Path):
    blue, green, current = tmp_path / "blue", tmp_path / "green", tmp_path / "current"
    blue.mkdir()
    green.mkdir()
    current.symlink_to(blue, target_is_directory=True)
    _publish(current, DAY, ["BLUE"])
    assert zones.curated_dates(current, "payments") == [DAY]
    # swap the lake the link names (atomically, as a blue/green switch or a restore does)
    tmp_link = tmp_path / "current.new"
    tmp_link.symlink_to(green, target_is_directory=True)
    os.replace(tmp_link, current)
    assert zones.curated_dates(current, "payments") == []  # green holds nothing yet
    _publish(current, DAY, ["GREEN"])
    assert (green / "curated" / "payments" / f"dt={DAY}" / lake.SUCCESS).is_file()
    blue_rows = pl.read_parquet(blue / "curated" / "payments" / f"dt={DAY}" / "part-0.parquet")
    assert blue_rows["payment_id"].to_list() == ["BLUE"]  # the old lake is not overwritten


# --- 3. republished within one timestamp tick: the older version is served --------------------------------


def test_a_partition_republished_within_one_timestamp_tick_is_read_afresh(tmp_path: Path):
    """ext4 (this machine) hands a partition's freed inodes back two publishes later (seen: the _SUCCESS and
    part-0.parquet inodes alternate between two pairs), and a one-row file of an id of the same length has the
    same size; the only thing told apart is mtime_ns. Here every publish is stamped with the same second, as a
    file system with 1 s timestamps does to publishes in the same second (os.utime stands in for it)."""
    root = tmp_path / "lake"
    root.mkdir()
    stamp = 1_700_000_000_000_000_000
    seen: set[tuple[int, int]] = set()
    reused = False
    for version in range(10):
        part = _publish(root, DAY, [f"K{version:03d}"])
        for f in (part / lake.SUCCESS, part / "part-0.parquet"):
            os.utime(f, ns=(stamp, stamp))
        inodes = ((part / lake.SUCCESS).stat().st_ino, (part / "part-0.parquet").stat().st_ino)
        reused |= inodes in seen
        seen.add(inodes)
        want = f"K{version:03d}"
        ranges = zones.value_ranges(zones.curated(root, "payments", DAY), ["payment_id"])
        frame = zones.scan_curated(root, "payments", upto=DAY).collect()
        assert (ranges, frame["payment_id"].to_list()) == ({"payment_id": (want, want)}, [want]), (
            f"version {version} (inodes {inodes}, reused: {reused}) read as an older one")
    if not reused:
        pytest.skip("this file system did not reuse the inodes (tmpfs never does): nothing to collide")


# --- 4. a whole partition decoded where a projection read a few columns -----------------------------------


def test_an_unused_optional_column_of_another_type_in_an_old_file_does_not_break_key_reads(tmp_path: Path):
    """An old curated file carries ``channel`` as Int64 (say an extra landing column carried through untouched,
    before the contract named it as an optional String). A reader of the keys never decodes it through a lazy
    projection; the frame cache decodes every contract column of the partition first."""
    root = tmp_path / "lake"
    root.mkdir()
    schema = CONTRACT["behaviour"].curated_schema()
    old = pl.DataFrame({
        "event_id": ["E1"], "account_id": ["A1"], "event_time": [dt.datetime(2024, 3, 1, 3, tzinfo=dt.UTC)],
        "event_type": ["login"], "amount_cents": [None], "channel": [7],
    }, schema_overrides={k: v for k, v in schema.items() if k != "channel"})
    lake.publish_frames(zones.curated(root, "behaviour", DAY), {"part-0.parquet": old})
    keys = zones.scan_curated(root, "behaviour", upto=DAY).select("event_id", "dt").collect()
    assert keys["event_id"].to_list() == ["E1"]
