"""The report's "Test cells: outcomes" section on real nights, in headless Chromium: it renders without console
errors, says which windows have not matured, and every number it shows is the readout frame's.

The shared lake has one night; a copy runs the next night (scored by the same champion, no retraining) with
outcome windows of 1 and 30 days and no late payments accepted (``ingest.payment_late_days: 0``; a window matures
that many days after its last day), so the first night's 1-day window has matured and its 30-day one has not.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
import yaml
from .browser import artifact, launch, watched_page

from pipelines.config.settings import load_config

WINDOWS = [1, 30]


def _cells_lake(e2e_lake, tmp_path: Path):  # type: ignore[no-untyped-def]
    from pipelines.stages.night import RunOptions, run_night

    root = e2e_lake.copy_to(tmp_path / "lake")
    raw = yaml.safe_load(e2e_lake.cfg_path.read_text())
    raw["paths"]["data_root"] = str(root)
    raw["cells"] = {"windows_days": WINDOWS, "confidence": 0.95, "min_accounts": 5, "report_days": 120}
    raw.setdefault("ingest", {})["payment_late_days"] = 0
    cfg_path = tmp_path / "riskline-cells.yaml"
    cfg_path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    cfg = load_config(cfg_path)
    night = e2e_lake.as_of + dt.timedelta(days=1)
    run_night(root, night, cfg, RunOptions(retrain=False))  # writes the report with this config's windows
    return root, night, cfg


def test_cells_section_renders_the_readout(e2e_lake, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    from pipelines.report.cells import cny_text
    from pipelines.store.cell_outcomes import read_cell_readout
    from pipelines.store.zones import report_path

    root, night, cfg = _cells_lake(e2e_lake, tmp_path)
    first = night - dt.timedelta(days=cfg.cells.report_days - 1)
    expected = read_cell_readout(root, first, night, cfg, newest=night)
    # the first night's assignments have one matured window (1 day); the second night's have none yet
    assert expected.nights == [e2e_lake.as_of, night]
    assert expected.outcomes["window_days"].unique().to_list() == [1]
    assert expected.assignments.height > 0

    with sync_api.sync_playwright() as pw:
        browser = launch(pw)
        try:
            page, errors = watched_page(browser, 1440, 900)
            page.goto(report_path(root, night).as_uri(), wait_until="load")
            page.locator("#cells").screenshot(path=str(artifact("report-cells-e2e.png")))
            rows = page.evaluate(
                "() => Array.from(document.querySelectorAll('#cells tr[data-cells-metric]')).map(r => ({"
                " action: r.dataset.cellsAction, window: Number(r.dataset.cellsWindow), metric: r.dataset.cellsMetric,"
                " cell: r.dataset.cellsCell, fields: Object.fromEntries(Array.from(r.querySelectorAll("
                "'[data-cells-field]')).map(c => [c.dataset.cellsField, {raw: c.dataset.raw, low: c.dataset.low,"
                " high: c.dataset.high, text: c.textContent.trim()}]))}))")
            immature = page.evaluate(
                "() => Array.from(document.querySelectorAll('#cells [data-cells-immature]'))"
                ".map(e => [e.dataset.cellsImmature, e.textContent.trim()])")
            assigned = page.evaluate(
                "() => Array.from(document.querySelectorAll('#cells h3[data-cells-action-header]')).map(h => ["
                " h.dataset.cellsActionHeader, Object.fromEntries(Array.from(h.querySelectorAll("
                "'[data-cells-assigned]')).map(b => [b.dataset.cellsAssigned, Number(b.textContent.replace(/,/g, ''))]))])")
            width = page.evaluate("() => document.querySelector('#cells').scrollWidth")
        finally:
            browser.close()

    assert errors == []
    assert width <= 1440  # the section fits the screen

    def number(text: str | None) -> float | None:
        return None if text in (None, "") else float(text)

    # every matured window's row on the page is the readout's row, number for number
    matured = expected.readout.filter(
        (pl.col("window_days") == 1) & (pl.col("matured").sum().over("tested_action", "window_days") > 0))
    assert len(rows) == matured.height > 0
    by_key = {(r["tested_action"], r["window_days"], r["metric"], r["test_cell"]): r
              for r in matured.iter_rows(named=True)}
    for shown in rows:
        row = by_key[(shown["action"], shown["window"], shown["metric"], shown["cell"])]
        f = shown["fields"]
        assert int(f["matured"]["raw"]) == row["matured"]
        assert number(f["n"]["raw"]) == row["n"]
        pairs = [(f["value"]["raw"], row["value"]), (f["diff"]["raw"], row["diff"]),
                 (f["ci"]["low"], row["ci_low"]), (f["ci"]["high"], row["ci_high"]),
                 (f["diff_ci"]["low"], row["diff_low"]), (f["diff_ci"]["high"], row["diff_high"])]
        for text, value in pairs:
            if row["metric"] == "exposure_change":  # money: exact decimal CNY, as in --json
                assert (text or None) == cny_text(value), (shown, row)
            else:
                assert number(text) == (None if value is None else pytest.approx(value)), (shown, row)
        assert f["verdict"]["text"] == row["verdict"]
    # the 30-day windows are named as not matured, with the date they mature on
    for action in expected.readout["tested_action"].unique().to_list():
        due = expected.readout.filter((pl.col("tested_action") == action) & (pl.col("window_days") == 30))
        assert [action + "-30", f"30-day window: not yet matured (matures on {due['matures_on'].min()}: 30 days + 0 "
                "days for late payments)."] in immature
    # the accounts per cell in each heading are the assignments'
    counts = expected.assignments.group_by("tested_action", "test_cell").len()
    assert expected.readout["policy_version"].unique().to_list() == [cfg.policy.version]
    for action, cells in assigned:
        for cell, n in cells.items():
            got = counts.filter((pl.col("tested_action") == action) & (pl.col("test_cell") == cell))["len"]
            assert n == (int(got[0]) if got.len() else 0)
