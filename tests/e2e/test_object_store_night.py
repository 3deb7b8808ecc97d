"""Every stage of a night on an object store: the same night on ``s3://`` and on a local folder publishes the
same bytes.

Both roots start from the same landing drops and curated history (the e2e lake's, ``s3_lake.mirror_lake``),
with no night, no registry and no model. Each then runs two nights: the first ingests its drops, trains,
registers and promotes a model, builds the ledger from the whole history, scores, decides, publishes and
writes its report; the second starts from the first's ledger state, previous scores and limit history. On
``s3://`` the second night runs in 2 shards (the published outputs are the same for any shard count). The S3
API is moto's server on 127.0.0.1 (fixture ``s3_root``), reached through s3fs and botocore as AWS would be.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
from tests.e2e.s3_lake import mirror_lake

from pipelines.config.location import as_location
from pipelines.config.settings import load_config
from pipelines.contracts.outputs import OUTPUTS
from pipelines.model.registry import ModelRegistry
from pipelines.stages.night import RunOptions, run_night
from pipelines.store import lake, publish, zones
from pipelines.vocab import DATASETS

pytestmark = pytest.mark.slow


def _fresh_copy(source: Path, target: Path, curated_upto: dt.date, landing: list[dt.date]) -> Path:
    """A local root with only what :func:`mirror_lake` puts on S3 (by the same writer: the same layout)."""
    mirror_lake(source, target, curated_upto, landing)
    return target


def _outputs(root, day: dt.date) -> dict[str, bytes]:
    return {name: lake.parquet_files(publish.output_dir(root, name, day))[0].read_bytes() for name in OUTPUTS}


def _manifest(root, day: dt.date) -> dict:
    """The manifest less what names where it lives: each output's version on an object store."""
    manifest = publish.read_manifest(root, day)
    for entry in manifest["outputs"].values():
        entry.pop("version", None)
    return manifest


def test_two_nights_on_s3_publish_the_bytes_of_the_same_nights_on_a_local_folder(e2e_lake, s3_root, tmp_path):
    first, second = e2e_lake.first_run + dt.timedelta(days=1), e2e_lake.first_run + dt.timedelta(days=2)
    remote = as_location(s3_root)
    started = time.perf_counter()
    mirror_lake(e2e_lake.root, remote, e2e_lake.first_run, [first, second])
    local = _fresh_copy(e2e_lake.root, tmp_path / "local", e2e_lake.first_run, [first, second])
    cfg = load_config(e2e_lake.cfg_path)
    sharded = cfg.model_copy(update={"run": cfg.run.model_copy(update={"shards": 2})})
    timings = {}
    for name, root, second_cfg in (("local", local, cfg), ("s3", remote, sharded)):
        t0 = time.perf_counter()
        run_night(root, first, cfg)
        run_night(root, second, second_cfg, RunOptions(retrain=False))
        timings[name] = round(time.perf_counter() - t0, 1)
    print(f"\ntwo nights: local {timings['local']} s, s3 {timings['s3']} s "
          f"(with the mirror: {time.perf_counter() - started:.0f} s)")

    for day in (first, second):
        assert _outputs(remote, day) == _outputs(local, day), day
        assert _manifest(remote, day) == _manifest(local, day), day
    assert publish.read_latest(remote) == second

    # The model: one version (the second night scores with the first's champion), the same bytes.
    registry, local_registry = ModelRegistry(remote), ModelRegistry(local)
    assert registry.versions() == local_registry.versions() and len(registry.versions()) == 1
    (version,) = registry.versions()
    assert registry.model_bytes(version) == local_registry.model_bytes(version)
    assert registry.champion_on(first) == version and registry.history() == local_registry.history()

    # The second night's ledger started from the first's state, on S3 as on the folder.
    for root in (remote, local):
        state = lake.partition_file(zones.ledger_partition(root, second), "_state/state.json")
        assert json.loads(lake.read_bytes(state))["built"].startswith(f"incremental from {first}")
    # Every derived partition on S3 is a committed version; the report and the Data Docs are there too.
    report = lake.read_bytes(zones.report_path(remote, second))
    assert report is not None and b"<html" in report.lower()
    for name in DATASETS:
        assert lake.committed_version(zones.curated(remote, name, second)) is not None
    assert lake.list_names(remote / "outputs" / "_journal") == []
    assert lake.list_names(remote / "_locks") == []  # every lease released
