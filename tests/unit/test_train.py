"""Training: which snapshots a night uses, how features meet labels, and a reproducible booster."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.config.model_definition import ModelDefinition, load_model_definition
from pipelines.config.settings import ModelConfig
from pipelines.domain import features, labels
from pipelines.model.fit import InsufficientHistoryError, train_model
from pipelines.model.registry import ModelRegistry
from pipelines.model.train import label_snapshot, plan_snapshots, sample_accounts
from pipelines.stages.train import config_hash, load_labels, run_training
from pipelines.store import lake, zones

D = dt.date(2026, 11, 25)


def test_plan_uses_matured_snapshots_and_keeps_oot_apart():
    cfg = ModelConfig(snapshot_interval_days=7, training_snapshots=4, early_stopping_snapshots=1)
    plan = plan_snapshots(D, 90, cfg)
    # 2026-11-25 - 90 days = 2026-08-27: the newest snapshot whose 90-day horizon is fully observed
    assert plan.oot_date == dt.date(2026, 8, 27)
    assert plan.fit_dates == (dt.date(2026, 7, 30), dt.date(2026, 8, 6), dt.date(2026, 8, 13))
    assert plan.early_stopping_dates == (dt.date(2026, 8, 20),)
    assert all(s + dt.timedelta(days=90) <= D for s in (*plan.training_dates, plan.oot_date))
    assert plan.oot_date not in plan.training_dates
    # with a 7-day gap before the outcome window every snapshot moves a week back: D - 7 - 90
    gapped = plan_snapshots(D, 90, cfg, gap_days=7)
    assert (gapped.oot_date, gapped.early_stopping_dates) == (dt.date(2026, 8, 20), (dt.date(2026, 8, 13),))


def test_plan_drops_snapshots_before_the_data_and_fails_when_too_few_remain():
    cfg = ModelConfig(snapshot_interval_days=7, training_snapshots=4, early_stopping_snapshots=1)
    # 07-30 has no data yet: 08-06 and 08-13 remain to fit on, 08-20 still early-stops
    assert plan_snapshots(D, 90, cfg, earliest=dt.date(2026, 8, 1)).fit_dates == (dt.date(2026, 8, 6), dt.date(2026, 8, 13))
    with pytest.raises(InsufficientHistoryError, match="only 1 matured training snapshots"):
        plan_snapshots(D, 90, cfg, earliest=dt.date(2026, 8, 14))
    with pytest.raises(InsufficientHistoryError, match="before the first data"):
        plan_snapshots(D, 90, cfg, earliest=dt.date(2026, 9, 1))


def test_early_stopping_may_not_take_every_training_snapshot():
    with pytest.raises(ValueError, match="early_stopping_snapshots"):
        ModelConfig(training_snapshots=2, early_stopping_snapshots=2)


def test_label_snapshot_joins_on_account_and_date_and_sorts():
    s = dt.date(2026, 8, 27)
    features = pl.DataFrame({"account_id": ["b", "a", "c"], "as_of_date": [s] * 3, "dpd": [3, 0, 40],
                             "gender": ["F", "M", "F"]})
    # c was already in default at s: labels.py gives it no label, so it must not be trained on
    labels = pl.DataFrame({"account_id": ["a", "b", "x"], "snapshot_date": [s] * 3, "bad": [0, 1, 1]})
    out = label_snapshot(features, labels, ["dpd"])
    assert out.columns == ["account_id", "as_of_date", "dpd", "bad"]  # gender never travels along
    assert out.rows() == [("a", s, 0.0, 0), ("b", s, 3.0, 1)]
    assert out.schema["dpd"] == pl.Float32
    with pytest.raises(ValueError, match="lacks model features"):
        label_snapshot(features, labels, ["utilization"])


def test_sample_keeps_the_same_accounts_on_every_snapshot():
    ids = [f"A{i:06d}" for i in range(20_000)]
    one = sample_accounts(pl.DataFrame({"account_id": ids}), 0.25)["account_id"]
    two = sample_accounts(pl.DataFrame({"account_id": ids[::-1]}), 0.25)["account_id"]
    assert set(one) == set(two)
    assert 0.23 < len(one) / len(ids) < 0.27  # FNV-1a spreads ids evenly
    assert sample_accounts(pl.DataFrame({"account_id": ids}), 1.0).height == 20_000


def _definition(**hp) -> ModelDefinition:
    return ModelDefinition(
        name="t",
        features=[{"name": "dpd", "monotone": 1}, {"name": "utilization", "monotone": 1}, {"name": "spend_30d_cents"}],
        hyperparameters={"num_boost_round": 40, "early_stopping_rounds": 5, "min_child_weight": 1, "nthread": 1, **hp},
    )


def _book(n: int, date: dt.date, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    return pl.DataFrame({
        "account_id": [f"A{i:05d}" for i in range(n)],
        "as_of_date": [date] * n,
        "dpd": np.maximum(0, np.round(10 * risk + rng.normal(size=n) * 5)).astype(np.float32),
        "utilization": (1 / (1 + np.exp(-risk))).astype(np.float32),
        "spend_30d_cents": rng.exponential(1e4, n).astype(np.float32),
        "bad": (rng.random(n) < 1 / (1 + np.exp(3 - 1.5 * risk))).astype(np.int8),
    })


def test_identical_inputs_give_a_byte_identical_model():
    fit, stop = _book(1500, dt.date(2026, 7, 30), 1), _book(800, dt.date(2026, 8, 20), 2)
    first = train_model(fit, stop, _definition())
    again = train_model(fit.reverse(), stop.reverse(), _definition())  # row order is the caller's
    assert first.model_bytes == again.model_bytes
    assert first.model_bytes[:1] == b"{"  # UBJSON object marker
    assert list(first.booster.feature_names or []) == ["dpd", "utilization", "spend_30d_cents"]
    assert first.trees == first.best_iteration + 1 == first.booster.num_boosted_rounds()
    # ...and the test can fail: another seed samples other rows and columns, so other bytes
    assert train_model(fit, stop, _definition(seed=1)).model_bytes != first.model_bytes


def test_training_without_bads_is_refused():
    fit = _book(300, dt.date(2026, 7, 30), 1).with_columns(pl.lit(0, dtype=pl.Int8).alias("bad"))
    with pytest.raises(InsufficientHistoryError, match="fit set has 300 rows and 0 bads"):
        train_model(fit, _book(300, dt.date(2026, 8, 20), 2), _definition())


def test_config_hash_follows_the_definition(cfg):
    assert config_hash(cfg, _definition()) == config_hash(cfg, _definition())
    assert config_hash(cfg, _definition()) != config_hash(cfg, _definition(eta=0.1))


def test_run_training_reads_the_cached_snapshots_and_fingerprints_them(tmp_path, cfg):
    # A tiny lake: curated accounts from 2026-07-25, and cached features + labels for the 4 planned dates.
    committed = Path(cfg.source_dir) / cfg.model.definition
    one_thread = tmp_path / "pd_model.yaml"  # one thread: see tests/model/conftest.py
    one_thread.write_text(committed.read_text().replace("nthread: 2", "nthread: 1"))
    small = cfg.model_copy(update={"model": ModelConfig(
        definition=str(one_thread), training_snapshots=3, early_stopping_snapshots=1)})
    definition = load_model_definition(small)
    plan = plan_snapshots(D, small.labels.horizon_days, small.model, gap_days=small.labels.gap_days)
    lake.publish_frames(lake.partition_dir(tmp_path, "curated", "accounts", dt.date(2026, 7, 25)),
                        {"part-0.parquet": pl.DataFrame({"account_id": ["A"]})})
    rng = np.random.default_rng(5)
    for i, s in enumerate((*plan.training_dates, plan.oot_date)):
        book = _book(1500, s, seed=10 + i)
        extra = {f: rng.random(book.height) for f in definition.feature_names if f not in book.columns}
        lake.publish_frames(zones.feature_partition(tmp_path, s),
                            {zones.FEATURES_FILE: book.drop("bad").with_columns(**extra)})
        lake.publish_frames(zones.labels_partition(tmp_path, s), {zones.LABELS_FILE: book.select(
            "account_id", pl.col("as_of_date").alias("snapshot_date"), "bad",
            horizon_days=pl.lit(small.labels.horizon_days), gap_days=pl.lit(small.labels.gap_days))})

    result = run_training(tmp_path, D, small)
    assert result.created and result.promoted and result.champion == result.version
    manifest = ModelRegistry(tmp_path).record(result.version).manifest
    # 2026-11-25 - 7 days of gap - 90 days of horizon: the newest snapshot whose outcome window is observed
    assert manifest["training_window"]["oot_date"] == "2026-08-20"
    assert sorted(manifest["inputs"]["features"]) == sorted(s.isoformat() for s in (*plan.training_dates, plan.oot_date))
    first = manifest["inputs"]["features"]["2026-08-20"][0]
    assert first["file"] == "features/as_of_date=2026-08-20/features.parquet" and len(first["sha256"]) == 64
    assert manifest["rows"]["oot"]["rows"] == 1500 and manifest["config_hash"]
    # the same lake tomorrow morning (a rerun): same bytes, same version, nothing new in the history
    again = run_training(tmp_path, D, small)
    assert (again.version, again.created) == (result.version, False)


def test_cached_labels_of_another_outcome_window_are_not_trained_on(tmp_path, cfg):
    # Labels cached before labels.gap_days existed (or with another horizon) describe another window:
    # load_labels must rebuild them from the curated zone, here absent, rather than train on them.
    s = dt.date(2026, 8, 20)
    stale = pl.DataFrame({"account_id": ["A"], "snapshot_date": [s], "bad": [1], "horizon_days": [90]})
    lake.publish_frames(zones.labels_partition(tmp_path, s), {zones.LABELS_FILE: stale})
    with pytest.raises(labels.LabelsNotMaturedError, match="cannot label snapshot 2026-08-20"):
        load_labels(tmp_path, s, cfg)
    fresh = stale.with_columns(gap_days=pl.lit(cfg.labels.gap_days))
    lake.publish_frames(zones.labels_partition(tmp_path, s), {zones.LABELS_FILE: fresh})
    assert load_labels(tmp_path, s, cfg).equals(fresh)
