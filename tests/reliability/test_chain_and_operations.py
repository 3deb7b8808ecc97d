"""Operations that must not change a customer's outcome by accident (issue 14, classes 10-13 and 15).

Each test starts from a private copy of the published lake (``reliability_support``: PUBLISHED is the
lake's first and only night; NEXT has a landing drop, not yet ingested) and drives the ``riskline``
command in-process, as an operator would.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from reliability_support import PublishedLake, deliver, fixture_training_book, landing, published_digests

from pipelines.config.settings import RisklineConfig
from pipelines.entry import cli
from pipelines.model.registry import ModelRegistry
from pipelines.model.train import train_evaluate_register
from pipelines.stages import night as nightly
from pipelines.store import chain, lake, publish, zones

REPO = Path(__file__).resolve().parents[2]
DAY = dt.timedelta(days=1)


def _cli(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str, str]:
    rc = cli.main(["--config", str(REPO / "riskline.yaml"), "--data-root", str(root), *args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _lake_digests(root: Path) -> dict[str, str]:
    """sha256 of every file in the lake but a dry run's own staging root."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file() and p.relative_to(root).parts[0] != "staging"
    }


def test_a_dry_run_writes_only_under_its_staging_root(
    published_lake: PublishedLake, lake_root: Path, capsys: pytest.CaptureFixture[str]
):
    # Class 10. A dry run of the next night used to ingest, build, score and decide into the real lake
    # (curated/, features/, scores/, decisions/: the limit history the next real night reads), and a
    # retraining one to register and promote its model.
    book = published_lake
    before = _lake_digests(lake_root)
    rc, out, err = _cli(capsys, lake_root, "run", "--as-of", str(book.next_day), "--no-retrain", "--dry-run")
    assert rc == 0, err
    assert _lake_digests(lake_root) == before  # not one file of the lake added, removed or changed
    staging = nightly.dry_run_root(lake_root, book.next_day)
    manifest = json.loads(publish.manifest_path(staging, book.next_day).read_text())
    assert manifest["dry_run"] is True and sorted(manifest["outputs"]) == sorted(publish.OUTPUTS)
    assert "DRY RUN" in out and str(staging) in out
    assert publish.read_latest(lake_root) == book.published
    # a retraining dry run fails here (60 days cannot mature a label) after building past features and
    # labels: those too stay in its staging root
    rc, _, err = _cli(capsys, lake_root, "run", "--as-of", str(book.next_day), "--dry-run")
    assert rc == 1 and "nothing outside" in err
    assert _lake_digests(lake_root) == before


def test_a_rollback_without_a_date_takes_back_the_latest_published_night(
    published_lake: PublishedLake, lake_root: Path, tmp_path: Path, quiet_cfg: RisklineConfig,
    capsys: pytest.CaptureFixture[str],
):
    # Class 11. The default effective date was the wall clock (today), after the last business date: a
    # rerun of that night still scored with the model just rolled back.
    book = published_lake
    registry = ModelRegistry(lake_root)
    plan, fit, early_stopping, oot, definition = fixture_training_book(lake_root, book.published, quiet_cfg)
    newer = train_evaluate_register(registry, plan, fit, early_stopping, oot, definition, quiet_cfg.model).version
    registry.set_champion(newer, book.published, "manual_promote", "the model under suspicion")
    assert newer != book.model_version and registry.champion_on(book.published) == newer

    rc, out, err = _cli(capsys, lake_root, "model", "rollback", "--reason", "grade E complaints")
    assert rc == 0, err
    assert registry.champion_on(book.published) == book.model_version
    assert f"champion from {book.published} is {book.model_version}" in out
    assert f"riskline rebuild --from {book.published}" in out  # the night published with it is named
    nightly.run_night(lake_root, book.published, quiet_cfg, nightly.RunOptions(retrain=False))
    assert publish.read_manifest(lake_root, book.published)["model_version"] == book.model_version

    # with nothing published there is no night to take back: a date must be given
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = _cli(capsys, empty, "model", "rollback", "--reason", "x")
    assert rc == 2 and "--effective-from" in err


