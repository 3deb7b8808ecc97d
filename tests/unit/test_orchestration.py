from __future__ import annotations

import datetime as dt

import pytest

from pipelines.config.location import as_location
from pipelines.entry.airflow import business_date_of, require_merged_features, retrain_decision
from pipelines.errors import IngestError
from pipelines.store import lake
from pipelines.store.publish import PublishError


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
    from pipelines.entry.airflow import StageFailed, _guarded

    def fail():
        if error == "ingest":
            raise IngestError("drop is incomplete", dataset="payments", date=dt.date(2026, 11, 25))
        if error == "publish":
            raise PublishError("limits: negative new_limit")
        raise MemoryError("out of memory")

    with pytest.raises(StageFailed, match=advice) as exc:
        _guarded("decide shard 1/4", "2026-11-25", fail)
    assert "[decide shard 1/4] business date 2026-11-25" in str(exc.value)


def test_on_an_object_store_the_landing_sensor_works_and_later_stages_read_the_store():
    import uuid

    import polars as pl

    from pipelines.entry.airflow import landing_ready, run_stage

    root = f"memory://airflow-{uuid.uuid4().hex}/riskline"
    day = dt.date(2026, 6, 30)
    part = lake.partition_dir(as_location(root), "landing", "payments", day)
    assert not landing_ready("payments", day.isoformat(), root)
    with lake.staged_partition(part) as tmp:
        lake.write_parquet(pl.DataFrame({"x": [1]}), tmp / "part-00000.parquet")
    assert landing_ready("payments", day.isoformat(), root)
    # no refusal of the URL: the stage reads the store and names what it lacks there
    with pytest.raises(Exception, match="no complete curated partition for 2026-06-30") as err:
        run_stage("features", day.isoformat(), root)
    assert "local data root" not in str(err.value)


# --- which business date a run processes; whether its drops can still arrive -------------------------

SH = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 11, 30, 10, 0, tzinfo=SH)  # a user at 10:00 Shanghai on 2026-11-30
INTERVAL_OF_NOW = NOW - dt.timedelta(days=1)  # a manual run's interval: [now - 1 day, now]
DEMO_LANDED = [dt.date(2026, 11, 20) + dt.timedelta(days=i) for i in range(6)]  # ..2026-11-25, as `make demo`


@pytest.mark.parametrize(
    "requested, interval_start, run_type, published, expected, why",
    [
        # the param wins over everything, for any run type
        ("2026-11-21", INTERVAL_OF_NOW, "manual", dt.date(2026, 11, 25), dt.date(2026, 11, 21), "param"),
        # a scheduled run is never moved, even in a stale lake: its sensors skip with the reason instead
        (None, INTERVAL_OF_NOW, "scheduled", dt.date(2026, 11, 25), dt.date(2026, 11, 29), "interval"),
        # a manual run with every default in the demo lake (newest drop 4 days before yesterday) reruns the
        # newest published night instead of waiting for a drop that will never come
        (None, INTERVAL_OF_NOW, "manual", dt.date(2026, 11, 25), dt.date(2026, 11, 25), "newest published"),
        (None, INTERVAL_OF_NOW, "manual", None, dt.date(2026, 11, 25), "newest landed"),
        # a current lake (yesterday's drop due): a manual run processes yesterday, as in production
        (None, dt.datetime(2026, 11, 25, 10, tzinfo=SH), "manual", dt.date(2026, 11, 24), dt.date(2026, 11, 25),
         "interval"),
        # a manual run triggered with no logical date has no interval: yesterday
        (None, None, "scheduled", None, dt.date(2026, 11, 29), "yesterday"),
    ],
)
def test_choose_business_date(cfg, requested, interval_start, run_type, published, expected, why):
    from pipelines.entry.airflow import choose_business_date

    day, reason = choose_business_date(requested, interval_start, run_type, NOW, cfg, DEMO_LANDED, published)
    assert day == expected
    assert why in reason or (why == "param" and reason == "param business_date") or (
        why == "interval" and "data interval starts on" in reason)


