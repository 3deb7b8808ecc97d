"""Shared helpers of the reliability tests: the published lake they start from, digests, landing drops.

The lake (:func:`build_published_lake`, once per session by the ``published_lake`` fixture): 1,000 accounts x 60 generated days. Every day before ``PUBLISHED`` is seeded straight into the curated
zone (conformed and de-duplicated, not validated: it stands for nights ingested earlier, and costs about
2 s where 58 real ingests would cost a minute). A champion model is trained on the features of the day
before ``PUBLISHED`` with a synthetic label (60 days of history cannot mature a 90-day label; these tests
need a model that serves, not a good one). Then the real nightly run publishes ``PUBLISHED``.

``NEXT`` (the last generated day) has a clean landing drop that is not ingested yet: the bad-input tests
tamper with it, run the night for it and check what happened to the night before.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipelines.config.model_definition import load_model_definition
from pipelines.config.settings import RisklineConfig
from pipelines.contracts.landing import DATASETS
from pipelines.contracts.outputs import OUTPUTS, OUTPUT_KEYS
from pipelines.stages import ingest, night as nightly
from pipelines.store import drops, lake, publish
from pipelines.store.zones import RECONCILIATION_FILE, feature_partition, ledger_partition, read_features
from tools import generate
from tools import faults
from tools.faults import Fault
from tools.simulate import GeneratorParams, PortfolioDay, PortfolioSimulation
from tools.generator_config import load_generator_config

NEXT = dt.date(2026, 11, 20)
PUBLISHED = NEXT - dt.timedelta(days=1)
DAYS = 60
ACCOUNTS = 1_000
SEED = 11


@dataclass(frozen=True)
class PublishedLake:
    """A pristine lake (never modify ``root``: copy it with the ``lake_root`` fixture)."""

    root: Path
    published: dt.date
    next_day: dt.date
    model_version: str
    last_day: PortfolioDay  # the generator's clean NEXT day, for injecting generator faults
    seed: int


def tree_digests(root: Path, *parts: str) -> dict[str, str]:
    """sha256 of every file under ``root/<parts...>`` (hidden staging folders included), by relative path."""
    base = root.joinpath(*parts)
    if not base.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(base.rglob("*")) if p.is_file()
    }


def published_digests(root: Path, as_of: dt.date) -> dict[str, str]:
    """Every published file of one date: the four outputs and the manifest."""
    out: dict[str, str] = {}
    for folder in sorted((root / "outputs").glob(f"*/as_of_date={as_of.isoformat()}")):
        out.update(tree_digests(root, *folder.relative_to(root).parts))
    return out


def write_fault(root: Path, book: PublishedLake, kind: str, cfg: RisklineConfig) -> None:
    """Replace the NEXT landing drop with the generator's ``kind`` fault injected into that day."""
    parts, _ = faults.inject_faults(book.last_day, [Fault(kind, book.next_day)], book.seed, cfg.business.tz)
    for dataset, part in parts.items():
        # the generator's own writer, so a fault lands exactly as `riskline generate --faults` would write it
        generate._write_landing_partition(root, dataset, book.next_day, part)


def write_landing(root: Path, params: GeneratorParams, cfg: RisklineConfig) -> PortfolioDay:
    sim = PortfolioSimulation(params, load_generator_config(), cfg.business.tz)
    last = None
    for day in sim.run():
        parts, _ = faults.inject_faults(day, [], params.seed, cfg.business.tz)
        for dataset, part in parts.items():
            generate._write_landing_partition(root, dataset, day.date, part)
        last = day
    assert last is not None and last.date == params.end_date
    return last


