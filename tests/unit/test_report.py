"""Unit tests for the run report's pure pieces (pipelines/report/report.py, pipelines/report/plots.py)."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from pipelines.config.decisions import CollectionBucket, CollectionsConfig
from pipelines.model import metrics
from pipelines.model.metrics import auc, ks_statistic
from pipelines.report import render, report, sections

BUCKETS = [
    CollectionBucket(name="1-7", min_dpd=1, treatment="auto_reminder"),
    CollectionBucket(name="8-30", min_dpd=8, treatment="smart_call"),
    CollectionBucket(name="31+", min_dpd=31, treatment="agent"),
]
D = dt.date


# --- money --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cents", "text"),
    [
        (0, "¥0"),
        (123_456_789, "¥1,234,568"),  # 1,234,567.89 yuan rounds up to the next yuan
        (50, "¥1"),  # half a yuan rounds away from zero ...
        (49, "¥0"),
        (-150, "-¥2"),  # ... on both sides of zero
        (-49, "¥0"),  # -0.49 is no yuan: no "-¥0"
        (10**17, "¥1,000,000,000,000,000"),  # integers all the way: no float rounding at this size
    ],
)
def test_format_cny_rounds_exact_cents_to_whole_yuan(cents: int, text: str) -> None:
    assert sections.format_cny(cents) == text


@pytest.mark.parametrize(
    ("cents", "text"),
    [
        (123_456_789, "¥1.2M"),  # 1,234,567.89 yuan
        (35_000_000, "¥350K"),  # 350,000 yuan: no ".0"
        (98_000, "¥980"),  # under a thousand yuan: whole yuan
        (-250_000, "-¥2.5K"),
        (99_996_000, "¥1M"),  # 999,960 yuan is 1,000.0K after rounding: shown in the next unit
        (250_000_000_000, "¥2.5B"),
        (0, "¥0"),
    ],
)
def test_format_cny_compact_picks_a_unit(cents: int, text: str) -> None:
    assert sections.format_cny_compact(cents) == text


def test_money_to_cents_is_exact_on_published_decimals() -> None:
    frame = pl.DataFrame(
        {"new_limit": [decimal.Decimal("12345678.91"), decimal.Decimal("-0.05")]},
        schema={"new_limit": pl.Decimal(18, 2)},
    )
    assert frame.select(sections.money_to_cents("new_limit"))["new_limit"].to_list() == [1_234_567_891, -5]


# --- portfolio ----------------------------------------------------------------------------------------


def test_delinquency_by_bucket_counts_accounts_owing_money() -> None:
    ledger = pl.DataFrame({
        "account_id": ["a", "b", "c", "d", "e"],
        "dpd": [0, 3, 10, 45, 0],
        "outstanding_principal_cents": [1000, 1000, 2000, 0, 0],
        "overdue_cents": [0, 100, 100, 500, 0],  # e owes nothing: not in the book; d owes only arrears: in
    })
    out = sections.delinquency_by_bucket(ledger, BUCKETS)
    assert out["bucket"].to_list() == ["current", "1-7", "8-30", "31+"]
    assert out["accounts"].to_list() == [1, 1, 1, 1]
    assert out["account_share"].to_list() == [0.25] * 4
    # balance shares: 1000, 1000, 2000, 0 of 4000 outstanding principal
    assert out["balance_share"].to_list() == [0.25, 0.25, 0.5, 0.0]


def _roll_ledger(ids: list[str], dpd: list[int], outstanding: list[int] | None = None) -> pl.DataFrame:
    outstanding = outstanding if outstanding is not None else [1_000] * len(ids)
    return pl.DataFrame({"account_id": ids, "dpd": dpd, "outstanding_principal_cents": outstanding,
                         "overdue_cents": [100 if d else 0 for d in dpd]})


def test_roll_rates_follow_accounts_on_both_ledgers() -> None:
    previous = _roll_ledger(["a", "b", "c", "d"], [0, 3, 10, 5])
    current = _roll_ledger(["a", "b", "c", "e"], [2, 0, 12, 40])
    out = sections.roll_rates(previous, current, BUCKETS)
    assert out.height == 25  # the full 5 x 5 grid (4 buckets and "no balance"), zeros included
    moved = {(r["from_bucket"], r["to_bucket"]): (r["accounts"], r["share"]) for r in out.iter_rows(named=True)}
    # a rolled forward, b cured; d is gone from tonight's ledger and e is new: neither counts
    assert moved[("current", "1-7")] == (1, 1.0)
    assert moved[("1-7", "current")] == (1, 1.0)
    assert moved[("8-30", "8-30")] == (1, 1.0)
    assert moved[("31+", "31+")] == (0, 0.0)  # an empty row has shares of 0, not NaN
    assert out["accounts"].sum() == 3


def test_roll_rates_keep_accounts_owing_nothing_out_of_current() -> None:
    # p owed nothing then and now; q owed nothing, drew, and is current; r was current and paid off;
    # s was 1-7 and paid off in full (not a cure); t was 1-7 and cured while owing; u current, rolled to 1-7
    previous = _roll_ledger(["p", "q", "r", "s", "t", "u"], [0, 0, 0, 4, 4, 0], [0, 0, 500, 500, 500, 500])
    current = _roll_ledger(["p", "q", "r", "s", "t", "u"], [0, 0, 0, 0, 0, 3], [0, 800, 0, 0, 500, 500])
    out = sections.roll_rates(previous, current, BUCKETS)
    moved = {(r["from_bucket"], r["to_bucket"]): (r["accounts"], r["share"]) for r in out.iter_rows(named=True)}
    assert out["from_bucket"].unique(maintain_order=True).to_list() == ["current", "1-7", "8-30", "31+", "no balance"]
    # current holds only the two accounts owing money (r, u): half rolled into 1-7, half paid off
    assert moved[("current", "current")] == (0, 0.0)
    assert moved[("current", "1-7")] == (1, 0.5)
    assert moved[("current", "no balance")] == (1, 0.5)
    # of 1-7, one cured while owing, one paid off: the pay-off is not a cure
    assert moved[("1-7", "current")] == (1, 0.5)
    assert moved[("1-7", "no balance")] == (1, 0.5)
    assert moved[("no balance", "no balance")] == (1, 0.5)
    assert moved[("no balance", "current")] == (1, 0.5)
    # an account with principal 0 but an unpaid overdue amount owes money: it keeps its bucket
    owes_overdue = pl.DataFrame({"account_id": ["v"], "dpd": [5], "outstanding_principal_cents": [0],
                                 "overdue_cents": [300]})
    held = sections.roll_rates(owes_overdue, owes_overdue, BUCKETS).filter(pl.col("accounts") > 0)
    assert held.select("from_bucket", "to_bucket").row(0) == ("1-7", "1-7")


def test_roll_rates_fail_loudly_without_dpd() -> None:
    with pytest.raises(pl.exceptions.ColumnNotFoundError):
        sections.roll_rates(pl.DataFrame({"account_id": ["a"]}), _roll_ledger(["a"], [0]), BUCKETS)


def test_vintage_curves_count_first_30_dpd_by_months_on_book() -> None:
    accounts = pl.DataFrame({
        "account_id": ["x", "y", "z", "v", "w"],
        "opened_on": [D(2026, 1, 10), D(2026, 1, 20), D(2026, 2, 5), D(2026, 2, 7), D(2025, 11, 1)],
    })
    installments = pl.DataFrame({
        "account_id": ["x", "y", "y", "z", "v", "w"],
        "due_date": [D(2026, 2, 10), D(2026, 2, 20), D(2026, 3, 20), D(2026, 3, 1), D(2026, 3, 1), D(2025, 12, 1)],
        "paid_off_date": [None, D(2026, 3, 1), None, D(2026, 4, 1), D(2026, 3, 31), None],
    })
    out = sections.vintage_curves(accounts, installments, D(2026, 4, 15), since=D(2025, 12, 1), dpd=30)
    # x: unpaid since Feb 10, 30 DPD on Mar 12 -> month 2 on book (Jan -> Mar);
    # y: one instalment paid at 9 DPD, the other only 26 DPD on Apr 15 -> never;
    # z: paid off Apr 1, so it was at 30 DPD on Mar 31 -> month 1 (Feb -> Mar);
    # v: paid off Mar 31, the day it would have turned 30 DPD -> never (29 at most);
    # w: opened before the lake's first date -> no vintage (its early loans are unseen).
    jan = out.filter(pl.col("vintage") == D(2026, 1, 1))
    feb = out.filter(pl.col("vintage") == D(2026, 2, 1))
    assert out["vintage"].unique().sort().to_list() == [D(2026, 1, 1), D(2026, 2, 1)]
    assert jan["months_on_book"].to_list() == [0, 1, 2, 3]  # up to April: 3 months on book
    assert jan["bad_accounts"].to_list() == [0, 0, 1, 1]
    assert jan["bad_rate"].to_list() == [0.0, 0.0, 0.5, 0.5]
    assert feb["bad_rate"].to_list() == [0.0, 0.5, 0.5]
    assert set(jan["accounts"].to_list()) == {2}


# --- decisions ----------------------------------------------------------------------------------------


def test_swap_set_keeps_only_accounts_whose_action_moved_with_the_model() -> None:
    tonight = pl.DataFrame({"account_id": ["a", "b", "c"], "action": ["hold", "decrease", "increase"],
                            "grade": ["B", "D", "A"]})
    previous_model = pl.DataFrame({"account_id": ["c", "b", "a", "d"], "action": ["increase", "hold", "hold", "freeze"],
                                   "grade": ["A", "C", "B", "E"]})
    swaps = sections.swap_set(tonight, previous_model)
    # only b changed action; d was not decided tonight (closed): not a swap
    assert swaps.to_dicts() == [{"account_id": "b", "previous_model_action": "hold", "action": "decrease",
                                 "previous_model_grade": "C", "grade": "D"}]
    assert sections.swap_summary(swaps).rows() == [("hold", "decrease", 1)]


def test_swap_set_is_empty_when_the_model_changed_nothing() -> None:
    same = pl.DataFrame({"account_id": ["a"], "action": ["hold"], "grade": ["B"]})
    assert sections.swap_set(same, same).height == 0


def _limits() -> pl.DataFrame:
    return pl.DataFrame({
        "account_id": ["a", "b", "c", "d", "e"],
        "action": ["decrease", "decrease", "increase", "hold", "freeze"],
        "grade": ["D", "D", "A", "B", None],
        "previous_limit_cents": [100_000, 50_000, 200_000, 80_000, 30_000],
        "new_limit_cents": [70_000, 35_000, 260_000, 80_000, 30_000],
        "test_cell": ["champion", "challenger", "champion", "control", "champion"],
    })


def test_exposure_by_action_grade_sums_new_minus_previous_limits() -> None:
    out = sections.exposure_by_action_grade(_limits(), ["A", "B", "C", "D", "E"])
    # freeze first (risk order), an unscored line shown as such; decreases: -30,000 and -15,000 cents
    assert out.rows() == [
        ("freeze", "unscored", 1, 0),
        ("decrease", "D", 2, -45_000),
        ("hold", "B", 1, 0),
        ("increase", "A", 1, 60_000),
    ]


def test_limit_changes_and_test_cells() -> None:
    limits = _limits()
    assert sections.limit_changes(limits).rows() == [("a", "decrease", -30_000), ("b", "decrease", -15_000),
                                                    ("c", "increase", 60_000)]
    cells = sections.test_cell_summary(limits)
    assert cells["test_cell"].to_list() == ["champion", "challenger", "control"]
    champion = cells.row(0, named=True)
    assert (champion["accounts"], champion["decrease"], champion["increase"], champion["freeze"],
            champion["exposure_change_cents"]) == (3, 1, 1, 1, 30_000)


def test_queue_against_capacity_shows_capacity_on_the_agent_queue_only() -> None:
    cfg = CollectionsConfig(agent_daily_capacity=2)
    queue = pl.DataFrame({
        "treatment": ["agent", "agent", "smart_call", "smart_call", "auto_reminder"],
        "overflow": [False, False, True, False, False],
        "overdue_amount_cents": [100, 200, 300, 400, 500],
        "expected_loss_cents": [10, 20, 30, 40, 50],
    })
    out = sections.queue_against_capacity(queue, cfg)
    rows = {r["treatment"]: r for r in out.iter_rows(named=True)}
    assert rows["agent"]["capacity"] == 2 and rows["smart_call"]["capacity"] is None
    assert rows["smart_call"]["overflow"] == 1 and rows["smart_call"]["overdue_cents"] == 700
    assert out["treatment"].to_list()[0] == "auto_reminder"  # in bucket order, not alphabetical by chance


# --- model --------------------------------------------------------------------------------------------


def test_roc_and_ks_points_agree_with_the_stored_metrics() -> None:
    bad = np.array([1, 0, 1, 0])
    pd_ = np.array([0.9, 0.8, 0.7, 0.1])
    fpr, tpr = metrics.roc_points(bad, pd_)
    # cuts at 0.9, 0.8, 0.7, 0.1: (tp, fp) = (1,0), (1,1), (2,1), (2,2) out of 2 bads and 2 goods
    assert fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert np.trapezoid(tpr, fpr) == pytest.approx(auc(bad, pd_))
    curve = metrics.ks_points(bad, pd_)
    assert curve.ks == pytest.approx(ks_statistic(bad, pd_)) == pytest.approx(0.5)
    assert curve.at_share == 0.25  # the first quarter of accounts holds half the bads and no good


def test_curves_keep_at_most_the_asked_points_and_the_ks_peak() -> None:
    rng = np.random.default_rng(3)
    pd_ = rng.random(5000)
    bad = (rng.random(5000) < pd_).astype(int)
    fpr, tpr = metrics.roc_points(bad, pd_, max_points=50)
    assert fpr.size <= 51 and (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    curve = metrics.ks_points(bad, pd_, max_points=50)
    assert curve.ks == pytest.approx(ks_statistic(bad, pd_))
    assert np.max(np.abs(curve.bad_share - curve.good_share)) == pytest.approx(curve.ks)  # the peak is kept


def test_curves_need_both_classes() -> None:
    with pytest.raises(ValueError, match="one good and one bad"):
        metrics.roc_points(np.array([0, 0]), np.array([0.1, 0.2]))


def test_feature_psi_bands_use_the_traffic_lights() -> None:
    # reference: half the OOT at or below 0.5, half above, none missing
    reference = {"same": {"edges": [0.5], "shares": [0.5, 0.5, 0.0]},
                 "moved": {"edges": [0.5], "shares": [0.5, 0.5, 0.0]}}
    tonight = pl.DataFrame({"same": [0.0, 1.0] * 50, "moved": [0.0] * 100, "other": [1.0] * 100})
    out = sections.feature_psi(tonight, reference, (0.10, 0.25))
    rows = {r["feature"]: r for r in out.iter_rows(named=True)}
    assert rows["same"]["psi"] == pytest.approx(0.0) and rows["same"]["band"] == "stable"
    # all mass in the first bin: 0.5 ln(1/0.5) + (1e-4 - 0.5) ln(1e-4/0.5) = 4.60
    assert rows["moved"]["psi"] == pytest.approx(0.5 * np.log(2) + (1e-4 - 0.5) * np.log(1e-4 / 0.5))
    assert rows["moved"]["band"] == "shifted"
    assert out["feature"].to_list() == ["moved", "same"]  # worst first; features without reference skipped


@pytest.mark.parametrize(("value", "band"), [(0.0999, "stable"), (0.10, "watch"), (0.2499, "watch"), (0.25, "shifted")])
def test_psi_band_edges(value: float, band: str) -> None:
    assert metrics.psi_band(value, (0.10, 0.25)) == band


# --- page pieces --------------------------------------------------------------------------------------


HOSTILE = '<script>alert("x")</script>'


def _page_data(model_version: str = "pd-2026-11-20", feature: str = "utilization") -> sections.ReportData:
    """A one-night page's data, every section present, made of a few rows (the renderer reads nothing else)."""
    limits = _limits()
    by_grade = sections.exposure_by_action_grade(limits, ["A", "B", "C", "D", "E"])
    queue = pl.DataFrame({"treatment": ["auto_reminder", "agent"], "overflow": [False, True],
                          "overdue_amount_cents": [100, 200], "expected_loss_cents": [10, 20]})
    trend = pl.DataFrame({"version": [model_version], "as_of": ["2026-11-20"], "auc": [0.81], "ks": [0.47],
                          "gini": [0.62], "calibration_error": [0.01], "promoted": [True], "serving": [True]})
    return sections.ReportData(
        as_of=D(2026, 11, 20),
        manifest={"model_version": model_version, "policy_version": "limits-1", "code_version": "abc",
                  "config_sha256": "0" * 64, "outputs": {name: {"rows": rows, "path": f"{name}/x.parquet"} for name, rows in (
                      ("scores", 17141), ("limits", 5), ("collection_queue", 2), ("hardship_offers", 0))}},
        previous_run=None,
        data=sections.DataSection(
            datasets=pl.DataFrame({"dataset": ["accounts"], "validated_rows": [5], "curated_rows": [5],
                                   "quarantined_rows": [0], "passed": [9], "failed": [0], "ok": [True]}),
            quarantine_reasons=pl.DataFrame(), failures=[], data_docs_href=None),
        model=sections.ModelSection(
            serving=model_version, oot={"auc": 0.81, "ks": 0.47, "gini": 0.62, "accounts": 1200, "bad_rate": 0.05},
            oot_date="2026-08-14", trend=trend, roc=None, ks=None, recomputed_auc=None, curve_note="",
            scores_now=np.array([0.1]), scores_previous=None, score_psi=None, gain=pl.DataFrame(),
            shap=pl.DataFrame(), shap_accounts=2000, shap_note="",
            feature_psi=pl.DataFrame({"feature": [feature], "psi": [0.3], "band": ["shifted"]}),
            psi_bands=(0.10, 0.25), trained_tonight=[], serving_gate=None, retrain=False),
        portfolio=sections.PortfolioSection(
            delinquency=sections.delinquency_by_bucket(
                pl.DataFrame({"account_id": ["a"], "dpd": [3], "outstanding_principal_cents": [1000],
                              "overdue_cents": [100]}), BUCKETS),
            roll=None, vintages=pl.DataFrame(), bad_dpd=30, since=D(2026, 1, 1)),
        decisions=sections.DecisionsSection(
            by_action=by_grade.group_by("action", maintain_order=True).agg(
                pl.col("accounts").sum(), pl.col("exposure_change_cents").sum()),
            by_action_grade=by_grade, changes=sections.limit_changes(limits),
            test_cells=sections.test_cell_summary(limits),
            swap=sections.SwapView(None, None, None, 0, "No previous run.")),
        collections=sections.CollectionsSection(
            queue=sections.queue_against_capacity(queue, CollectionsConfig(agent_daily_capacity=1)), capacity=1,
            hardship=pl.DataFrame(), hardship_accounts=0),
        grades=("A", "B", "C", "D", "E"),
    )


