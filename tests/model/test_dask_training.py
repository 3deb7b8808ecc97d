"""Training on a Dask cluster (pipelines/model/train_dask.py): the workers read the training snapshots themselves,
fit on the very rows the local backend fits on, and give a model as good.

The synthetic book (tests/model/conftest.py) is written into a lake as the nightly stages leave it, a features
and a labels partition per snapshot; the Dask backend is handed only their committed files
(:func:`pipelines.stages.train.training_files`). The local backend's rows are built by run_training's own steps
(sample the features, ``label_snapshot``) from the same frames.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.config.location import as_location
from pipelines.config.model_definition import ModelDefinition
from pipelines.config.settings import ModelConfig, RisklineConfig
from pipelines.domain.feature_dictionary import KEY_COLUMNS
from pipelines.domain.labels import LabelsNotMaturedError
from pipelines.model import metrics as evaluate
from pipelines.model.fit import InsufficientHistoryError
from pipelines.model.pd import predict_margin, predict_pd
from pipelines.model.registry import ModelRegistry
from pipelines.model.score import reason_reference
from pipelines.model.train import (
    SnapshotPlan, fit_challenger, label_snapshot, plan_snapshots, sample_accounts, split_calibration_slice,
)
from pipelines.model.train_dask import fit_challenger_dask, read_training_rows
from pipelines.stages import train as train_stage
from pipelines.store import lake, zones

from conftest import SNAPSHOTS, synthetic_book


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    # Threads, not processes: the same xgboost.dask code path (two workers, a collective allreduce of the
    # histograms) without spawning interpreters on a shared 2-core machine. The object-store test below
    # starts worker processes, where "only the workers read" can be checked from the driver.
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


def _whole_book(book) -> pl.DataFrame:
    return pl.concat([book.fit, book.early_stopping, book.oot])


def _label_rows(day: pl.DataFrame) -> pl.DataFrame:
    return day.select("account_id", pl.col("as_of_date").alias("snapshot_date"), "bad")


def _labels(day: pl.DataFrame, cfg: RisklineConfig) -> pl.DataFrame:
    """The labels partition's file: its rows and the outcome window they were built for."""
    return _label_rows(day).with_columns(horizon_days=pl.lit(cfg.labels.horizon_days),
                                         gap_days=pl.lit(cfg.labels.gap_days))


def _write_lake(root, frame: pl.DataFrame, cfg: RisklineConfig) -> None:
    """Each snapshot's features and labels partitions, published as the features and labels stages publish them."""
    for s in frame["as_of_date"].unique().sort():
        day = frame.filter(pl.col("as_of_date") == s)
        lake.publish_frames(zones.feature_partition(root, s), {zones.FEATURES_FILE: day.drop("bad")})
        lake.publish_frames(zones.labels_partition(root, s), {zones.LABELS_FILE: _labels(day, cfg)})


def _local_rows(frame: pl.DataFrame, plan: SnapshotPlan, names, rate: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(fit, early_stopping) as run_training's local backend builds them: sample the features, then label."""
    def labelled(s: dt.date) -> pl.DataFrame:
        day = frame.filter(pl.col("as_of_date") == s)
        return label_snapshot(sample_accounts(day.drop("bad"), rate), _label_rows(day), names)

    return (pl.concat([labelled(s) for s in plan.fit_dates]),
            pl.concat([labelled(s) for s in plan.early_stopping_dates]))


def _with_rate(cfg: RisklineConfig, rate: float) -> RisklineConfig:
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"training_sample_rate": rate})})


def _keys(frames: list[pl.DataFrame]) -> tuple[int, str]:
    """(rows, sha256 of the sorted keys): which rows, whatever their order."""
    keys = pl.concat([f.select(KEY_COLUMNS) for f in frames]).sort(KEY_COLUMNS)
    return keys.height, hashlib.sha256(keys.write_csv().encode()).hexdigest()