def test_a_business_date_param_that_is_not_a_date_says_so(cfg):
    from pipelines.entry.airflow import choose_business_date

    with pytest.raises(ValueError, match="business_date='2026/11/20' is not a date; use YYYY-MM-DD"):
        choose_business_date("2026/11/20", INTERVAL_OF_NOW, "manual", NOW, cfg, DEMO_LANDED, None)


@pytest.mark.parametrize(
    "day, now, state, words",
    [
        (dt.date(2026, 11, 25), NOW, "ready", "drop complete"),
        # a scheduled run on unpause for yesterday (2026-11-29) in the demo lake: skip at once, saying why
        (dt.date(2026, 11, 29), NOW, "stale", "the newest payments drop is dt=2026-11-25"),
        # a backfill of a date upstream never delivered (later drops exist): fail at once, past its deadline
        (dt.date(2026, 11, 22), NOW, "missed", "not delivered by its deadline 2026-11-23 08:00 Asia/Shanghai"),
        # tonight's drop is late: wait, and say until when
        (dt.date(2026, 11, 26), dt.datetime(2026, 11, 27, 3, tzinfo=SH), "wait", "until the deadline 2026-11-27 08:00"),
        # ... and fail once the deadline passes, not six hours after the sensor started
        (dt.date(2026, 11, 26), dt.datetime(2026, 11, 27, 8, tzinfo=SH), "missed", "NEXT STEP: ask upstream"),
    ],
)
def test_assess_landing(cfg, day, now, state, words):
    from pipelines.entry.airflow import assess_landing

    landed = [d for d in DEMO_LANDED if d != dt.date(2026, 11, 22)]  # 2026-11-22 was never delivered
    verdict = assess_landing("payments", day, landed, now, cfg)
    assert (verdict.state, words in verdict.message) == (state, True), verdict.message


def test_a_lake_with_no_drop_at_all_is_stale(cfg):
    from pipelines.entry.airflow import assess_landing

    verdict = assess_landing("accounts", dt.date(2026, 11, 29), [], NOW, cfg)
    assert verdict.state == "stale" and "holds no accounts drop at all" in verdict.message


def test_the_sensor_skips_a_stale_date_and_fails_a_missed_one_with_the_reason(data_root):
    import polars as pl
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from pipelines.entry.airflow import poke_landing

    for day in (dt.date(2026, 6, 1), dt.date(2026, 6, 3)):
        with lake.staged_partition(lake.partition_dir(data_root, "landing", "payments", day)) as tmp:
            lake.write_parquet(pl.DataFrame({"x": [1]}), tmp / "part-00000.parquet")
    assert poke_landing("payments", "2026-06-03") is True
    with pytest.raises(AirflowFailException, match="dt=2026-06-02: drop not delivered by its deadline"):
        poke_landing("payments", "2026-06-02")
    with pytest.raises(AirflowSkipException, match="not fed for 2026-06-30"):
        poke_landing("payments", "2026-06-30")


def test_a_drop_purged_once_curated_is_ready_for_the_sensor_and_its_ingest_reads_the_curated_partition(data_root):
    # Review 28R, N6: upstream purges drops once ingested (retention); a backfill or rerun of such a night
    # failed at the sensor ("not delivered by its deadline"), and its ingest said "landing partition not
    # delivered", though the data was delivered and curated and will never come again.
    import polars as pl
    from airflow.sdk.exceptions import AirflowFailException

    from pipelines.entry.airflow import ingest_one, poke_landing

    purged = dt.date(2026, 6, 2)
    for day in (dt.date(2026, 6, 1), dt.date(2026, 6, 3)):
        with lake.staged_partition(lake.partition_dir(data_root, "landing", "payments", day)) as tmp:
            lake.write_parquet(pl.DataFrame({"x": [1]}), tmp / "part-00000.parquet")
    lake.publish_frames(lake.partition_dir(data_root, "curated", "payments", purged),
                        {"part-0.parquet": pl.DataFrame({"payment_id": ["p1"]})})
    assert poke_landing("payments", purged.isoformat()) is True
    out = ingest_one("payments", purged.isoformat())
    assert out["landing_purged"].startswith(f"landing of {purged} purged: the night reads its curated partitions "
                                            "as ingested on "), out
    assert out["landing_purged"].endswith("UTC (payments), and re-ingests nothing of them")
    # a drop being redelivered (no _SUCCESS yet) is no purge: the sensor waits for it, as for any drop
    (lake.partition_dir(data_root, "landing", "payments", purged) / "part-00000.parquet").parent.mkdir(parents=True)
    with pytest.raises(AirflowFailException, match="not delivered by its deadline"):
        poke_landing("payments", purged.isoformat())


