"""Validation's shortcut through GX's per-expectation overhead changes no verdict, row or byte.

``gx_engine._gx_overhead_memoized`` builds each expectation object's configuration once per GX run
instead of on each of its ~70 reads, and computes each metric-kwargs id once per distinct plain dict
instead of ~120 times (together half of GX's CPU time per landing date). The proof that it is only a
speed-up: a range of dates with every generator fault (quarantined rows, schema drift, critical failures,
undelivered partitions) ingested with GX's own property and with the shortcut gives the same validation
JSON and the same curated and quarantine files, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import polars as pl
import pytest

from pipelines.entry import cli
from pipelines.store import drops
from pipelines.store import lake
from pipelines.quality import gx_engine, read_references, validate


def _digests(root: Path, *zones: str) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for zone in zones for p in sorted((root / zone).rglob("*")) if p.is_file()}


def _ingest_range(root: Path, first: dt.date, last: dt.date) -> int:
    return cli.main(["--data-root", str(root), "ingest", "--from-date", first.isoformat(),
                     "--to-date", last.isoformat(), "--keep-going"])


def test_range_ingest_gives_the_same_bytes_with_and_without_the_shortcut(
    seeded_lake, calendar, quiet_cfg, tmp_path, monkeypatch
):
    monkeypatch.setattr(cli, "load_config", lambda path=None: quiet_cfg)
    first, last = calendar.clean_day, max(calendar.fault_days.values())
    assert (last - first).days >= 9  # a range of at least 10 dates, as a history ingest runs them
    zones = ("validation", "curated", "quarantine")
    runs = {}
    for fast in (False, True):
        root = tmp_path / f"fast={fast}"
        shutil.copytree(seeded_lake, root)
        _break_account_ids(root, first, rows=50)  # beyond what quarantine tolerates: a critical row-level rule
        monkeypatch.setattr(gx_engine, "_FAST_GX", fast)
        assert _ingest_range(root, first, last) == 1  # the critical and undelivered fault days fail
        runs[fast] = _digests(root, *zones)
    assert runs[True] == runs[False]
    # ... and the range exercised what the shortcut could get wrong: row-level quarantine with GX's
    # unexpected indices, and critical verdicts.
    assert any(name.startswith("quarantine/") for name in runs[True])
    behaviour = (tmp_path / "fast=True" / "validation" / f"dt={first.isoformat()}" / "behaviour.json").read_text()
    assert '"outcome": "critical"' in behaviour and '"account_id": null' in behaviour


def _break_account_ids(root: Path, day: dt.date, rows: int) -> None:
    part = lake.partition_dir(root, "landing", "behaviour", day)
    frame = pl.read_parquet(lake.parquet_files(part))
    broken = frame.with_columns(
        pl.when(pl.int_range(pl.len()) < rows).then(None).otherwise(pl.col("account_id")).alias("account_id"))
    lake.publish_frames(part, {"part-00000.parquet": broken})


def test_each_expectation_object_builds_its_configuration_once_per_run(
    seeded_lake, calendar, quiet_cfg, tmp_path, monkeypatch
):
    from great_expectations.expectations.expectation import Expectation

    root = tmp_path / "lake"
    shutil.copytree(seeded_lake, root)
    day = calendar.fault_days["null_keys"]
    frame = drops.read_landing(root, "behaviour", day, quiet_cfg)
    refs = read_references.load_references(root, "behaviour", day, quiet_cfg, frame)
    gx_property = Expectation.__dict__["configuration"]
    builds: list[int] = []

    def counted(self):
        builds.append(id(self))
        return gx_property.fget(self)

    monkeypatch.setattr(Expectation, "configuration", property(counted))
    reports = {}
    for fast in (False, True):
        gx_engine._schema_results.cache_clear()
        monkeypatch.setattr(gx_engine, "_FAST_GX", fast)
        builds.clear()
        reports[fast] = validate.validate_landing(frame, "behaviour", day, quiet_cfg, refs).report.to_json_dict()
        reports[fast]["_counts"] = {"builds": len(builds), "objects": len(set(builds))}
    slow, fast = reports[False].pop("_counts"), reports[True].pop("_counts")
    assert reports[True] == reports[False]
    assert fast["builds"] * 5 < slow["builds"]  # GX alone rebuilds each about 70 times per run
    assert Expectation.__dict__["configuration"].fget is counted  # the shortcut restores GX's property


@pytest.mark.parametrize("fails", [False, True])
def test_the_property_is_restored_when_gx_raises(monkeypatch, fails):
    from great_expectations.core.id_dict import IDDict
    from great_expectations.expectations.expectation import Expectation

    gx_property, gx_to_id = Expectation.__dict__["configuration"], IDDict.__dict__["to_id"]
    with pytest.raises(RuntimeError) if fails else _nothing():
        with gx_engine._gx_overhead_memoized():
            assert Expectation.__dict__["configuration"] is not gx_property
            assert IDDict.__dict__["to_id"] is not gx_to_id
            if fails:
                raise RuntimeError("GX failed mid-run")
    assert Expectation.__dict__["configuration"] is gx_property
    assert IDDict.__dict__["to_id"] is gx_to_id


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
