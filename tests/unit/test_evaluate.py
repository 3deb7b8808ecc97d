"""Metrics implemented in numpy, checked against cases small enough to compute by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from pipelines.config.model_definition import Stability
from pipelines.model import metrics as evaluate


@pytest.mark.parametrize(
    "bad, pd_, expected",
    [
        # bads score 0.35 and 0.8, goods 0.1 and 0.4: of the 4 bad/good pairs, 3 are ordered right
        ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),
        ([0, 1], [0.5, 0.5], 0.5),  # a tie counts one half
        # bad at 0.5 beats the good at 0.2 (1) and ties the good at 0.5 (1/2): 1.5 / 2
        ([0, 0, 1], [0.2, 0.5, 0.5], 0.75),
        ([1, 1, 0], [0.9, 0.8, 0.1], 1.0),
        ([1, 1, 0], [0.1, 0.2, 0.9], 0.0),
    ],
)
def test_auc_on_hand_computed_cases(bad, pd_, expected):
    assert evaluate.auc(bad, pd_) == pytest.approx(expected)


def test_auc_equals_the_pairwise_count_with_ties():
    # The definition itself: P(bad scores above good) + 1/2 P(tie), counted over every pair.
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.2).astype(int)
    p = np.round(rng.random(300) + 0.3 * y, 1)  # rounding makes many ties
    pairs = [(b, g) for b, g in itertools.product(p[y == 1], p[y == 0])]
    brute = sum(1.0 if b > g else 0.5 if b == g else 0.0 for b, g in pairs) / len(pairs)
    assert evaluate.auc(y, p) == pytest.approx(brute)


@pytest.mark.parametrize(
    "bad, pd_, expected",
    [
        # descending: 0.8 bad, 0.4 good, 0.35 bad, 0.1 good -> cum bad 1/2,1/2,1,1; cum good 0,1/2,1/2,1
        ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.5),
        ([1, 0], [0.5, 0.5], 0.0),  # a tie is one threshold: bad and good cross it together
        ([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1], 1.0),
    ],
)
def test_ks_on_hand_computed_cases(bad, pd_, expected):
    assert evaluate.ks_statistic(bad, pd_) == pytest.approx(expected)


def test_brier_and_log_loss():
    assert evaluate.brier_score([0, 1], [0.2, 0.6]) == pytest.approx((0.04 + 0.16) / 2)
    assert evaluate.log_loss([1, 0], [0.5, 0.5]) == pytest.approx(math.log(2))
    assert math.isfinite(evaluate.log_loss([1], [0.0]))  # clipped, not infinite


@pytest.mark.parametrize(
    "bad, pd_, message",
    [([0, 0], [0.1, 0.2], "good and one bad"), ([0, 2], [0.1, 0.2], "0 .good. or 1"), ([0, 1], [0.1], "equal length")],
)
def test_metric_inputs_are_checked(bad, pd_, message):
    with pytest.raises(ValueError, match=message):
        evaluate.auc(bad, pd_)


def test_calibration_by_decile_and_its_error():
    # 5 accounts at PD 0.1 with 1 bad (observed 0.2), 5 at 0.3 with 2 bads (0.4): each off by 0.1
    pd_ = [0.1] * 5 + [0.3] * 5
    bad = [0, 0, 0, 0, 1, 1, 1, 0, 0, 0]
    table = evaluate.calibration_by_decile(bad, pd_, bins=2)
    assert [(r["accounts"], r["bads"]) for r in table] == [(5, 1), (5, 2)]
    assert [r["abs_error"] for r in table] == pytest.approx([0.1, 0.1])
    assert evaluate.calibration_error(table) == pytest.approx(0.1)


def test_psi_on_a_hand_computed_case():
    # (0.25-0.5) ln(0.25/0.5) + (0.75-0.5) ln(0.75/0.5) = 0.1733 + 0.1014; the empty missing bins add 0
    assert evaluate.psi([0.5, 0.5, 0.0], [0.25, 0.75, 0.0]) == pytest.approx(0.27465, abs=1e-5)
    assert evaluate.psi([0.2, 0.8], [0.2, 0.8]) == 0.0
    with pytest.raises(ValueError, match="same bins"):
        evaluate.psi([0.5, 0.5], [1.0])


def test_reference_bins_use_deciles_and_keep_repeated_values_together():
    ten = evaluate.reference_bins(np.arange(1, 11), bins=10)
    assert ten["edges"] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert ten["shares"] == pytest.approx([0.1] * 10 + [0.0])  # ten bins + the missing bin
    # DPD-like: mostly 0. Every quartile edge is 0, so one bin (-inf, 0] and one (0, inf), not 0 split 3 ways.
    dpd = evaluate.reference_bins([0] * 8 + [5, 9], bins=4)
    assert dpd == {"edges": [0.0], "shares": [0.8, 0.2, 0.0]}


def test_bin_shares_puts_missing_values_in_their_own_bin():
    # edges 2, 4 -> bins (-inf,2], (2,4], (4,inf), missing: 1 | 3 | 5 | nan
    assert evaluate.bin_shares([1, np.nan, 3, 5], [2, 4]).tolist() == [0.25, 0.25, 0.25, 0.25]
    assert evaluate.psi_against({"edges": [2, 4], "shares": [0.25] * 4}, [1, np.nan, 3, 5]) == 0.0


@pytest.mark.parametrize("value, band", [(0.05, "stable"), (0.10, "watch"), (0.2499, "watch"), (0.25, "shifted")])
def test_psi_bands(value, band):
    assert evaluate.psi_band(value, Stability().psi_bands) == band


def test_bad_rate_by_grade_lists_every_grade():
    out = evaluate.bad_rate_by_grade([0, 1, 1], [0.1, 0.2, 0.5], ["A", "A", "B"], ["A", "B", "C"])
    assert [(r["grade"], r["accounts"], r["bads"], r["bad_rate"]) for r in out] == [
        ("A", 2, 1, 0.5), ("B", 1, 1, 1.0), ("C", 0, 0, None)
    ]


def test_leakage_guard():
    evaluate.check_leakage(0.98, 0.98)  # at the ceiling: allowed
    with pytest.raises(evaluate.LeakageSuspectedError, match="0.9900 is above the leakage ceiling 0.9800"):
        evaluate.check_leakage(0.99, 0.98)


def test_single_feature_auc_points_at_the_leaking_column():
    import polars as pl

    bad = [0, 0, 1, 1]
    frame = pl.DataFrame({"leak": [0.0, 0.0, 1.0, 1.0], "inverse": [4.0, 3.0, 2.0, 1.0], "gaps": [None, 1.0, 2.0, None]})
    out = evaluate.single_feature_auc(bad, frame, ["leak", "inverse", "gaps"])
    # leak and its mirror image both separate perfectly; gaps: missing ranks lowest -> bads at 2 and
    # "missing" vs goods at "missing" and 1: pairs (2>m, 2>1, m=m, m<1) = (1+1+0.5+0)/4
    assert out == {"leak": 1.0, "inverse": 1.0, "gaps": pytest.approx(0.625)}
    with pytest.raises(evaluate.LeakageSuspectedError, match="Strongest single features: leak .AUC alone 1.000."):
        evaluate.check_leakage(0.999, 0.98, out)
