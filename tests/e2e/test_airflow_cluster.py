"""The production shape, tested: one night of riskline_nightly with ``run.shards: 4`` through the real scheduler
of a CeleryExecutor deployment (PostgreSQL metadata, Redis broker, two Celery workers with nothing on disk in
common), the lake on the S3 API (moto's server, reached over HTTP by every component).

Both workers take mapped shard tasks (a task instance's hostname is the address of the worker that ran it),
the API server serves each task's log from the worker that wrote it, and the night publishes the same output
files as the single-machine night of the same book: the e2e lake's, run in one process on a local folder. The
S3 lake starts as that lake did before its night: its curated history and the night's landing drops, put there
by riskline's own writer (``s3_lake.mirror_lake``; ingest on S3 has its own tests and would cost minutes here).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from pipelines.config.location import as_location
from pipelines.contracts.outputs import OUTPUTS
from pipelines.store import lake, publish
from tools.airflow_cluster import ClusterAirflow, missing_programs

from .conftest import E2ELake, wait_for
from .s3_lake import mirror_lake

pytestmark = pytest.mark.slow

NIGHTLY = "riskline_nightly"
SHARDS = 4
MAPPED = ("build_features", "score", "decide")
FINAL = ("success", "failed")


def _cluster_config(lake_: E2ELake, folder: Path, data_root: str) -> Path:
    """The e2e lake's config (its shorter training window) with four shards and the lake on S3."""
    raw = yaml.safe_load(lake_.cfg_path.read_text())
    raw["paths"]["data_root"] = data_root
    raw["run"]["shards"] = SHARDS
    path = folder / "riskline-cluster.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return path


def _manifest(root, day: dt.date) -> dict:
    """The manifest less what differs by design: the config's hash (four shards here) and, on an object
    store, the version each output was committed as."""
    manifest = publish.read_manifest(root, day)
    manifest.pop("config_sha256")
    for entry in manifest["outputs"].values():
        entry.pop("version", None)
    return manifest


def test_a_night_on_two_celery_workers_publishes_what_one_machine_does(
    e2e_lake: E2ELake, s3_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not missing_programs(), f"{missing_programs()} not installed: `make cluster-deps` installs them"
    started = time.monotonic()
    day = e2e_lake.first_run
    monkeypatch.setenv("RISKLINE_CONFIG", str(_cluster_config(e2e_lake, tmp_path, s3_root)))
    # The AWS_* variables of s3_root are in this process's environment, which every Airflow component inherits
    # (never config). The lake goes onto S3 while the cluster starts; the night itself, its drops' ingest
    # included, is left to the DAG.
    remote = as_location(s3_root)
    pool = ThreadPoolExecutor(1)
    mirrored = pool.submit(mirror_lake, e2e_lake.root, remote, day - dt.timedelta(days=1), [day])
    with pool, ClusterAirflow(home=tmp_path / "cluster", data_root=s3_root) as af:
        up = time.monotonic() - started
        mirrored.result()
        on_s3 = time.monotonic() - started
        token = af.token()
        wait_for("the DAG serialized", lambda: NIGHTLY in {
            d["dag_id"] for d in af.api("GET", "/api/v2/dags", token=token)["dags"]}, 120, 2, af)
        af.api("PATCH", f"/api/v2/dags/{NIGHTLY}", {"is_paused": False}, token=token)
        run = af.api("POST", f"/api/v2/dags/{NIGHTLY}/dagRuns",
                     {"logical_date": None, "conf": {"business_date": day.isoformat()}}, token=token)
        base = f"/api/v2/dags/{NIGHTLY}/dagRuns/{run['dag_run_id']}"
        night_started = time.monotonic()
        done = wait_for("the night", lambda: (r := af.api("GET", base, token=token))["state"] in FINAL and r,
                        1800, 5, af)
        night = time.monotonic() - night_started
        tis = af.api("GET", f"{base}/taskInstances?limit=200", token=token)["task_instances"]
        assert done["state"] == "success", sorted((t["task_id"], t["map_index"], t["state"]) for t in tis)

        # Every mapped shard task ran, on both workers: the hostname is the worker's own address.
        mapped = [t for t in tis if t["task_id"] in MAPPED]
        assert sorted((t["task_id"], t["map_index"]) for t in mapped) == sorted(
            (task, shard) for task in MAPPED for shard in range(SHARDS))
        hosts = {w.host: w for w in af.worker_list}
        assert {t["hostname"] for t in mapped} == set(hosts), [(t["task_id"], t["hostname"]) for t in mapped]
        assert {t["queue"] for t in tis if t["state"] == "success"} == {"default"}

        # Each task's log lives only on the worker that ran it, and the API server fetches it from there.
        for host, worker in hosts.items():
            ti = next(t for t in mapped if t["hostname"] == host)
            relative = Path(f"dag_id={NIGHTLY}/run_id={run['dag_run_id']}/task_id={ti['task_id']}/"
                            f"map_index={ti['map_index']}/attempt=1.log")
            assert (worker.logs / relative).is_file()
            assert not any((other.logs / relative).exists() for other in af.worker_list if other != worker)
            assert not (af.home / "logs" / relative).exists()
            log = af.api("GET", f"{base}/taskInstances/{ti['task_id']}/logs/1?map_index={ti['map_index']}",
                         token=token)
            text = json.dumps(log)  # parsed from the worker's file: its own DAG copy, this shard's result
            assert str(worker.dags) in text and f"'shard': {ti['map_index']}" in text, text[:3000]

    # The published night: the same output files, byte for byte, as the single-machine run of the same book.
    for name in OUTPUTS:
        files = lake.parquet_files(publish.output_dir(remote, name, day))
        local_files = lake.parquet_files(publish.output_dir(e2e_lake.root, name, day))
        assert [f.read_bytes() for f in files] == [f.read_bytes() for f in local_files], name
    assert _manifest(remote, day) == _manifest(e2e_lake.root, day)  # same model, rows, sha256s, inputs
    print(f"\ncluster night: {time.monotonic() - started:.0f} s in all (cluster up at {up:.0f} s, lake on S3 at "
          f"{on_s3:.0f} s, the night {night:.0f} s; its mapped tasks on "
          f"{sorted({t['hostname'] for t in mapped})})")
