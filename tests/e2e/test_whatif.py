"""The policy what-if on a real lake (the e2e night): `riskline simulate` and the manual DAG.

It must leave every file a real run reads byte-identical (only DATA_ROOT/simulations/ is new), reproduce the
published limits with the live policy (zero changes), and find exactly the accounts a harsher candidate cuts
deeper, recomputed here from the published limits alone. The page is opened in Chromium and held to the frame.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import yaml

from pipelines.config.candidate import candidate_yaml, parse_candidate_policy
from pipelines.config.decisions import LIMIT_ACTIONS
from pipelines.config.settings import load_config
from pipelines.entry.cli import main
from pipelines.stages.whatif import SimulationRefused, simulate_policy
from pipelines.store import zones
from pipelines.store.publish import read_output

from .browser import artifact, launch, watched_page

HALVED = "limits-2026.12.0-halved-cuts"


def _lake_state(root: Path) -> dict[str, str]:
    """sha256 of every file and every folder's presence under the data root, but the simulations zone."""
    state = {}
    for folder, dirs, files in os.walk(root):
        rel = Path(folder).relative_to(root)
        if rel.parts[:1] == (zones.SIMULATIONS_ZONE,):
            continue
        state[f"{rel}/"] = "dir"
        for name in files:
            state[str(rel / name)] = hashlib.sha256((Path(folder) / name).read_bytes()).hexdigest()
    return state


def _write_candidate(path: Path, policy_text: str, version: str, factor: float | None = None) -> Path:
    raw = yaml.safe_load(policy_text)
    raw["policy"]["version"] = version
    if factor is not None:  # the champion's cuts deeper: every grade's factor x ``factor``
        table = raw["policy"]["decrease"]["factor_by_grade"]
        raw["policy"]["decrease"]["factor_by_grade"] = {g: round(f * factor, 4) for g, f in table.items()}
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
    return path


def _simulate(lake, candidate: Path, capsys) -> Path:
    rc = main(["--config", str(lake.cfg_path), "--data-root", str(lake.root), "simulate", "--policy", str(candidate),
               "--as-of", lake.first_run.isoformat()])
    out, err = capsys.readouterr()
    assert rc == 0, err
    page = Path(out.strip().splitlines()[-1])
    assert page.is_file() and page.parent.parent.parent.name == zones.SIMULATIONS_ZONE
    return page.parent


