from __future__ import annotations

import datetime as dt

import pytest

from pipelines.orchestration import business_date_of, retrain_decision


@pytest.mark.parametrize(
    "params, run_type, expected",
    [
        ({}, "scheduled", True),
        ({"retrain": False}, "scheduled", False),
        ({"model_version": "2026-11-25-abc"}, "manual", False),  # a pinned model never retrains
        ({}, "backfill", False),  # past dates score with that date's champion
        ({"retrain_on_backfill": True}, "backfill", True),
    ],
)
def test_retrain_decision(params: dict, run_type: str, expected: bool):
    assert retrain_decision(params, run_type)[0] is expected


def test_retrain_decision_accepts_the_task_sdk_run_type_enum():
    # What a task sees as dag_run.run_type: a (str, Enum) whose str() is "DagRunType.BACKFILL", not
    # "backfill" (this once made backfills retrain). The enum's value must be used.
    from airflow.sdk.api.datamodels._generated import DagRunType

    assert str(DagRunType.BACKFILL) != "backfill"
    assert retrain_decision({}, DagRunType.BACKFILL)[0] is False


def test_business_date_is_interval_start_in_shanghai(cfg):
    # 2026-11-24 18:00 UTC = 2026-11-25 02:00 Shanghai: the interval of the run for business date 2026-11-25.
    assert business_date_of(dt.datetime(2026, 11, 24, 18, tzinfo=dt.timezone.utc), cfg) == dt.date(2026, 11, 25)


@pytest.mark.parametrize(
    "error, advice",
    [
        ("ingest", "DATA PROBLEM upstream"),  # fix upstream, then clear: never a blind retry
        ("publish", "our own outputs broke their contract"),
        ("other", "Not a data problem"),
    ],
)
def test_every_stage_failure_says_what_to_do_next(error: str, advice: str):
    from pipelines.ingest import IngestError
    from pipelines.orchestration import StageFailed, _guarded
    from pipelines.publish import PublishError

    def fail():
        if error == "ingest":
            raise IngestError("drop is incomplete", dataset="payments", date=dt.date(2026, 11, 25))
        if error == "publish":
            raise PublishError("limits: negative new_limit")
        raise MemoryError("out of memory")

    with pytest.raises(StageFailed, match=advice) as exc:
        _guarded("decide shard 1/4", "2026-11-25", fail)
    assert "[decide shard 1/4] business date 2026-11-25" in str(exc.value)


def test_on_an_object_store_the_landing_sensor_works_and_later_stages_refuse_clearly():
    import uuid

    import polars as pl

    from pipelines import lake
    from pipelines.orchestration import landing_ready, run_stage

    root = f"memory://airflow-{uuid.uuid4().hex}/riskline"
    day = dt.date(2026, 6, 30)
    part = lake.partition_dir(lake.as_location(root), "landing", "payments", day)
    assert not landing_ready("payments", day.isoformat(), root)
    with lake.staged_partition(part) as tmp:
        lake.write_parquet(pl.DataFrame({"x": [1]}), tmp / "part-00000.parquet")
    assert landing_ready("payments", day.isoformat(), root)
    with pytest.raises(lake.LocalRootRequired, match="stage features needs a local data root"):
        run_stage("features", day.isoformat(), root)
