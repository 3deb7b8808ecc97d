"""A new user's first hour in Airflow, as they meet it: `make airflow`'s deployment (real scheduler, DAGs
paused at creation), the UI in headless Chromium, the README's commands run as written.

On a demo-like lake (one night published and trained, the next three days landed), the user logs in,
triggers riskline_nightly from the form with every param at its default (the form's "unpause on trigger"
ticked, so the scheduler also creates its own run for yesterday, which has no landing drop), and the manual
run succeeds without anyone touching another run; the consumer DAG runs on the published asset event; the
README's backfill command, run verbatim in a shell that sourced airflow_home/env.sh, rebuilds its dates
through the real scheduler, without retraining; the UI then shows the runs and no failed one.
Screenshots go to test-artifacts/. Every process started is stopped at the end.

One deployment serves the whole module: starting Airflow and running three nights through it is the slowest
thing the suite does, so the scheduler's backfill and the UI are checked on this user's deployment.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import subprocess
import time
import urllib.error
from pathlib import Path

import pytest

from pipelines.store import publish
from tools.airflow_local import LocalAirflow
from pipelines.contracts.outputs import OUTPUTS

from .browser import artifact, launch
from .conftest import wait_for

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
NIGHTLY, CONSUMER, WHATIF = "riskline_nightly", "riskline_agent_queue_export", "riskline_policy_whatif"
FINAL = ("success", "failed")


REPO_ROOT = README.parent
BACKFILL_COMMANDS = ("make backfill", "airflow backfill create")


def readme_backfill_command() -> str:
    """The README's backfill command as written: the first fenced line starting ``make backfill`` or holding
    ``airflow backfill create``, with its continuation lines."""
    blocks: list[list[str]] = []
    inside = False
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
            if inside:
                blocks.append([])
        elif inside:
            blocks[-1].append(line)
    for lines in blocks:
        for i, line in enumerate(lines):
            if any(line.lstrip().startswith(c) or c.startswith("airflow") and c in line for c in BACKFILL_COMMANDS):
                command = [line]
                while command[-1].rstrip().endswith("\\") and i + len(command) < len(lines):
                    command.append(lines[i + len(command)])
                return "\n".join(command)
    raise AssertionError(f"README.md has no {' or '.join(BACKFILL_COMMANDS)} command in a fenced block")


def business_dates_of(command: str) -> list[dt.date]:
    """The business dates a README backfill covers: FROM=/TO= business dates (make backfill), or fire times
    --from-date/--to-date (airflow backfill create: the run for D fires at D+1)."""
    found = dict(re.findall(r"\b(FROM|TO)=(\d{4}-\d{2}-\d{2})", command))
    if found:
        first, last = (dt.date.fromisoformat(found[k]) for k in ("FROM", "TO"))
    else:
        fire = dict(re.findall(r"--(from-date|to-date)[= ]+(\S+)", command))
        first, last = (dt.datetime.fromisoformat(fire[k]).date() - dt.timedelta(days=1)
                       for k in ("from-date", "to-date"))
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _runs(af: LocalAirflow, token: str, dag_id: str) -> list[dict]:
    return af.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100&order_by=run_after", token=token)["dag_runs"]


def _business_date(af: LocalAirflow, token: str, run_id: str) -> str:
    xcom = af.api("GET", f"/api/v2/dags/{NIGHTLY}/dagRuns/{run_id}/taskInstances/business_date/xcomEntries/"
                  "return_value", token=token)
    return str(xcom["value"]).strip('"')


@pytest.fixture(scope="module")
def deployment(e2e_lake, tmp_path_factory: pytest.TempPathFactory):
    root = e2e_lake.copy_to(tmp_path_factory.mktemp("first-hour") / "lake")
    home = tmp_path_factory.mktemp("first-hour-home") / "airflow_home"  # named as `make airflow`'s
    before = os.environ.get("RISKLINE_CONFIG")
    os.environ["RISKLINE_CONFIG"] = str(e2e_lake.cfg_path)  # the lake's own (shorter) training window
    try:
        with LocalAirflow(home=home, data_root=root) as af:
            token = af.token()
            wait_for("both DAGs serialized", lambda: {NIGHTLY, CONSUMER} <= {
                d["dag_id"] for d in af.api("GET", "/api/v2/dags", token=token)["dags"]}, 120, 2)
            yield af, root, token, e2e_lake
    finally:
        if before is None:
            os.environ.pop("RISKLINE_CONFIG", None)
        else:
            os.environ["RISKLINE_CONFIG"] = before


def _login(page, af: LocalAirflow) -> None:
    page.goto(f"{af.url}/", wait_until="networkidle")
    page.fill("input[name='username']", "admin")
    page.fill("input[name='password']", af.password())
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "login" not in url, timeout=30_000)
    page.wait_for_load_state("networkidle")


def test_api_requires_login(deployment) -> None:
    af = deployment[0]
    with pytest.raises(urllib.error.HTTPError) as err:
        af.api("GET", f"/api/v2/dags/{NIGHTLY}")
    assert err.value.code == 401


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


def _trigger_from_the_form(af: LocalAirflow, dag_id: str, shot: str, run_created, after: str | None = None) -> None:
    """A new user's trigger: the DAG's page, **Trigger**, every field as it comes ("unpause on trigger" ticked),
    **Trigger**; waits until ``run_created()`` finds the run. No page error on the way."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            _login(page, af)
            _goto(page, f"{af.url}/dags/{dag_id}")
            page.get_by_role("button", name="Trigger").first.click()
            dialog = page.get_by_role("dialog")
            dialog.get_by_text("Unpause").first.wait_for(timeout=30_000)
            page.wait_for_timeout(1500)  # the form renders the params
            page.screenshot(path=str(artifact(shot)))
            submit = dialog.get_by_role("button", name="Trigger")
            assert submit.is_enabled(), f"the {dag_id} form refuses its own defaults"
            submit.click()
            wait_for(f"the {dag_id} run from the form", run_created, 60, 1, af)
        finally:
            if after:
                page.screenshot(path=str(artifact(after)))
            browser.close()
    assert not errors, errors