def _oot_auc(challenger, oot: pl.DataFrame, nthread: int) -> float:
    return evaluate.auc(oot["bad"], predict_pd(challenger.trained.booster, oot, nthread))


@pytest.mark.parametrize("scenario", ["half the accounts, recalibrated", "clock features, no recalibration"])
def test_the_workers_fit_the_local_rows_and_store_the_local_numbers(
    scenario, book, definition: ModelDefinition, cfg: RisklineConfig, client, tmp_path
):
    frame, rate = _whole_book(book), 0.5
    if scenario.startswith("clock"):
        # the whole book one age at each snapshot (a clock) and a line never frozen (a constant): both screened
        frame = frame.with_columns(months_on_book=pl.col("as_of_date").dt.ordinal_day().cast(pl.Float64),
                                   is_frozen=pl.lit(0.0))
        definition = definition.model_copy(update={"calibration": definition.calibration.model_copy(
            update={"method": "none"})})
        rate = 1.0
    _write_lake(tmp_path, frame, cfg)
    files = train_stage.training_files(tmp_path, book.plan, _with_rate(cfg, rate))
    remote = fit_challenger_dask(client, read_training_rows(client, files, definition.feature_names), definition)
    fit, early_stopping = _local_rows(frame, book.plan, definition.feature_names, rate)
    local = fit_challenger(fit, early_stopping, definition)

    # the same rows: sampled, joined, screened and split alike
    assert remote.rows == local.rows and remote.excluded == local.excluded
    if scenario.startswith("clock"):
        assert set(remote.excluded) == {"months_on_book", "is_frozen"} and remote.platt is None
    # as good a model: only the histogram sums' rounding differs between one process and two workers
    nthread = definition.hyperparameters.nthread
    assert _oot_auc(local, book.oot, nthread) > 0.7
    assert abs(_oot_auc(remote, book.oot, nthread) - _oot_auc(local, book.oot, nthread)) <= 0.01
    assert remote.raw.trees == remote.raw.best_iteration + 1 == remote.raw.booster.num_boosted_rounds()
    assert remote.trained.feature_names == local.trained.feature_names

    # every number stored of the rows is what the local functions give on the local rows, to the bit, for the
    # booster the workers fitted (computed where the rows are: per-snapshot sums, exact order statistics)
    booster, features, served = remote.trained.booster, remote.served.feature_names, remote.served
    if definition.calibration.method == "platt":
        stopping, calibration = split_calibration_slice(early_stopping, definition.calibration.holdout_share)
    else:
        stopping, calibration = early_stopping, early_stopping.clear()
    assert remote.fit_auc == evaluate.auc(fit["bad"], predict_pd(booster, fit, nthread))
    assert remote.early_stopping_auc == evaluate.auc(stopping["bad"], predict_pd(booster, stopping, nthread))
    training = pl.concat([fit.select(features), stopping.select(features)])
    assert dict(remote.training_bins) == {
        f: evaluate.reference_bins(training[f].cast(pl.Float64).to_numpy(), served.stability.bins) for f in features}
    assert dict(remote.reason_reference) == reason_reference(fit, features)
    np.testing.assert_array_equal(remote.calibration_bad, calibration["bad"].to_numpy())
    np.testing.assert_array_equal(remote.calibration_margin, predict_margin(remote.raw.booster, calibration, nthread))


def test_the_workers_refuse_a_fit_set_without_bads(book, definition, cfg, client, tmp_path):
    frame = _whole_book(book).with_columns(
        bad=pl.when(pl.col("as_of_date").is_in(book.plan.fit_dates)).then(0).otherwise(pl.col("bad")).cast(pl.Int8))
    _write_lake(tmp_path, frame, cfg)
    rows = read_training_rows(client, train_stage.training_files(tmp_path, book.plan, cfg), definition.feature_names)
    with pytest.raises(InsufficientHistoryError, match="the fit set has 6000 rows and 0 bads"):
        fit_challenger_dask(client, rows, definition)