CHARTS = {name: "data:image/png;base64,iVBORw0KGgo=" for name in (
    "trend", "calibration", "scores", "importance", "delinquency", "vintage", "exposure", "changes", "queue")}


@pytest.mark.parametrize("field", ["model_version", "feature"])
def test_page_escapes_values_from_the_data(field: str) -> None:
    page = render.render_report(_page_data(**{field: "x" + HOSTILE}), CHARTS)
    # the page has no script of its own: any "<script" would be the value's, unescaped
    assert "<script" not in page
    escaped = "x&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    # the version shows in the header, the model card, the trend table; the feature in PSI and "look at first"
    assert page.count(escaped) >= 2


def test_page_tags_manifest_numbers_and_stays_one_line() -> None:
    page = render.render_report(_page_data(), CHARTS)
    assert '<span data-manifest="outputs.scores.rows">17,141</span>' in page
    assert 'data-manifest="model_version">pd-2026-11-20</span>' in page
    # the templates' line breaks are dropped: the only ones left are the inline CSS's and the last
    head, style_and_rest = page.split("<style>", 1)
    style, rest = style_and_rest.split("</style>", 1)
    assert "\n" not in head and rest.count("\n") == 1 and rest.endswith("</body></html>\n")
    assert style.startswith("\n*{box-sizing:border-box}\n") and style.endswith("}\n")


