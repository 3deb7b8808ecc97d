"""The lake on an fsspec URL: versioned partitions committed by one ``_SUCCESS`` object.

fsspec's ``memory://`` file system is a real fsspec implementation with object-store semantics (keys, no
folder renames); the same code against S3 itself is in tests/e2e/test_object_store.py.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from upath import UPath

from pipelines.config.location import as_location, is_remote
from pipelines.store import lake

DAY = dt.date(2026, 1, 31)


@pytest.fixture()
def root() -> Iterator[UPath]:
    location = as_location(f"memory://riskline-{uuid.uuid4().hex}/lake")
    assert isinstance(location, UPath)
    yield location
    if location.exists():
        location.fs.rm(location.path, recursive=True)


def _names(folder: UPath) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_as_location_keeps_local_paths_local_and_urls_as_upaths(tmp_path: Path):
    assert as_location(str(tmp_path)) == tmp_path
    assert as_location(f"file://{tmp_path}") == tmp_path
    assert isinstance(as_location(f"file://{tmp_path}"), Path)
    s3 = as_location("s3://bucket/riskline")
    assert is_remote(s3) and s3.protocol == "s3" and str(s3) == "s3://bucket/riskline"
    assert not is_remote(tmp_path)


def test_url_partitions_stay_inside_the_root(root: UPath):
    part = lake.partition_dir(root, "curated", "payments", DAY)
    assert str(part) == f"{root}/curated/payments/dt=2026-01-31"
    with pytest.raises(lake.PathEscapeError):
        lake.partition_dir(root, "curated", "../../../elsewhere", DAY)
    with pytest.raises(lake.PathEscapeError):
        lake.ensure_inside(root, UPath("memory://another-root/x"))
    with pytest.raises(lake.PathEscapeError):
        lake.ensure_inside(root, Path("/tmp/x"))


def test_publish_writes_a_version_then_a_commit_naming_it(root: UPath):
    part = lake.partition_dir(root, "curated", "payments", DAY)
    lake.publish_frames(part, {"b.parquet": pl.DataFrame({"x": [2]}), "a.parquet": pl.DataFrame({"x": [1]})})
    commit = json.loads(part.joinpath(lake.SUCCESS).read_bytes())
    assert commit["files"] == ["a.parquet", "b.parquet"]
    assert _names(part) == sorted([lake.SUCCESS, commit["prefix"]])
    assert _names(part / commit["prefix"]) == ["a.parquet", "b.parquet"]
    assert lake.is_complete(part)
    assert [f.name for f in lake.parquet_files(part)] == ["a.parquet", "b.parquet"]
    assert lake.read_partition(part)["x"].to_list() == [1, 2]
    assert lake.partition_file(part, "b.parquet") == part / commit["prefix"] / "b.parquet"


def test_rerun_is_a_new_version_the_previous_is_kept_for_readers_and_older_ones_go(root: UPath):
    part = lake.partition_dir(root, "curated", "payments", DAY)
    lake.publish_frames(part, {"a.parquet": pl.DataFrame({"x": [1]})})
    first_files = lake.parquet_files(part)  # a reader lists the partition ...
    lake.publish_frames(part, {"a.parquet": pl.DataFrame({"x": [2]})})
    assert lake.read_parquet(first_files)["x"].to_list() == [1]  # ... and still reads what it listed
    assert lake.read_partition(part)["x"].to_list() == [2]
    lake.publish_frames(part, {"a.parquet": pl.DataFrame({"x": [3]})})
    versions = [n for n in _names(part) if n.startswith("_v=")]
    assert len(versions) == 2, versions  # the current one and the one before it
    assert not first_files[0].exists()
    assert lake.read_partition(part)["x"].to_list() == [3]


def test_same_frame_gives_the_same_data_bytes_in_every_version(root: UPath):
    frame = pl.DataFrame({"k": ["b", "a"], "v": [1.5, 2.0]})
    part = lake.partition_dir(root, "curated", "payments", DAY)
    lake.publish_frames(part, {"x.parquet": frame})
    first = lake.parquet_files(part)[0].read_bytes()
    lake.publish_frames(part, {"x.parquet": frame})
    assert lake.parquet_files(part)[0].read_bytes() == first


def test_a_failed_write_leaves_the_committed_version_alone_and_uploads_nothing(root: UPath):
    part = lake.partition_dir(root, "curated", "payments", DAY)
    lake.publish_frames(part, {"a.parquet": pl.DataFrame({"x": [1]})})
    before = {p.path: p.read_bytes() for p in part.rglob("*") if p.is_file()}
    with pytest.raises(RuntimeError):
        with lake.staged_partition(part) as tmp:
            lake.write_parquet(pl.DataFrame({"x": [9, 9]}), tmp / "a.parquet")
            raise RuntimeError("crash mid-write")
    assert {p.path: p.read_bytes() for p in part.rglob("*") if p.is_file()} == before


def test_nested_files_are_uploaded_but_only_top_level_parquet_counts_as_data(root: UPath):
    target = lake.partition_dir(root, "reports", "data_docs", DAY)
    with lake.staged_partition(target) as tmp:
        (tmp / "static").mkdir()
        (tmp / "static" / "style.css").write_text("body{}")
        (tmp / "index.html").write_text("<html></html>")
    assert lake.partition_file(target, "static/style.css").read_text() == "body{}"
    assert [f.name for f in lake.parquet_files(target)] == ["index.html"]


def test_upstream_flat_drop_with_a_plain_marker_reads_as_before(root: UPath):
    part = lake.partition_dir(root, "landing", "payments", DAY)
    for name, value in (("part-00001.parquet", 2), ("part-00000.parquet", 1)):
        with (part / name).open("wb") as fh:  # as upstream writes: straight to the store, marker last
            pl.DataFrame({"x": [value]}).write_parquet(fh)
    (part / ".hidden.parquet").write_bytes(b"")
    assert lake.exists(part) and not lake.is_complete(part) and lake.complete_files(part) is None
    part.joinpath(lake.SUCCESS).write_bytes(b"")  # upstream's empty marker, written last
    assert lake.is_complete(part)
    assert [f.name for f in lake.parquet_files(part)] == ["part-00000.parquet", "part-00001.parquet"]
    assert lake.complete_files(part) == lake.parquet_files(part)
    assert lake.read_partition(part)["x"].to_list() == [1, 2]


def test_unmarked_publish_is_never_complete(root: UPath):
    part = lake.partition_dir(root, "landing", "payments", DAY)
    with lake.staged_partition(part, marker=False) as tmp:
        lake.write_parquet(pl.DataFrame({"x": [1]}), tmp / "part-00000.parquet")
    assert lake.exists(part) and not lake.is_complete(part)
    with pytest.raises(FileNotFoundError, match="incomplete"):
        lake.read_partition(part)


def test_complete_dates_list_only_committed_partitions(root: UPath):
    for day in (dt.date(2026, 1, 2), dt.date(2026, 1, 1)):
        lake.publish_frames(lake.partition_dir(root, "curated", "payments", day), {"a.parquet": pl.DataFrame({"x": [1]})})
    with lake.staged_partition(lake.partition_dir(root, "curated", "payments", dt.date(2026, 1, 3)), marker=False) as tmp:
        lake.write_parquet(pl.DataFrame({"x": [1]}), tmp / "a.parquet")
    assert lake.complete_partition_dates(root, "curated", "payments") == [dt.date(2026, 1, 1), dt.date(2026, 1, 2)]
    assert lake.complete_partition_dates(root, "curated", "behaviour") == []


def test_remove_partition_takes_the_commit_first_then_everything(root: UPath):
    part = lake.partition_dir(root, "quarantine", "payments", DAY)
    lake.publish_frames(part, {"a.parquet": pl.DataFrame({"x": [1]})})
    lake.remove_partition(part)
    assert not lake.is_complete(part) and not lake.exists(part)
    lake.remove_partition(part)  # removing what is not there is fine (a clean rerun)


def test_a_foreign_marker_is_an_error_not_a_guess(root: UPath):
    part = lake.partition_dir(root, "curated", "payments", DAY)
    part.joinpath(lake.SUCCESS).write_bytes(b'{"written_by": "someone else"}')
    with pytest.raises(ValueError, match="not a riskline commit"):
        lake.parquet_files(part)


def test_small_files_are_single_puts(root: UPath):
    path = root / "validation" / "dt=2026-01-31" / "payments.json"
    lake.atomic_write_bytes(path, b'{"ok": true}')
    lake.atomic_write_bytes(path, b'{"ok": false}')
    assert path.read_bytes() == b'{"ok": false}'


def test_declared_control_totals_are_read_from_upstreams_marker_and_from_a_committed_version(root: UPath):
    """Upstream's manifest beside flat files, and the generator's drop committed as a version (the totals
    travel in the commit): both read back exactly, numbers as decimals."""
    flat = lake.partition_dir(root, "landing", "payments", DAY)
    with (flat / "part-00000.parquet").open("wb") as fh:
        pl.DataFrame({"x": [1]}).write_parquet(fh)
    flat.joinpath(lake.SUCCESS).write_bytes(b'{"rows": 1, "sums": {"amount": 0.1}}')
    assert lake.declared_manifest(flat) == {"rows": 1, "sums": {"amount": Decimal("0.1")}}
    versioned = lake.partition_dir(root, "landing", "payments", DAY + dt.timedelta(days=1))
    with lake.staged_partition(versioned, manifest=b'{"rows": 1, "sums": {"amount": "12.30"}}') as tmp:
        pl.DataFrame({"x": [1]}).write_parquet(tmp / "part-00000.parquet")
    assert lake.declared_manifest(versioned) == {"rows": 1, "sums": {"amount": "12.30"}}
    assert lake.read_partition(versioned)["x"].to_list() == [1]
    plain = lake.partition_dir(root, "landing", "payments", DAY + dt.timedelta(days=2))
    with lake.staged_partition(plain) as tmp:
        pl.DataFrame({"x": [1]}).write_parquet(tmp / "part-00000.parquet")
    assert lake.declared_manifest(plain) is None