def test_policy_whatif_from_the_form_with_defaults(deployment) -> None:
    """A policy owner's first try of the what-if DAG: Trigger, change nothing, Trigger. The default candidate is
    the live policy under <live>-whatif: the run succeeds, writes its page, and nothing a real run reads moves."""
    from pipelines.config.settings import load_config
    from pipelines.store import zones

    af, root, token, lake = deployment
    wait_for("the what-if DAG serialized", lambda: WHATIF in {
        d["dag_id"] for d in af.api("GET", "/api/v2/dags", token=token)["dags"]}, 120, 2, af)
    before = _lake_digest(root)
    _trigger_from_the_form(af, WHATIF, "first-hour-whatif-form.png",
                           lambda: _runs(af, token, WHATIF))
    runs = wait_for("the what-if run to finish", lambda: (
        r if (r := _runs(af, token, WHATIF)) and all(x["state"] in FINAL for x in r) else None), 300, 3, af)
    assert [r["state"] for r in runs] == ["success"], runs
    live = load_config(lake.cfg_path).policy.version
    page_file = zones.simulation_partition(root, f"{live}-whatif", lake.first_run) / zones.SIMULATION_PAGE
    assert page_file.is_file(), page_file
    assert _lake_digest(root) == before, "the what-if changed a file a real run reads"


def _lake_digest(root: Path) -> dict[str, str]:
    """sha256 of every file a real run reads (all but the simulations zone and the locks' own files)."""
    import hashlib

    from pipelines.store import zones

    skip = {zones.SIMULATIONS_ZONE, "_locks"}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.relative_to(root).parts[0] not in skip}


