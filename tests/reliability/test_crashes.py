"""Crashes: a publish or a registry write killed with SIGKILL at every file-system step.

``crash_child.py`` does the write in a fresh process and kills itself before its (k+1)-th file-system
event (mkdir, Parquet file, rename, atomic exchange, unlink, rmdir, chmod), for every k: every point
where a pulled plug could stop it. After each kill we look at the lake the way a reader does, then
recover the way the next night does, and compare with a publish that was never interrupted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import signal
from pathlib import Path

import pytest
import xgboost as xgb
from reliability_support import (
    PublishedLake,
    finish_child,
    publish_scenario,
    spec_frames,
    spec_manifest,
    start_child,
    tree_digests,
)

from pipelines.store import lake
from pipelines.store import publish
from pipelines.contracts.outputs import OUTPUTS
from pipelines.model.registry import ModelRegistry, version_id


def _child(mode: str, spec: Path, root: Path, kill_after: int, trace: Path) -> int:
    return finish_child(start_child(mode, spec, root, trace, kill_after))


def _trace(mode: str, spec: Path, root: Path, tmp: Path) -> list[str]:
    """The events of an uninterrupted run (on a scratch copy): one kill point before each."""
    scratch = tmp / "trace-root"
    shutil.copytree(root, scratch)
    trace = tmp / "trace.txt"
    assert _child(mode, spec, scratch, -1, trace) == 0
    return trace.read_text().splitlines()


def _visible(root: Path) -> dict[str, str]:
    """What consumers can see: every file outside hidden staging folders, with its sha256."""
    return {k: v for k, v in tree_digests(root, "outputs").items()
            if not any(part.startswith(".") for part in Path(k).parts)}


def _part_sha(root: Path, name: str, as_of: dt.date) -> str:
    return hashlib.sha256((publish.output_dir(root, name, as_of) / publish.PART_FILE).read_bytes()).hexdigest()


# --- publish ---------------------------------------------------------------------------------------


def _known_files(base: Path, reference: Path, as_of: dt.date) -> dict[str, dict[str, str]]:
    """Per output, the sha256 of its old (if any) and new data file: anything else a reader sees is torn."""
    known = {name: {_part_sha(reference, name, as_of): "new"} for name in OUTPUTS}
    for name in OUTPUTS:
        if publish.output_dir(base, name, as_of).exists():
            known[name][_part_sha(base, name, as_of)] = "old"
    return known


def _check_reader_view(root: Path, book: PublishedLake, as_of: dt.date, shas: dict, what: str) -> set[str]:
    """Readers see whole partitions only, each the old or the new one; return which ones they saw."""
    seen = set()
    for name in OUTPUTS:
        # _SUCCESS never precedes its data, in published and in staged folders alike
        for marker in (root / "outputs" / name).glob(f"*as_of_date={as_of.isoformat()}*/{lake.SUCCESS}"):
            data = marker.parent / publish.PART_FILE
            assert data.is_file(), f"{what}: {marker} exists without its data file"
            assert hashlib.sha256(data.read_bytes()).hexdigest() in shas[name], f"{what}: {data} is torn"
        part = publish.output_dir(root, name, as_of)
        if not lake.is_complete(part):
            assert not part.exists(), f"{what}: {part} is visible without {lake.SUCCESS}"
            seen.add("absent")
            continue
        publish.read_output(root, name, as_of)  # readable, whole ...
        seen.add(shas[name][_part_sha(root, name, as_of)])  # ... and exactly the old or the new file
    latest = publish.read_latest(root)
    assert latest in (book.published, as_of), f"{what}: _LATEST is {latest}"
    if latest == as_of != book.published:  # _LATEST never names a date before all its outputs are in
        assert seen == {"new"}, f"{what}: _LATEST moved to {as_of} while readers saw {seen}"
    return seen


@pytest.mark.parametrize("rerun", [False, True], ids=["new-date", "rerun-same-date"])
def test_publish_killed_at_every_step_never_shows_a_torn_partition_and_reruns_identically(
    published_lake: PublishedLake, tmp_path: Path, rerun: bool
):
    book = published_lake
    base, spec, as_of, reference = publish_scenario(book, tmp_path, rerun)
    shas = _known_files(base, reference, as_of)
    previous = {k: v for k, v in _visible(base).items() if "_LATEST" not in k}
    expected = _visible(reference)
    new, manifest = spec_frames(spec), spec_manifest(spec)
    events = _trace("publish", spec, base, tmp_path)
    assert sum(e.startswith("write_parquet") for e in events) == len(OUTPUTS)

    for k, event in enumerate(events):
        what = f"killed before event {k + 1}/{len(events)} ({event})"
        root = tmp_path / f"kill-{k}"
        shutil.copytree(base, root)
        assert _child("publish", spec, root, k, tmp_path / f"kill-{k}.txt") == -signal.SIGKILL, what
        if not rerun:  # a new date never touches the night before
            assert {f: d for f, d in _visible(root).items() if f in previous} == previous, what
        _check_reader_view(root, book, as_of, shas, what)

        # the next night's first step: roll forward a publish that was decided (its journal written)
        decided = any((root / "outputs" / "_journal").glob("*.json"))
        publish.recover(root)
        seen = _check_reader_view(root, book, as_of, shas, what + ", then recovered")
        assert seen == ({"new"} if decided else {"old"} if rerun else {"absent"}), f"{what}: after recover {seen}"

        # and a rerun of the night gives exactly the bytes of a publish that never crashed
        publish.publish_outputs(root, as_of, new, manifest)
        assert _visible(root) == expected, what
        shutil.rmtree(root)


# --- registry --------------------------------------------------------------------------------------


def _registry_scenario(book: PublishedLake, tmp: Path) -> tuple[Path, Path, str, dt.date]:
    """A registry with the fixture champion, and a spec registering and promoting a second version."""
    base = tmp / "base"
    shutil.copytree(book.root / "registry", base / "registry")
    booster = ModelRegistry(base).load_booster(book.model_version)
    challenger = bytes(booster[: booster.num_boosted_rounds() - 1].save_raw(raw_format="ubj"))  # another model
    effective = book.next_day
    version = version_id(effective, challenger)
    spec = tmp / "spec"
    spec.mkdir()
    (spec / "model.ubj").write_bytes(challenger)
    records = {"features": [], "manifest": {"as_of": effective.isoformat()}, "metrics": {},
               "gate": {"promote": True, "reasons": [], "summary": "crash test"}}
    (spec / "spec.json").write_text(json.dumps({"version": version, "records": records, "reason": "crash test",
                                                "effective_from": effective.isoformat()}))
    return base, spec, version, effective


def _check_registry(root: Path, versions: set[str], what: str) -> None:
    registry = ModelRegistry(root)
    listed = set(registry.versions())
    assert listed <= versions, f"{what}: unexpected versions {listed - versions}"
    for version in listed:  # a listed version is whole: its booster loads and matches its id
        rec = registry.record(version)
        assert version_id(rec.as_of, registry.model_bytes(version)) == version, what
    champion = registry.champion()
    assert champion in listed, f"{what}: the champion pointer names {champion}, not a registered version"
    booster = registry.load_booster(champion)
    assert isinstance(booster, xgb.Booster) and booster.num_boosted_rounds() > 0, what
    for event in registry.history():  # the history never names a version that is not whole
        assert event.version in listed, what


def test_registry_write_killed_at_every_step_keeps_a_loadable_champion(published_lake: PublishedLake, tmp_path: Path):
    book = published_lake
    base, spec, version, effective = _registry_scenario(book, tmp_path)
    events = _trace("registry", spec, base, tmp_path)
    assert any(e.startswith("replace registry/.tmp-champion.json") for e in events)
    meta = json.loads((spec / "spec.json").read_text())

    for k, event in enumerate(events):
        what = f"killed before event {k + 1}/{len(events)} ({event})"
        root = tmp_path / f"kill-{k}"
        shutil.copytree(base, root)
        assert _child("registry", spec, root, k, tmp_path / f"kill-{k}.txt") == -signal.SIGKILL, what
        _check_registry(root, {book.model_version, version}, what)
        # the rerun of the night registers and promotes again: afterwards pointer and history agree
        registry = ModelRegistry(root)
        registry.register(version, (spec / "model.ubj").read_bytes(), meta["records"])
        registry.set_champion(version, effective, "promote", meta["reason"])
        _check_registry(root, {book.model_version, version}, what + ", then rerun")
        assert registry.champion() == registry.champion_on(effective) == version, what
        assert [e.action for e in registry.history() if e.version == version] == ["promote"], what  # once
        shutil.rmtree(root)