def test_late_data_and_reruns_leave_a_trace(
    published_lake: PublishedLake, lake_root: Path, quiet_cfg: RisklineConfig, capsys: pytest.CaptureFixture[str]
):
    # Class 12. The manifest fingerprinted D's own curated files only, a re-ingest of a consumed date said
    # nothing, and a rerun overwrote the manifest it replaced.
    book = published_lake
    nightly.run_night(lake_root, book.next_day, quiet_cfg, nightly.RunOptions(retrain=False))
    inputs = publish.read_manifest(lake_root, book.next_day)["inputs"]
    for dataset in ("accounts", "behaviour", "installments", "payments"):  # every partition the night read
        assert sorted(inputs["curated"][dataset]) == [
            d.isoformat() for d in lake.complete_partition_dates(lake_root, "curated", dataset) if d <= book.next_day
        ]
    assert inputs["chain"]["previous_night"] == book.published.isoformat()
    assert inputs["chain"]["previous_limit_history_sha256"] == chain.limit_history_sha256(lake_root, book.published)
    assert inputs["model"]["version"] == book.model_version and len(inputs["model"]["model_sha256"]) == 64

    # upstream redelivers the published night's behaviour drop, one event fewer, after two nights read it
    drop = lake.parquet_files(lake.partition_dir(lake_root, "landing", "behaviour", book.published))
    events = landing(lake_root, "behaviour", book.published)
    # a plain _SUCCESS, as the book's other drops: a declared one would oblige NEXT's plain drop to declare
    # too when the rebuild re-ingests it (ingest.control_totals.keep_declaring_days)
    deliver(lake_root, "behaviour", book.published, {drop[0].name: events.head(events.height - 1)}, manifest=b"")
    rc, _, err = _cli(capsys, lake_root, "ingest", "--date", str(book.published))
    assert rc == 0, err
    assert "stale" in err and str(book.published) in err and str(book.next_day) in err
    assert f"riskline rebuild --from {book.published}" in err
    assert sorted(chain.stale_nights(lake_root)) == [book.published, book.next_day]
    # what downstream reads names the same start (review of stop 28, F8: both said --from NEXT, which
    # stops at once on its stale previous night)
    status = json.loads((lake_root / "outputs" / chain.LATEST_STATUS).read_text())
    assert status["as_of_date"] == book.next_day.isoformat() and status["stale"]
    assert f"`riskline rebuild --from {book.published}`" in status["rebuild"], status["rebuild"]
    assert f"business dates {book.published}..{book.next_day}" in status["rebuild"]
    rc, out, _ = _cli(capsys, lake_root, "summary", "--as-of", str(book.next_day))
    assert rc == 0 and "STALE: " in out and f"riskline rebuild --from {book.published}`" in out, out

    old = {d: publish.read_manifest(lake_root, d) for d in (book.published, book.next_day)}
    rc, out, err = _cli(capsys, lake_root, "rebuild", "--from", str(book.published))
    assert rc == 0, err
    assert chain.stale_nights(lake_root) == {}
    for day in (book.published, book.next_day):
        (kept,) = publish.manifest_history(lake_root, day)  # the replaced manifest is kept, byte for byte
        assert json.loads(kept.read_text()) == old[day]
        now = publish.read_manifest(lake_root, day)["inputs"]["curated"]["behaviour"][book.published.isoformat()]
        assert now != old[day]["inputs"]["curated"]["behaviour"][book.published.isoformat()]


def _published_bytes(root: Path, day: dt.date) -> dict[str, str]:
    """The four outputs and the manifest of ``day`` (not the manifests a rerun replaced, kept in history/)."""
    return {path: digest for path, digest in published_digests(root, day).items() if "/history/" not in path}


def _late_behaviour(root: Path, day: dt.date) -> None:
    """Upstream redelivers ``day``'s behaviour drop with one event fewer (a plain _SUCCESS, as the book's)."""
    drop = lake.parquet_files(lake.partition_dir(root, "landing", "behaviour", day))
    events = landing(root, "behaviour", day)
    deliver(root, "behaviour", day, {drop[0].name: events.head(events.height - 1)}, manifest=b"")


