"""The run report of a real night, opened in headless Chromium: it renders offline, every chart loads, and
every number it takes from the run manifest equals the manifest's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from .browser import artifact, launch, watched_page

from pipelines.config.settings import load_config
from pipelines.store import publish


def _manifest_value(manifest: dict, key: str) -> object:
    value: object = manifest
    for part in key.split("."):
        value = value[part]  # type: ignore[index]
    return value


def test_report_opens_in_chromium_and_matches_the_manifest(e2e_lake, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    from pipelines.report import plots
    from pipelines.report.report import collect_report_data
    from pipelines.store.zones import report_path
    from pipelines.report.render import render_report

    root, as_of, cfg_path = e2e_lake
    cfg = load_config(cfg_path)
    manifest = json.loads(publish.manifest_path(root, as_of).read_text())
    page_path = report_path(root, as_of)
    # the nightly run wrote the report where its manifest says
    assert manifest["report"] == f"reports/as_of_date={as_of}/report.html"
    assert page_path == (root / manifest["report"]).resolve()
    # regenerating from the same lake gives the same bytes: no clock, no random order, PNGs without metadata
    again = render_report(data := collect_report_data(root, as_of, cfg), plots.draw_charts(data))
    assert page_path.read_text(encoding="utf-8") == again
    assert not re.search(r"""(src|href)=["']https?:""", again), "the page must not load anything from the network"

    shot = tmp_path / "report-first-screen.png"
    with sync_api.sync_playwright() as pw:
        browser = launch(pw)  # Debian's /usr/bin/chromium (apt-installed when missing and root, else skipped)
        try:
            page, errors = watched_page(browser, 1280, 900)
            failed: list[str] = []
            page.on("requestfailed", lambda req: failed.append(req.url))
            page.goto(page_path.as_uri(), wait_until="load")
            page.screenshot(path=str(shot))
            print(f"\nreport screenshot: {shot}")
            images = page.evaluate(
                "() => Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"
            )
            shown = page.evaluate(
                "() => Array.from(document.querySelectorAll('[data-manifest]'))"
                ".map(e => [e.dataset.manifest, e.textContent.trim()])"
            )
            actions = page.evaluate(
                "() => Array.from(document.querySelectorAll('[data-action]')).map(e => e.textContent.trim())"
            )
            treatments = page.evaluate(
                "() => Array.from(document.querySelectorAll('[data-treatment]')).map(e => e.textContent.trim())"
            )
            docs_href = page.evaluate(
                "() => document.querySelector('#data a[href*=\"data_docs\"]')?.getAttribute('href')"
            )
            # issue 20: at a 1440 px screen nothing scrolls sideways, and a one-night lake says why its trend and
            # 30-day roll are empty instead of drawing empty charts
            page.set_viewport_size({"width": 1440, "height": 900})
            wide = page.evaluate(
                "() => [document.scrollingElement.scrollWidth, Array.from(document.querySelectorAll('table'))"
                ".map(t => [t.className, t.scrollWidth, t.parentElement.clientWidth]).filter(([, w, c]) => w > c)]"
            )
            empty = page.evaluate(
                "() => Array.from(document.querySelectorAll('[data-empty]'))"
                ".map(e => [e.dataset.empty, e.getBoundingClientRect().height > 0])"
            )
        finally:
            browser.close()

    assert errors == [] and failed == []
    # trend, ROC, KS, calibration, scores, importance, delinquency, vintage, exposure, changes, queue: 11 charts
    # (no roll-rate chart: this lake has one night, so no previous run); each must have decoded
    assert len(images) == 11
    assert [alt for alt, complete, width in images if not (complete and width > 0)] == []
    keys = {key for key, _ in shown}
    assert {"outputs.scores.rows", "outputs.limits.rows", "outputs.collection_queue.rows",
            "outputs.hardship_offers.rows", "model_version", "policy_version"} <= keys
    for key, text in shown:
        expected = _manifest_value(manifest, key)
        if isinstance(expected, int):
            assert int(text.replace(",", "")) == expected, key
        else:
            assert text == expected, key
    # the headline's per-action and per-treatment counts add up to the manifest's row counts
    assert sum(int(a.replace(",", "")) for a in actions) == manifest["outputs"]["limits"]["rows"]
    assert sum(int(t.replace(",", "")) for t in treatments) == manifest["outputs"]["collection_queue"]["rows"]
    assert docs_href and (page_path.parent / docs_href).resolve().is_file()
    assert wide[0] <= 1440 and wide[1] == [], wide
    assert ["trend_strip", True] in empty and ["roll30", True] in empty, empty


def test_riskline_report_regenerates_the_page(e2e_lake, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from pipelines.entry.cli import main

    root = e2e_lake.copy_to(tmp_path / "lake")
    as_of = e2e_lake.as_of
    page = root / "reports" / f"as_of_date={as_of}" / "report.html"
    before = page.read_bytes()
    page.unlink()
    assert main(["--config", str(e2e_lake.cfg_path), "--data-root", str(root), "report", "--as-of", str(as_of)]) == 0
    assert capsys.readouterr().out.strip() == str(page.resolve())
    assert page.read_bytes() == before  # same lake, same bytes
    # a date with nothing published is one clear error line and exit status 2
    assert main(["--config", str(e2e_lake.cfg_path), "--data-root", str(root), "report", "--as-of", "2026-01-01"]) == 2
    assert "nothing was published for 2026-01-01" in capsys.readouterr().err


def test_the_nights_data_docs_read_offline_in_chromium(e2e_lake) -> None:
    # GX Data Docs take their CSS and scripts from CDNs: offline their index was blank and pages unstyled.
    # With every non-file request refused, the index must list the night's validations and a page must be styled.
    sync_api = pytest.importorskip("playwright.sync_api")
    from pipelines.quality.data_docs import data_docs_dir

    root, as_of, _ = e2e_lake
    site = data_docs_dir(root, as_of)
    for page_file in site.rglob("*.html"):
        html = page_file.read_text(encoding="utf-8")
        assert not re.search(r"""(src=|<link[^>]*href=)["']https?:""", html), f"{page_file} loads from the network"
    with sync_api.sync_playwright() as pw:
        browser = launch(pw)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            remote: list[str] = []
            context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                          else (remote.append(route.request.url), route.abort()))
            page = context.new_page()
            page.goto((site / "index.html").as_uri(), wait_until="load")
            rows = page.evaluate("() => Array.from(document.querySelectorAll('tbody tr'))"
                                 ".map(r => Array.from(r.cells).map(c => c.textContent.trim()))")
            page.click("text=payments >> nth=0")
            page.wait_for_load_state("load")
            page.screenshot(path=str(artifact("data-docs-offline.png")))
            styled = page.evaluate("() => [getComputedStyle(document.body).fontFamily,"
                                   " getComputedStyle(document.querySelector('table.table th, table.table td'))"
                                   ".borderTopStyle]")
            text = page.inner_text("body")
        finally:
            browser.close()
    assert remote == []
    assert {r[0] for r in rows} >= {"accounts", "behaviour", "installments", "payments"}, rows
    assert all(r[2] in ("passed", "FAILED") for r in rows), rows
    assert "Expectation Validation Result" in text and "payments" in text
    assert "Times" not in styled[0] and styled[1] == "solid", styled
