"""Reruns are byte-identical; runs of different dates share the lake safely; a date runs once at a time.

Every concurrency test uses real processes (the CLI or ``crash_child.py``): locks are per process, and
an in-process thread would prove nothing about ``fcntl``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from reliability_support import (
    PublishedLake,
    finish_child,
    publish_scenario,
    published_digests,
    spec_frames,
    spec_manifest,
    start_child,
    tree_digests,
    wait_for,
)

from pipelines.stages import night as nightly
from pipelines.store import publish
from pipelines.config.settings import RisklineConfig
from pipelines.model.registry import ModelRegistry, version_id

REPO = Path(__file__).resolve().parents[2]


def test_rerunning_a_date_gives_byte_identical_outputs_and_manifest(
    published_lake: PublishedLake, lake_root: Path, quiet_cfg: RisklineConfig
):
    book = published_lake
    before = published_digests(lake_root, book.published)
    assert any(k.endswith("manifest.json") for k in before) and len(before) == 4 * 2 + 1  # 4 x (data, _SUCCESS)
    result = nightly.run_night(lake_root, book.published, quiet_cfg, nightly.RunOptions(retrain=False))
    assert published_digests(lake_root, book.published) == before
    # the run's timings are real and kept beside the run, not in the manifest
    timings = json.loads((lake_root / "runs" / f"as_of_date={book.published}" / "timings.json").read_text())
    assert set(timings) == set(result.timings) and all(t["seconds"] >= 0 for t in timings.values())
    manifest = (lake_root / "outputs" / "_manifests" / f"as_of_date={book.published}" / "manifest.json").read_text()
    assert "seconds" not in manifest and "peak_rss" not in manifest


def test_a_publish_never_rolls_forward_another_publish_still_in_flight(
    published_lake: PublishedLake, tmp_path: Path, children: list
):
    # A publishes NEXT and is held just after its journal is written, before its first swap. B reruns
    # the published date meanwhile. B must wait: were it to "recover" A's journal, the two would swap
    # the same staged folders and A would fail (or _LATEST move back to B's older date).
    book = published_lake
    base, spec_a, next_day, _ = publish_scenario(book, tmp_path / "a", rerun=False)
    _, spec_b, _, _ = publish_scenario(book, tmp_path / "b", rerun=True)
    reference = tmp_path / "reference"
    shutil.copytree(base, reference)
    publish.publish_outputs(reference, next_day, spec_frames(spec_a), spec_manifest(spec_a))
    publish.publish_outputs(reference, book.published, spec_frames(spec_b), spec_manifest(spec_b))

    go = tmp_path / "go"
    # the first output swapped in (outputs go in name order), just after the journal was written
    first_swap = f"replace collection_queue/.tmp-as_of_date={next_day.isoformat()}-"
    a = start_child("publish", spec_a, base, tmp_path / "a.txt", pause=(first_swap, go))
    children.append(a)
    wait_for(Path(f"{go}.paused"), a)
    assert list((base / "outputs" / "_journal").glob("*.json"))
    b = start_child("publish", spec_b, base, tmp_path / "b.txt")
    children.append(b)
    wait_for(Path(f"{tmp_path / 'b.txt'}.started"), b)
    time.sleep(1.5)
    assert b.poll() is None, "B finished while A was mid-publish"
    assert not (tmp_path / "b.txt").exists() or not (tmp_path / "b.txt").read_text(), "B wrote while A held"
    go.touch()
    assert finish_child(a) == 0 and finish_child(b) == 0
    assert tree_digests(base, "outputs") == tree_digests(reference, "outputs")
    assert publish.read_latest(base) == next_day  # B finished last, on an older date: _LATEST stays


def _cli(root: Path, as_of: dt.date, cwd: Path, home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "HOME": str(home), "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("RISKLINE_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.entry.cli", "--config", str(REPO / "riskline.yaml"),
         "--data-root", str(root), "run", "--as-of", as_of.isoformat(), "--no-retrain"],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_nights_of_two_dates_run_side_by_side_and_a_second_run_of_a_date_is_refused(
    published_lake: PublishedLake, lake_root: Path, tmp_path: Path, quiet_cfg: RisklineConfig, children: list
):
    book = published_lake
    published_before = published_digests(lake_root, book.published)
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()

    # A: the night of NEXT, held inside its publish (date lock and publish lock taken, journal written)
    go = tmp_path / "go"
    first_swap = f"replace collection_queue/.tmp-as_of_date={book.next_day.isoformat()}-"
    a = start_child("night", book.next_day.isoformat(), lake_root, tmp_path / "a.txt", pause=(first_swap, go))
    # B: at the same time, a rerun of the published night through the CLI (a backfill, say)
    b = _cli(lake_root, book.published, cwd, home)
    children += [a, b]
    wait_for(Path(f"{go}.paused"), a)
    assert list((lake_root / "outputs" / "_journal").glob(f"as_of_date={book.next_day}.json"))  # A mid-publish
    # C: a second run of NEXT while A holds it: refused at once, with a message saying why
    c = _cli(lake_root, book.next_day, cwd, home)
    children.append(c)
    out, err = c.communicate(timeout=120)
    assert c.returncode == 2, out + err
    assert f"a run for business date {book.next_day} is already in progress" in err
    assert "wait for it to finish" in err
    go.touch()
    out_b, err_b = b.communicate(timeout=300)
    assert b.returncode == 0, out_b + err_b
    assert finish_child(a) == 0

    assert published_digests(lake_root, book.published) == published_before  # B's rerun: same bytes
    assert publish.read_latest(lake_root) == book.next_day
    next_outputs = published_digests(lake_root, book.next_day)
    assert len(next_outputs) == 9
    # A's outputs are what a night of NEXT on its own gives: run it again, alone
    nightly.run_night(lake_root, book.next_day, quiet_cfg, nightly.RunOptions(retrain=False))
    assert published_digests(lake_root, book.next_day) == next_outputs
    # nothing was written outside the data root: not in the working directory, and in HOME only
    # matplotlib's font cache and config folder (a library cache, rebuilt at will, no riskline data)
    assert not list(cwd.iterdir())
    outside = {str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()}
    assert all(f.startswith((".cache/matplotlib/", ".config/matplotlib/")) for f in outside), outside


def test_registry_readers_never_see_a_half_written_champion(
    published_lake: PublishedLake, tmp_path: Path, children: list
):
    # One writer flips the champion back and forth (each flip rewrites history and pointer); two readers
    # keep loading the champion's booster and the history. Every read must succeed.
    shutil.copytree(published_lake.root / "registry", tmp_path / "registry")
    registry = ModelRegistry(tmp_path)
    booster = registry.load_booster(published_lake.model_version)
    other_bytes = bytes(booster[: booster.num_boosted_rounds() - 1].save_raw(raw_format="ubj"))
    other = version_id(published_lake.next_day, other_bytes)
    registry.register(other, other_bytes, {"features": [], "manifest": {"as_of": published_lake.next_day.isoformat()},
                                           "metrics": {}, "gate": {"promote": True}})
    script = Path(__file__).with_name("registry_load.py")
    go = tmp_path / "go"
    writer = subprocess.Popen([sys.executable, str(script), "write", str(tmp_path), str(go), "40",
                               published_lake.model_version, other, published_lake.next_day.isoformat()],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    readers = [subprocess.Popen([sys.executable, str(script), "read", str(tmp_path), str(go)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    children += [writer, *readers]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("go.*.ready"))) < 3 and time.monotonic() < deadline:
        assert all(p.poll() is None for p in (writer, *readers)), "a load process died while importing"
        time.sleep(0.05)
    go.touch()
    results = []
    for proc in (writer, *readers):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out))
    assert results[0]["writes"] == 40
    for counts in results[1:]:
        assert counts["errors"] == [] and counts["during_writes"] >= 1, counts  # they did overlap the writes
        assert set(counts["champions"]) <= {published_lake.model_version, other}
    assert ModelRegistry(tmp_path).champion() in (published_lake.model_version, other)
