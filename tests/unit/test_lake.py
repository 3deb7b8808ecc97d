from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import polars as pl
import pytest

from pipelines.store import lake


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_partition_dir_layout_and_escape(tmp_path: Path):
    part = lake.partition_dir(tmp_path, "curated", "payments", dt.date(2026, 1, 31))
    assert part == (tmp_path / "curated" / "payments" / "dt=2026-01-31").resolve()
    with pytest.raises(lake.PathEscapeError):
        lake.partition_dir(tmp_path, "curated", "../../etc", dt.date(2026, 1, 31))
    with pytest.raises(TypeError):
        lake.partition_dir(tmp_path, "curated", "payments", "2026-01-31")  # type: ignore[arg-type]


def test_publish_replaces_whole_partition_and_writes_success_last(tmp_path: Path):
    target = tmp_path / "z" / "dt=2026-01-01"
    lake.publish_frames(target, {"a.parquet": pl.DataFrame({"x": [1]}), "b.parquet": pl.DataFrame({"x": [2]})})
    assert sorted(p.name for p in target.iterdir()) == ["_SUCCESS", "a.parquet", "b.parquet"]
    # A rerun that writes fewer files leaves no stale file behind.
    lake.publish_frames(target, {"a.parquet": pl.DataFrame({"x": [3]})})
    assert sorted(p.name for p in target.iterdir()) == ["_SUCCESS", "a.parquet"]
    assert lake.read_partition(target)["x"].to_list() == [3]
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")], "temporary folders left behind"


def test_failed_write_leaves_previous_partition_untouched(tmp_path: Path):
    target = tmp_path / "z" / "dt=2026-01-01"
    lake.publish_frames(target, {"a.parquet": pl.DataFrame({"x": [1]})})
    before = _digest(target)
    with pytest.raises(RuntimeError):
        with lake.staged_partition(target) as tmp:
            lake.write_parquet(pl.DataFrame({"x": [9, 9]}), tmp / "a.parquet")
            raise RuntimeError("crash mid-write")
    assert _digest(target) == before
    assert [p.name for p in target.parent.iterdir()] == ["dt=2026-01-01"]


def test_same_frame_gives_same_bytes(tmp_path: Path):
    frame = pl.DataFrame({"k": ["b", "a"], "v": [1.5, 2.0]})
    lake.publish_frames(tmp_path / "p1", {"x.parquet": frame})
    lake.publish_frames(tmp_path / "p2", {"x.parquet": frame})
    assert (tmp_path / "p1" / "x.parquet").read_bytes() == (tmp_path / "p2" / "x.parquet").read_bytes()


def test_interrupted_two_rename_swap_is_repaired(tmp_path: Path):
    # Simulate a crash between the two renames of the fallback swap: only the .old- copy remains.
    target = tmp_path / "z" / "dt=2026-01-01"
    lake.publish_frames(target, {"a.parquet": pl.DataFrame({"x": [1]})})
    target.rename(target.parent / ".old-dt=2026-01-01-deadbeef")
    assert lake.is_complete(target)
    assert lake.read_partition(target)["x"].to_list() == [1]


def test_read_incomplete_partition_fails(tmp_path: Path):
    target = tmp_path / "dt=2026-01-01"
    target.mkdir()
    pl.DataFrame({"x": [1]}).write_parquet(target / "a.parquet")
    with pytest.raises(FileNotFoundError, match="_SUCCESS"):
        lake.read_partition(target)


def test_atomic_write_bytes(tmp_path: Path):
    path = tmp_path / "m" / "manifest.json"
    lake.atomic_write_bytes(path, b"{}")
    lake.atomic_write_bytes(path, b'{"a": 1}')
    assert path.read_bytes() == b'{"a": 1}'
    assert [p.name for p in path.parent.iterdir()] == ["manifest.json"]


@pytest.mark.parametrize("statistics", [True, False])
def test_value_ranges_from_the_footer_equal_those_read_from_the_data(tmp_path, statistics):
    """Keys over time skip partitions by (min, max): read from the Parquet footer when it has statistics
    (no data read), from the columns when not; both must give the values' own bounds, nulls left out."""
    import datetime as dt

    from pipelines.store import zones

    day = dt.date(2026, 3, 1)
    part = zones.curated(tmp_path, "payments", day)
    frames = [pl.DataFrame({"payment_id": ["P9", None, "P10", "Ä"], "loan_id": [None, None, None, None],
                            "n": [3, -7, None, 12], "due": [dt.date(2026, 1, 5), None, dt.date(2025, 12, 31), None]},
                           schema={"payment_id": pl.String, "loan_id": pl.String, "n": pl.Int64, "due": pl.Date}),
              pl.DataFrame({"payment_id": ["P1"], "loan_id": ["L1"], "n": [40], "due": [dt.date(2027, 1, 1)]},
                           schema={"payment_id": pl.String, "loan_id": pl.String, "n": pl.Int64, "due": pl.Date})]
    with lake.staged_partition(part) as tmp:
        for i, frame in enumerate(frames):
            frame.write_parquet(tmp / f"part-{i}.parquet", statistics=statistics, row_group_size=2)
    columns = ["payment_id", "loan_id", "n", "due"]
    ranges = zones.value_ranges(part, columns)
    both = pl.concat(frames)
    assert ranges == {c: (both[c].min(), both[c].max()) for c in columns}
    assert zones.value_ranges(part, ["no_such_column"]) is None
