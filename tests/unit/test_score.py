"""Scoring: points scaling, grade cut-offs, reason codes and which accounts get exact ones."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
import xgboost as xgb

from pipelines.config.model_definition import Grades, ModelDefinition, ReasonCodePolicy, ScoreScaling
from pipelines.domain import features
from pipelines.model.pd import assign_grade, feature_matrix, pd_to_score
from pipelines.model.score import describe_reasons, needs_exact_reasons, reason_codes, score_accounts
from pipelines.store import lake, zones
from pipelines.store.zones import scores_dir

DAY = dt.date(2026, 11, 25)


@pytest.mark.parametrize(
    "pd_, points",
    [
        (0.05, 600),  # odds 19:1 = the base
        (1 / 39, 650),  # odds 38:1, doubled: +50
        (1 / 10.5, 550),  # odds 9.5:1, halved: -50
        (1 / 77, 700),  # odds 76:1, doubled twice
    ],
)
def test_score_points(pd_: float, points: int):
    assert pd_to_score(np.array([pd_]), ScoreScaling()).tolist() == [points]


def test_score_of_pd_0_or_1_is_finite():
    assert np.isfinite(pd_to_score(np.array([0.0, 1.0]), ScoreScaling())).all()


def test_grades_on_pd_give_the_worse_grade_at_a_cut_off():
    grades = Grades(by="pd", labels=("A", "B", "C", "D", "E"), bounds=(0.01, 0.03, 0.08, 0.20))
    pd_ = np.array([0.005, 0.01, 0.0299, 0.08, 0.2, 0.9])
    assert assign_grade(pd_, np.zeros(6), grades).to_list() == ["A", "B", "B", "D", "E", "E"]


def test_grades_on_score_give_the_better_grade_at_a_cut_off():
    grades = Grades(by="score", labels=("A", "B", "C", "D", "E"), bounds=(700, 650, 600, 550))
    score = np.array([760, 700, 699, 600, 550, 549])
    assert assign_grade(np.zeros(6), score, grades).to_list() == ["A", "A", "B", "C", "D", "E"]


@pytest.mark.parametrize(
    "kwargs", [{"by": "pd", "bounds": (0.05, 0.01, 0.1, 0.2)}, {"by": "score", "bounds": (500, 600, 700, 800)},
               {"labels": ("A", "B"), "bounds": (0.1, 0.2)}],
)
def test_inconsistent_grade_cut_offs_are_refused(kwargs):
    with pytest.raises(ValueError):
        Grades(**kwargs)


def _one_feature_model() -> xgb.Booster:
    """PD rises with ``dpd`` only; ``spend`` is constant in training, so no tree can split on it."""
    rng = np.random.default_rng(0)
    dpd = rng.integers(0, 60, 4000).astype(np.float32)
    spend = np.full(4000, 0.5, dtype=np.float32)
    bad = (rng.random(4000) < 0.02 + 0.5 * (dpd > 30)).astype(np.float32)
    data = xgb.DMatrix(np.column_stack([dpd, spend]), label=bad, feature_names=["dpd", "spend"])
    return xgb.train({"objective": "binary:logistic", "max_depth": 1, "seed": 1,
                      "nthread": 1, "monotone_constraints": "(1,0)"}, data, num_boost_round=40)


def _snapshot(dpd: list[float], spend: list[float] | None = None) -> pl.DataFrame:
    n = len(dpd)
    return pl.DataFrame({
        "account_id": [f"A{i}" for i in range(n)],
        "as_of_date": [DAY] * n,
        "dpd": dpd,
        "spend": spend if spend is not None else [0.5] * n,
    })


def test_reason_codes_keep_only_features_that_raised_pd():
    booster = _one_feature_model()
    reasons = reason_codes(booster, _snapshot([0.0, 45.0]), count=3)
    # Account 0 is current: DPD lowers its PD, so it has no reason at all (nulls, not a made-up one).
    # Account 1 is 45 days late: DPD is its first reason; spend never splits so it cannot be a reason.
    assert reasons.rows() == [("A0", None, None, None), ("A1", "dpd", None, None)]


def test_reason_codes_of_an_empty_frame():
    out = reason_codes(_one_feature_model(), _snapshot([]), count=2)
    assert out.columns == ["account_id", "reason_1", "reason_2"] and out.height == 0


def test_feature_matrix_refuses_missing_and_non_numeric_columns():
    with pytest.raises(ValueError, match=r"lacks model features \['utilization'\]"):
        feature_matrix(_snapshot([1.0]), ["dpd", "utilization"])
    with pytest.raises(ValueError, match="non-numeric"):
        feature_matrix(_snapshot([1.0]).with_columns(pl.lit("x").alias("dpd")), ["dpd"])
    nulls = feature_matrix(pl.DataFrame({"dpd": [None, 3]}, schema={"dpd": pl.Int32}), ["dpd"])
    assert np.isnan(nulls[0, 0]) and nulls[1, 0] == 3 and nulls.dtype == np.float32


def _definition(**policy) -> ModelDefinition:
    return ModelDefinition(
        name="t", features=[{"name": "dpd", "monotone": 1}, {"name": "spend"}], hyperparameters={"nthread": 1},
        reason_codes=ReasonCodePolicy(**{"exact_when_positive": ("dpd",), **policy}),
    )


def test_exact_reasons_go_to_accounts_facing_an_adverse_action():
    scored = pl.DataFrame({"account_id": ["a", "b", "c", "d"], "pd": [0.01, 0.02, 0.30, 0.04],
                           "grade": ["B", "B", "E", "C"]})
    features = pl.DataFrame({"account_id": ["a", "b", "c", "d"], "dpd": [0, 3, 0, 0]})
    previous = pl.DataFrame({"account_id": ["a", "d"], "pd": [0.01, 0.02]})
    # a: nothing; b: in arrears (collections); c: grade E (limit cut); d: PD up 0.02 > a 0.01 margin
    flags = needs_exact_reasons(scored, features, _definition(exact_on_pd_rise_above=0.01), previous)
    assert flags.to_list() == [False, True, True, True]
    # d's rise of 0.02 is within the default 0.05 margin; without the trigger at all it is cheap too
    for policy in ({}, {"exact_on_pd_rise_above": None}):
        assert needs_exact_reasons(scored, features, _definition(**policy), previous).to_list() == [
            False, True, True, False
        ]


def test_score_accounts_returns_one_sorted_row_per_account():
    booster = _one_feature_model()
    snapshot = _snapshot([45.0, 0.0, 0.0], [0.1, 0.2, 0.3]).with_columns(
        pl.Series("account_id", ["c", "a", "b"])
    )
    out = score_accounts(booster, snapshot, _definition(), "v1", method="mixed")
    assert out["account_id"].to_list() == ["a", "b", "c"]
    assert out.columns == ["account_id", "as_of_date", "pd", "score", "grade", "reason_1", "reason_2", "reason_3",
                           "reason_method", "model_version"]
    # c is in arrears: exact reasons; the current accounts get the approximation
    assert out["reason_method"].to_list() == ["approx", "approx", "exact"]
    assert out.row(2, named=True)["reason_1"] == "dpd" and out["pd"][2] > out["pd"][0]
    assert set(out["model_version"]) == {"v1"}


def test_describe_reasons_uses_the_dictionary_phrases_and_refuses_unknown_codes():
    scores = pl.DataFrame({"reason_1": ["dpd", None], "reason_2": [None, None], "reason_method": ["exact"] * 2})
    out = describe_reasons(scores, {"dpd": "a repayment of yours is past due"})
    assert out["reason_1"].to_list() == ["a repayment of yours is past due", None]
    assert out["reason_method"].to_list() == ["exact", "exact"]
    with pytest.raises(KeyError, match="dpd"):
        describe_reasons(scores, {})


def test_run_scoring_uses_the_champion_of_the_date_and_publishes_atomically(tmp_path, cfg):
    from pipelines.model.registry import ModelRegistry, NoChampionError, version_id
    from pipelines.stages.score import run_scoring

    booster = _one_feature_model()
    raw = bytes(booster.save_raw(raw_format="ubj"))
    registry = ModelRegistry(tmp_path)
    version = version_id(DAY, raw)
    registry.register(version, raw, {"features": [], "manifest": {"as_of": DAY.isoformat()}, "metrics": {}, "gate": {}})
    snapshot = _snapshot([0.0, 45.0, 3.0])
    lake.publish_frames(zones.feature_partition(tmp_path, DAY), {zones.FEATURES_FILE: snapshot})

    with pytest.raises(NoChampionError, match="no champion model serves on 2026-11-25"):
        run_scoring(tmp_path, DAY, cfg)
    registry.set_champion(version, DAY, "promote", "test")
    path = run_scoring(tmp_path, DAY, cfg)
    assert path == scores_dir(tmp_path, DAY) and lake.is_complete(path)
    scores = lake.read_partition(path)
    assert scores["account_id"].to_list() == ["A0", "A1", "A2"]
    assert set(scores["model_version"]) == {version}
    # accounts in arrears (dpd > 0, the definition's exact_when_positive) get exact reasons
    assert scores["reason_method"].to_list() == ["approx", "exact", "exact"]