def fixture_training_book(root: Path, as_of: dt.date, cfg: RisklineConfig) -> tuple[Any, ...]:
    """``(plan, fit, early_stopping, oot, definition)`` for training on ``as_of``'s features.

    Sixty days cannot mature a 90-day label, so the snapshots are the features of ``as_of`` (4 copies of
    the book under suffixed ids, for enough rows to judge calibration) with a label drawn from a logistic
    PD in arrears and utilization: the gate sees a plausible model.
    """
    from pipelines.model.train import SnapshotPlan

    if not lake.is_complete(feature_partition(root, as_of)):
        from pipelines.stages.features import build_feature_snapshot

        build_feature_snapshot(root, as_of, cfg)
    features = read_features(root, as_of)
    definition = load_model_definition(cfg)
    definition = definition.model_copy(
        update={"hyperparameters": definition.hyperparameters.model_copy(update={"nthread": 1})}
    )
    rng = np.random.default_rng(SEED)
    snapshots = [as_of - dt.timedelta(days=cfg.labels.horizon_days + 7 * (5 - i)) for i in range(6)]
    signal = (features["dpd"].fill_null(0).clip(0, 30) / 10 + features["utilization"].fill_null(0) * 2).to_numpy()
    frames = []
    for date in snapshots:
        for copy in range(4):
            pd_ = 1 / (1 + np.exp(3.2 - 1.5 * (signal + rng.normal(0, 0.7, features.height))))
            frames.append(features.with_columns(
                pl.col("account_id") + f"-{copy}", pl.lit(date).alias("as_of_date"),
                pl.Series("bad", (rng.random(features.height) < pd_).astype(np.int8)),
            ))
    book = pl.concat(frames)
    plan = SnapshotPlan(as_of, cfg.labels.horizon_days, tuple(snapshots[:3]), tuple(snapshots[3:5]), snapshots[5])
    on = pl.col("as_of_date")
    return (plan, book.filter(on.is_in(plan.fit_dates)), book.filter(on.is_in(plan.early_stopping_dates)),
            book.filter(on == plan.oot_date), definition)


def train_fixture_champion(root: Path, as_of: dt.date, cfg: RisklineConfig) -> str:
    """Train, gate, register and promote a champion serving from ``as_of`` (the real training entry point)."""
    from pipelines.model.registry import ModelRegistry
    from pipelines.model.train import train_evaluate_register

    plan, fit, early_stopping, oot, definition = fixture_training_book(root, as_of, cfg)
    result = train_evaluate_register(ModelRegistry(root), plan, fit, early_stopping, oot, definition, cfg.model)
    assert result.promoted, result.gate["summary"]
    return result.version


def build_published_lake(root: Path, cfg: RisklineConfig) -> PublishedLake:
    params = GeneratorParams(accounts=ACCOUNTS, days=DAYS, end_date=NEXT, seed=SEED)
    last_day = write_landing(root, params, cfg)
    day = params.start_date
    while day < PUBLISHED:
        for name in DATASETS:
            frame = drops.read_landing(root, name, day, cfg)
            lake.publish_frames(lake.partition_dir(root, "curated", name, day), {ingest.CURATED_FILE: frame})
        day += dt.timedelta(days=1)
    version = train_fixture_champion(root, PUBLISHED - dt.timedelta(days=1), cfg)
    nightly.run_night(root, PUBLISHED, cfg, nightly.RunOptions(retrain=False))
    return PublishedLake(root, PUBLISHED, NEXT, version, last_day, SEED)


def landing(root: Path, dataset: str, day: dt.date) -> pl.DataFrame:
    return pl.read_parquet(lake.parquet_files(lake.partition_dir(root, "landing", dataset, day)))


def deliver(root: Path, dataset: str, day: dt.date, files: dict[str, pl.DataFrame | bytes],
            manifest: bytes | None = None) -> None:
    """Replace a landing drop whole, as upstream delivers it: the files, then ``_SUCCESS``: plain, like the
    published lake's (an upstream that declares nothing), or ``manifest`` (control totals)."""
    with lake.staged_partition(lake.partition_dir(root, "landing", dataset, day), manifest=manifest) as tmp:
        for name, content in sorted(files.items()):
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)  # a name may place a file in a subfolder
            if isinstance(content, bytes):
                (tmp / name).write_bytes(content)
            else:
                lake.write_parquet(content, tmp / name)


def run_night_without_report(root: Path, day: dt.date, cfg: RisklineConfig) -> nightly.RunResult:
    """``riskline run`` of ``day`` with the champion (no retrain) and without the report stage (4 s a night:
    it only reads what publish wrote, and the report has its own tests)."""
    import pytest

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nightly, "stage_report", lambda root, as_of, cfg: {})
        return nightly.run_night(root, day, cfg, nightly.RunOptions(retrain=False))


