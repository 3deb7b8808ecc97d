"""DAG integrity: the dags/ folder imports cleanly and follows the house rules."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "riskline_nightly" in dagbag.dags


def test_house_rules(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md, f"{dag_id} has no doc_md"
        for t in dag.tasks:
            assert t.owner and t.owner != "airflow", f"{dag_id}.{t.task_id} has no owner"


def test_nightly_schedule_and_ingest_fan_out(dagbag):
    dag = dagbag.dags["riskline_nightly"]
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    ingest_ids = {t.task_id for t in dag.tasks if t.task_id.startswith("ingest_")}
    assert ingest_ids == {"ingest_accounts", "ingest_behaviour", "ingest_installments", "ingest_payments"}
    # The four ingests depend only on the business date, so they run in parallel.
    for task_id in ingest_ids:
        assert dag.get_task(task_id).upstream_task_ids == {"business_date"}


def test_run_at_0200_shanghai_covers_previous_business_day(dagbag, cfg):
    from pipelines.orchestration import business_date_of

    timetable = dagbag.dags["riskline_nightly"].timetable
    assert (timetable.expression, str(timetable.timezone)) == ("0 2 * * *", "Asia/Shanghai")
    assert timetable.interval == dt.timedelta(days=1)
    # The run firing 2026-11-21 02:00 Shanghai (= 2026-11-20 18:00 UTC) has the interval starting one day
    # earlier, 2026-11-20 02:00 Shanghai, so it must process business date 2026-11-20.
    fire = dt.datetime(2026, 11, 20, 18, 0, tzinfo=dt.timezone.utc)
    assert business_date_of(fire - timetable.interval, cfg) == dt.date(2026, 11, 20)
    with pytest.raises(ValueError):
        business_date_of(dt.datetime(2026, 11, 20, 18, 0), cfg)


def test_dag_file_has_no_heavy_top_level_imports():
    source = (DAGS / "riskline_nightly.py").read_text()
    top = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    for heavy in ("polars", "pandas", "xgboost", "great_expectations", "numpy"):
        assert not any(heavy in line for line in top), f"{heavy} imported at DAG parse time"
