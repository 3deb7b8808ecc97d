"""The benchmark's stage parts: every timed function exists where the stage looks it up.

The layered move left the bench wrapping ``pipelines.domain.features.build_ledger``, which no longer
existed: ``make bench`` failed at its features stage and nothing in the suite noticed. The shard-count bench
(``tools/bench_shards.py``) is checked the same way, and its night plan and summaries on tiny made-up steps.
"""

from __future__ import annotations

import importlib

import pytest

from tools.bench_base import STAGE_PARTS
from tools.bench_shards import SHARD_PARTS


@pytest.mark.parametrize("stage", sorted(STAGE_PARTS))
def test_every_timed_part_exists_where_the_bench_wraps_it(stage: str) -> None:
    for module_name, name, _part in STAGE_PARTS[stage]:
        function = getattr(importlib.import_module(module_name), name, None)
        assert callable(function), f"{stage}: {module_name}.{name} does not exist"


def test_a_long_history_size_has_its_own_book_and_is_compared_with_the_usual_one() -> None:
    from tools import bench

    spec = bench.load_spec()
    assert bench.book_days(spec, "100k") == spec["book"]["days"] and bench.book_days(spec, "100k-3y") == 1095
    assert bench.book_root(spec, "100k-3y") != bench.book_root(spec, "100k")
    first, night = bench.book_dates(spec, "100k-3y")
    assert (night - first).days == 1094 and night == bench.book_dates(spec, "100k")[1]
    stages = [{"stage": "ingest", "seconds": 6.0}, {"stage": "features", "seconds": 9.0}]
    long = {"summary": {"nightly_no_retrain_seconds": 15.0}, "stages": stages}
    short = {"summary": {"nightly_no_retrain_seconds": 10.0}, "date": "2026-12-01", "size": "100k", "days": 180,
             "stages": [{"stage": "ingest", "seconds": 5.0}, {"stage": "features", "seconds": 3.0}]}
    ratios = bench.history_ratios(long, short, spec["targets"])
    assert ratios["night"] == 1.5 and ratios["stages"] == {"ingest": 1.2, "features": 3.0}
    assert ratios["target_met"] is False and ratios["target"] == 1.2


# --- the shard-count bench (tools/bench_shards.py) ------------------------------------------------------------


@pytest.mark.parametrize("step", sorted(SHARD_PARTS))
def test_every_timed_part_of_the_shard_bench_exists_where_it_is_wrapped(step: str) -> None:
    for module_name, name, _part in SHARD_PARTS[step]:
        function = getattr(importlib.import_module(module_name), name, None)
        assert callable(function), f"{step}: {module_name}.{name} does not exist"


@pytest.mark.parametrize(("n_shards", "train", "expected"), [
    # one shard: the ordinary stages, nothing to merge (pipelines.entry.airflow.run_shard with run.shards 1)
    (1, True, ["once ingest", "shard features 0", "once train", "shard score 0", "shard decide 0", "once publish",
               "once report"]),
    # two shards: each stage's shards, then its merge; training (first configuration only) after the features merge
    (2, False, ["once ingest", "shard features 0", "shard features 1", "merge features", "shard score 0",
                "shard score 1", "merge score", "shard decide 0", "shard decide 1", "merge decide", "once publish",
                "once report"]),
])
def test_the_shard_bench_runs_a_night_as_the_dag_orders_it(n_shards: int, train: bool, expected: list[str]) -> None:
    from tools.bench_shards import night_plan

    plan = [f"{kind} {stage}" + (f" {shard}" if kind == "shard" else "") for kind, stage, shard in
            night_plan(n_shards, train)]
    assert plan == expected


def _step(kind: str, stage: str, seconds: float, rss: float, parts: dict[str, float] | None = None,
          load: float = 1.0) -> dict:
    return {"kind": kind, "stage": stage, "seconds": seconds, "cpu_seconds": seconds * 1.5, "peak_rss_mib": rss,
            "parts": parts or {},
            "process_seconds": seconds + 3.0, "load_avg_before": [load, 1.0, 1.0]}


def test_a_configuration_is_summarized_per_shard_and_once_a_night() -> None:
    from tools.bench_shards import CAPACITY_CUT, summarize_run

    steps = [
        _step("once", "ingest", 10.0, 2000, load=0.5),
        *(_step("shard", "features", s, r) for s, r in ((4.0, 1500), (6.0, 1700), (5.0, 1600))),
        _step("merge", "features", 3.0, 2500),
        _step("once", "train", 30.0, 4000, load=2.5),
        *(_step("shard", "score", s, 900) for s in (2.0, 2.0, 8.0)),
        _step("merge", "score", 1.0, 800),
        *(_step("shard", "decide", 1.0, 700) for _ in range(3)),
        _step("merge", "decide", 2.0, 600, {CAPACITY_CUT: 0.5, "rest": 1.5}),
        _step("once", "publish", 4.0, 1200),
        _step("once", "report", 5.0, 1100),
    ]
    out = summarize_run({"shards": 3, "steps": steps})
    features = out["per_shard"]["features"]
    # the slowest of the three shards, and the middle one
    assert (features["seconds_max"], features["seconds_median"]) == (6.0, 5.0)
    assert (features["peak_rss_mib_max"], features["peak_rss_mib_median"]) == (1700, 1600)
    assert out["per_shard"]["score"]["seconds_sum"] == 12.0 and out["per_shard"]["score"]["process_seconds_sum"] == 21.0
    # once a night, training apart: ingest 10 + merges 3 + 1 + 2 + publish 4 + report 5 = 25
    assert set(out["once"]) == {"ingest", "merge features", "train", "merge score", "merge decide", "publish", "report"}
    assert out["night_one_worker_seconds"] == 25 + 15 + 12 + 3
    assert out["night_parallel_seconds"] == 25 + 6 + 8 + 1  # a worker per shard: the slowest shard of each stage
    assert out["shard_work_seconds"] == 30.0 and out["capacity_cut_seconds"] == 0.5
    assert out["max_peak_rss_mib"] == 2500  # training's 4000 is reported on its own row, not as the night's
    assert out["load_avg_1min"] == {"min": 0.5, "max": 2.5}
    assert out["night_cpu_seconds"] == 1.5 * out["night_one_worker_seconds"]  # training's CPU left out too


def test_with_one_shard_the_capacity_cut_is_read_from_the_decide_stage() -> None:
    from tools.bench_shards import CAPACITY_CUT, summarize_run

    steps = [_step("once", "ingest", 1.0, 10), _step("shard", "features", 1.0, 10), _step("shard", "score", 1.0, 10),
             _step("shard", "decide", 3.0, 10, {CAPACITY_CUT: 0.25, "rest": 2.75}), _step("once", "publish", 1.0, 10),
             _step("once", "report", 1.0, 10)]
    out = summarize_run({"shards": 1, "steps": steps})
    assert out["capacity_cut_seconds"] == 0.25
    assert out["night_one_worker_seconds"] == out["night_parallel_seconds"] == 8.0


def test_an_unknown_bench_size_names_the_shard_sizes_too(tmp_path) -> None:
    from tools import bench

    with pytest.raises(ValueError, match="shards-1m"):
        bench.run_benchmarks(["no-such-size"], tmp_path / "riskline.yaml")
