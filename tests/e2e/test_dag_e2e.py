"""The whole nightly DAG, run through Airflow's own ``dag.test()`` on a generated lake."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from pipelines.store import publish
from tools.airflow_local import logical_date_for
from pipelines.contracts.outputs import OUTPUTS

DAGS = Path(__file__).resolve().parents[2] / "dags"


def _dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


def test_nightly_dag_publishes_validated_outputs(copy_lake, airflow_db, monkeypatch: pytest.MonkeyPatch, cfg):
    from pipelines.quality.validate import validate_output

    lake = copy_lake()
    monkeypatch.setenv("RISKLINE_DATA_ROOT", str(lake.root))
    day = lake.first_run + dt.timedelta(days=1)  # landed but not yet ingested: the DAG ingests it itself

    dag_run = _dag("riskline_nightly").test(
        logical_date=dt.datetime.fromisoformat(logical_date_for(day)),
        run_conf={"retrain": False},  # the champion promoted on first_run serves; training has its own tests
    )
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert str(dag_run.state) == "success", states
    assert states["train_challenger"] == "skipped"

    manifest = json.loads(publish.manifest_path(lake.root, day).read_text())
    assert manifest["as_of_date"] == day.isoformat()
    # recorded as `riskline run` records it (new-user review L3: Airflow's manifests said "run": {})
    assert manifest["run"] == {"retrain": False, "pinned_model_version": None}
    assert publish.read_latest(lake.root) == day
    for name in OUTPUTS:
        frame = publish.read_output(lake.root, name, day)
        assert frame.height == manifest["outputs"][name]["rows"]
        assert validate_output(name, frame, day, cfg, raise_on_critical=False).ok, name
    scores = publish.read_output(lake.root, "scores", day)
    assert scores.height > 2000 and scores["model_version"].n_unique() == 1
    assert manifest["model_version"] == scores["model_version"][0]


def test_dry_run_param_publishes_nothing(copy_lake, airflow_db, monkeypatch: pytest.MonkeyPatch):
    import hashlib

    lake = copy_lake()
    monkeypatch.setenv("RISKLINE_DATA_ROOT", str(lake.root))
    day = lake.first_run + dt.timedelta(days=1)

    def digests() -> dict[str, str]:  # every file a real run could read: all but the dry run's staging root
        return {str(p.relative_to(lake.root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in lake.root.rglob("*") if p.is_file() and p.relative_to(lake.root).parts[0] != "staging"}

    before = digests()
    dag_run = _dag("riskline_nightly").test(
        logical_date=dt.datetime.fromisoformat(logical_date_for(day)),
        run_conf={"retrain": False, "publish": False},
    )
    assert str(dag_run.state) == "success"
    assert not publish.output_dir(lake.root, "limits", day).exists()
    assert publish.read_latest(lake.root) == lake.first_run  # yesterday's outputs stay the latest
    staged = publish.manifest_path(lake.root / "staging" / f"as_of_date={day}", day)
    assert json.loads(staged.read_text())["dry_run"] is True
    assert digests() == before  # ingest, features, scores, decisions and registry all went to the staging root


def test_agent_queue_export_reads_the_announced_partition(e2e_lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import polars as pl

    from pipelines.entry.exports import export_agent_queue
    from pipelines.entry.airflow import asset_extra

    root = e2e_lake.copy_to(tmp_path / "lake")
    monkeypatch.setenv("RISKLINE_DATA_ROOT", str(root))
    day = e2e_lake.first_run
    manifest = publish.manifest_path(root, day)
    rows = {n: m["rows"] for n, m in json.loads(manifest.read_text())["outputs"].items()}
    extra = asset_extra({"manifest": str(manifest.relative_to(root)), "rows": rows, "published": True},
                        "collection_queue")
    path = Path(export_agent_queue(extra))
    exported = pl.read_csv(path)
    queue = publish.read_output(root, "collection_queue", day)
    assert exported.height == queue.filter(pl.col("treatment") == "agent").height
    assert exported["priority"].to_list() == sorted(exported["priority"].to_list())
    assert export_agent_queue({**extra, "published": False}) is None  # dry-run events are ignored
