"""The report's trends on a real multi-night lake, opened in headless Chromium at 1440 px: the trend strip's
numbers equal the manifests and outputs they summarise, the expected-loss tile equals the night's book, the
30-day roll counts the accounts of both ledgers, a night published before manifests carried the book shows
only what its outputs hold, no console error, and nothing overflows the screen."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from .browser import artifact, launch, watched_page
from .trend_lake import TrendLake, build_trend_lake

from pipelines.config.settings import load_config
from pipelines.report import trends
from pipelines.report.sections import dpd_bucket, money_to_cents
from pipelines.store import lake, publish, zones

# Chromium, and a lake of its own (about 2 minutes on 2 cores: history ingest, one training, three nights)
pytestmark = pytest.mark.slow
VIEWPORT = {"width": 1440, "height": 900}

# Everything the page tags, read in one pass: trend cells, missing cells, row sources, EL tile, 30-day roll,
# empty-state messages, overflow at this viewport (the page and every table against its container).
READ_PAGE = """() => {
  const all = (sel, f) => Array.from(document.querySelectorAll(sel)).map(f);
  return {
    trend: all('[data-trend]', e => [e.dataset.night, e.dataset.trend, e.dataset.value]),
    missing: all('[data-missing]', e => [e.dataset.night, e.dataset.missing]),
    sources: all('[data-night-row]', e => [e.dataset.nightRow, e.dataset.source]),
    el: all('[data-el]', e => [e.dataset.el, e.dataset.cents ?? null, e.textContent.trim()]),
    roll30: all('[data-roll30-from]', e => [e.dataset.roll30From, e.dataset.roll30To, Number(e.dataset.accounts)]),
    empty: all('[data-empty]', e => [e.dataset.empty, e.textContent.trim(), e.getBoundingClientRect().height > 0]),
    images: all('img', i => [i.alt, i.complete, i.naturalWidth]),
    pageWidth: document.scrollingElement.scrollWidth,
    wideTables: all('table', t => [t.className || t.querySelector('th')?.textContent, t.scrollWidth, t.parentElement.clientWidth])
      .filter(([, w, c]) => w > c),
  };
}"""


@pytest.fixture(scope="module")
def trend_lake(tmp_path_factory: pytest.TempPathFactory) -> TrendLake:
    return build_trend_lake(tmp_path_factory.mktemp("trend-lake"))


def _open(page_path: Path, shot: str | None = None) -> tuple[dict[str, Any], list[str]]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = launch(pw)
        try:
            page, errors = watched_page(browser, VIEWPORT["width"], VIEWPORT["height"])
            page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))
            page.goto(page_path.as_uri(), wait_until="load")
            page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
            if shot:
                page.screenshot(path=str(artifact(shot)), full_page=False)
            read = page.evaluate(READ_PAGE)
            return {k: [tuple(x) for x in v] if isinstance(v, list) else v for k, v in read.items()}, errors
        finally:
            browser.close()


def _shown(read: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(night, field): value for night, field, value in read["trend"]}


def test_trend_strip_equals_the_manifests_and_outputs_it_summarises(trend_lake: TrendLake) -> None:
    from pipelines.report import plots
    from pipelines.report.render import render_report
    from pipelines.report.report import collect_report_data

    root, cfg_path, nights = trend_lake
    cfg = load_config(cfg_path)
    as_of = nights[-1]
    page_path = zones.report_path(root, as_of)
    # regenerating from the same lake gives the same bytes (the trend reads manifests, never the clock)
    data = collect_report_data(root, as_of, cfg)
    assert page_path.read_text(encoding="utf-8") == render_report(data, plots.draw_charts(data))
    read, errors = _open(page_path, "report-trends-multi-night.png")
    assert errors == []
    assert [alt for alt, complete, width in read["images"] if not (complete and width > 0)] == []
    assert any(alt.startswith("Trend strip") for alt, _, _ in read["images"])
    assert read["pageWidth"] <= VIEWPORT["width"] and read["wideTables"] == []

    shown = _shown(read)
    # the lake's nights are spaced: every date between them is a row "not published", never silently skipped
    span = [nights[0] + dt.timedelta(days=i) for i in range((nights[-1] - nights[0]).days + 1)]
    assert sorted(read["sources"]) == [(str(d), "manifest" if d in nights else "missing") for d in span]
    for night in nights:
        book = publish.read_manifest(root, night)["book"]
        key = str(night)
        # against the manifest's book summary ...
        assert int(shown[key, "accounts"]) == book["accounts"]
        assert int(shown[key, "dpd30_accounts"]) == book["dpd30_accounts"]
        assert int(shown[key, "outstanding_cents"]) == trends.text_to_cents(book["outstanding_principal"])
        assert int(shown[key, "expected_loss_cents"]) == trends.text_to_cents(book["expected_loss"])
        # ... and against the data it summarises: the night's ledger and published outputs
        ledger = lake.read_parquet(lake.partition_file(zones.ledger_partition(root, night), "accounts.parquet"))
        owing = ledger.filter((pl.col("outstanding_principal_cents") > 0) | (pl.col("overdue_cents") > 0))
        assert int(shown[key, "accounts"]) == owing.height
        assert int(shown[key, "dpd30_accounts"]) == owing.filter(pl.col("dpd") >= 30).height
        assert int(shown[key, "outstanding_cents"]) == owing["outstanding_principal_cents"].sum()
        queue = publish.read_output(root, "collection_queue", night)
        assert int(shown[key, "queue_size"]) == queue.height
        assert int(shown[key, "queue_expected_loss_cents"]) == queue.select(money_to_cents("expected_loss")).sum().item()
        limits = publish.read_output(root, "limits", night, columns=["action"])
        for action, count in limits.group_by("action").len().iter_rows():
            assert int(shown[key, f"action_{action}"]) == count, (night, action)
    # the first night has no previous one: no score PSI, said as missing; the later ones hold theirs
    assert (str(nights[0]), "score_psi") in read["missing"]
    for night in nights[1:]:
        assert float(shown[str(night), "score_psi"]) == pytest.approx(publish.read_manifest(root, night)["book"]["score_psi"])

    # the EL tile is D's book, and the queue's part of it
    book = publish.read_manifest(root, as_of)["book"]
    tile = {name: cents for name, cents, _ in read["el"]}
    assert int(tile["expected_loss_cents"]) == trends.text_to_cents(book["expected_loss"]) > 0
    assert int(tile["queue_expected_loss_cents"]) == trends.text_to_cents(book["queue_expected_loss"])

    # the 30-day roll: D against the night nearest D - 30 (nights[0], one day off), every account on both ledgers;
    # an account owing nothing (no principal, nothing overdue) is "no balance", never "current"
    def buckets(night: Any) -> pl.DataFrame:
        accounts = lake.read_parquet(lake.partition_file(zones.ledger_partition(root, night), "accounts.parquet"))
        owes = (accounts["outstanding_principal_cents"] > 0) | (accounts["overdue_cents"] > 0)
        bucket = accounts.select(dpd_bucket(pl.col("dpd"), cfg.collections.buckets))[:, 0]
        return pl.DataFrame({"account_id": accounts["account_id"],
                             "bucket": [b if o else "no balance" for b, o in zip(bucket, owes)]})

    both = buckets(nights[0]).join(buckets(as_of), on="account_id", suffix="_now")
    cells = read["roll30"]
    assert sum(n for _, _, n in cells) == both.height > 0
    for from_bucket, to_bucket, n in both.group_by("bucket", "bucket_now").len().iter_rows():
        assert (from_bucket, to_bucket, n) in cells
    # the current row holds exactly the accounts owing money and not past due on that night
    current_then = both.filter(pl.col("bucket") == "current").height
    assert sum(n for f, _, n in cells if f == "current") == current_then
    assert not any(name in ("trend_strip", "roll30", "el_tile") for name, _, _ in read["empty"])


def test_a_night_published_before_the_book_summary_shows_only_what_its_outputs_hold(
    trend_lake: TrendLake, tmp_path: Path
) -> None:
    from pipelines.report.report import write_report

    root = tmp_path / "lake"
    shutil.copytree(trend_lake.root, root, symlinks=True)
    cfg = load_config(trend_lake.cfg_path)
    old, as_of = trend_lake.nights[0], trend_lake.nights[-1]
    # the manifest the code before the book summary wrote: the same, without "book"
    path = publish.manifest_path(root, old)
    manifest = json.loads(path.read_text())
    del manifest["book"]
    path.write_bytes(publish.canonical_json(manifest))
    read, errors = _open(write_report(root, as_of, cfg))
    assert errors == []
    assert (str(old), "outputs") in read["sources"]
    missing = {field for night, field in read["missing"] if night == str(old)}
    assert {"accounts", "dpd30_accounts", "dpd30_rate", "outstanding_cents", "expected_loss_cents", "score_psi"} <= missing
    shown = _shown(read)
    queue = publish.read_output(root, "collection_queue", old)
    assert int(shown[str(old), "queue_size"]) == queue.height
    assert int(shown[str(old), "queue_expected_loss_cents"]) == queue.select(money_to_cents("expected_loss")).sum().item()
    limits = publish.read_output(root, "limits", old, columns=["action"])
    for action, count in limits.group_by("action").len().iter_rows():
        assert int(shown[str(old), f"action_{action}"]) == count
