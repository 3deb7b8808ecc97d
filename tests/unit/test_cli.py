"""The ``riskline`` command's messages: each failure names what happened and the next step, for the date asked.

A tiny generated book (60 accounts, 4 days) is enough: every message checked here comes before or around
the first stage, so no model is trained.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from pipelines.entry import cli
from pipelines.store import lake, publish, zones
from pipelines.model.registry import ModelRegistry, version_id

END = dt.date(2026, 3, 10)
DAYS = 4
FIRST = END - dt.timedelta(days=DAYS - 1)


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("book") / "data"
    assert cli.main(["--data-root", str(root), "generate", "--accounts", "60", "--days", str(DAYS),
                     "--end-date", END.isoformat(), "--seed", "3"]) == 0
    return root


@pytest.fixture()
def root(book: Path, tmp_path: Path) -> Path:
    """A private copy of the book's landing zone (a few hundred KB)."""
    copy = tmp_path / "data"
    shutil.copytree(book / "landing", copy / "landing")
    return copy


def _run(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str, str]:
    code = cli.main(["--data-root", str(root), *args])
    out, err = capsys.readouterr()
    return code, out, err


def _set_latest(root: Path, day: dt.date) -> None:
    # _LATEST is the one file readers follow to the newest published night (publish.py writes it last)
    (root / "outputs").mkdir(parents=True, exist_ok=True)
    (root / "outputs" / publish.LATEST).write_text(f"{day.isoformat()}\n")


@pytest.mark.parametrize("latest", [None, dt.date(2026, 3, 8)])
def test_summary_of_a_night_never_run_says_how_to_run_it_and_what_is_latest(capsys, root, latest):
    if latest:
        _set_latest(root, latest)
    code, _, err = _run(capsys, root, "summary", "--as-of", END.isoformat())
    assert code == 2
    assert f"riskline run --as-of {END}" in err
    assert (f"the outputs of {latest} remain the latest" if latest else "no outputs have been published yet") in err
    assert len(err.strip().splitlines()) == 1


def test_summary_of_a_night_before_later_ones_names_the_rebuild_not_a_refused_run(capsys, root):
    # New-user review: "run that night with riskline run" was then refused as out of order.
    lake.publish_frames(lake.derived_partition(root, "decisions", END),
                        {zones.LIMIT_HISTORY_FILE: pl.DataFrame({"a": [1]})})
    code, _, err = _run(capsys, root, "summary", "--as-of", FIRST.isoformat())
    assert code == 2 and f"riskline rebuild --from {FIRST} --force-chain" in err, err
    assert f"riskline run --as-of {FIRST}" not in err and len(err.strip().splitlines()) == 1


def test_run_before_the_books_first_date_with_later_nights_names_the_first_date_not_a_rebuild(capsys, root):
    lake.publish_frames(lake.derived_partition(root, "decisions", END),
                        {zones.LIMIT_HISTORY_FILE: pl.DataFrame({"a": [1]})})
    before = FIRST - dt.timedelta(days=1)
    code, _, err = _run(capsys, root, "run", "--as-of", before.isoformat(), "--no-retrain")
    assert code == 1 and f"{before} is before the first accounts drop ({FIRST})" in err, err
    assert "rebuild" not in err, err


def test_run_before_the_books_first_date_says_no_drop_will_come(capsys, root):
    before = FIRST - dt.timedelta(days=1)
    code, _, err = _run(capsys, root, "run", "--as-of", before.isoformat(), "--no-retrain")
    assert code == 1
    # nothing will ever be delivered for a date before the book starts: waiting would be the wrong advice
    assert "wait for upstream" not in err
    assert f"{before} is before the first accounts drop ({FIRST})" in err
    assert f"pick a business date from {FIRST} on" in err


def test_a_date_inside_the_book_still_says_wait_for_upstream(capsys, root):
    missing = FIRST + dt.timedelta(days=1)
    shutil.rmtree(root / "landing" / "accounts" / f"dt={missing}")  # a late drop: upstream may still send it
    code, _, err = _run(capsys, root, "ingest", "--date", missing.isoformat())
    assert code == 1
    assert "wait for upstream to deliver" in err


def test_an_empty_data_root_says_to_check_it(capsys, tmp_path):
    code, _, err = _run(capsys, tmp_path / "empty", "ingest", "--date", END.isoformat())
    assert code == 1
    assert "no accounts drop has ever landed" in err and "RISKLINE_DATA_ROOT" in err


@pytest.mark.parametrize("latest", [None, dt.date(2026, 3, 1)])
def test_a_failed_run_names_the_outputs_that_remain_the_latest(capsys, root, latest):
    # the latest published night is not "yesterday's" in general: a backfill, a gap, or none at all
    if latest:
        _set_latest(root, latest)
    before = FIRST - dt.timedelta(days=1)
    code, _, err = _run(capsys, root, "run", "--as-of", before.isoformat(), "--no-retrain")
    assert code == 1
    assert "yesterday" not in err
    expected = f"the outputs of {latest} remain the latest" if latest else "no outputs have been published yet"
    assert f"nothing was published for {before}; {expected}" in err