def test_first_hour_trigger_with_defaults_consumer_and_readme_backfill(deployment) -> None:
    from playwright.sync_api import sync_playwright

    af, root, token, lake = deployment
    started = time.monotonic()
    dags = {d["dag_id"]: d for d in af.api("GET", "/api/v2/dags", token=token)["dags"]}
    assert dags[NIGHTLY]["is_paused"] and not dags[CONSUMER]["is_paused"]  # the consumer needs no unpausing

    # 1. Trigger from the form, every field as it comes (params at their defaults, "unpause on trigger" ticked).
    _trigger_from_the_form(af, NIGHTLY, "first-hour-trigger-form.png",
                           lambda: [r for r in _runs(af, token, NIGHTLY) if r["run_type"] == "manual"],
                           after="first-hour-after-trigger.png")

    # 2. It succeeds on its own: the run the unpause created (yesterday, no drop) must not hold it Queued.
    def settled():
        runs = _runs(af, token, NIGHTLY)
        manual = [r for r in runs if r["run_type"] == "manual"]
        return runs if manual and all(r["state"] in FINAL for r in runs) else None

    runs = wait_for("the manual run and the scheduled one to finish", settled, 600, 5, af)
    manual = next(r for r in runs if r["run_type"] == "manual")
    assert manual["state"] == "success", runs
    # with every default, a manual run in a lake not fed for yesterday reruns the newest published night
    assert _business_date(af, token, manual["dag_run_id"]) == lake.first_run.isoformat()
    # the grid labels every mapped task with the business date it processes
    shard = af.api("GET", f"/api/v2/dags/{NIGHTLY}/dagRuns/{manual['dag_run_id']}/taskInstances/build_features/0",
                   token=token)
    assert shard["rendered_map_index"] == f"{lake.first_run} shard 0", shard
    scheduled = [r for r in runs if r["run_type"] == "scheduled"]
    for run in scheduled:  # skipped at once, saying why in the sensor's log, instead of poking for six hours
        base = f"/api/v2/dags/{NIGHTLY}/dagRuns/{run['dag_run_id']}/taskInstances"
        tis = af.api("GET", f"{base}?limit=100", token=token)["task_instances"]
        waits = [t for t in tis if t["task_id"].endswith(".wait")]
        assert waits and all(t["state"] == "skipped" for t in waits), [(t["task_id"], t["state"]) for t in tis]
        log = af.api("GET", f"{base}/{waits[0]['task_id']}/logs/1", token=token)
        assert "this lake is not fed for" in json.dumps(log), log
    manual_done = time.monotonic() - started
    print(f"\nmanual run with the form's defaults: success in {manual_done:.0f} s "
          f"(scheduled runs skipped: {len(scheduled)})")

    # 3. The consumer DAG runs on the collection_queue asset event and exports that night's queue.
    consumer = wait_for("the consumer DAG's run", lambda: [
        r for r in _runs(af, token, CONSUMER) if r["state"] in FINAL], 180, 3, af)
    assert [r["state"] for r in consumer] == ["success"], consumer
    assert (root / "exports" / "agent_queue" / f"as_of_date={lake.first_run}" / "agent_queue.csv").is_file()

    # 4. The README's backfill command, verbatim, from the repository root, in a shell that sourced this
    # deployment's airflow_home/env.sh (the README's way to reach a `make airflow` from another shell).
    command = readme_backfill_command()
    days = business_dates_of(command)
    assert days and days[0] > lake.first_run and days[-1] <= lake.end, (
        f"the README's backfill covers {days}; the test lake has nights {lake.first_run} .. {lake.end}")
    command = f"source {shlex.quote(str(af.home / 'env.sh'))}\n{command}"
    # a shell with nothing of ours set: only what env.sh exports (PYTHONPATH passes, for a checkout run
    # without an install)
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(af.home.parent),
            **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    shell = subprocess.run(["bash", "-c", command], cwd=REPO_ROOT, capture_output=True, text=True,
                           timeout=120, env=bare)
    assert shell.returncode == 0, shell.stdout + shell.stderr

    def backfill_done():
        runs = [r for r in _runs(af, token, NIGHTLY) if r["run_type"] == "backfill"]
        return runs if len(runs) == len(days) and all(r["state"] in FINAL for r in runs) else None

    backfill = wait_for("the README's backfill", backfill_done, 900, 5, af)
    assert [r["state"] for r in backfill] == ["success"] * len(days), backfill
    assert sorted(_business_date(af, token, r["dag_run_id"]) for r in backfill) == [d.isoformat() for d in days]
    for day in days:
        assert publish.manifest_path(root, day).is_file(), day
        for name in OUTPUTS:
            assert (publish.output_dir(root, name, day) / "_SUCCESS").is_file(), (name, day)
    # Backfills never retrain: the champion of each date scored it.
    for run in backfill:
        ti = af.api("GET", f"/api/v2/dags/{NIGHTLY}/dagRuns/{run['dag_run_id']}/taskInstances/train_challenger",
                    token=token)
        assert ti["state"] == "skipped", (run["dag_run_id"], ti["state"])

    errors = []
    with sync_playwright() as pw:  # what the user sees afterwards
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        _login(page, af)
        _goto(page, f"{af.url}/dags/{NIGHTLY}")
        page.get_by_text("build_features").first.wait_for(timeout=30_000)  # the grid's task rows
        page.wait_for_timeout(2000)
        page.screenshot(path=str(artifact("airflow-dag-grid.png")))
        overview = page.inner_text("body")
        _goto(page, f"{af.url}/dags/{NIGHTLY}/runs")
        page.get_by_text("backfill").first.wait_for(timeout=30_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(artifact("first-hour-runs.png")))
        runs_page = page.inner_text("body").lower()
        browser.close()
    assert re.search(r"\b0\s+Failed Runs", overview), overview[:1500]
    # the manual run and every backfill date, each listed as a success
    assert runs_page.count("success") >= len(days) + 1, runs_page[:2000]
    assert not errors, errors
    print(f"first hour: {time.monotonic() - started:.0f} s after Airflow was up ({len(days)}-date backfill)")