@pytest.mark.parametrize(
    "error, advice, not_advice",
    [
        # a missing champion: clearing fails again; a new run with another model_version is the way out
        ("no_champion", "Trigger a new run of riskline_nightly (Trigger DAG, with params) with "
         "business_date=2026-11-25 and model_version=", "clear this task"),
        ("unknown_version", "model_version empty (the champion serving on that date)", "clear this task"),
        ("leakage", "retrain=false", "clear this task"),
        # earlier dates missing: clearing works once they are run
        ("history", "EARLIER DATES MISSING", "Not a data problem"),
    ],
)
def test_model_and_history_failures_get_their_own_next_step_in_task_terms(error, advice, not_advice, data_root):
    from pipelines.model.metrics import LeakageSuspectedError
    from pipelines.stages.features import IncompleteHistoryError
    from pipelines.entry.airflow import StageFailed, _guarded
    from pipelines.model.registry import ModelRegistry, NoChampionError

    def fail():
        if error == "no_champion":
            ModelRegistry(data_root).require_champion_on(dt.date(2026, 11, 25))
        if error == "unknown_version":
            ModelRegistry(data_root).record("2026-01-01-abc")
        if error == "leakage":
            raise LeakageSuspectedError("OOT AUC 0.999 > 0.98")
        raise IncompleteHistoryError("cannot build features as of 2026-11-25: payments: missing 2026-11-24")

    with pytest.raises(StageFailed) as exc:
        _guarded("score", "2026-11-25", fail)
    text = str(exc.value)
    assert advice in text and not_advice not in text, text
    assert "--" not in text.replace("---", ""), f"a CLI flag in a task log: {text}"
    assert NoChampionError  # imported: the registry's class is what the guard recognises


def test_great_expectations_info_lines_are_quiet_and_ours_stay(caplog):
    import logging

    from pipelines.entry.airflow import quiet_third_party_logs

    quiet_third_party_logs()
    with caplog.at_level(logging.INFO):
        logging.getLogger("great_expectations.core.batch").info("Calculating metrics")
        logging.getLogger("great_expectations.core.batch").warning("a real problem")
        logging.getLogger("pipelines.quality.validate").info("validated payments")
    assert [r.getMessage() for r in caplog.records] == ["a real problem", "validated payments"]


def test_score_skips_when_the_landing_was_skipped_and_runs_when_features_were_merged():
    # score runs on none_failed (a skipped retrain must not skip it); after skipped landing sensors there
    # are no merged features, and scoring that date would fail the whole run instead of skipping it.
    from airflow.sdk.exceptions import AirflowSkipException

    with pytest.raises(AirflowSkipException, match="no features were built for 2026-11-29"):
        require_merged_features(None, "2026-11-29")
    require_merged_features({"rows": 10}, "2026-11-29")  # merged: nothing to say


def test_the_no_champion_next_step_for_a_date_behind_later_nights_includes_force_chain(tmp_path, monkeypatch):
    # New-user review: the run the task log recommended (business_date + model_version) stopped again at
    # decide, behind the nights that already ran.
    import polars as pl

    from pipelines.entry import airflow
    from pipelines.model.registry import NoChampionError
    from pipelines.store import zones

    monkeypatch.setenv("RISKLINE_DATA_ROOT", str(tmp_path))
    night = dt.date(2026, 11, 20)
    lake.publish_frames(lake.derived_partition(tmp_path, "decisions", night),
                        {zones.LIMIT_HISTORY_FILE: pl.DataFrame({"a": [1]})})
    behind = airflow._model_next_step(NoChampionError("none"), "2026-11-10")
    assert "model_version=<" in behind and "force_chain=true (nights 2026-11-20..2026-11-20 already ran" in behind
    assert "force_chain" not in airflow._model_next_step(NoChampionError("none"), "2026-11-21")
