"""Sharded nightly stages (pipelines/stages/shards.py): any shard count publishes the same outputs."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import xgboost as xgb
from polars.testing import assert_frame_equal

from pipelines.config.settings import DEFAULT_CONFIG_PATH
from pipelines.contracts.landing import CONTRACT
from pipelines.model.registry import ModelRegistry, version_id
from pipelines.stages import night as nightly
from pipelines.stages.shards import ShardsIncompleteError, merge_decisions, run_shards
from pipelines.store import lake, zones
from pipelines.store.readers import read_shard_file
from pipelines.store.zones import shard_dir

D = dt.date
FIRST = D(2024, 1, 1)
LAST = D(2024, 2, 19)
RUN_DAYS = (LAST - dt.timedelta(days=1), LAST)  # two nights: the second reads the first's scores and history
N_ACCOUNTS = 160
MODEL_FEATURES = ["dpd", "overdue_cents", "utilization", "spend_30d_cents", "login_count_30d", "max_dpd_90d"]
AGENT_CAPACITY = 3


def _ts(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(4), dt.UTC)


def _publish(root: Path, dataset: str, day: dt.date, rows: list[tuple]) -> None:
    frame = pl.DataFrame(rows, schema=CONTRACT[dataset].curated_schema(), orient="row")
    lake.publish_frames(lake.partition_dir(root, "curated", dataset, day), {"part-0.parquet": frame})


def _write_book(root: Path, seed: int = 11) -> None:
    """A small curated book: loans repaid on time, late or never, so every bucket and action occurs."""
    rng = np.random.default_rng(seed)
    ids = [f"AC{k:05d}" for k in range(N_ACCOUNTS)]
    days = [FIRST + dt.timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
    inst: dict[dt.date, list] = {d: [] for d in days}
    pay: dict[dt.date, list] = {d: [] for d in days}
    beh: dict[dt.date, list] = {d: [] for d in days}
    for a, acc in enumerate(ids):
        for n_loan in range(int(rng.integers(0, 3))):
            draw = days[int(rng.integers(0, 8) if n_loan == 0 else rng.integers(10, 40))]  # old and new arrears
            loan = f"{acc}-L{n_loan}"
            for no in (1, 2, 3):
                due = draw + dt.timedelta(days=7 * no)
                principal = int(rng.integers(1, 9)) * 1_000
                inst[draw].append((f"{loan}-{no}", loan, acc, no, due, principal, 150))
                paid_on = due + dt.timedelta(days=int(rng.choice([0, 0, 4, 20, 99])))
                if paid_on in pay:  # the instalment, exactly: an overpayment is credit that holds the account
                    pay[paid_on].append((f"{loan}-P{no}", acc, loan, _ts(paid_on), principal + 150))
        for d in days:
            for e in range(int(rng.poisson(0.5))):
                kind = str(rng.choice(["login", "purchase", "refund", "cash_draw"]))
                cents = None if kind == "login" else int(rng.integers(100, 5_000))
                beh[d].append((f"{acc}-{d}-{e}", acc, _ts(d), kind, cents, "app"))
    for d in days:
        _publish(root, "installments", d, inst[d])
        _publish(root, "payments", d, pay[d])
        _publish(root, "behaviour", d, beh[d])
        status = ["closed" if k % 13 == 0 else "active" for k in range(N_ACCOUNTS)]
        _publish(root, "accounts", d, [
            (acc, D(2023, 3, 1), 300_000 + 5_000 * (k % 7), status[k], 12_000_000 if k % 2 else None, None, None,
             None)
            for k, acc in enumerate(ids)
        ])


def _register_champion(root: Path) -> None:
    """A small booster over a few dictionary features whose PD rises with arrears (grades A-E all occur)."""
    rng = np.random.default_rng(5)
    x = rng.random((3000, len(MODEL_FEATURES))).astype(np.float32) * [60, 2e5, 1.5, 2e5, 40, 90]
    bad = (rng.random(3000) < 0.02 + 0.6 * (x[:, 0] > 10)).astype(np.float32)
    data = xgb.DMatrix(x, label=bad, feature_names=MODEL_FEATURES)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2, "seed": 1, "nthread": 1}, data, 30)
    raw = bytes(booster.save_raw(raw_format="ubj"))
    registry = ModelRegistry(root)
    version = version_id(FIRST, raw)
    registry.register(version, raw, {"features": [], "manifest": {"as_of": FIRST.isoformat()}, "metrics": {},
                                     "gate": {}})
    registry.set_champion(version, FIRST, "promote", "test")


@pytest.fixture(scope="module", autouse=True)
def _no_fsync():
    """Durability is lake.py's concern (tested there); here hundreds of fsyncs would only cost minutes."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lake, "fsync_dir", lambda folder: None)
        mp.setattr(lake, "_fsync_dir_files", lambda folder: None)
        yield


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("book") / "data"
    _write_book(root)
    _register_champion(root)
    return root


def _with_shards(cfg, shards: int):
    return cfg.model_copy(update={
        "run": cfg.run.model_copy(update={"shards": shards}),
        # small enough that the agent queue overflows: the cut must rank the whole book, not each shard
        "collections": cfg.collections.model_copy(update={"agent_daily_capacity": AGENT_CAPACITY}),
    })