def test_cached_labels_of_another_outcome_window_are_rebuilt_before_the_workers_read_them(book, cfg, tmp_path):
    # as load_labels does for the local backend (tests/unit/test_train.py): labels cached without the gap
    # describe another window, so they are rebuilt from the curated zone, here absent
    _write_lake(tmp_path, _whole_book(book), cfg)
    stale = book.plan.early_stopping_dates[0]
    day = _whole_book(book).filter(pl.col("as_of_date") == stale)
    lake.publish_frames(zones.labels_partition(tmp_path, stale), {zones.LABELS_FILE: _labels(day, cfg).drop("gap_days")})
    with pytest.raises(LabelsNotMaturedError, match=f"cannot label snapshot {stale}"):
        train_stage.training_files(tmp_path, book.plan, cfg)


def _small_cfg(cfg: RisklineConfig, folder: Path, **model) -> RisklineConfig:
    committed = Path(cfg.source_dir) / cfg.model.definition
    one_thread = folder / "pd_model.yaml"  # one thread: see tests/model/conftest.py
    one_thread.write_text(committed.read_text().replace("nthread: 2", "nthread: 1"))
    return cfg.model_copy(update={"model": ModelConfig(
        definition=str(one_thread), training_snapshots=3, early_stopping_snapshots=1, **model)})


def test_run_training_with_the_dask_backend_never_loads_a_training_snapshot_on_the_driver(
    definition, cfg, client, tmp_path, monkeypatch
):
    as_of = dt.date(2026, 11, 25)
    local_cfg = _small_cfg(cfg, tmp_path)
    dask_cfg = _small_cfg(cfg, tmp_path, train_backend="dask", dask_scheduler_address=client.scheduler.address)
    plan = plan_snapshots(as_of, cfg.labels.horizon_days, local_cfg.model, gap_days=cfg.labels.gap_days)
    frame = synthetic_book(definition, [*plan.training_dates, plan.oot_date], accounts=1500, seed=4)
    roots = {"local": tmp_path / "local", "dask": tmp_path / "dask"}
    for root in roots.values():
        lake.publish_frames(zones.curated(root, "accounts", plan.fit_dates[0]),
                            {"part-0.parquet": pl.DataFrame({"account_id": ["A"]})})  # when the data starts
        _write_lake(root, frame, cfg)
    local = train_stage.run_training(roots["local"], as_of, local_cfg)

    def refuse(name, real):
        def guarded(root, snapshot, *args, **kwargs):
            assert snapshot not in plan.training_dates, f"the driver ran {name} for training snapshot {snapshot}"
            return real(root, snapshot, *args, **kwargs)
        return guarded

    # the stage's own loaders (the workers call label_snapshot through train_dask, which is not patched)
    monkeypatch.setattr(train_stage, "load_feature_snapshot", refuse("load_feature_snapshot",
                                                                     train_stage.load_feature_snapshot))
    monkeypatch.setattr(train_stage, "load_labels", refuse("load_labels", train_stage.load_labels))
    remote = train_stage.run_training(roots["dask"], as_of, dask_cfg)

    manifests = {name: ModelRegistry(roots[name]).record(r.version).manifest
                 for name, r in (("local", local), ("dask", remote))}
    assert manifests["dask"]["rows"] == manifests["local"]["rows"]  # fit, early stopping, calibration, OOT
    assert manifests["dask"]["inputs"] == manifests["local"]["inputs"]  # the same files, fingerprinted alike
    assert remote.created and remote.champion == remote.version
    assert abs(remote.oot["auc"] - local.oot["auc"]) <= 0.01