def published_outputs(root: Path, day: dt.date) -> dict[str, pl.DataFrame]:
    """The four published outputs of ``day``, each sorted by its key."""

    return {name: publish.read_output(root, name, day).sort(OUTPUT_KEYS[name]) for name in OUTPUTS}


def account_rows(outputs: dict[str, pl.DataFrame], account_ids: set[str] | list[str]) -> dict[str, list[dict]]:
    """Every published row of the given accounts, per output (to compare one account across two runs)."""
    wanted = pl.Series(sorted(account_ids), dtype=pl.String).implode()
    return {name: frame.filter(pl.col("account_id").is_in(wanted)).to_dicts() for name, frame in outputs.items()}


def reconciliation(root: Path, day: dt.date) -> dict[str, Any]:
    """The ledger's reconciliation of ``day`` (``ledger/as_of_date=D/_reconciliation.json``)."""

    return json.loads((ledger_partition(root, day) / RECONCILIATION_FILE).read_text())


# --- child processes (crash_child.py) ---------------------------------------------------------------

CHILD = Path(__file__).with_name("crash_child.py")


def start_child(
    mode: str, spec: Path | str, root: Path, trace: Path, kill_after: int = -1, pause: tuple[str, Path] | None = None
) -> subprocess.Popen[str]:
    """Start ``crash_child.py`` (see its docstring) in its own process."""
    args = [sys.executable, str(CHILD), mode, str(spec), str(root), str(kill_after), str(trace)]
    if pause:
        args += [pause[0], str(pause[1])]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_child(proc: subprocess.Popen[str], timeout: float = 180) -> int:
    """Wait for a child; fail the test with its stderr if it died of anything but our SIGKILL."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"child {proc.args[2]} failed on its own (rc {proc.returncode}):\n{err[-3000:]}")
    return proc.returncode


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 180) -> None:
    """Wait until ``path`` exists; fail early if ``proc`` ends first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            finish_child(proc)
            raise AssertionError(f"child ended (rc {proc.returncode}) before {path.name} appeared")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path.name} did not appear within {timeout} s")
        time.sleep(0.05)


def write_publish_spec(spec: Path, as_of: dt.date, frames: dict[str, pl.DataFrame], manifest: dict) -> None:
    """What a ``publish`` child publishes: the four frames and the manifest."""
    spec.mkdir(parents=True)
    for name, frame in frames.items():
        frame.write_parquet(spec / f"{name}.parquet")
    (spec / "spec.json").write_text(json.dumps({"outputs": sorted(frames), "as_of": as_of.isoformat(),
                                                "manifest": manifest}))


def spec_frames(spec: Path) -> dict[str, pl.DataFrame]:
    """The frames of a publish spec, read back exactly as the child reads them."""
    outputs = json.loads((spec / "spec.json").read_text())["outputs"]
    return {name: pl.read_parquet(spec / f"{name}.parquet") for name in outputs}


def spec_manifest(spec: Path) -> dict:
    return json.loads((spec / "spec.json").read_text())["manifest"]


def publish_scenario(book: PublishedLake, tmp: Path, rerun: bool) -> tuple[Path, Path, dt.date, Path]:
    """A lake holding only the published night, a spec for the next publish, and that publish done cleanly.

    ``rerun``: republish the same date with changed content (a rerun after upstream redelivered), which
    swaps over existing partitions; otherwise publish the next date, which creates them.
    """
    base = tmp / "base"
    shutil.copytree(book.root / "outputs", base / "outputs")  # publishing needs nothing else
    old = {name: publish.read_output(base, name, book.published) for name in OUTPUTS}
    as_of = book.published if rerun else book.next_day
    changed = pl.lit("rerun-version").alias("model_version") if rerun else pl.lit(as_of).alias("as_of_date")
    new = {name: frame.with_columns(changed) for name, frame in old.items()}
    manifest = {"model_version": "rerun-version" if rerun else book.model_version, "note": "crash test"}
    spec = tmp / "spec"
    write_publish_spec(spec, as_of, new, manifest)
    reference = tmp / "reference"
    shutil.copytree(base, reference)
    publish.publish_outputs(reference, as_of, spec_frames(spec), manifest)  # what the child will publish
    return base, spec, as_of, reference