def test_a_night_whose_landing_was_purged_reruns_and_rebuilds_from_what_was_curated(
    published_lake: PublishedLake, lake_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    # Review 28R, N6. Upstream purges drops once ingested (a retention policy the docs allow); late data for
    # the night before then left the purged night STALE for good: the printed rebuild stopped at it with
    # "landing partition not delivered -> wait for upstream to deliver", which upstream never will, and a
    # plain rerun of it failed the same way.
    book = published_lake
    rc, _, err = _cli(capsys, lake_root, "run", "--as-of", str(book.next_day), "--no-retrain")
    assert rc == 0, err
    kept = tmp_path / "kept"  # the same lake with its landing kept: what every run over the purge must equal
    shutil.copytree(lake_root, kept, symlinks=True)
    first = _published_bytes(lake_root, book.next_day)
    for dataset in ("accounts", "behaviour", "installments", "payments"):
        shutil.rmtree(lake.partition_dir(lake_root, "landing", dataset, book.next_day))

    # a rerun reads what was curated, says so in one line, and gives the same bytes (fingerprints included)
    rc, out, err = _cli(capsys, lake_root, "run", "--as-of", str(book.next_day), "--no-retrain")
    assert rc == 0, err
    (said,) = [line for line in out.splitlines() if "purged" in line]
    assert said.strip().startswith(f"landing of {book.next_day} purged: the night reads its curated partitions "
                                   "as ingested on "), out
    assert _published_bytes(lake_root, book.next_day) == first

    # late data for the night before: the hint printed, run as printed, completes, as with the landing kept
    for root in (lake_root, kept):
        _late_behaviour(root, book.published)
        rc, _, err = _cli(capsys, root, "ingest", "--date", str(book.published))
        assert rc == 0 and sorted(chain.stale_nights(root)) == [book.published, book.next_day], err
        hint = f"`riskline rebuild --from {book.published}`"
        assert hint in err, err
        rc, out, err = _cli(capsys, root, *hint.strip("`").split()[1:])
        assert rc == 0, err
        assert chain.stale_nights(root) == {}
        assert (f"landing of {book.next_day} purged" in out) == (root == lake_root), out
    for day in (book.published, book.next_day):
        assert _published_bytes(lake_root, day) == _published_bytes(kept, day), day
    assert _published_bytes(lake_root, book.next_day) != first  # the late data did reach the purged night

    # a dataset with neither its drop nor its curated partition: the night still cannot run, as before
    shutil.rmtree(lake.partition_dir(lake_root, "curated", "payments", book.next_day))
    rc, _, err = _cli(capsys, lake_root, "run", "--as-of", str(book.next_day), "--no-retrain")
    assert rc == 1 and f"payments dt={book.next_day}: landing partition not delivered" in err, err


def test_nights_run_in_order_and_a_backfill_marks_later_nights_stale(
    published_lake: PublishedLake, lake_root: Path, capsys: pytest.CaptureFixture[str]
):
    # Class 13. A backfill of an earlier date ran silently after a later night had read the history it
    # now changes (accounts got a published cut on two consecutive days).
    book = published_lake
    earlier = book.published - DAY  # curated, never run as a night
    published = published_digests(lake_root, book.published)
    rc, _, err = _cli(capsys, lake_root, "run", "--as-of", str(earlier), "--no-retrain")
    assert rc == 2 and "out of order" in err and "--force-chain" in err and len(err.strip().splitlines()) == 1
    assert not zones.decisions_dir(lake_root, earlier).exists()

    rc, out, err = _cli(capsys, lake_root, "run", "--as-of", str(earlier), "--no-retrain", "--force-chain")
    assert rc == 0, err
    recorded = publish.read_manifest(lake_root, earlier)["inputs"]["chain"]
    assert recorded["forced"] is True and "later nights already ran" in recorded["waived"][0]
    assert published_digests(lake_root, book.published) == published  # still published as it was, but stale
    assert list(chain.stale_nights(lake_root)) == [book.published]
    assert f"stale published nights (outputs/_stale/): {book.published}" in out
    # _LATEST still names the stale night (nothing newer exists): downstream can read that it is stale,
    # and the summary says so with the command that rebuilds it
    status = json.loads((lake_root / "outputs" / chain.LATEST_STATUS).read_text())
    assert (publish.read_latest(lake_root), status["as_of_date"], status["stale"]) == (
        book.published, book.published.isoformat(), True)
    assert f"riskline rebuild --from {book.published}" in status["rebuild"] and status["reason"]
    rc, out, _ = _cli(capsys, lake_root, "summary", "--as-of", str(book.published))
    assert rc == 0 and "STALE" in out and f"riskline rebuild --from {book.published}" in out

    rc, _, err = _cli(capsys, lake_root, "run", "--as-of", str(book.next_day), "--no-retrain")
    assert rc == 2 and f"previous night {book.published} is stale" in err

    rc, out, err = _cli(capsys, lake_root, "rebuild", "--from", str(book.published))
    assert rc == 0, err
    rc, _, err = _cli(capsys, lake_root, "run", "--as-of", str(book.next_day), "--no-retrain")
    assert rc == 0, err
    assert chain.stale_nights(lake_root) == {}
    status = json.loads((lake_root / "outputs" / chain.LATEST_STATUS).read_text())
    assert status == {"as_of_date": book.next_day.isoformat(), "stale": False}
    rc, out, _ = _cli(capsys, lake_root, "summary", "--as-of", str(book.published))
    assert rc == 0 and "STALE" not in out
    for day in (book.published, book.next_day):  # each night read the night before it, as it is now
        link = publish.read_manifest(lake_root, day)["inputs"]["chain"]
        assert link["previous_night"] == (day - DAY).isoformat() and not link["forced"]
        assert link["previous_limit_history_sha256"] == chain.limit_history_sha256(lake_root, day - DAY)


def test_stage_errors_are_one_line_and_a_disk_full_publish_says_what_it_left(
    published_lake: PublishedLake, lake_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    # Class 15. `riskline score` without features printed a traceback; a publish that ran out of disk
    # after its journal said "nothing was published" while D's outputs were already in place.
    book = published_lake
    rc, out, err = _cli(capsys, lake_root, "score", "--as-of", str(book.next_day))
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"riskline run --as-of {book.next_day}" in err

    real_write = lake.atomic_write_bytes

    def disk_full_on_manifest(path, data):  # the file system fills up just as the manifest is written
        if Path(path).name == "manifest.json" and "_manifests" in Path(path).parts:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, data)

    monkeypatch.setattr(lake, "atomic_write_bytes", disk_full_on_manifest)
    rc, _, err = _cli(capsys, lake_root, "run", "--as-of", str(book.next_day), "--no-retrain")
    assert rc == 1 and "nothing was published" not in err and "Traceback" not in err
    assert "No space left on device" in err
    assert "new outputs of " + str(book.next_day) + ": scores, limits, collection_queue, hardship_offers" in err
    assert "manifest not yet written" in err and f"_LATEST names {book.published}" in err and "rerun the night" in err
    monkeypatch.undo()

    rc, _, err = _cli(capsys, lake_root, "run", "--as-of", str(book.next_day), "--no-retrain")
    assert rc == 0, err
    assert publish.read_latest(lake_root) == book.next_day
    manifest = publish.read_manifest(lake_root, book.next_day)
    for name, meta in manifest["outputs"].items():
        (part,) = lake.parquet_files(publish.output_dir(lake_root, name, book.next_day))
        assert lake.file_sha256(part) == meta["files"]["part-0.parquet"]


def test_a_dry_run_waiting_for_a_drop_names_the_real_landing_path(
    published_lake: PublishedLake, lake_root: Path, capsys: pytest.CaptureFixture[str]
):
    # A dry run reads a copy of the lake: its "wait for upstream" named the copy's landing folder, where
    # upstream never delivers.
    day = published_lake.next_day
    shutil.rmtree(lake.partition_dir(lake_root, "landing", "accounts", day))  # the snapshot is not there yet
    rc, _, err = _cli(capsys, lake_root, "run", "--as-of", str(day), "--no-retrain", "--dry-run")
    error, said = err.strip().splitlines()  # the error, then what the dry run left (only its staging root)
    assert rc == 1 and "Traceback" not in err and said.startswith("dry run: nothing outside"), err
    real = lake.partition_dir(lake_root, "landing", "accounts", day)
    assert f"wait for upstream to deliver {real}," in error and "staging" not in error, err


def test_a_critical_validation_failure_is_one_line_naming_file_and_column(
    published_lake: PublishedLake, lake_root: Path, capsys: pytest.CaptureFixture[str]
):
    # A critical expectation printed a multi-line block without file= or column=.
    book = published_lake
    payments = landing(lake_root, "payments", book.next_day)
    nulls = payments.with_columns(pl.lit(None, dtype=pl.String).alias("account_id"))  # every row: critical
    deliver(lake_root, "payments", book.next_day, {"part-00000.parquet": nulls})
    rc, _, err = _cli(capsys, lake_root, "ingest", "--date", str(book.next_day))
    assert rc == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"payments dt={book.next_day} file=part-00000.parquet column=account_id: validation failed" in err
    assert "CRITICAL" in err and " -> " in err
