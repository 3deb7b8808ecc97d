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
    assert {"riskline_nightly", "riskline_agent_queue_export", "riskline_policy_whatif"} <= set(dagbag.dags)


def test_house_rules(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md, f"{dag_id} has no doc_md"
        for t in dag.tasks:
            assert t.owner and t.owner != "airflow", f"{dag_id}.{t.task_id} has no owner"


def test_nightly_schedule_and_stage_order(dagbag):
    dag = dagbag.dags["riskline_nightly"]
    assert dag.catchup is False
    assert dag.max_active_runs == 1  # a model promoted tonight must be tomorrow's champion
    for ds in ("accounts", "behaviour", "installments", "payments"):
        # Each dataset waits for its own drop and is ingested independently of the others (parallel).
        assert dag.get_task(f"land_{ds}.wait").upstream_task_ids == {"business_date"}
        assert dag.get_task(f"land_{ds}.ingest_validate").upstream_task_ids == {f"land_{ds}.wait", "business_date"}
    assert dag.get_task("build_features").upstream_task_ids == {
        f"land_{ds}.ingest_validate" for ds in ("accounts", "behaviour", "installments", "payments")
    } | {"business_date", "shard_ids"}
    assert dag.get_task("score").trigger_rule == "none_failed"  # runs when training is skipped
    assert "train_challenger" in dag.get_task("score").upstream_task_ids
    assert "merge_decisions" in dag.get_task("publish").upstream_task_ids
    assert "publish" in dag.get_task("report").upstream_task_ids


def test_per_account_stages_fan_out_over_shards(dagbag):
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    dag = dagbag.dags["riskline_nightly"]
    for task_id, merge in (("build_features", "merge_features"), ("score", "merge_scores"),
                           ("decide", "merge_decisions")):
        assert isinstance(dag.get_task(task_id), MappedOperator), f"{task_id} is not mapped over shards"
        assert task_id in dag.get_task(merge).upstream_task_ids


def test_waits_hold_no_worker_slot_and_time_out(dagbag):
    dag = dagbag.dags["riskline_nightly"]
    for task in dag.tasks:
        if task.task_id.endswith(".wait"):
            assert task.mode == "reschedule"
            assert 0 < task.timeout <= 12 * 3600


def test_retries_only_where_a_retry_can_help(dagbag):
    dag = dagbag.dags["riskline_nightly"]
    for task in dag.tasks:
        if task.task_id.endswith("ingest_validate") or task.task_id == "train_challenger":
            assert task.retries == 0, f"{task.task_id}: validation and data failures are not retried"
    for task_id in ("build_features", "publish"):
        task = dag.get_task(task_id)
        assert task.retries >= 1 and task.retry_exponential_backoff


def test_params_are_validated_by_json_schema(dagbag):
    from airflow.sdk.definitions.param import ParamsDict

    params = dagbag.dags["riskline_nightly"].params
    assert set(params) >= {"retrain", "model_version", "publish", "business_date"}
    assert params.get_param("retrain").schema["type"] == "boolean"
    assert params.get_param("publish").schema["type"] == "boolean"
    ok = ParamsDict({"model_version": params.get_param("model_version")})
    ok["model_version"] = "2026-11-25-610d26554c4c"
    ok.validate()
    for bad in ("../../etc/passwd", "a b", "x" * 200):
        with pytest.raises(Exception):
            probe = ParamsDict({"model_version": params.get_param("model_version")})
            probe["model_version"] = bad
            probe.validate()


@pytest.mark.parametrize("dag_id", ["riskline_nightly", "riskline_agent_queue_export", "riskline_policy_whatif"])
def test_every_param_default_is_submittable_as_is_in_the_trigger_form(dagbag, dag_id):
    # The trigger form sends an empty field as null and marks a typed field "required" unless its type allows
    # null: a documented "empty = ..." default must be None with "null" in its type, and the defaults as a
    # whole must pass the params' JSON Schema (what Trigger validates before creating the run).
    from airflow.sdk.definitions.param import ParamsDict

    params = dagbag.dags[dag_id].params
    for name in params:
        param = params.get_param(name)
        assert param.value not in ("", [], {}), f"{name}: an empty default; use None with a null type"
        types = param.schema.get("type", [])
        if param.value is None:
            assert "null" in (types if isinstance(types, list) else [types]), f"{name}: None default, type {types}"
    ParamsDict({name: params.get_param(name) for name in params}).validate()


def test_business_date_param_takes_a_date_and_nothing_else(dagbag):
    from airflow.sdk.definitions.param import ParamsDict

    param = dagbag.dags["riskline_nightly"].params.get_param("business_date")
    assert param.schema.get("format") == "date"  # the form shows a date picker
    ok = ParamsDict({"business_date": param})
    ok["business_date"] = "2026-11-20"
    ok.validate()
    with pytest.raises(Exception):
        probe = ParamsDict({"business_date": param})
        probe["business_date"] = 20261120
        probe.validate()


def test_outputs_are_assets_and_a_consumer_schedules_on_the_queue(dagbag):
    publish = dagbag.dags["riskline_nightly"].get_task("publish")
    assert {o.name for o in publish.outlets} == {
        "riskline_scores", "riskline_limits", "riskline_collection_queue", "riskline_hardship_offers"
    }


def test_the_consumer_starts_active_and_the_nightly_starts_paused(dagbag):
    # The consumer runs only on asset events, so it may start active; the nightly waits for a deliberate unpause.
    assert dagbag.dags["riskline_agent_queue_export"].is_paused_upon_creation is False
    assert dagbag.dags["riskline_nightly"].is_paused_upon_creation in (None, True)


def test_run_at_0200_shanghai_covers_previous_business_day(dagbag, cfg):
    from pipelines.entry.airflow import business_date_of

    timetable = dagbag.dags["riskline_nightly"].timetable
    assert (timetable.expression, str(timetable.timezone)) == ("0 2 * * *", "Asia/Shanghai")
    assert timetable.interval == dt.timedelta(days=1)
    # The run firing 2026-11-21 02:00 Shanghai (= 2026-11-20 18:00 UTC) has the interval starting one day
    # earlier, 2026-11-20 02:00 Shanghai, so it must process business date 2026-11-20.
    fire = dt.datetime(2026, 11, 20, 18, 0, tzinfo=dt.timezone.utc)
    assert business_date_of(fire - timetable.interval, cfg) == dt.date(2026, 11, 20)
    with pytest.raises(ValueError):
        business_date_of(dt.datetime(2026, 11, 20, 18, 0), cfg)


HEAVY = ("polars", "pandas", "xgboost", "great_expectations", "numpy")


@pytest.mark.parametrize("dag_file", ["riskline_nightly.py", "riskline_policy_whatif.py"])
def test_dag_file_has_no_heavy_top_level_imports(dag_file):
    source = (DAGS / dag_file).read_text()
    top = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    for heavy in HEAVY:
        assert not any(heavy in line for line in top), f"{heavy} imported at DAG parse time"


def test_the_whatif_dag_parses_without_heavy_imports_even_indirectly():
    # Its param default is built from riskline.yaml at parse time (pipelines.config.candidate, YAML only): that
    # must not pull in the settings' imports (polars via the contracts), the file is parsed every few seconds.
    import subprocess
    import sys

    probe = (f"import runpy, sys; runpy.run_path({str(DAGS / 'riskline_policy_whatif.py')!r}); "
             f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_the_whatif_dag_is_manual_and_its_default_candidate_is_the_live_policy(dagbag, cfg):
    from pipelines.config.candidate import WHATIF_SUFFIX, parse_candidate_policy

    dag = dagbag.dags["riskline_policy_whatif"]
    assert type(dag.timetable).__name__ == "NullTimetable"  # schedule=None: only a person triggers it
    assert [t.task_id for t in dag.tasks] == ["simulate_candidate"]
    params = dag.params
    assert set(params) == {"candidate_policy", "as_of"}
    candidate = params.get_param("candidate_policy")
    assert candidate.schema["format"] == "multiline"  # the trigger form shows a text area
    assert params.get_param("as_of").value is None and params.get_param("as_of").schema["format"] == "date"
    # Triggered with the defaults, the run simulates the live policy itself under a what-if version: a valid
    # candidate that changes no rule (tests/e2e/test_whatif.py shows its page has zero changes).
    policy = parse_candidate_policy(candidate.value)
    assert policy.version == cfg.policy.version + WHATIF_SUFFIX
    assert policy.model_copy(update={"version": cfg.policy.version}) == cfg.policy