def _run_nights(book: Path, target: Path, cfg) -> dict[dt.date, dict[str, pl.DataFrame]]:
    shutil.copytree(book, target)
    published = {}
    for day in RUN_DAYS:
        nightly.stage_features(target, day, cfg)
        nightly.stage_score(target, day, cfg)
        nightly.stage_decide(target, day, cfg)
        frames, _ = nightly.published_frames(target, day, cfg)
        history = pl.read_parquet(zones.decisions_dir(target, day) / "limit_history.parquet")
        published[day] = {**frames, "limit_history": history}
    return published


def test_one_and_four_shards_publish_identical_outputs(book, tmp_path, cfg):
    whole = _run_nights(book, tmp_path / "one", _with_shards(cfg, 1))
    sharded = _run_nights(book, tmp_path / "four", _with_shards(cfg, 4))
    for day in RUN_DAYS:
        for name, frame in whole[day].items():
            assert_frame_equal(sharded[day][name], frame, check_row_order=True), (day, name)
    last = whole[LAST]
    # The comparison is only worth something if the book exercises every path a shard could get wrong.
    assert last["scores"].height == N_ACCOUNTS - len(range(0, N_ACCOUNTS, 13))  # closed accounts are not scored
    queue = last["collection_queue"]
    assert queue.filter(pl.col("overflow")).height > 0  # more agent cases than capacity ...
    assert queue.filter(pl.col("treatment") == "agent").height == AGENT_CAPACITY  # ... cut once for the book
    assert last["hardship_offers"].height > 0
    actions = {a for day in RUN_DAYS for a in whole[day]["limits"]["action"]}
    assert actions >= {"freeze", "decrease", "hold"}  # (a line cut on night 1 is in cooldown on night 2)
    assert last["limit_history"].height > 0  # decisions were carried into the second night
    # each shard ran on its own part of the book, and every part held accounts
    sizes = [pl.read_parquet(shard_dir(tmp_path / "four", "scores", LAST, k, 4) / "scores.parquet").height
             for k in range(4)]
    assert sum(sizes) == last["scores"].height and min(sizes) > 0


def test_a_shard_stage_filters_the_merged_partition_when_its_own_is_absent(book, tmp_path, cfg):
    root = tmp_path / "data"
    shutil.copytree(book, root)
    nightly.stage_features(root, LAST, _with_shards(cfg, 1))  # built unsharded: no shard partitions
    whole = pl.read_parquet(nightly.lake.derived_partition(root, "features", LAST) / "features.parquet")
    parts = [read_shard_file(root, "features", LAST, "features.parquet", k, 3) for k in range(3)]
    # the three filtered parts are disjoint and together are the merged partition
    assert_frame_equal(pl.concat(parts).sort("account_id"), whole)


def test_merge_refuses_until_every_shard_is_complete(book, tmp_path, cfg):
    root = tmp_path / "data"
    shutil.copytree(book, root)
    sharded = _with_shards(cfg, 2)
    nightly.stage_features(root, LAST, sharded)
    nightly.stage_score(root, LAST, sharded)
    from pipelines.stages.shards import decide_shard

    decide_shard(root, LAST, sharded, shard=1, n_shards=2)
    with pytest.raises(ShardsIncompleteError, match="decisions shards not complete"):
        merge_decisions(root, LAST, sharded, 2)
    assert not zones.decisions_dir(root, LAST).exists()  # nothing half-published


def _shard_call(tag: str, shard: int, n_shards: int) -> tuple[str, int, int, int]:
    import os

    return tag, shard, n_shards, os.getpid()


@pytest.mark.parametrize("workers", [1, 2])
def test_run_shards_passes_each_shard_once_in_order(workers):
    import os

    calls = run_shards(_shard_call, 3, workers, "x")
    assert [c[:3] for c in calls] == [("x", 0, 3), ("x", 1, 3), ("x", 2, 3)]
    in_this_process = {c[3] for c in calls} == {os.getpid()}
    assert in_this_process == (workers == 1)  # more workers: spawned processes, never this one


def test_orchestration_fans_out_the_shards_and_merges_like_the_run(book, tmp_path, cfg, monkeypatch):
    """What the DAG's mapped tasks call gives the same decisions as the in-process run."""
    import yaml

    from pipelines.entry import airflow as orchestration

    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["run"] = {"shards": 3}
    raw["model"]["definition"] = str(DEFAULT_CONFIG_PATH.parent / raw["model"]["definition"])
    config = tmp_path / "riskline.yaml"
    config.write_text(yaml.safe_dump(raw, allow_unicode=True))
    monkeypatch.setenv("RISKLINE_CONFIG", str(config))
    root = tmp_path / "mapped"
    shutil.copytree(book, root)
    day = LAST.isoformat()
    assert orchestration.shard_list() == [0, 1, 2]
    for stage in ("features", "score", "decide"):
        results = [orchestration.run_shard(stage, day, k, data_root=str(root)) for k in orchestration.shard_list()]
        assert [r["shard"] for r in results] == [0, 1, 2]
        assert orchestration.merge_shard_outputs(stage, day, data_root=str(root))["merged"]
    inline = tmp_path / "inline"
    shutil.copytree(book, inline)
    for stage in (nightly.stage_features, nightly.stage_score, nightly.stage_decide):
        stage(inline, LAST, cfg)  # the committed config: one shard
    for name in ("limits", "collection_queue", "hardship_offers", "limit_history"):
        assert_frame_equal(pl.read_parquet(zones.decisions_dir(root, LAST) / f"{name}.parquet"),
                           pl.read_parquet(zones.decisions_dir(inline, LAST) / f"{name}.parquet")), name
