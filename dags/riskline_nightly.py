"""## riskline nightly

Re-estimates every account's probability of default, decides new credit limits, builds the collections
queue and hardship offers, and publishes them for downstream systems.

**When:** 02:00 Asia/Shanghai, over the previous business day (a one-day data interval; the business date D
is the interval's start date in Asia/Shanghai). One run at a time: a model promoted tonight must be
tomorrow's champion.

**Which business date?** Every run logs it in its first task, `business_date` (its return value is D), and
every later task gets it as its `business_date` argument (Rendered Template). D is, in order:
the `business_date` param if set; else the data interval's start date (scheduled run for D: logical date
D 02:00 +08:00; backfill range in the same dates); else, for a manual run whose own date (yesterday) has no
landing near it (a demo lake), the newest published night, which it reruns.

**Waiting for upstream:** each `land_<dataset>.wait` sensor logs what it waits for and until when. A drop
may arrive until D+1 08:00 Asia/Shanghai (`schedule.landing_deadline_hours`); past that the sensor fails at
once (a backfill of a date never delivered fails in seconds). A date more than `schedule.stale_landing_days`
after the dataset's newest drop is not being fed (a demo lake, a stopped feed): the run skips, saying so,
instead of holding the one active-run slot that a manual run waits for.

**Shards:** ledger/features, scoring and decisions run once per account-hash shard (`run.shards` in
riskline.yaml, default 1) as mapped tasks, each followed by a merge; outputs are identical for any count.

**Manual runs (Trigger with params):** every default submits as is. `business_date` (YYYY-MM-DD; empty =
as above), `retrain` (default true), `model_version` (pin a registered version; empty = the champion on D),
`publish` (false = dry run on a private copy of the lake, DATA_ROOT/staging/as_of_date=D; nothing else
changes), `force_chain` (run a night out of order), `retrain_on_backfill`. The form's logical date only
matters when `business_date` is empty.

**Nights form a chain:** each night reads the previous night's limit history, so `decide` refuses a date whose
previous night has not run or is stale, or that newer nights already followed (unless it is a rerun on the
same previous night), unless `force_chain` is set (recorded in the manifest). A rerun that changes a night's
limit history marks the later nights stale (`outputs/_stale/`); rebuild them with a backfill in order
(`--max-active-runs 1`, `--reprocess-behavior completed`) or `riskline rebuild --from D`.

**Backfills** never retrain unless `retrain_on_backfill` is set: a past date is scored with the model that
was champion on that date. Rerunning a date replaces its partitions whole (same inputs, same bytes).

**When a task fails** its log says which date and dataset, what failed, and the next step from the UI: fix
upstream and clear; trigger a new run with other params (model or registry problems: clearing would fail
the same way); or clear to rerun. Validation failures are data problems and are not retried.

This file only wires tasks; all logic lives in the `pipelines` package.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, CronTriggerTimetable, Param, PokeReturnValue, dag, task, task_group

from pipelines.vocab import DATASETS, OUTPUTS, output_asset_name, output_asset_uri

OUTPUT_ASSETS = {name: Asset(name=output_asset_name(name), uri=output_asset_uri(name)) for name in OUTPUTS}
# Mapped tasks are labelled with the business date they process, so the grid shows it on every run.
SHARD_LABEL = "{{ task.op_kwargs['business_date'] }} shard {{ task.op_kwargs['shard'] }}"
IO_RETRIES = {"retries": 2, "retry_delay": dt.timedelta(minutes=2), "retry_exponential_backoff": True}


@dag(
    dag_id="riskline_nightly",
    schedule=CronTriggerTimetable("0 2 * * *", timezone="Asia/Shanghai", interval=dt.timedelta(days=1)),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["riskline", "credit-risk", "nightly"],
    default_args={"owner": "credit-risk-eng", "retries": 0},
    doc_md=__doc__,
    # Optional params are typed ["null", ...] with a None default: the trigger form refuses an empty typed
    # field ("This field is required"), so every documented default must be one it accepts as is.
    params={
        "business_date": Param(
            None, type=["null", "string"], format="date",
            description="Business date D to process (YYYY-MM-DD); empty = the run's own date (its data "
                        "interval); a manual run whose date has no drops reruns the newest published night.",
        ),
        "retrain": Param(True, type="boolean", description="Train a challenger and run the promotion gate."),
        "model_version": Param(
            None, type=["null", "string"], pattern=r"^([0-9A-Za-z][0-9A-Za-z._-]{0,127})?$",
            description="Pin a registered model version; empty = the champion serving on the business date.",
        ),
        "publish": Param(True, type="boolean", description="False = dry run: outputs go to DATA_ROOT/staging."),
        "retrain_on_backfill": Param(False, type="boolean", description="Retrain even in a backfill run."),
        "force_chain": Param(False, type="boolean",
                             description="Run this date even if it is out of order (previous night missing or stale, "
                             "later nights exist); recorded in the manifest, later nights are marked stale."),
    },
)
def riskline_nightly() -> None:
    @task
    def business_date(data_interval_start: dt.datetime | None = None, params: dict | None = None,
                      dag_run=None) -> str:
        from pipelines.entry.airflow import business_date_for_run

        day, why = business_date_for_run(params or {}, data_interval_start, dag_run.run_type)
        print(f"business date {day}: {why}")
        return day

    day = business_date()

    ingested = []
    for dataset in DATASETS:

        @task_group(group_id=f"land_{dataset}")
        def land(dataset: str = dataset) -> None:
            # The deadline that matters is poke_landing's (D+1 08:00 by default), fixed by the business date;
            # the timeout is only a backstop for a business_date param set in the future.
            @task.sensor(task_id="wait", mode="reschedule", poke_interval=300, timeout=12 * 3600)
            def wait(business_date: str) -> PokeReturnValue:
                from pipelines.entry.airflow import poke_landing

                return PokeReturnValue(is_done=poke_landing(dataset, business_date))

            @task(task_id="ingest_validate")
            def ingest_validate(business_date: str) -> dict:
                from pipelines.entry.airflow import ingest_one

                return ingest_one(dataset, business_date)

            wait(day) >> ingest_validate(day)

        ingested.append(land())

    @task
    def shard_ids() -> list[int]:
        from pipelines.entry.airflow import shard_list

        return shard_list()

    # Per-account stages run once per account-hash shard (dynamic task mapping: Celery or Kubernetes
    # executors spread them over workers); each is followed by a merge that publishes the date's partition.
    @task(**IO_RETRIES, map_index_template=SHARD_LABEL)
    def build_features(business_date: str, shard: int) -> dict:
        from pipelines.entry.airflow import run_shard

        return run_shard("features", business_date, shard)

    @task(**IO_RETRIES)
    def merge_features(business_date: str) -> dict:
        from pipelines.entry.airflow import merge_shard_outputs

        return merge_shard_outputs("features", business_date)

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def should_train(params: dict | None = None, dag_run=None) -> bool:
        from pipelines.entry.airflow import retrain_decision

        retrain, why = retrain_decision(params or {}, dag_run.run_type)
        print(f"retrain={retrain}: {why}")
        return retrain

    @task
    def train_challenger(business_date: str) -> dict:
        from pipelines.entry.airflow import run_stage

        return run_stage("train", business_date)

    @task(trigger_rule="none_failed", map_index_template=SHARD_LABEL)
    def score(business_date: str, shard: int, params: dict | None = None, ti=None) -> dict:
        from pipelines.entry.airflow import require_merged_features, run_shard

        require_merged_features(ti.xcom_pull(task_ids="merge_features"), business_date)
        return run_shard("score", business_date, shard, model_version=(params or {}).get("model_version") or None)

    @task
    def merge_scores(business_date: str) -> dict:
        from pipelines.entry.airflow import merge_shard_outputs

        return merge_shard_outputs("score", business_date)

    @task(map_index_template=SHARD_LABEL)
    def decide(business_date: str, shard: int) -> dict:
        from pipelines.entry.airflow import run_shard

        return run_shard("decide", business_date, shard)

    @task
    def merge_decisions(business_date: str) -> dict:
        """Also where the collections queue's capacity cut and priorities run, over the whole book."""
        from pipelines.entry.airflow import merge_shard_outputs

        return merge_shard_outputs("decide", business_date)

    @task(outlets=list(OUTPUT_ASSETS.values()), **IO_RETRIES)
    def publish(business_date: str, params: dict | None = None, outlet_events=None) -> dict:
        from pipelines.entry.airflow import asset_extra, run_stage

        result = run_stage("publish", business_date, dry_run=not (params or {}).get("publish", True))
        for name, asset in OUTPUT_ASSETS.items():
            outlet_events[asset].extra = asset_extra(result, name)
        return result

    @task(**IO_RETRIES)
    def report(business_date: str, params: dict | None = None) -> dict:
        from pipelines.entry.airflow import run_stage

        if not (params or {}).get("publish", True):
            print("dry run: nothing was published, so there is no report to build")
            return {}
        result = run_stage("report", business_date)
        print(f"run report: {result['path']}")
        return result

    shards = shard_ids()
    features = build_features.partial(business_date=day).expand(shard=shards)
    ingested >> features
    features_merged = merge_features(day)
    features >> features_merged
    gate = should_train()
    trained = train_challenger(day)
    scored = score.partial(business_date=day).expand(shard=shards)
    features_merged >> gate >> trained >> scored
    scores_merged = merge_scores(day)
    decided = decide.partial(business_date=day).expand(shard=shards)
    decisions_merged = merge_decisions(day)
    scored >> scores_merged >> decided >> decisions_merged
    published = publish(day)
    decisions_merged >> published >> report(day)


riskline_nightly()
