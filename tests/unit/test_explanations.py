"""Customer-facing sentences: every action in English and Chinese, money text, phrases and validation."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from pipelines.config.decisions import ExplanationConfig, PolicyConfig
from pipelines.config.settings import ProductConfig, load_config
from pipelines.domain.explanations import cny_text, directional_features, reason_phrases, render_template
from pipelines.domain.feature_dictionary import FEATURES, feature
from pipelines.domain.policy import POLICY_INPUT_SCHEMA, decide_limits

_cfg = load_config().policy.model_dump()
_cfg["strategy_test"] |= {"control_share": 0.0, "challenger_share": 0.0}
POLICY = PolicyConfig.model_validate(_cfg)

BASE: dict[str, Any] = dict(
    account_id="A1", status="active", credit_limit_cents=100_000, annual_income_cents=None,
    opened_on=dt.date(2023, 1, 1), language=None, dpd=0, overdue_cents=0, outstanding_principal_cents=50_000,
    days_since_dpd=None, days_on_book=500, months_on_book=16, utilization=0.5, pd=0.005, grade="A",
    reason_1=None, reason_2=None, reason_3=None, model_version="m", previous_pd=0.005, previous_grade="A",
    days_since_limit_change=None, days_since_decrease=None,
)


def explain(policy: PolicyConfig = POLICY, **overrides: Any) -> dict:
    inputs = pl.DataFrame([{**BASE, **overrides}], schema=POLICY_INPUT_SCHEMA)
    return decide_limits(inputs, policy, ProductConfig()).row(0, named=True)


# Expected sentences are the committed templates filled by hand: limits 1,000 CNY (100,000 cents) and
# the new limit each rule computes (test_policy.py checks the arithmetic).
@pytest.mark.parametrize(
    "overrides, action, en, zh",
    [
        (
            {"dpd": 32, "days_since_dpd": 0, "overdue_cents": 8_850},
            "freeze",
            "New draws on your credit line are paused because a repayment is 32 days overdue. Repay the overdue "
            "amount of 88.50 CNY and keep your account current for 30 days to lift the pause.",
            "由于您有一笔还款已逾期32天，您的额度已暂停使用。请还清逾期金额88.50元，并保持连续30天无逾期，即可恢复使用。",
        ),
        (
            {"dpd": 3, "days_since_dpd": 0, "overdue_cents": 10_000},
            "decrease",
            "Your credit line was lowered from 1000 CNY to 900 CNY because a repayment of yours is past due. "
            "Repaying on time over the coming months can restore it at a later review.",
            "由于您有账单逾期未还，您的额度已由1000元调整为900元。未来几个月按时还款，后续评估时额度有望恢复。",
        ),
        (
            # frozen, a partial repayment brought it to 10 DPD: cut (grade D 0.7) and still paused, and it says so
            {"status": "frozen", "dpd": 10, "days_since_dpd": 0, "overdue_cents": 20_000, "grade": "D",
             "previous_grade": "D", "pd": 0.1, "previous_pd": 0.1},
            "decrease",
            "Your credit line was lowered from 1000 CNY to 700 CNY because a repayment of yours is past due, and new "
            "draws on it remain paused. Repay any overdue amount and keep your account current for 30 days to lift "
            "the pause; repaying on time over the coming months can restore the limit at a later review.",
            "由于您有账单逾期未还，您的额度已由1000元调整为700元，且仍处于暂停状态。请还清逾期款项并保持连续30天无逾期，"
            "即可恢复使用；未来几个月按时还款，后续评估时额度有望恢复。",
        ),
        (
            {"status": "frozen", "days_since_dpd": 45, "grade": "C", "previous_grade": "C"},
            "unfreeze",
            "Your credit line of 1000 CNY is available again because your account has been current for 45 days. "
            "A repayment 30 days overdue would pause it again.",
            "您的账户已连续45天无逾期，1000元额度已恢复使用。如还款逾期达30天，额度将再次暂停。",
        ),
        (
            {},
            "increase",
            "Your credit line was raised from 1000 CNY to 1300 CNY because you have repaid on time and used your "
            "line regularly. Late repayments could lower it again.",
            "由于您一直按时还款并合理使用额度，您的额度已由1000元提升至1300元。逾期还款可能导致额度下调。",
        ),
        (
            {"utilization": 0.1},
            "hold",
            "Your credit line stays at 1000 CNY. Repaying on time and using your line regularly can qualify you for "
            "an increase.",
            "您的额度保持1000元不变。按时还款并合理使用额度，有机会获得提额。",
        ),
        (
            {"status": "frozen", "days_since_dpd": 12},
            "hold",
            "New draws on your credit line remain paused. Keep your account current for 30 days to lift the pause.",
            "您的额度仍处于暂停状态。保持连续30天无逾期，即可恢复使用。",
        ),
    ],
)
def test_sentence_for_every_action_in_both_languages(overrides: dict, action: str, en: str, zh: str):
    row = explain(**overrides)
    assert row["action"] == action
    assert (row["explanation_en"], row["explanation_zh"]) == (en, zh)
    # no language upstream: the customer's sentence is in the default language (zh)
    assert row["explanation"] == zh


def test_customer_language_picks_the_sentence():
    assert explain(language="en")["explanation"] == explain()["explanation_en"]
    assert explain(language="zh")["explanation"] == explain()["explanation_zh"]
    english_default = POLICY.model_copy(
        update={"explanations": POLICY.explanations.model_copy(update={"default_language": "en"})}
    )
    assert explain(english_default)["explanation"] == explain()["explanation_en"]


@pytest.mark.parametrize(
    "reasons, en_phrase",
    [
        # overdue_cents rises with risk (monotone +1): its "high" phrase
        (("overdue_cents", None, None), "you have an overdue amount"),
        # on_time_ratio_90d lowers risk (monotone -1): a reason means it was low
        (("on_time_ratio_90d", None, None), "some instalments in the last 90 days were not repaid on time"),
        # spend_trend_30d can raise risk both ways: skip it, phrase the next directional reason
        (("spend_trend_30d", "utilization", None), "you are using a large part of your credit line"),
        # no directional reason at all: the policy's generic phrase for a grade fall
        (("spend_trend_30d", "login_count_7d", None),
         "your recent repayment and spending pattern raised your credit risk"),
        # a reason the dictionary does not know (a newer model): same generic phrase
        (("brand_new_feature", None, None), "your recent repayment and spending pattern raised your credit risk"),
    ],
)
def test_model_driven_cut_names_the_behaviour_truthfully(reasons: tuple, en_phrase: str):
    row = explain(grade="D", previous_grade="B", pd=0.15, previous_pd=0.14,
                  reason_1=reasons[0], reason_2=reasons[1], reason_3=reasons[2])
    assert row["action"] == "decrease"
    assert f"because {en_phrase}." in row["explanation_en"]
    assert all(f"MODEL:{r}" in row["reason_codes"] for r in reasons if r)


def test_phrases_come_from_the_feature_dictionary():
    phrases = {r["feature"]: r for r in reason_phrases().to_dicts()}
    assert sorted(phrases) == sorted(directional_features())
    assert "spend_trend_30d" not in phrases and "dpd" in phrases
    assert phrases["dpd"]["phrase_zh"] == feature("dpd").high_zh
    assert all(f.name in phrases for f in FEATURES if f.monotone)


@pytest.mark.parametrize(
    "cents, text", [(150_000, "1500"), (8_850, "88.50"), (5, "0.05"), (0, "0"), (100_001, "1000.01")]
)
def test_cny_text_is_exact(cents: int, text: str):
    assert pl.select(cny_text(pl.lit(cents, dtype=pl.Int64))).item() == text


def test_render_template_fills_fields_and_names_a_missing_one():
    out = pl.DataFrame({"n": [3, 10]}).select(render_template("{n} days, {n}!", {"n": pl.col("n")}))
    assert out.to_series().to_list() == ["3 days, 3!", "10 days, 10!"]
    with pytest.raises(KeyError, match="dpd"):
        render_template("{dpd} days", {"n": pl.col("n")})


# The committed texts (riskline.yaml is their one source: ExplanationConfig has no defaults).
COMMITTED = POLICY.explanations.model_dump()


def _templates(**changes: dict) -> dict:
    base = copy.deepcopy(COMMITTED)
    for language, texts in changes.items():
        base["templates"][language] = {**base["templates"][language], **texts}
    return base


@pytest.mark.parametrize(
    "config, fragment",
    [
        (_templates(zh={"hold": "  "}), r"templates\.zh lacks \['hold'\]"),
        (_templates(en={"hold_forever": "x"}), "unknown keys"),
        (_templates(en={"hold": "Limit {new_limit:>8}"}), "no format specs"),
        (_templates(en={"hold": "Limit {new_limit"}), r"templates\.en\.hold"),
        ({**COMMITTED, "templates": {"en": COMMITTED["templates"]["en"]}}, "exactly the languages"),
        ({**COMMITTED, "phrases": {"en": {}, "zh": {}}}, r"phrases\.en lacks"),
        ({**COMMITTED, "default_language": "fr"}, "default_language"),
        ({k: v for k, v in COMMITTED.items() if k != "templates"}, r"templates\n  Field required"),
    ],
)
def test_explanation_config_rejects(config: dict, fragment: str):
    with pytest.raises(ValidationError, match=fragment):
        ExplanationConfig.model_validate(config)
