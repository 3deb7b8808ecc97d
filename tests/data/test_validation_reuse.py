"""Validating a range of dates reuses what does not depend on the date, and nothing else.

The schema expectations (column set, column types) read only a frame's schema and take no parameter, so
``validate`` runs them through GX once per schema and process (a history ingest's dates share one schema).
A date whose schema differs must still be judged on its own schema.
"""

from __future__ import annotations

import datetime as dt
import shutil

import polars as pl

from pipelines.store import drops
from pipelines.quality import gx_engine, read_references, validate


def _report(root, name: str, day: dt.date, cfg, frame: pl.DataFrame) -> dict:
    refs = read_references.load_references(root, name, day, cfg, frame)
    return validate.validate_landing(frame, name, day, cfg, refs).report.to_json_dict()


def test_dates_of_one_schema_run_the_schema_expectations_once_with_the_same_results(
    seeded_lake, calendar, quiet_cfg, tmp_path
):
    root = tmp_path / "lake"
    shutil.copytree(seeded_lake, root)
    days = [calendar.clean_day - dt.timedelta(days=2), calendar.clean_day - dt.timedelta(days=1)]
    frames = {day: drops.read_landing(root, "accounts", day, quiet_cfg) for day in days}

    gx_engine._schema_results.cache_clear()
    reused = {day: _report(root, "accounts", day, quiet_cfg, frame) for day, frame in frames.items()}
    info = gx_engine._schema_results.cache_info()
    assert (info.misses, info.hits) == (1, 1)  # the second date reused the first date's schema results

    for day, frame in frames.items():  # ... and they are what a fresh run on that date gives
        gx_engine._schema_results.cache_clear()
        assert _report(root, "accounts", day, quiet_cfg, frame) == reused[day]

    # A drifted schema (an extra column from upstream) is judged on its own schema, not a cached one.
    drifted = frames[days[1]].with_columns(pl.lit("x").alias("upstream_note"))
    report = _report(root, "accounts", days[1], quiet_cfg, drifted)
    assert gx_engine._schema_results.cache_info().misses == 2
    columns_rule = [o for o in report["outcomes"] if o["expectation"].startswith("expect_table_columns_to_match_set")]
    clean_rule = [o for o in reused[days[1]]["outcomes"]
                  if o["expectation"].startswith("expect_table_columns_to_match_set")]
    assert columns_rule and columns_rule != clean_rule
