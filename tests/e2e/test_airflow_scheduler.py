"""Airflow for real: scheduler, dag-processor, triggerer and API server on loopback, a 3-day backfill
through the REST API, and the UI in headless Chromium. Every process started is stopped at the end."""

from __future__ import annotations

import datetime as dt
import re
import time
import urllib.error
from pathlib import Path

import pytest

from pipelines.store import publish
from tools.airflow_local import LocalAirflow
from pipelines.contracts.outputs import OUTPUTS

from .browser import artifact, launch

BACKFILL_DAYS = 3


def _fire(business_date: dt.date) -> str:
    """The run for business date D fires at D+1 02:00 Asia/Shanghai (see the DAG's docs)."""
    return f"{business_date + dt.timedelta(days=1)}T02:00:00+08:00"


@pytest.fixture(scope="module")
def airflow(e2e_lake, tmp_path_factory: pytest.TempPathFactory):
    root = e2e_lake.copy_to(tmp_path_factory.mktemp("scheduler") / "lake")
    home = tmp_path_factory.mktemp("airflow_home")
    with LocalAirflow(home=home, data_root=root) as af:
        token = af.token()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait for the dag-processor to serialize the DAG
            dags = {d["dag_id"] for d in af.api("GET", "/api/v2/dags", token=token)["dags"]}
            if "riskline_nightly" in dags:
                break
            time.sleep(2)
        af.api("PATCH", "/api/v2/dags/riskline_nightly", {"is_paused": False}, token=token)
        yield af, root, token, e2e_lake.first_run


def test_api_requires_login(airflow):
    af, _, _, _ = airflow
    with pytest.raises(urllib.error.HTTPError) as err:
        af.api("GET", "/api/v2/dags")
    assert err.value.code == 401


def test_three_day_backfill_succeeds_and_publishes_each_date(airflow):
    af, root, token, first_run = airflow
    days = [first_run + dt.timedelta(days=i) for i in range(1, BACKFILL_DAYS + 1)]
    started = time.monotonic()
    backfill = af.api("POST", "/api/v2/backfills", {
        "dag_id": "riskline_nightly", "from_date": _fire(days[0]), "to_date": _fire(days[-1]),
        "max_active_runs": 1, "reprocess_behavior": "none", "dag_run_conf": {},
    }, token=token)
    deadline = time.monotonic() + 900
    runs: list[dict] = []
    while time.monotonic() < deadline:
        runs = af.api("GET", "/api/v2/dags/riskline_nightly/dagRuns?run_type=backfill&limit=50",
                      token=token)["dag_runs"]
        states = [r["state"] for r in runs]
        if len(runs) == BACKFILL_DAYS and all(s in ("success", "failed") for s in states):
            break
        time.sleep(5)
    elapsed = time.monotonic() - started
    print(f"3-day backfill {backfill['id']} through the real scheduler: {elapsed:.0f} s")
    assert [r["state"] for r in runs] == ["success"] * BACKFILL_DAYS, runs
    for day in days:
        assert publish.manifest_path(root, day).is_file(), day
        for name in OUTPUTS:
            assert (publish.output_dir(root, name, day) / "_SUCCESS").is_file()
    # Backfills never retrain: the champion of each date scored it.
    for run in runs:
        ti = af.api("GET", f"/api/v2/dags/riskline_nightly/dagRuns/{run['dag_run_id']}/taskInstances/train_challenger",
                    token=token)
        assert ti["state"] == "skipped", run["dag_run_id"]


def _goto(page, url: str, attempts: int = 3) -> None:
    """Navigate, retrying when the single-page app aborts the load with a client-side redirect of its own."""
    from playwright.sync_api import Error

    for attempt in range(attempts):
        try:
            page.goto(url, wait_until="networkidle")
            return
        except Error as exc:
            if "ERR_ABORTED" not in str(exc) or attempt == attempts - 1:
                raise
            page.wait_for_timeout(1000)


def test_ui_shows_the_successful_runs(airflow):
    from playwright.sync_api import sync_playwright

    af, _, _, _ = airflow
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{af.url}/", wait_until="networkidle")
        page.fill("input[name='username']", "admin")
        page.fill("input[name='password']", af.password())
        page.keyboard.press("Enter")
        page.wait_for_url(lambda url: "login" not in url, timeout=30_000)
        page.wait_for_load_state("networkidle")
        _goto(page, f"{af.url}/dags/riskline_nightly")
        page.get_by_text("build_features").first.wait_for(timeout=30_000)  # the grid's task rows
        page.wait_for_timeout(2000)
        shot = artifact("airflow-dag-grid.png")
        page.screenshot(path=str(shot), full_page=False)
        print(f"screenshot: {shot}")
        overview = page.inner_text("body")
        _goto(page, f"{af.url}/dags/riskline_nightly/runs")
        page.get_by_text("backfill").first.wait_for(timeout=30_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(artifact("airflow-dag-runs.png")), full_page=False)
        runs_page = page.inner_text("body").lower()
        browser.close()
    assert "riskline_nightly" in overview and re.search(r"\b0\s+Failed Runs", overview), overview[:1500]
    assert runs_page.count("success") >= BACKFILL_DAYS, runs_page[:2000]
    assert not errors, errors