def test_page_says_the_shap_is_from_training_or_why_there_is_none() -> None:
    data = _page_data()
    page = render.render_report(data, CHARTS)
    # training's OOT sample, not tonight's accounts (the report no longer runs TreeSHAP)
    assert ("computed at training over 2,000 accounts of the model's OOT snapshot (2026-08-14; the accounts with "
            "the smallest FNV-1a hash of account_id)") in page
    assert "scored tonight" not in page
    note = "Model pd-2026-11-20 was registered before training stored its mean |SHAP|: the SHAP chart cannot be drawn."
    older = render.render_report(replace(data, model=replace(data.model, shap=pl.DataFrame(), shap_note=note)), CHARTS)
    assert f'<p class="note">Gain from the booster. {note}</p>' in older
    assert "computed at training" not in older


def test_page_quotes_like_html_escape() -> None:
    # finalize escapes with html.escape, as the f-string page did (markupsafe would write &#39; and &#34;):
    # the same lake gives the same report bytes as before the templates
    page = render.render_report(_page_data(model_version="v'1\"&"), CHARTS)
    assert 'data-manifest="model_version">v&#x27;1&quot;&amp;</span>' in page


def test_renderer_loads_every_template_and_the_wheel_ships_them() -> None:
    import fnmatch
    import tomllib
    from pathlib import Path

    env = render.environment()
    shipped = sorted(p.name for p in render.TEMPLATES.iterdir())
    # the same loader the renderer uses finds every file, and each template compiles
    assert sorted(env.list_templates()) == shipped
    assert {render.PAGE_TEMPLATE, "report.css", "macros.html.j2"} <= set(shipped)
    for name in shipped:
        env.get_template(name)
    # pyproject's package-data puts them in a non-editable install (they are not Python modules)
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["pipelines"]
    package_dir = Path(sections.__file__).resolve().parents[1]
    for name in shipped:
        relative = (render.TEMPLATES / name).relative_to(package_dir).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


