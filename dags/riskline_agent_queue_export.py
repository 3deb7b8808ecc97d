"""## riskline agent queue export

An example consumer of riskline's published outputs: whenever `riskline_nightly` publishes a new
`collection_queue` partition (the `riskline_collection_queue` asset), export that night's human-agent queue,
in priority order, as CSV for the call-centre dialler.

The asset event carries the partition path, row count and manifest, so this DAG reads exactly the partition
that was published (never "latest"). Dry runs (publish=false) emit events marked `published: false`; they are
ignored. Output: `DATA_ROOT/exports/agent_queue/as_of_date=D/agent_queue.csv`.

This file only wires tasks; the export itself is `pipelines.entry.exports.export_agent_queue`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, dag, task

from pipelines.vocab import output_asset_name, output_asset_uri

COLLECTION_QUEUE = Asset(name=output_asset_name("collection_queue"), uri=output_asset_uri("collection_queue"))


@dag(
    dag_id="riskline_agent_queue_export",
    schedule=[COLLECTION_QUEUE],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    # Active from the start (local Airflow creates DAGs paused): it only ever runs on a published asset event,
    # so there is nothing to hold back, and a paused consumer silently misses the demo's first nights.
    is_paused_upon_creation=False,
    max_active_runs=1,
    tags=["riskline", "collections", "consumer"],
    default_args={"owner": "collections-ops", "retries": 2, "retry_delay": dt.timedelta(minutes=1)},
    doc_md=__doc__,
)
def riskline_agent_queue_export() -> None:
    @task
    def export_agent_queue(triggering_asset_events=None) -> list[str]:
        from pipelines.entry.exports import export_agent_queue

        written = []
        for event in triggering_asset_events[COLLECTION_QUEUE]:
            path = export_agent_queue(event.extra)
            if path:
                written.append(path)
        return written

    export_agent_queue()


riskline_agent_queue_export()
