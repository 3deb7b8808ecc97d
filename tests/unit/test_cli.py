"""The ``riskline`` command's messages: each failure names what happened and the next step, for the date asked.

A tiny generated book (60 accounts, 4 days) is enough: every message checked here comes before or around
the first stage, so no model is trained.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

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


@pytest.mark.parametrize(
    "ingested, step",
    [
        # one date left out of the history: that date
        ([FIRST, FIRST + dt.timedelta(days=1)], "`riskline ingest --date 2026-03-09`"),
        # several: the range from the first to the last, in date order
        ([FIRST], "`riskline ingest --from-date 2026-03-08 --to-date 2026-03-09`"),
    ],
)
def test_a_first_night_with_history_dates_left_out_names_the_ingest_of_those_dates(capsys, root, ingested, step):
    # Review 28R, N8: the error named the missing partitions but gave no next step at all.
    for day in ingested:
        assert _run(capsys, root, "ingest", "--date", day.isoformat())[0] == 0
    code, _, err = _run(capsys, root, "run", "--as-of", END.isoformat(), "--no-retrain")
    error = err.strip().splitlines()[0]
    assert code == 1 and error.startswith(f"error: run for {END} failed: IncompleteHistoryError: "), err
    missing = "2026-03-09" if len(ingested) == 2 else "2026-03-08, 2026-03-09"
    assert f"payments: missing curated partitions {missing} -> " in error  # what the features found missing
    assert f" -> ingest the missing date{'s (2 missing)' if len(ingested) == 1 else ''} first: {step}, then rerun " \
           "this same `riskline run` command" in error, error
    # the step works as printed (the night's own date is curated already: the range stops before it)
    assert _run(capsys, root, *step.strip("`").split()[1:])[0] == 0


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


# --- independent new-user review of stop 28: the next step must be one that works ---------------------------


def _publish_night(root: Path, day: dt.date) -> None:
    # what the chain counts as a published night: its decisions partition and its manifest
    lake.publish_frames(lake.derived_partition(root, "decisions", day),
                        {zones.LIMIT_HISTORY_FILE: pl.DataFrame({"a": [1]})})
    path = publish.manifest_path(root, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}\n")


def test_summary_before_the_first_published_night_names_it_and_the_champion_a_rebuild_needs(capsys, root):
    # F4: the old step (`riskline rebuild --from D --force-chain`) stopped at once on NoChampionError: a rebuild
    # scores with the champion serving on each night, and none served on D
    _publish_night(root, END)
    code, _, err = _run(capsys, root, "summary", "--as-of", FIRST.isoformat())
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"the first published night is {END}: pick a date from it on (`riskline summary --as-of {END}`)" in err
    assert (f"train one first (`riskline train --as-of {FIRST}`), "
            f"then `riskline rebuild --from {FIRST} --force-chain`") in err


def test_summary_before_the_first_published_night_with_a_champion_names_the_rebuild_alone(capsys, root):
    _publish_night(root, END)
    _register_model(root)  # serves from 2026-03-01, before FIRST
    code, _, err = _run(capsys, root, "summary", "--as-of", FIRST.isoformat())
    assert code == 2 and f"`riskline rebuild --from {FIRST} --force-chain`" in err, err
    assert "riskline train" not in err


def test_summary_before_the_book_says_no_night_can_run_for_it(capsys, root):
    _publish_night(root, END)
    before = FIRST - dt.timedelta(days=30)
    code, _, err = _run(capsys, root, "summary", "--as-of", before.isoformat())
    assert code == 2 and f"no night can run for {before}, which is before the first accounts drop ({FIRST})" in err
    assert "rebuild" not in err and "riskline run" not in err, err


def test_a_rebuild_stopped_by_a_missing_champion_says_how_to_get_one_and_where_to_resume(capsys, root):
    # F4: "-> fix it, then ..." named no step, and the exit status was the one of bad input (2)
    code, out, err = _run(capsys, root, "rebuild", "--from", END.isoformat(), "--to", END.isoformat())
    assert code == 1 and out.startswith(f"[1/1] night {END}"), (out, err)
    assert err.startswith(f"error: rebuild stopped at {END}: NoChampionError: ") and len(err.strip().splitlines()) == 1
    assert "fix it" not in err
    assert (f"-> train one for it (`riskline train --as-of {END}`) or promote a reviewed version from {END}" in err
            and f"then `riskline rebuild --from {END} --to {END}`" in err), err


def _every_stage_error() -> list[Exception]:
    from pipelines.errors import IngestError
    from pipelines.model.fit import InsufficientHistoryError
    from pipelines.model.metrics import LeakageSuspectedError
    from pipelines.model.registry import NoChampionError, RegistryError
    from pipelines.stages.features import IncompleteHistoryError
    from pipelines.store.publish import PublishError, PublishIncompleteError

    return [
        IngestError("landing partition not delivered", dataset="accounts", date=END, hint="wait for upstream"),
        IngestError("bad rows", dataset="payments", date=END),  # no hint of its own
        NoChampionError("no champion model serves"), RegistryError("unknown model version 'x'"),
        LeakageSuspectedError("AUC too high"), InsufficientHistoryError("too few snapshots"),
        IncompleteHistoryError("cannot build features: payments: missing curated partitions 2026-03-08"),
        PublishError("outputs failed validation\nlimits: CRITICAL"), PublishIncompleteError("the publish stopped"),
        OSError(errno.ENOSPC, "No space left on device"), OSError(errno.EROFS, "Read-only file system"),
        KeyError("dpd"), AssertionError("ledger does not reconcile"),
    ]


@pytest.mark.parametrize("retrain", [False, True])
@pytest.mark.parametrize("exc", _every_stage_error(), ids=lambda e: type(e).__name__)
def test_every_error_that_stops_a_rebuild_names_a_step_and_the_command_that_resumes_it(exc, retrain):
    from pipelines.entry import cli_steps

    line = cli_steps.stopped_night(exc, END, END + dt.timedelta(days=3), True, retrain)
    assert "fix it" not in line and "\n" not in line, line
    assert " -> " in line or "the rebuild reruns it" in line, line  # PublishIncompleteError words its own step
    resume = f"riskline rebuild --from {END} --to {END + dt.timedelta(days=3)} --force-chain"
    assert resume in line, line  # where to go on from, with the flags the rebuild had
    if retrain and type(exc).__name__ in ("LeakageSuspectedError", "InsufficientHistoryError"):
        assert f"`{resume}`" in line  # training refused: go on without it


def test_a_rebuild_stopped_by_missing_history_names_the_ingest_of_the_real_dates():
    # it said `riskline ingest --from-date F --to-date <night>`, "F the first of them", for the operator to find
    from pipelines.entry import cli_steps
    from pipelines.stages.features import IncompleteHistoryError

    exc = IncompleteHistoryError("cannot build features: payments: missing curated partitions 2026-03-05, 2026-03-07",
                                 [dt.date(2026, 3, 7), dt.date(2026, 3, 5), dt.date(2026, 3, 7)])
    line = cli_steps.stopped_night(exc, END, END, False, False)
    assert ("-> ingest the missing dates (2 missing) first: `riskline ingest --from-date 2026-03-05 --to-date "
            f"2026-03-07`, then `riskline rebuild --from {END} --to {END}`") in line, line


def test_rebuild_force_chain_forces_every_night_so_a_gap_of_nights_never_run_goes_through(capsys, root, monkeypatch):
    # The nights after a forced first one that never ran (a rebuild from before the first published night)
    # still see the later published nights: forcing only the first stopped the rebuild at its second night.
    # (the chain rule itself is tested in test_chain.py; this is which nights the rebuild asks to force)
    seen = []

    def fake_night(root_, day, cfg, options, progress=None):
        seen.append((day, options.force_chain))
        return SimpleNamespace(stages={"decide": {"actions": {"hold": 1}}}, root=None)

    monkeypatch.setattr(cli, "run_night", fake_night)
    code, _, _ = _run(capsys, root, "rebuild", "--from", FIRST.isoformat(), "--to", END.isoformat(), "--force-chain")
    assert code == 0 and seen == [(FIRST + dt.timedelta(days=i), True) for i in range(DAYS)]
    # `riskline run` over a range forces each of its nights too (it forced only the first)
    seen.clear()
    monkeypatch.setattr(cli, "describe_run", lambda result, root_: "")
    code, _, err = _run(capsys, root, "run", "--from-date", FIRST.isoformat(), "--to-date", END.isoformat(),
                        "--no-retrain", "--force-chain")
    assert code == 0 and seen == [(FIRST + dt.timedelta(days=i), True) for i in range(DAYS)], err


def test_validate_of_a_date_not_delivered_is_an_error_naming_the_paths_and_the_next_step(capsys, root):
    # F5: "D: no curated partition or published output to validate" on stdout, no `error:`, no next step
    after = END + dt.timedelta(days=1)
    code, out, err = _run(capsys, root, "validate", "--date", after.isoformat())
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1, (out, err)
    assert err.startswith(f"error: validate dt={after}: nothing to validate: no curated partition ("
                          f"{root}/curated/{{accounts,behaviour,installments,payments}}/dt={after})")
    assert (f"-> wait for upstream to deliver {root}/landing/accounts/dt={after}, then `riskline ingest --date "
            f"{after}`") in err


def test_validate_of_a_date_delivered_but_not_ingested_says_to_ingest_it(capsys, root):
    code, _, err = _run(capsys, root, "validate", "--date", END.isoformat())
    assert code == 1 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert f"its landing drops are there ({root}/landing/" in err
    assert f"-> ingest the date first: `riskline ingest --date {END}`" in err


def test_summary_without_a_date_summarises_the_newest_published_night(capsys, root, monkeypatch):
    # F6: --as-of was required (an argparse usage error); the newest night is the one readers follow
    import pipelines.report.summary as summary

    monkeypatch.setattr(summary, "describe_published", lambda root_, day: f"summary of {day}")
    _set_latest(root, END)
    code, out, _ = _run(capsys, root, "summary")
    assert code == 0 and out.splitlines() == [f"the newest published night, {END} (--as-of D for another):",
                                              f"summary of {END}"]


def test_summary_without_a_date_on_a_lake_with_nothing_published_says_how_to_publish_one(capsys, root):
    code, _, err = _run(capsys, root, "summary")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: nothing has been published under {root} yet")
    assert (f"-> ingest the history (`riskline ingest --from-date {FIRST} --to-date {END - dt.timedelta(days=1)}`), "
            f"then run the newest delivered date: `riskline run --as-of {END}`") in err


@pytest.mark.parametrize("latest", [None, END])
def test_run_without_a_date_names_the_newest_published_night_and_the_next(capsys, root, latest):
    # F6: a night is never run implicitly, but the error says which one is next when the lake knows
    if latest:
        _set_latest(root, latest)
    code, _, err = _run(capsys, root, "run")
    assert code == 2 and err.startswith("error: give --as-of D, or both --from-date and --to-date")
    known = f" (newest published night: {END}; the next is {END + dt.timedelta(days=1)})"
    assert (known in err) == bool(latest), err


def test_run_help_says_a_rerun_retrains_and_how_to_rerun_with_the_model_the_night_used(capsys):
    # O2: a rerun of a published date retrains by default and may promote a new champion
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "A rerun of a date already published retrains too" in text
    assert "To rerun a published night with the model it used, pass --no-retrain" in text
    assert "score with the champion serving on D in the champion history" in text


@pytest.mark.parametrize("flags, incremental", [([], True), (["--rebuild-ledger"], False)])
def test_run_rebuild_ledger_turns_the_incremental_ledger_off_for_that_run(capsys, root, monkeypatch, flags,
                                                                        incremental):
    seen = []

    def night(root, as_of, cfg, options, progress=None):
        seen.append(cfg.run.incremental_ledger)
        raise RuntimeError("stop here: only the configuration the night gets is checked")

    monkeypatch.setattr(cli, "run_night", night)
    code, _, err = _run(capsys, root, "run", "--as-of", END.isoformat(), "--no-retrain", *flags)
    assert seen == [incremental] and code != 0 and "stop here" in err