def test_chart_png_is_deterministic() -> None:
    from pipelines.report import plots

    queue = pl.DataFrame({"treatment": ["agent", "smart_call"], "accounts": [5, 3], "overflow": [0, 1]})
    first = plots.queue_chart(queue, capacity=4)
    assert first == plots.queue_chart(queue, capacity=4)  # no timestamp or software tag in the PNG
    assert base64.b64decode(first.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_of_an_unpublished_date_is_a_clear_error(tmp_path, cfg) -> None:
    with pytest.raises(sections.ReportError, match="nothing was published for 2026-11-25"):
        report.collect_report_data(tmp_path, D(2026, 11, 25), cfg)


# --- trends (issue 20): the book summary, the trend rows, the EL tile, the 30-day roll, empty states ---------

from pipelines.report import trends  # noqa: E402


def _book_frames() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    ledger = pl.DataFrame({
        "account_id": ["a", "b", "c", "d", "e"],
        "dpd": [0, 35, 0, 40, 2],
        "outstanding_principal_cents": [10_000, 20_000, 0, 30_000, 7_000],
        "overdue_cents": [0, 5_000, 0, 100, 0],
    })
    scores = pl.DataFrame({"account_id": ["a", "b", "c", "e"], "pd": [0.1, 0.2, 0.3, None]},
                          schema={"account_id": pl.String, "pd": pl.Float64})
    limits = pl.DataFrame({"action": ["hold", "freeze", "hold", "increase"]})
    # d was not scored: the queue priced it with the fallback PD (collections.unscored_pd)
    queue = pl.DataFrame({"account_id": ["b", "d"], "pd": [0.2, 0.5], "expected_loss_cents": [3_400, 12_750]})
    return ledger, scores, limits, queue


def test_book_summary_prices_the_book_with_the_queues_formula() -> None:
    summary = trends.book_summary(*_book_frames(), lgd=0.85, score_psi=0.0123456789)
    # owing money: a, b, d, e (c owes nothing); 30+ DPD: b (35) and d (40)
    assert summary["accounts"] == 4 and summary["dpd30_accounts"] == 2
    assert summary["outstanding_principal"] == "670.00"  # 100 + 200 + 300 + 70 yuan
    # EL per account = round(pd x 0.85 x outstanding): a 850, b 3,400, d (queue's fallback PD 0.5) 12,750;
    # e has no PD (unpriced, counted apart): 17,000 cents
    assert summary["expected_loss"] == "170.00" and summary["unpriced_accounts"] == 1
    assert summary["queue_expected_loss"] == "161.50" and summary["queue_size"] == 2  # 3,400 + 12,750 cents
    # the part on accounts already 30+ DPD (b 3,400 and d 12,750), which the model never trained on
    assert summary["dpd30_expected_loss"] == "161.50"
    assert trends.expected_loss_tile(summary).dpd30_expected_loss_cents == 16_150
    assert summary["actions"] == {"freeze": 1, "hold": 2, "increase": 1}
    assert summary["score_psi"] == 0.012346  # kept to 6 places: the manifest stays small and stable
    assert trends.book_summary(*_book_frames(), lgd=0.85, score_psi=None)["score_psi"] is None


def test_the_queues_expected_loss_is_a_part_of_the_books() -> None:
    ledger, scores, limits, queue = _book_frames()
    tile = trends.expected_loss_tile(trends.book_summary(ledger, scores, limits, queue, 0.85, None))
    assert tile.expected_loss_cents == 17_000 and tile.queue_expected_loss_cents == 16_150
    assert tile.queue_share == pytest.approx(16_150 / 17_000)
    assert trends.ExpectedLossTile(0, 0, 0, 0).queue_share is None  # no loss: no share, not a division by zero


@pytest.mark.parametrize(("cents", "text"), [(0, "0.00"), (5, "0.05"), (123_456, "1234.56"), (-101, "-1.01"),
                                             (10**17 + 1, "1000000000000000.01")])
def test_money_in_the_manifest_is_an_exact_decimal_string(cents: int, text: str) -> None:
    assert trends.cents_to_text(cents) == text and trends.text_to_cents(text) == cents


def test_an_amount_finer_than_a_cent_is_refused() -> None:
    with pytest.raises(ValueError, match="not an amount in cents"):
        trends.text_to_cents("1.005")


def test_an_older_night_gives_only_what_its_outputs_hold() -> None:
    book = trends.summary_from_outputs(
        pl.Series("action", ["hold", "hold", "decrease"]),
        pl.Series("expected_loss", [decimal.Decimal("12.34"), decimal.Decimal("0.01")], dtype=pl.Decimal(18, 2)),
        queue_rows=2,
    )
    assert book == {"queue_size": 2, "queue_expected_loss": "12.35", "actions": {"decrease": 1, "hold": 2}}
    row = trends.trend_row(D(2026, 10, 1), book, "outputs", "m1", D(2026, 9, 1))
    # balances, 30+ DPD, book EL and PSI: missing, never invented
    assert (row["accounts"], row["dpd30_rate"], row["outstanding_cents"], row["expected_loss_cents"],
            row["score_psi"]) == (None, None, None, None, None)
    assert row["queue_expected_loss_cents"] == 1_235 and row["model_after_date"] is False


def test_a_night_scored_by_a_model_trained_after_it_is_flagged() -> None:
    book = trends.book_summary(*_book_frames(), lgd=0.85, score_psi=None)
    night = D(2026, 10, 1)
    assert trends.trend_row(night, book, "manifest", "m2", D(2026, 10, 2))["model_after_date"] is True
    assert trends.trend_row(night, book, "manifest", "m1", night)["model_after_date"] is False  # trained that night
    assert trends.trend_row(night, book, "manifest", "m?", None)["model_after_date"] is False  # unknown: no claim
    with pytest.raises(ValueError, match="unknown trend source"):
        trends.trend_row(night, book, "guess", "m1", night)


def test_trend_frame_has_one_column_per_action_and_nulls_where_unknown() -> None:
    full = trends.trend_row(D(2026, 10, 2), trends.book_summary(*_book_frames(), lgd=0.85, score_psi=0.2),
                            "manifest", "m1", D(2026, 9, 1))
    bare = trends.trend_row(D(2026, 10, 1), {"queue_size": 3}, "outputs", "m1", D(2026, 9, 1))
    frame = trends.trend_frame([full, bare], ["freeze", "hold", "increase"])
    assert frame["as_of"].to_list() == [D(2026, 10, 1), D(2026, 10, 2)]  # oldest first
    assert frame["action_hold"].to_list() == [None, 2] and frame["action_freeze"].to_list() == [None, 1]
    assert frame["dpd30_rate"].to_list() == [None, 0.5]  # 2 of the 4 accounts owing money


@pytest.mark.parametrize(("nights", "expected"), [
    ([D(2026, 10, 21), D(2026, 11, 18)], D(2026, 10, 21)),  # 5 days before D - 30 = 10-26: inside 5
    ([D(2026, 10, 20)], None),  # 6 days away: outside
    ([D(2026, 10, 24), D(2026, 10, 28)], D(2026, 10, 24)),  # a tie: the earlier night (a full month back)
    ([], None),
])
def test_nearest_night_to_d_minus_30(nights: list[dt.date], expected: dt.date | None) -> None:
    assert trends.nearest_night(nights, D(2026, 10, 26), 5) == expected


def _with_trends(data: sections.ReportData, rows: list[dict], roll: pl.DataFrame | None = None) -> sections.ReportData:
    actions = ["freeze", "hold", "increase"]
    tile = trends.expected_loss_tile(trends.book_summary(*_book_frames(), lgd=0.85, score_psi=None))
    roll30 = (trends.Roll30(D(2026, 10, 21), D(2026, 10, 21), roll, "") if roll is not None else
              trends.Roll30(D(2026, 10, 21), None, None, "No published night within 5 days of 2026-10-21."))
    return replace(data, trends=trends.TrendSection(90, trends.trend_frame(rows, actions), actions, tile, "",
                                                    roll30, []))


def test_page_shows_the_el_tile_and_says_a_one_night_trend_is_no_trend() -> None:
    data = _page_data()
    book = trends.book_summary(*_book_frames(), lgd=0.85, score_psi=None)
    data = _with_trends(data, [trends.trend_row(data.as_of, book, "manifest", "m1", D(2026, 11, 1))])
    page = render.render_report(data, CHARTS)
    assert 'data-el="expected_loss_cents" data-cents="17000">¥170<' in page
    assert 'data-el="queue_share">95.0%<' in page  # 16,150 / 17,000
    assert 'data-empty="trend_strip"' in page and "no trend to draw yet" in page
    assert 'data-empty="roll30">No published night within 5 days' in page
    assert '<td class="n" data-trend="dpd30_accounts" data-night="2026-11-20" data-value="2">2</td>' in page


def test_page_warns_of_nights_scored_by_a_later_model() -> None:
    data = _page_data()
    book = trends.book_summary(*_book_frames(), lgd=0.85, score_psi=None)
    rows = [trends.trend_row(D(2026, 11, 19), {"queue_size": 1}, "outputs", "m2", D(2026, 11, 20)),
            trends.trend_row(data.as_of, book, "manifest", "m2", D(2026, 11, 20))]
    page = render.render_report(_with_trends(data, rows), CHARTS)
    assert "1 earlier night(s) in the trend were scored by a model trained after their business date: 2026-11-19" in page
    assert 'data-model-after-date="2026-11-19"' in page and 'data-model-after-date="2026-11-20"' not in page
    assert 'data-missing="outstanding_cents" data-night="2026-11-19"' in page  # the older night's balance: not invented


def test_page_shows_the_30_day_roll_as_a_matrix() -> None:
    previous = _roll_ledger(["a", "b", "c", "d"], [0, 3, 3, 0], [1_000, 1_000, 1_000, 0])
    now = _roll_ledger(["a", "b", "c", "d"], [0, 0, 10, 0], [1_000, 1_000, 1_000, 0])
    roll = sections.roll_rates(previous, now, BUCKETS)
    page = render.render_report(_with_trends(_page_data(), [], roll), CHARTS)
    # of the two accounts at 1-7 DPD a month ago, one cured and one rolled to 8-30
    assert 'data-roll30-from="1-7" data-roll30-to="current" data-accounts="1">50.0%' in page
    assert 'data-roll30-from="1-7" data-roll30-to="8-30" data-accounts="1">50.0%' in page
    assert 'data-roll30-from="1-7" data-roll30-to="1-7" data-accounts="0">0.0%' in page
    assert 'data-roll30-from="no balance" data-roll30-to="no balance" data-accounts="1">100.0%' in page
    assert 'data-roll30-from="current" data-roll30-to="current" data-accounts="1">100.0%' in page
    assert '"no balance", so a pay-off is not counted as a cure' in page


def test_every_chart_with_nothing_to_draw_is_a_message_not_empty_axes() -> None:
    from pipelines.report import plots

    data = _page_data()
    # _page_data has no vintages, no scored change of limit to chart beyond its five rows, no SHAP or gain
    data = replace(data, decisions=replace(data.decisions, changes=data.decisions.changes.clear()),
                   collections=replace(data.collections, queue=data.collections.queue.clear()))
    uris = plots.draw_charts(data)
    assert not {"vintage", "changes", "queue", "importance", "trend_strip"} & set(uris)
    page = render.render_report(data, uris)
    for name in ("vintage", "changes", "queue", "importance"):
        assert f'data-empty="{name}"' in page, name
    assert "No account in collections tonight." in page
    assert page.count("<img") == len(uris)


# --- FINDINGS20C: stale night first, unpublished previous night named, missing trend dates, first-night wording ---


def test_a_stale_night_comes_first_in_look_at_first_with_the_stores_rebuild_command() -> None:
    hint = "rebuild them in order: `riskline rebuild --from 2026-10-21` (or an Airflow backfill)"
    data = replace(_page_data(), stale={"as_of_date": "2026-11-20", "stale": True,
                                                    "reason": "night 2026-10-20 was rerun", "rebuild": hint},
                               stale_in_trend=[D(2026, 10, 21)])
    view = render._page_view(data)
    assert view.attention[0].startswith("This night (2026-11-20) is STALE: night 2026-10-20 was rerun")
    assert "`riskline rebuild --from 2026-10-21`" in view.attention[0]
    assert "1 earlier night(s) are marked stale: 2026-10-21" in view.attention[1]
    assert not any("STALE" in item for item in render._page_view(_page_data()).attention)


def test_an_unpublished_previous_night_is_named_with_the_night_compared_with() -> None:
    data = replace(_page_data(), previous_run=D(2026, 11, 17), previous_unpublished=D(2026, 11, 19))
    page = render.render_report(data, CHARTS)
    assert "previous night 2026-11-19 not published, " in page and 'data-compared-with="2026-11-17"' in page
    assert "no previous run" not in page
    assert any(i.startswith("The previous night, 2026-11-19, was not published: tonight is compared with 2026-11-17")
               for i in render._page_view(data).attention)


def test_dates_without_a_published_night_are_rows_not_published_and_break_the_lines() -> None:
    from pipelines.report import plots

    book = trends.book_summary(*_book_frames(), lgd=0.85, score_psi=0.01)
    published = [D(2026, 11, 17), D(2026, 11, 20)]
    rows = [trends.trend_row(n, book, "manifest", "m1", D(2026, 9, 1)) for n in published]
    rows += trends.unpublished_rows(published)
    assert [r["as_of"] for r in rows[2:]] == [D(2026, 11, 18), D(2026, 11, 19)]
    frame = trends.trend_frame(rows, ["freeze", "hold", "increase"])
    assert frame["source"].to_list() == ["manifest", "missing", "missing", "manifest"]
    # plotted as NaN: matplotlib breaks the line there instead of joining 11-17 to 11-20
    assert np.isnan(plots._values(frame, "dpd30_rate")[1:3]).all()
    assert np.isnan(plots._values(frame, "action_hold")[1:3]).all()
    page = render.render_report(_with_trends(_page_data(), rows), CHARTS)
    assert 'data-not-published="2026-11-18">not published' in page
    assert "2 published nights, 2026-11-17 to 2026-11-20 (" in page
    assert "2026-11-18, 2026-11-19; the lines break there" in page
    assert trends.unpublished_rows([D(2026, 11, 17), D(2026, 11, 18)]) == [] and trends.unpublished_rows([]) == []


def _calm(data: sections.ReportData, score_psi: float | None) -> sections.ReportData:
    """The page data with nothing to look at first: no feature drift, the queue within capacity."""
    queue = pl.DataFrame({"treatment": ["agent"], "overflow": [False], "overdue_amount_cents": [100],
                          "expected_loss_cents": [10]})
    return replace(
        data, model=replace(data.model, score_psi=score_psi, feature_psi=pl.DataFrame(
            {"feature": ["utilization"], "psi": [0.01], "band": ["stable"]})),
        collections=replace(data.collections, queue=sections.queue_against_capacity(
            queue, CollectionsConfig(agent_daily_capacity=100))))


def test_the_first_night_does_not_claim_no_score_drift_nor_a_bonferroni_over_nothing() -> None:
    first = _calm(_page_data(), score_psi=None)
    assert render._page_view(first).attention == []
    page = render.render_report(first, CHARTS)
    assert "score drift not measured (no previous night to compare with)" in page
    assert "no score drift" not in page
    later = render.render_report(_calm(_page_data(), score_psi=0.001), CHARTS)
    assert "no feature drift, no score drift, no challenger rejected" in later


def test_the_el_tile_names_the_pd_event_and_the_part_on_accounts_already_30_dpd() -> None:
    book = trends.book_summary(*_book_frames(), lgd=0.85, score_psi=None)
    rows = [trends.trend_row(n, book, "manifest", "m1", D(2026, 9, 1)) for n in (D(2026, 11, 19), D(2026, 11, 20))]
    data = _with_trends(_page_data(), rows)
    data = replace(data, portfolio=replace(data.portfolio, dpd30_bucket="8-30"))
    data = replace(data, trends=replace(
        data.trends, tile=trends.expected_loss_tile(book), bad_dpd=30,
        pd_event="reaching 30+ DPD between day 8 and day 97 after the night", pd_short="30+ DPD in days 8-97"))
    page = render.render_report(data, CHARTS)
    assert 'data-el="dpd30_expected_loss_cents" data-cents="16150"' in page
    assert "PD = P(30+ DPD in days 8-97), not of a loss" in page
    assert "where PD is the model's probability of reaching 30+ DPD between day 8 and day 97 after the night" in page
    assert "(DPD 30 included; the DPD bucket table puts DPD 30 in 8-30)" in page
    assert "an account exactly 30 days past due is in 8-30 here" in page
