"""## riskline nightly

Re-estimates every account's probability of default, decides new credit limits, builds the collections
queue and hardship offers, and publishes them for downstream systems.

**When:** 02:00 Asia/Shanghai, over the previous business day (a one-day data interval; the partition
date D is the interval's start date in Asia/Shanghai). One run at a time: a model promoted tonight must be
tomorrow's champion.

**Stages:** wait for each landing drop (`_SUCCESS`) -> ingest and validate each dataset (in parallel) ->
ledger and features -> train a challenger and gate it -> score -> decide limits, collections, hardship ->
publish the four outputs all-or-nothing (assets `riskline_scores`, `riskline_limits`,
`riskline_collection_queue`, `riskline_hardship_offers`) -> the morning report (its path is in the log).

**Shards:** ledger/features, scoring and decisions run once per account-hash shard (`run.shards` in
riskline.yaml, default 1) as mapped tasks, each followed by a merge; outputs are identical for any count.

**Manual runs (Trigger with params):** `retrain` (default true), `model_version` (pin a registered version;
empty = the champion on D), `publish` (false = dry run on a private copy of the lake,
DATA_ROOT/staging/as_of_date=D; nothing else changes), `force_chain` (run a night out of order).

**Nights form a chain:** each night reads the previous night's limit history, so `decide` refuses a date whose
previous night has not run or is stale, or that newer nights already followed (unless it is a rerun on the
same previous night), unless `force_chain` is set (recorded in the manifest). A rerun that changes a night's
limit history marks the later nights stale (`outputs/_stale/`); rebuild them with a backfill in order
(`--max-active-runs 1`, `--reprocess-behavior completed`) or `riskline rebuild --from D`.

**Backfills** never retrain unless `retrain_on_backfill` is set: a past date is scored with the model that
was champion on that date. Rerunning a date replaces its partitions whole (same inputs, same bytes).

**When a task fails** its log says which date and dataset, what failed, and whether to fix upstream and
clear, or simply clear to rerun. Validation failures are data problems and are not retried.

This file only wires tasks; all logic lives in the `pipelines` package.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, CronTriggerTimetable, Param, PokeReturnValue, dag, task, task_group

from pipelines.catalog import DATASETS, OUTPUTS, output_asset_name, output_asset_uri

OUTPUT_ASSETS = {name: Asset(name=output_asset_name(name), uri=output_asset_uri(name)) for name in OUTPUTS}
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
    params={
        "retrain": Param(True, type="boolean", description="Train a challenger and run the promotion gate."),
        "model_version": Param(
            "", type="string", pattern=r"^([0-9A-Za-z][0-9A-Za-z._-]{0,127})?$",
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
    def business_date(data_interval_start: dt.datetime | None = None) -> str:
        from pipelines.config import load_config
        from pipelines.orchestration import business_date_of

        return business_date_of(data_interval_start, load_config()).isoformat()

    day = business_date()

    ingested = []
    for dataset in DATASETS:

        @task_group(group_id=f"land_{dataset}")
        def land(dataset: str = dataset) -> None:
            @task.sensor(task_id="wait", mode="reschedule", poke_interval=300, timeout=6 * 3600)
            def wait(business_date: str) -> PokeReturnValue:
                from pipelines.orchestration import landing_ready

                return PokeReturnValue(is_done=landing_ready(dataset, business_date))

            @task(task_id="ingest_validate")
            def ingest_validate(business_date: str) -> dict:
                from pipelines.orchestration import ingest_one

                return ingest_one(dataset, business_date)

            wait(day) >> ingest_validate(day)

        ingested.append(land())

    @task
    def shard_ids() -> list[int]:
        from pipelines.orchestration import shard_list

        return shard_list()

    # Per-account stages run once per account-hash shard (dynamic task mapping: Celery or Kubernetes
    # executors spread them over workers); each is followed by a merge that publishes the date's partition.
    @task(**IO_RETRIES, map_index_template="shard {{ task.op_kwargs['shard'] }}")
    def build_features(business_date: str, shard: int) -> dict:
        from pipelines.orchestration import run_shard

        return run_shard("features", business_date, shard)

    @task(**IO_RETRIES)
    def merge_features(business_date: str) -> dict:
        from pipelines.orchestration import merge_shard_outputs

        return merge_shard_outputs("features", business_date)

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def should_train(params: dict | None = None, dag_run=None) -> bool:
        from pipelines.orchestration import retrain_decision

        retrain, why = retrain_decision(params or {}, dag_run.run_type)
        print(f"retrain={retrain}: {why}")
        return retrain

    @task
    def train_challenger(business_date: str) -> dict:
        from pipelines.orchestration import run_stage

        return run_stage("train", business_date)

    @task(trigger_rule="none_failed", map_index_template="shard {{ task.op_kwargs['shard'] }}")
    def score(business_date: str, shard: int, params: dict | None = None) -> dict:
        from pipelines.orchestration import run_shard

        return run_shard("score", business_date, shard, model_version=(params or {}).get("model_version") or None)

    @task
    def merge_scores(business_date: str) -> dict:
        from pipelines.orchestration import merge_shard_outputs

        return merge_shard_outputs("score", business_date)

    @task(map_index_template="shard {{ task.op_kwargs['shard'] }}")
    def decide(business_date: str, shard: int) -> dict:
        from pipelines.orchestration import run_shard

        return run_shard("decide", business_date, shard)

    @task
    def merge_decisions(business_date: str) -> dict:
        """Also where the collections queue's capacity cut and priorities run, over the whole book."""
        from pipelines.orchestration import merge_shard_outputs

        return merge_shard_outputs("decide", business_date)

    @task(outlets=list(OUTPUT_ASSETS.values()), **IO_RETRIES)
    def publish(business_date: str, params: dict | None = None, outlet_events=None) -> dict:
        from pipelines.orchestration import asset_extra, run_stage

        result = run_stage("publish", business_date, dry_run=not (params or {}).get("publish", True))
        for name, asset in OUTPUT_ASSETS.items():
            outlet_events[asset].extra = asset_extra(result, name)
        return result

    @task(**IO_RETRIES)
    def report(business_date: str, params: dict | None = None) -> dict:
        from pipelines.orchestration import run_stage

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
