"""riskline nightly: ingest yesterday's landing drop into the curated lake.

Runs at 02:00 Asia/Shanghai over the previous business day (a one-day data interval; the partition date is
the interval's start date in Asia/Shanghai). Each landing dataset (accounts, behaviour, installments,
payments) is ingested in parallel: the contract is enforced, duplicates resolved (latest delivery wins) and
bad rows quarantined with a reason. A failed ingest task names the dataset, partition, file and column and
says whether to wait for upstream or ask for a redelivery; clear the task to rerun it.

This file only wires tasks; all logic lives in the `pipelines` package.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import CronTriggerTimetable, dag, task

from pipelines.catalog import DATASETS


@dag(
    dag_id="riskline_nightly",
    schedule=CronTriggerTimetable("0 2 * * *", timezone="Asia/Shanghai", interval=dt.timedelta(days=1)),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["riskline", "credit-risk"],
    default_args={"owner": "credit-risk-eng", "retries": 0},
    doc_md=__doc__,
)
def riskline_nightly() -> None:
    @task
    def business_date(data_interval_start: dt.datetime | None = None) -> str:
        from pipelines.config import load_config
        from pipelines.orchestration import business_date_of

        return business_date_of(data_interval_start, load_config()).isoformat()

    @task
    def ingest(dataset: str, business_date: str) -> dict:
        from pipelines.orchestration import ingest_one

        return ingest_one(dataset, business_date)

    day = business_date()
    for dataset in DATASETS:
        ingest.override(task_id=f"ingest_{dataset}")(dataset, day)


riskline_nightly()