@pytest.fixture()
def worker_processes(s3_root):
    """Two worker processes, started after ``s3_root`` put the store's credentials in the environment (a worker
    inherits its environment when it starts, as one on a real cluster has its own)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


def test_workers_read_the_snapshots_from_an_object_store_and_the_driver_never_does(
    book, definition, cfg, s3_root, worker_processes, tmp_path
):
    # The features and labels stages do not publish to an object store yet, so the snapshot partitions are
    # published there with lake.publish_frames, as those stages publish them on a local root.
    client, root, frame, rate = worker_processes, as_location(s3_root), _whole_book(book), 0.5
    decoy = frame.with_columns(pl.lit("Z") + pl.col("account_id"))  # other accounts: reading it shows in the keys
    _write_lake(root, decoy.filter(pl.col("as_of_date") == book.plan.fit_dates[0]), cfg)
    _write_lake(root, frame, cfg)  # commits a new version; the decoy's stays beside it, as readers may use it
    stray = zones.feature_partition(root, book.plan.fit_dates[1]).joinpath("_v=29990101T000000000000Z-deadbeef")
    stray.joinpath(zones.FEATURES_FILE).write_bytes(  # an upload whose writer died before its commit
        lake.partition_file(zones.feature_partition(root, book.plan.fit_dates[0]), zones.FEATURES_FILE).read_bytes())
    files = train_stage.training_files(root, book.plan, _with_rate(cfg, rate))
    assert all(f.startswith(f"{s3_root}/") for s in files.fit + files.early_stopping for f in s.features + s.labels)

    # the driver, from here on: no Parquet read through polars or the lake, and only summaries back from the
    # workers (the calibration slice's labels and margins are the only per-row numbers)
    from dask.sizeof import sizeof
    from distributed import Client, Future

    read, gathered = [], []

    def counted(real):
        def gather(self, *a, **k):
            out = real(self, *a, **k)
            gathered.append(sizeof(out))
            return out
        return gather

    with pytest.MonkeyPatch.context() as spy:
        for module, name in ((pl, "read_parquet"), (pl, "scan_parquet"), (lake, "parquet_sources")):
            real = getattr(module, name)
            spy.setattr(module, name, lambda *a, _real=real, _name=name, **k: read.append(_name) or _real(*a, **k))
        for cls, name in ((Client, "gather"), (Future, "result")):
            spy.setattr(cls, name, counted(getattr(cls, name)))
        rows = read_training_rows(client, files, definition.feature_names)
        remote = fit_challenger_dask(client, rows, definition)

    fit, early_stopping = _local_rows(frame, book.plan, definition.feature_names, rate)
    local = fit_challenger(fit, early_stopping, definition)
    matrix = (fit.height + early_stopping.height) * len(definition.feature_names) * 4
    assert read == []
    # Back from the workers: per-snapshot summaries, a few numbers per feature (counts, the picked quantiles,
    # bin counts) and the calibration slice's labels and margins, 9 bytes a row of 1,000. On this 5,000-row
    # sample that is ~7% of the 0.9 MB matrix (measured); on a 1M book's 10% sample it would be ~0.2%.
    assert sum(gathered) < matrix / 10, (sum(gathered), matrix)
    # the same rows (count and keys), and as good a model
    on_workers = {name: [f.select(KEY_COLUMNS) for f in client.gather(
        [client.submit(pl.DataFrame.select, p.future, list(KEY_COLUMNS)) for p in parts])]
        for name, parts in (("fit", rows.fit), ("early_stopping", rows.early_stopping))}
    assert _keys(on_workers["fit"]) == _keys([fit]) and _keys(on_workers["early_stopping"]) == _keys([early_stopping])
    assert remote.rows == local.rows
    nthread = definition.hyperparameters.nthread
    assert abs(_oot_auc(remote, book.oot, nthread) - _oot_auc(local, book.oot, nthread)) <= 0.01

    # the same lake on a local folder gives the same model on the same cluster: the root does not matter, and
    # the placement (snapshot i on XGBoost's rank i mod n) makes a rerun byte-identical
    _write_lake(tmp_path, frame, cfg)
    files = train_stage.training_files(tmp_path, book.plan, _with_rate(cfg, rate))
    again = fit_challenger_dask(client, read_training_rows(client, files, definition.feature_names), definition)
    assert again.trained.model_bytes == remote.trained.model_bytes
