"""The benchmark's stage parts: every timed function exists where the stage looks it up.

The layered move left the bench wrapping ``pipelines.domain.features.build_ledger``, which no longer
existed: ``make bench`` failed at its features stage and nothing in the suite noticed.
"""

from __future__ import annotations

import importlib

import pytest

from tools.bench import STAGE_PARTS


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