def _expected_harsher(lake, cfg, factor: float) -> set[str]:
    """From the published limits alone, in plain integers: the champion lines cut on the night whose cut, with
    every factor x ``factor``, falls below the published new limit (control lines hold, challenger lines keep
    the challenger's own factors, and no other rule reads a decrease factor)."""
    limits = read_output(lake.root, "limits", lake.first_run)
    grades = dict(read_output(lake.root, "scores", lake.first_run).select("account_id", "grade").iter_rows())
    step = cfg.policy.limit_step_cny * 100
    floor = -(-cfg.product.min_limit_cny * 100 // step) * step
    worst = cfg.policy.grades[-1]
    harsher = set()
    for row in limits.filter((pl.col("action") == "decrease") & (pl.col("test_cell") == "champion")).iter_rows(named=True):
        previous = int(row["previous_limit"] * Decimal(100))
        factor_bp = round(round(cfg.policy.decrease.factor_by_grade[grades.get(row["account_id"]) or worst] * factor, 4)
                          * 10_000)
        cut = min(previous, max(floor, previous * factor_bp // 10_000 // step * step))
        if cut < int(row["new_limit"] * Decimal(100)):
            harsher.add(row["account_id"])
    return harsher


def test_simulate_leaves_the_lake_byte_identical_reproduces_live_and_finds_the_harsher_set(copy_lake, tmp_path, capsys):
    lake = copy_lake()
    cfg = load_config(lake.cfg_path)
    before = _lake_state(lake.root)

    # 1. the live policy under a what-if version: the self-check passes and nothing changes
    live = _simulate(lake, _write_candidate(tmp_path / "live.yaml", candidate_yaml(cfg.policy), "live-whatif"), capsys)
    comparison = pl.read_parquet(live / zones.SIMULATION_COMPARISON_FILE)
    published = read_output(lake.root, "limits", lake.first_run)
    assert comparison.height == published.height > 2000
    assert not comparison["changed"].any() and not comparison["harsher"].any() and not comparison["gentler"].any()
    mine = pl.read_parquet(live / zones.SIMULATION_LIMITS_FILE)
    assert mine.drop("policy_version").equals(published.drop("policy_version"))
    assert set(mine["policy_version"]) == {"live-whatif"}

    # 2. every champion cut deeper: exactly the lines a plain recomputation from the published limits finds
    halved = _simulate(lake, _write_candidate(tmp_path / "halved.yaml", candidate_yaml(cfg.policy), HALVED, 0.5), capsys)
    comparison = pl.read_parquet(halved / zones.SIMULATION_COMPARISON_FILE)
    expected = _expected_harsher(lake, cfg, 0.5)
    assert len(expected) >= 20  # the night cuts enough champion lines for the check to mean something
    assert set(comparison.filter("harsher")["account_id"]) == expected
    assert set(comparison.filter("changed")["account_id"]) == expected  # nothing else moves
    assert (comparison.filter("harsher")["harsher_because"] == "lower limit").all()
    assert set(comparison.filter("changed")["candidate_action"]) == {"decrease"}
    assert not comparison["gentler"].any()

    # nothing a real run reads changed: same files, same bytes, no new file or folder (no lock, marker, chain mark)
    assert _lake_state(lake.root) == before
    assert sorted(p.name for p in (lake.root / zones.SIMULATIONS_ZONE).iterdir()) == sorted(["live-whatif", HALVED])


def test_simulate_refuses_when_the_live_policy_does_not_reproduce_the_night(copy_lake, capsys):
    lake = copy_lake()
    cfg = load_config(lake.cfg_path)
    before = _lake_state(lake.root)
    # the live riskline.yaml changed a rule since the night but kept its version: the night is not reproduced
    changed = cfg.policy.model_copy(update={"increase": cfg.policy.increase.model_copy(update={"min_utilization": 0.0})})
    candidate = cfg.policy.model_copy(update={"version": "cand-1"})
    with pytest.raises(SimulationRefused, match=r"does not reproduce its published limits: (action|new_limit)"):
        simulate_policy(lake.root, lake.first_run, cfg.model_copy(update={"policy": changed}), candidate)
    # ... and a night decided under another version than the live one is refused by name
    renamed = cfg.model_copy(update={"policy": cfg.policy.model_copy(update={"version": "limits-9"})})
    with pytest.raises(SimulationRefused, match=f"decided under policy {cfg.policy.version}"):
        simulate_policy(lake.root, lake.first_run, renamed, candidate)
    with pytest.raises(SimulationRefused, match="nothing was published"):
        simulate_policy(lake.root, lake.first_run - dt.timedelta(days=1), cfg, candidate)
    # a candidate under the live version: refused whatever its rules (the live policy itself included)
    for same in (cfg.policy, changed):
        with pytest.raises(SimulationRefused, match="a candidate must carry its own version"):
            simulate_policy(lake.root, lake.first_run, cfg, same)
    assert _lake_state(lake.root) == before and not (lake.root / zones.SIMULATIONS_ZONE).exists()
    # an invalid candidate: one line, exit 2, naming the key
    bad = lake.root.parent / "bad.yaml"
    bad.write_text(candidate_yaml(cfg.policy).replace("max_grade: B", "max_grade: E", 1))
    rc = main(["--config", str(lake.cfg_path), "--data-root", str(lake.root), "simulate", "--policy", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "increase.max_grade (E)" in err, err


def test_a_stale_night_or_one_being_published_is_refused_with_the_step_that_helps(copy_lake):
    from pipelines.store import chain, locks

    lake = copy_lake()
    cfg = load_config(lake.cfg_path)
    candidate = cfg.policy.model_copy(update={"version": "cand-1"})
    day = lake.first_run
    # a run holds the night's lock (pipelines/stages/night.py: date_lock): found without taking it
    lock = lake.root / "_locks" / f"run-{day.isoformat()}.lock"
    with locks.file_lock(lock, blocking=False):
        assert locks.is_held(lock)
        with pytest.raises(SimulationRefused, match=f"^a run is publishing {day} now; retry when it finishes$"):
            simulate_policy(lake.root, day, cfg, candidate)
    assert not locks.is_held(lock)
    # a publish journal of the night (a publish in progress, or one interrupted and not yet rolled forward)
    journal = lake.root / "outputs" / "_journal" / f"as_of_date={day.isoformat()}.json"
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text("{}")
    with pytest.raises(SimulationRefused, match="a run is publishing"):
        simulate_policy(lake.root, day, cfg, candidate)
    journal.unlink()
    # an earlier night was rerun: this one is stale; the advice is the rebuild, not "simulate a later one"
    chain.mark_stale(lake.root, [day], "the night before it was rerun")
    with pytest.raises(SimulationRefused) as refused:
        simulate_policy(lake.root, day, cfg, candidate)
    assert str(refused.value) == (f"{day} is stale (the night before it was rerun): its published limits are not what "
                                  f"its inputs decide now; rebuild it first with `riskline rebuild --from {day}`, "
                                  "then simulate")
    assert not (lake.root / zones.SIMULATIONS_ZONE).exists()


def test_a_wording_only_candidate_is_counted_and_the_page_names_the_file_that_made_it(copy_lake, tmp_path, capsys):
    lake = copy_lake()
    cfg = load_config(lake.cfg_path)
    raw = yaml.safe_load(candidate_yaml(cfg.policy, "limits-reworded"))
    raw["policy"]["explanations"]["templates"]["en"]["hold"] += " NEW WORDING."
    first = tmp_path / "reworded.yaml"
    first.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
    folder = _simulate(lake, first, capsys)
    comparison = pl.read_parquet(folder / zones.SIMULATION_COMPARISON_FILE)
    holds = comparison.filter((pl.col("live_action") == "hold") & (pl.col("live_new_status") == "active"))
    reworded = comparison.filter(pl.col("candidate_explanation_en").str.ends_with("NEW WORDING."))
    assert not comparison["changed"].any() and reworded.height > 100
    # exactly the lines that read the plain hold text (other holds: frozen, payment pending, grace period)
    assert set(comparison.filter("wording_changed")["account_id"]) == set(reworded["account_id"])
    assert set(reworded["account_id"]) <= set(holds["account_id"])
    html = (folder / zones.SIMULATION_PAGE).read_text()
    assert f'data-total="wording_changed">{reworded.height:,}<' in html and "NEW WORDING" in html
    assert "No account is affected" not in html
    sha_first = hashlib.sha256(first.read_bytes()).hexdigest()
    assert f"<code data-candidate-sha256>{sha_first}</code>" in html
    # the same version simulated again from another file: the folder holds the last one whole, and says which
    second = tmp_path / "reworded-2.yaml"
    raw["policy"]["explanations"]["templates"]["en"]["hold"] += " AGAIN."
    second.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
    rc = main(["--config", str(lake.cfg_path), "--data-root", str(lake.root), "simulate", "--policy", str(second),
               "--as-of", lake.first_run.isoformat()])
    out = capsys.readouterr().out
    sha_second = hashlib.sha256(second.read_bytes()).hexdigest()
    assert rc == 0 and f"(sha256 {sha_second[:12]})" in out.splitlines()[0]
    html = (folder / zones.SIMULATION_PAGE).read_text()
    assert sha_second in html and sha_first not in html and "AGAIN." in html
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging folder left beside it


def test_the_whatif_page_opens_in_chromium_and_matches_the_simulated_frame(copy_lake, tmp_path, capsys):
    from playwright.sync_api import sync_playwright

    lake = copy_lake()
    cfg = load_config(lake.cfg_path)
    text = candidate_yaml(cfg.policy).replace("max_grade: B", "max_grade: A", 1)  # increase.max_grade, first
    raw = yaml.safe_load(text)
    raw["policy"]["increase"]["step_by_grade"] = {"A": 0.3}
    raw["policy"]["strategy_test"]["challenger"]["increase_step_by_grade"] = {"A": 0.2}
    candidate = tmp_path / "a-only.yaml"
    candidate.write_text(yaml.safe_dump(raw, allow_unicode=True))
    policy = parse_candidate_policy(candidate.read_text())
    assert policy.increase.max_grade == "A"
    folder = _simulate(lake, _write_candidate(candidate, candidate.read_text(), "limits-a-only", None), capsys)
    comparison = pl.read_parquet(folder / zones.SIMULATION_COMPARISON_FILE)
    counts = {(a, b): n for a, b, n in comparison.group_by("live_action", "candidate_action").len().iter_rows()}
    assert counts.get(("increase", "hold"), 0) > 0  # grade B raises withheld: the page has something to show

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page, errors = watched_page(browser, 1440, 900)
            page.goto((folder / zones.SIMULATION_PAGE).as_uri(), wait_until="load")
            page.screenshot(path=str(artifact("whatif-page.png")), full_page=True)
            cells = page.eval_on_selector_all(
                "td[data-live-action]", "els => els.map(e => [e.dataset.liveAction, e.dataset.candidateAction, "
                "e.dataset.count, e.textContent])")
            totals = page.eval_on_selector_all("[data-total]", "els => els.map(e => [e.dataset.total, "
                                               "e.dataset.cents || e.textContent])")
            grade_cents = page.eval_on_selector_all(
                "td[data-field='el_delta_cents']", "els => els.map(e => [e.dataset.grade, e.dataset.cents])")
            versions = [page.text_content(f"[data-{k}]") for k in ("candidate-version", "live-version", "model-version")]
            width = page.evaluate("document.documentElement.scrollWidth")
        finally:
            browser.close()
    assert errors == []
    assert width <= 1440  # fits the screen it is read on
    assert len(cells) == len(LIMIT_ACTIONS) ** 2
    for live_action, candidate_action, count, shown in cells:
        assert int(count) == counts.get((live_action, candidate_action), 0)
        assert int(shown.replace(",", "")) == int(count)
    totals = dict(totals)
    assert int(totals["changed"].replace(",", "")) == int(comparison["changed"].sum())
    assert int(totals["harsher"].replace(",", "")) == int(comparison["harsher"].sum())
    delta = comparison["candidate_new_limit_cents"] - comparison["live_new_limit_cents"]
    assert int(totals["exposure_delta_cents"]) == int(delta.sum()) < 0
    # EL change per grade: pd x new limit x lgd per account, rounded to the cent (riskline.yaml collections.lgd)
    el = comparison.with_columns(
        pl.col("grade").fill_null("unscored"),
        d=((pl.col("pd").fill_null(cfg.collections.unscored_pd) * cfg.collections.lgd
            * pl.col("candidate_new_limit_cents")).round(0)
           - (pl.col("pd").fill_null(cfg.collections.unscored_pd) * cfg.collections.lgd
              * pl.col("live_new_limit_cents")).round(0)).cast(pl.Int64),
    ).group_by("grade").agg(pl.col("d").sum())
    assert {g: int(c) for g, c in grade_cents} == dict(el.iter_rows())
    published = read_output(lake.root, "scores", lake.first_run)
    assert versions == ["limits-a-only", cfg.policy.version, published["model_version"][0]]


def test_the_manual_dag_with_its_defaults_simulates_the_newest_night_with_no_change(copy_lake, airflow_db,
                                                                                     monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    lake = copy_lake()
    monkeypatch.setenv("RISKLINE_DATA_ROOT", str(lake.root))
    monkeypatch.setenv("RISKLINE_CONFIG", str(lake.cfg_path))
    before = _lake_state(lake.root)
    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags"))
    assert bag.import_errors == {}
    dag_run = bag.dags["riskline_policy_whatif"].test()  # Trigger with every default
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert str(dag_run.state) == "success", states
    cfg = load_config(lake.cfg_path)
    folder = zones.simulation_partition(lake.root, f"{cfg.policy.version}-whatif", lake.first_run)
    comparison = pl.read_parquet(folder / zones.SIMULATION_COMPARISON_FILE)
    assert comparison.height > 2000 and not comparison["changed"].any()
    # a misspelled param key fails the run (it would otherwise simulate the default candidate, unnoticed)
    typo = bag.dags["riskline_policy_whatif"].test(run_conf={"candidate": "policy: {version: x}"})
    assert str(typo.state) == "failed"
    assert _lake_state(lake.root) == before


def test_the_reports_swap_set_reads_the_same_inputs_as_the_night(e2e_lake):
    # The report's counterfactual (the swap set) and the what-if now share read_decide_inputs: re-scored by the
    # night's own model, the counterfactual must take the published action on every line.
    from pipelines.report.report import _counterfactual_decisions

    cfg = load_config(e2e_lake.cfg_path)
    published = read_output(e2e_lake.root, "limits", e2e_lake.first_run).select("account_id", "action")
    model = read_output(e2e_lake.root, "scores", e2e_lake.first_run)["model_version"][0]
    counterfactual = _counterfactual_decisions(e2e_lake.root, e2e_lake.first_run, cfg, model)
    assert counterfactual.select("account_id", "action").equals(published)
