"""The lake on S3: ``riskline generate | ingest | validate --data-root s3://bucket/riskline``.

The S3 API is moto's server on 127.0.0.1 (fixture ``s3_root``); riskline reaches it through s3fs and
botocore exactly as it would reach AWS, with the credentials and endpoint in the environment. The curated
partitions it writes there must hold the same bytes as a run on a local folder.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.config.location import as_location
from pipelines.store import chain, lake

END = dt.date(2026, 6, 30)
GOOD = [END - dt.timedelta(days=n) for n in range(7, 0, -1)]  # 06-23 .. 06-29
BOOK = ["--accounts", "400", "--days", "8", "--end-date", END.isoformat(), "--faults", f"corrupt_file@{END}"]
DATASETS = ("accounts", "behaviour", "installments", "payments")


def _riskline(root: str | Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipelines.entry.cli", "--data-root", str(root), *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=600)


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"rc {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_generate_ingest_validate_on_s3_match_a_local_run_byte_for_byte(s3_root: str, tmp_path: Path):
    local = tmp_path / "local"
    history = ["--from-date", GOOD[0].isoformat(), "--to-date", GOOD[-1].isoformat()]
    for root in (s3_root, local):
        _ok(_riskline(root, "generate", *BOOK))
        _ok(_riskline(root, "ingest", *history))
    remote = as_location(s3_root)
    for name in DATASETS:
        assert lake.complete_partition_dates(remote, "curated", name) == GOOD, name
        for day in GOOD:
            part = lake.partition_dir(remote, "curated", name, day)
            commit = json.loads(part.joinpath(lake.SUCCESS).read_bytes())
            assert commit["files"] == ["part-0.parquet"]
            local_file = lake.partition_dir(local, "curated", name, day) / "part-0.parquet"
            assert lake.parquet_files(part)[0].read_bytes() == local_file.read_bytes(), (name, day)
            # the commit records each file's sha256, so the night's fingerprint of its inputs fetches nothing
            assert commit["sha256"] == {"part-0.parquet": lake.file_sha256(local_file)}
            assert chain.curated_digest(remote, name, day) == chain.curated_digest(local, name, day)

    # Validation results and the day's Data Docs live beside the data, on S3 too.
    out = _ok(_riskline(s3_root, "validate", "--date", GOOD[-1].isoformat()))
    assert f"-> {s3_root}/validation/dt={GOOD[-1]}" in out
    result = json.loads((remote / "validation" / f"dt={GOOD[-1]}" / "payments.json").read_bytes())
    assert result["date"] == GOOD[-1].isoformat() and result["ok"] is True
    docs = lake.partition_dir(remote, "reports", "data_docs", GOOD[-1])
    assert "<html" in lake.partition_file(docs, "index.html").read_text().lower()

    # A rerun of a date is a new version with the same data bytes; the previous version stays for readers.
    part = lake.partition_dir(remote, "curated", "behaviour", GOOD[-1])
    before = lake.parquet_files(part)[0]
    _ok(_riskline(s3_root, "ingest", "--date", GOOD[-1].isoformat()))
    after = lake.parquet_files(part)[0]
    assert after != before and after.read_bytes() == before.read_bytes()
    assert len([p for p in part.iterdir() if p.name.startswith("_v=")]) == 2


def test_a_corrupt_file_on_s3_stops_the_date_with_a_clear_error_and_writes_nothing(s3_root: str):
    _ok(_riskline(s3_root, "generate", *BOOK))
    proc = _riskline(s3_root, "ingest", "--date", END.isoformat())
    assert proc.returncode == 1, proc.stderr
    assert "behaviour" in proc.stderr and f"dt={END}" in proc.stderr
    assert "not readable Parquet" in proc.stderr and ".parquet" in proc.stderr
    remote = as_location(s3_root)
    for name in DATASETS:  # every dataset of the date is read and validated before any write
        assert not lake.exists(lake.partition_dir(remote, "curated", name, END)), name


@pytest.mark.parametrize("command", [["run", "--as-of", "2026-06-29"], ["train", "--as-of", "2026-06-29"]])
def test_stages_past_ingest_take_an_object_store_root_and_name_what_it_lacks(s3_root: str, command: list[str]):
    proc = _riskline(s3_root, *command)  # an empty bucket: no drop, no history (tests/e2e/test_object_store_night.py runs them)
    assert proc.returncode == 1, proc.stderr
    assert "local data root" not in proc.stderr and "Traceback" not in proc.stderr
    assert "no accounts drop has ever landed" in proc.stderr or "no complete curated partition" in proc.stderr