@pytest.mark.parametrize(
    "flags, total",
    [
        # ingest, features, score, decide, publish, report: no train stage without retraining
        (["--no-retrain"], 6),
        (["--no-retrain", "--dry-run"], 5),  # a dry run publishes no manifest, so no report either
        ([], 7),
    ],
)
def test_run_progress_counts_the_stages_this_run_has(capsys, root, flags, total):
    before = FIRST - dt.timedelta(days=1)
    _, out, _ = _run(capsys, root, "run", "--as-of", before.isoformat(), *flags)
    assert f"  [1/{total}] ingest ..." in out.splitlines()


def test_run_of_a_range_stops_at_the_first_failing_night_and_says_where_to_resume(capsys, root):
    start = FIRST - dt.timedelta(days=2)
    code, out, err = _run(capsys, root, "run", "--from-date", start.isoformat(), "--to-date", END.isoformat(),
                          "--no-retrain")
    assert code == 1
    assert out.count("riskline run ") == 1  # the later nights need this one's outputs: not attempted
    assert f"stopped: the nights after {start} need its outputs; rerun from --from-date {start}" in err


def test_run_refuses_a_date_and_a_range_together(capsys, root):
    code, _, err = _run(capsys, root, "run", "--as-of", END.isoformat(), "--from-date", FIRST.isoformat(),
                        "--to-date", END.isoformat())
    assert code == 2
    assert "give either --as-of or --from-date/--to-date, not both" in err


def test_ingest_of_a_range_reports_progress_when_not_on_a_terminal(capsys, root):
    # capsys is not a TTY, like make's or CI's log: progress must still show, one line per step
    second = FIRST + dt.timedelta(days=1)
    code, _, err = _run(capsys, root, "ingest", "--from-date", FIRST.isoformat(), "--to-date", second.isoformat(),
                        "--dataset", "accounts")
    assert code == 0
    assert [line for line in err.splitlines() if "] ingested " in line] == [
        f"[1/2] ingested {FIRST}", f"[2/2] ingested {second}"]


@pytest.mark.parametrize("total, step", [(1, 1), (4, 1), (10, 1), (11, 2), (358, 36)])
def test_progress_lines_of_a_long_range_stay_about_ten(total, step):
    assert cli._progress_step(total) == step
    assert len(range(step, total + 1, step)) <= 10


def _register_model(root: Path) -> str:
    # the shape train.py writes (manifest, metrics, gate), with the fields `model show` summarises
    as_of = dt.date(2026, 3, 1)
    version = version_id(as_of, b"booster")
    records = {
        "features": [{"name": "dpd"}],
        "manifest": {"version": version, "as_of": as_of.isoformat(), "trees": 120, "best_iteration": 119,
                     "training_sample_rate": 1.0, "code_version": "abc123", "xgboost_version": "3.3.0",
                     "training_window": {"as_of": "2026-03-01", "horizon_days": 90, "oot_date": "2025-12-01",
                                         "fit_dates": ["2025-06-01", "2025-11-17"],
                                         "early_stopping_dates": ["2025-11-24"]},
                     "rows": {"fit": {"rows": 5000, "bads": 150, "accounts": 2500}},
                     "definition": {"features": [{"name": f"f{i}"} for i in range(60)]},
                     "inputs": {f"features/as_of_date=2025-{i:02d}-01": "0" * 64 for i in range(1, 13)}},
        "metrics": {"oot": {"auc": 0.81234, "ks": 0.4567, "calibration_error": 0.0031,
                            "score_reference": list(range(100))},
                    "stability": {"score_vs_champion": None, "features_oot_vs_training": {f"f{i}": 0.01 for i in range(60)}}},
        "gate": {"promote": True, "reasons": [], "summary": "promoted (first model: floors only): all checks passed"},
    }
    registry = ModelRegistry(root)
    registry.register(version, b"booster", records)
    registry.set_champion(version, as_of, "promote", "first model", recorded_at="2026-03-02T00:00:00+00:00")
    return version


def test_model_show_is_one_readable_screen_and_json_on_request(capsys, tmp_path):
    root = tmp_path / "data"
    version = _register_model(root)
    code, out, _ = _run(capsys, root, "model", "show", version)
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) <= 12  # a summary, not the record (the JSON of this one is ~200 lines)
    assert lines[0] == f"model {version}  (champion now)"
    assert "  OOT: AUC 0.8123, KS 0.4567, calibration error 0.0031" in lines
    assert "  champion from 2026-03-01 (promote: first model)" in lines
    assert f"riskline model show {version} --json" in out
    code, out, _ = _run(capsys, root, "model", "show", version, "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["oot"]["auc"] == 0.81234 and shown["champion_now"] is True
