"""The policy what-if's pure pieces: the comparison and its definitions, the swap matrix, exposure and expected loss
by grade, the test-cell re-draw, and the candidate's validation (the live policy's own rules)."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import polars as pl
import pytest
import yaml

from pipelines.config.candidate import CandidateError, candidate_yaml, parse_candidate_policy
from pipelines.config.decisions import LIMIT_ACTIONS, PolicyConfig
from pipelines.config.section import ConfigError
from pipelines.config.settings import load_config
from pipelines.domain.policy import POLICY_INPUT_SCHEMA, decide_limits
from pipelines.report.sections import format_cny_cents
from pipelines.report.whatif import (
    STAYS_FROZEN_CUT, WhatIfError, WhatIfPage, by_grade, cell_redraw, compare_decisions,
    frozen_and_cut, harsher_accounts, policy_changes, render_whatif, sample_explanations, swap_matrix, wording_samples,
)


def _decisions(rows: list[tuple]) -> pl.DataFrame:
    """Decision frames as decide_limits returns them, the columns the what-if reads:
    (account, grade, pd, previous cents, action, new cents, new status, cell)."""
    return pl.DataFrame(
        [{"account_id": a, "grade": g, "pd": p, "dpd": 0, "previous_limit_cents": prev, "action": act,
          "new_limit_cents": new, "new_status": status, "test_cell": cell, "reason_codes": [act.upper()],
          "explanation_en": f"{act} to {new}", "explanation_zh": f"{act}：{new}"}
         for a, g, p, prev, act, new, status, cell in rows],
        schema={"account_id": pl.String, "grade": pl.String, "pd": pl.Float64, "dpd": pl.Int32,
                "previous_limit_cents": pl.Int64, "action": pl.String, "new_limit_cents": pl.Int64,
                "new_status": pl.String, "test_cell": pl.String, "reason_codes": pl.List(pl.String),
                "explanation_en": pl.String, "explanation_zh": pl.String},
    )


def _pair(live: tuple, candidate: tuple) -> pl.DataFrame:
    """One account decided (action, new limit, new status) by each side, from a 1,000 CNY line."""
    return compare_decisions(_decisions([("A1", "C", 0.1, 100_000, *live, "champion")]),
                             _decisions([("A1", "C", 0.1, 100_000, *candidate, "champion")]))


@pytest.mark.parametrize(("live", "candidate", "harsher", "gentler", "because", "relabelled"), [
    # a deeper cut: less credit
    (("decrease", 80_000, "active"), ("decrease", 50_000, "active"), True, False, "lower limit", False),
    # an increase withheld: the candidate's line is below the live one's
    (("increase", 120_000, "active"), ("hold", 100_000, "active"), True, False, "lower limit", False),
    # a freeze where live held: the line is blocked, at the same limit
    (("hold", 100_000, "active"), ("freeze", 100_000, "frozen"), True, False, "line frozen", False),
    # an unfreeze withheld (a frozen hold): the line stays blocked
    (("unfreeze", 100_000, "active"), ("hold", 100_000, "frozen"), True, False, "line frozen", False),
    # a freeze of an open line that becomes a cut: a lower limit, but the line stays open: harsher and gentler
    (("freeze", 100_000, "frozen"), ("decrease", 70_000, "active"), True, True, "lower limit", False),
    # an already-frozen line cut instead of re-frozen: it stays frozen AND gets a lower limit: harsher only
    (("freeze", 100_000, "frozen"), ("decrease", 50_000, "frozen"), True, False, "lower limit", False),
    # an already-frozen line held frozen instead of re-frozen: the same outcome under another label
    (("freeze", 100_000, "frozen"), ("hold", 100_000, "frozen"), False, False, None, True),
    (("hold", 100_000, "frozen"), ("freeze", 100_000, "frozen"), False, False, None, True),
    # a cut withheld: gentler only
    (("decrease", 70_000, "active"), ("hold", 100_000, "active"), False, True, None, False),
    # a shallower cut is still a cut: gentler by the limit alone
    (("decrease", 50_000, "active"), ("decrease", 80_000, "active"), False, True, None, False),
    # the same decision
    (("hold", 100_000, "active"), ("hold", 100_000, "active"), False, False, None, False),
])
def test_harsher_and_gentler_are_judged_on_the_outcome_not_the_label(live, candidate, harsher, gentler, because,
                                                                       relabelled):
    row = _pair(live, candidate).row(0, named=True)
    assert (row["harsher"], row["gentler"]) == (harsher, gentler)
    assert (row["harsher_because"] or None) == because
    assert row["relabelled"] is relabelled
    assert row["changed"] is (harsher or gentler)


def test_the_comparison_refuses_two_decisions_of_different_accounts():
    live = _decisions([("A1", "A", 0.01, 100_000, "hold", 100_000, "active", "champion")])
    other = _decisions([("A2", "A", 0.01, 100_000, "hold", 100_000, "active", "champion")])
    with pytest.raises(WhatIfError, match="1 only live, 1 only candidate"):
        compare_decisions(live, other)


def _book() -> tuple[pl.DataFrame, pl.DataFrame]:
    live = _decisions([
        ("A1", "A", 0.01, 100_000, "increase", 130_000, "active", "champion"),
        ("A2", "A", 0.02, 100_000, "increase", 130_000, "active", "control"),
        ("A3", "C", 0.10, 200_000, "decrease", 160_000, "active", "champion"),
        ("A4", "E", 0.50, 300_000, "freeze", 300_000, "frozen", "challenger"),
        ("A5", None, None, 50_000, "hold", 50_000, "active", "champion"),
    ])
    candidate = _decisions([
        ("A1", "A", 0.01, 100_000, "hold", 100_000, "active", "champion"),
        ("A2", "A", 0.02, 100_000, "increase", 130_000, "active", "control"),
        ("A3", "C", 0.10, 200_000, "decrease", 100_000, "active", "champion"),
        ("A4", "E", 0.50, 300_000, "freeze", 300_000, "frozen", "challenger"),
        ("A5", None, None, 50_000, "hold", 50_000, "active", "champion"),
    ])
    return live, candidate


def test_the_swap_matrix_counts_every_pair_of_actions_and_fills_zeros():
    matrix = swap_matrix(compare_decisions(*_book()))
    assert matrix["live_action"].to_list() == list(LIMIT_ACTIONS)
    assert matrix.columns == ["live_action", *LIMIT_ACTIONS, "total"]
    cells = {(r["live_action"], b): r[b] for r in matrix.iter_rows(named=True) for b in LIMIT_ACTIONS}
    # A1 increase -> hold; A2 increase -> increase; A3 decrease -> decrease (deeper); A4 freeze; A5 hold
    expected = {("increase", "hold"): 1, ("increase", "increase"): 1, ("decrease", "decrease"): 1,
                ("freeze", "freeze"): 1, ("hold", "hold"): 1}
    assert cells == {k: expected.get(k, 0) for k in cells}
    assert matrix["total"].sum() == 5


def test_exposure_and_expected_loss_by_grade_are_exact_cents():
    table = by_grade(compare_decisions(*_book()), ("A", "B", "C", "D", "E"), lgd=0.85, unscored_pd=1.0)
    rows = {r["grade"]: r for r in table.iter_rows(named=True)}
    assert list(rows) == ["A", "C", "E", "unscored"]  # grades in the model's order, unscored last, empty ones absent
    a, c, unscored = rows["A"], rows["C"], rows["unscored"]
    # grade A: live raises both lines by 300 CNY (+60,000 cents), the candidate only A2's (+30,000)
    assert (a["live_exposure_change_cents"], a["candidate_exposure_change_cents"], a["exposure_delta_cents"]) == (
        60_000, 30_000, -30_000)
    # EL = pd x new limit x lgd per account, rounded to the cent: A1 0.01 x 130,000 x 0.85 = 1,105 live and
    # 0.01 x 100,000 x 0.85 = 850 candidate; A2 0.02 x 130,000 x 0.85 = 2,210 on both sides
    assert (a["live_el_cents"], a["candidate_el_cents"], a["el_delta_cents"]) == (3_315, 3_060, -255)
    # grade C: the cut deepens from 1,600 to 1,000 CNY: EL 0.1 x 160,000 x 0.85 = 13,600 -> 8,500
    assert (c["el_delta_cents"], c["exposure_delta_cents"], c["harsher"], c["changed"]) == (-5_100, -60_000, 1, 1)
    # an unscored line counts with collections.unscored_pd (1.0): 50,000 x 0.85
    assert unscored["live_el_cents"] == unscored["candidate_el_cents"] == 42_500
    assert table["accounts"].sum() == 5 and table["el_delta_cents"].dtype == pl.Int64


def test_the_harsher_list_puts_the_largest_cut_first_and_samples_are_affected_accounts():
    comparison = compare_decisions(*_book())
    harsher = harsher_accounts(comparison)
    assert harsher["account_id"].to_list() == ["A3", "A1"]  # -60,000 before -30,000
    samples = sample_explanations(comparison, rows=1)
    assert samples["account_id"].to_list() == ["A1"]  # the first affected by id; the candidate's own texts
    assert samples["candidate_explanation_zh"].to_list() == ["hold：100000"]


def test_the_cell_redraw_counts_moved_cells_and_the_outcomes_they_change():
    live, shown = _book()
    assert cell_redraw(shown, None).redrawn is False
    redrawn = shown.with_columns(  # A2 leaves control and is raised; A4 moves cell with the same outcome
        test_cell=pl.when(pl.col("account_id") == "A2").then(pl.lit("champion"))
        .when(pl.col("account_id") == "A4").then(pl.lit("champion")).otherwise(pl.col("test_cell")),
        new_limit_cents=pl.when(pl.col("account_id") == "A2").then(140_000).otherwise(pl.col("new_limit_cents")),
    )
    redraw = cell_redraw(shown, redrawn)
    assert (redraw.redrawn, redraw.moved, redraw.outcomes_differ) == (True, 2, 1)
    assert redraw.cells["accounts"].sum() == 5


def test_policy_changes_name_every_changed_key():
    assert policy_changes({"a": {"b": 1, "c": [1, 2]}, "v": "x"}, {"a": {"b": 2, "c": [1, 2]}, "v": "y"}) == [
        ("policy.a.b", "1", "2"), ("policy.v", "x", "y")]


def _page(comparison: pl.DataFrame, **fields) -> WhatIfPage:
    """The page of ``comparison`` as the stage builds it (counts from the frame)."""
    return WhatIfPage(**{
        "as_of": dt.date(2026, 11, 19), "live_version": "live-1", "candidate_version": "cand-<2>", "model_version": "m1",
        "accounts": comparison.height, "changed": int(comparison["changed"].sum()),
        "harsher": int(comparison["harsher"].sum()), "gentler": int(comparison["gentler"].sum()),
        "relabelled": int(comparison["relabelled"].sum()), "wording_changed": int(comparison["wording_changed"].sum()),
        "candidate_source": "cand.yaml", "candidate_sha256": "ab" * 32, "swap": swap_matrix(comparison),
        "grades": by_grade(comparison, ("A", "B", "C", "D", "E"), 0.85, 1.0),
        "harsher_rows": harsher_accounts(comparison), "samples": sample_explanations(comparison, 10),
        "cells": cell_redraw(comparison, None), "changes": [], "wording": wording_samples(comparison, 10), **fields})


def test_a_candidate_that_changes_only_the_wording_shows_the_customers_who_would_read_it():
    live = _decisions([("A1", "A", 0.01, 100_000, "hold", 100_000, "active", "champion"),
                       ("A2", "B", 0.02, 100_000, "hold", 100_000, "active", "champion")])
    reworded = live.with_columns(
        explanation_en=pl.when(pl.col("account_id") == "A2").then(pl.lit("NEW WORDING")).otherwise("explanation_en"))
    comparison = compare_decisions(live, reworded)
    assert comparison["changed"].sum() == 0 and comparison["wording_changed"].to_list() == [False, True]
    html = render_whatif(_page(comparison))
    assert 'data-total="wording_changed">1<' in html and 'data-wording-account="A2"' in html
    assert "NEW WORDING" in html and "No account is affected" not in html
    # the zh text alone counts too
    zh_only = compare_decisions(live, live.with_columns(explanation_zh=pl.lit("新措辞")))
    assert zh_only["wording_changed"].sum() == 2


def test_the_headline_shows_exact_cents_so_its_difference_adds_up():
    assert format_cny_cents(83_692_857) == "¥836,928.57" and format_cny_cents(-6_635_549) == "-¥66,355.49"
    assert format_cny_cents(-5) == "-¥0.05" and format_cny_cents(0) == "¥0.00"


def test_a_frozen_line_cut_while_it_stays_frozen_is_named_with_its_text():
    live = _decisions([("A1", "D", 0.2, 100_000, "freeze", 100_000, "frozen", "champion")])
    cut = _decisions([("A1", "D", 0.2, 100_000, "decrease", 50_000, "frozen", "champion")])
    count, text = frozen_and_cut(compare_decisions(live, cut))
    assert (count, text) == (1, "decrease to 50000")
    assert frozen_and_cut(compare_decisions(live, live)) == (0, None)


def test_the_frozen_and_cut_note_quotes_a_text_that_says_draws_stay_paused():
    # The docs' example: a candidate that raises freeze.min_dpd to 40 cuts a frozen line at 35 DPD the live policy
    # re-freezes. Decided by the real engine, so the note's sample is the text those customers would get.
    cfg = load_config()
    base = cfg.policy.model_dump()
    base["strategy_test"] |= {"control_share": 0.0, "challenger_share": 0.0}
    live_policy = PolicyConfig.model_validate(base)
    candidate = PolicyConfig.model_validate({**base, "freeze": {"min_dpd": 40}})
    row = dict(account_id="A1", status="frozen", credit_limit_cents=100_000, annual_income_cents=None,
               opened_on=dt.date(2023, 1, 1), language=None, dpd=35, overdue_cents=20_000,
               outstanding_principal_cents=50_000, days_since_dpd=0, days_on_book=500, months_on_book=16,
               utilization=0.5, pd=0.3, grade="D", reason_1=None, reason_2=None, reason_3=None, model_version="m",
               previous_pd=0.3, previous_grade="D", days_since_limit_change=None, days_since_decrease=None)
    inputs = pl.DataFrame([row], schema=POLICY_INPUT_SCHEMA)
    live, cut = (decide_limits(inputs, p, cfg.product) for p in (live_policy, candidate))
    assert (live["action"][0], cut["action"][0], cut["new_status"][0]) == ("freeze", "decrease", "frozen")
    count, text = frozen_and_cut(compare_decisions(live, cut))
    # 1,000 CNY x grade D's 0.7 = 700; the customer is told the pause stays and how it lifts
    assert count == 1 and text.startswith("Your credit line was lowered from 1000 CNY to 700 CNY because ")
    assert "new draws on it remain paused" in text and "current for 30 days" in text
    note = STAYS_FROZEN_CUT.format(count=count, sample=text)
    assert "'decrease_frozen'" in note and note.endswith(text)


def test_the_page_tags_every_swap_cell_with_its_count():
    comparison = compare_decisions(*_book())
    page = _page(comparison)
    html = render_whatif(page)
    assert 'data-candidate-sha256>' + "ab" * 32 in html
    cells = re.findall(r'data-live-action="(\w+)" data-candidate-action="(\w+)" data-count="(\d+)"', html)
    assert len(cells) == len(LIMIT_ACTIONS) ** 2
    assert {(a, b): int(n) for a, b, n in cells if int(n)} == {
        ("increase", "hold"): 1, ("increase", "increase"): 1, ("decrease", "decrease"): 1, ("freeze", "freeze"): 1,
        ("hold", "hold"): 1}
    assert "cand-&lt;2&gt;" in html and "cand-<2>" not in html  # every value escaped
    assert "<script" not in html


# --- the candidate: validated by the live policy's own rules -------------------------------------------------


@pytest.fixture(scope="module")
def live_section(cfg) -> dict:
    return yaml.safe_load(candidate_yaml(cfg.policy))["policy"]


def test_a_candidate_is_accepted_as_a_policy_section_or_bare(cfg, live_section):
    wrapped = parse_candidate_policy(yaml.safe_dump({"policy": live_section}, allow_unicode=True))
    bare = parse_candidate_policy(yaml.safe_dump(live_section, allow_unicode=True))
    assert wrapped == bare == cfg.policy.model_copy(update={"version": cfg.policy.version + "-whatif"})


def _set(section: dict, key: str, value) -> dict:
    out = yaml.safe_load(yaml.safe_dump(section, allow_unicode=True))
    *path, last = key.split(".")
    node = out
    for part in path:
        node = node[part]
    if value is _DROP:
        del node[last]
    else:
        node[last] = value
    return out


_DROP = object()
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("increase.max_grade", "D", "policy grade cut-offs are out of order: want increase.max_grade (D)"),
    ("decrease.factor_by_grade.A", 0.1, "policy.decrease.factor_by_grade is out of order"),
    ("decrease.factor_by_grade.E", 1.5, "policy.decrease.factor_by_grade values must be in (0, 1]"),
    ("decrease.min_dpd", 30, "policy.decrease.min_dpd must be below policy.freeze.min_dpd"),
    ("freeze.min_dpd", 0, "policy.freeze.min_dpd: Input should be greater than or equal to 1"),
    ("increase.step_by_grade", {"A": 0.3}, "policy.increase.step_by_grade must name exactly the grades up to"),
    ("decrease.factr", 0.5, "policy.decrease.factr: Extra inputs are not permitted"),
    ("strategy_test.testable_actions", ["freeze"], "action 'freeze' cannot be tested"),
    ("explanations", _DROP, "policy.explanations: Field required"),
    ("explanations.templates.en.increase", "raised to {new_limt}", "placeholder {new_limt} is not one of"),
    # finite and bounded: these passed and then crashed the decide step (an overflow, not a refusal)
    ("increase.income_multiple", float("inf"), "policy.increase.income_multiple: Input should be a finite number"),
    ("increase.income_multiple", 1e300, "policy.increase.income_multiple: Input should be less than or equal to 100"),
    ("limit_step_cny", 10**17, "policy.limit_step_cny: Input should be less than or equal to 1000000"),
])
def test_an_invalid_candidate_is_refused_in_one_line_as_the_live_config_would_be(live_section, tmp_path, key,
                                                                                 value, message):
    section = _set(live_section, key, value)
    with pytest.raises(CandidateError) as refused:
        parse_candidate_policy(yaml.safe_dump({"policy": section}, allow_unicode=True), "cand.yaml")
    text = str(refused.value)
    assert "\n" not in text and text.startswith("cand.yaml is invalid: ")
    assert message in text
    # the same policy in riskline.yaml fails to load: the same rules, not a copy of them
    raw = yaml.safe_load((REPO_ROOT / "riskline.yaml").read_text())
    raw["model"]["definition"] = str(REPO_ROOT / raw["model"]["definition"])
    raw["policy"] = section
    path = tmp_path / "riskline.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(ConfigError, match=re.escape(message.split(": ")[-1][:40])):
        load_config(path)


def test_a_limit_step_beyond_the_product_limits_is_refused_for_the_candidate_and_the_live_config(live_section,
                                                                                                  tmp_path):
    section = _set(live_section, "limit_step_cny", 60_000)  # riskline.yaml's product.max_limit_cny is 50,000
    text = yaml.safe_dump({"policy": section}, allow_unicode=True)
    parse_candidate_policy(text, "cand.yaml")  # alone, the policy section cannot know the product
    with pytest.raises(CandidateError, match=r"^cand.yaml is invalid: policy.limit_step_cny: 60000 is larger than "
                                             r"product.max_limit_cny \(50000\)"):
        parse_candidate_policy(text, "cand.yaml", (50, 50_000))
    raw = yaml.safe_load((REPO_ROOT / "riskline.yaml").read_text())
    raw["model"]["definition"] = str(REPO_ROOT / raw["model"]["definition"])
    raw["policy"] = section
    path = tmp_path / "riskline.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(ConfigError, match="policy.limit_step_cny: 60000 is larger than product.max_limit_cny"):
        load_config(path)


@pytest.mark.parametrize(("text", "message"), [
    ("policy: [", "cand.yaml is not valid YAML at line 1"),
    ("- a\n- b\n", "cand.yaml must hold a mapping"),
    ("product: {min_limit_cny: 10}\npolicy: {}\n", "holds sections other than policy: ['product']"),
    ("policy: 3\n", "cand.yaml: policy must be a mapping"),
])
def test_a_candidate_that_is_not_a_policy_section_is_refused(text, message):
    with pytest.raises(CandidateError, match=re.escape(message)):
        parse_candidate_policy(text, "cand.yaml")


@pytest.mark.parametrize("version", ["../outputs", "a/b", "..", "x..y", "", "-lead", "a b"])
def test_a_candidate_version_that_cannot_name_a_folder_is_refused(tmp_path, version):
    from pipelines.store import zones

    with pytest.raises(ValueError, match="cannot name a folder") as refused:
        zones.simulation_partition(tmp_path, version, dt.date(2026, 11, 19))
    assert "letters A-Z a-z, digits, '.', '_' and '-'" in str(refused.value)  # says what is allowed
    assert ("it holds '..'" in str(refused.value)) is (".." in version)
    ok = zones.simulation_partition(tmp_path, "limits-2026.12.0_b", dt.date(2026, 11, 19))
    assert ok == tmp_path.resolve() / "simulations" / "limits-2026.12.0_b" / "as_of_date=2026-11-19"


# --- the candidate file and the DAG's params ------------------------------------------------------------------


def test_a_candidate_file_that_must_not_be_read_whole_is_refused_in_one_line(tmp_path):
    from pipelines.entry.cli_args import CliError
    from pipelines.entry.simulate import read_candidate_file

    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"policy:\n  version: \xff\xfe bad\n")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * 5_000 + b"\n")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = [(latin1, "is not UTF-8 text (byte offset 19)"), (fifo, "is not a regular file"), (big, "5,003 bytes, more than simulate.max_candidate_bytes"),
             (Path("/dev/zero"), "is not a regular file"), (tmp_path, "Is a directory")]
    for path, message in cases:
        with pytest.raises(CliError) as refused:
            read_candidate_file(str(path), max_bytes=4_000)
        assert message in str(refused.value) and "\n" not in str(refused.value)
    good = tmp_path / "good.yaml"
    good.write_text("policy:\n  version: v-测试\n", encoding="utf-8")
    assert read_candidate_file(str(good), max_bytes=4_000) == good.read_bytes()


def test_the_dag_refuses_an_unknown_param_key_before_anything_runs():
    from pipelines.entry.simulate import WhatIfFailed, run_whatif_dag

    with pytest.raises(WhatIfFailed) as refused:
        run_whatif_dag({"candidate": "policy: {version: x}", "as_of": None}, data_root="/nonexistent/riskline")
    lines = str(refused.value).splitlines()
    assert lines[0] == "unknown param(s) ['candidate']: the what-if takes ['as_of', 'candidate_policy']"
    assert lines[-1].startswith("NEXT STEP: trigger again with only the params candidate_policy and as_of")


def test_a_malformed_candidate_in_the_dag_ends_with_a_next_step(tmp_path):
    from pipelines.entry.simulate import WhatIfFailed, run_whatif_dag

    with pytest.raises(WhatIfFailed) as refused:
        run_whatif_dag({"candidate_policy": "policy:\n  freeze: {min_dpdd: 3}\n"}, data_root=str(tmp_path))
    first, last = str(refused.value).splitlines()
    assert first.startswith("candidate_policy is invalid: policy.")
    assert last.startswith("NEXT STEP: fix the key named above in the candidate_policy param")
