"""The committed model definition only names dictionary features, never a protected attribute, and its
monotone constraints say what the lender must be able to explain."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config.settings import ConfigError, load_config
from pipelines.contracts.landing import PROTECTED_ATTRIBUTES
from pipelines.domain.feature_dictionary import FEATURE_NAMES, feature
from pipelines.config.model_definition import ModelDefinition, load_model_definition

REPO = Path(__file__).resolve().parents[2]


def test_every_model_feature_is_in_the_dictionary(definition: ModelDefinition):
    unknown = [name for name in definition.feature_names if name not in FEATURE_NAMES]
    assert unknown == []


def test_no_protected_attribute_is_a_feature(definition: ModelDefinition):
    assert set(definition.feature_names).isdisjoint(PROTECTED_ATTRIBUTES)
    # the contract's protected columns are among them, so the check above is not vacuous
    assert {"gender", "marital_status"} <= PROTECTED_ATTRIBUTES


def test_monotone_constraints_match_the_dictionary_risk_direction(definition: ModelDefinition):
    mismatched = {f.name: (f.monotone, feature(f.name).monotone) for f in definition.features
                  if f.monotone != feature(f.name).monotone}
    assert mismatched == {}


@pytest.mark.parametrize("name", ["dpd", "max_dpd_90d", "overdue_cents", "utilization", "missed_installments"])
def test_pd_may_not_fall_as_arrears_or_utilization_rise(definition: ModelDefinition, name: str):
    # The regulator's question "why is my PD lower although I am further behind?" has no good answer.
    assert {f.name: f.monotone for f in definition.features}[name] == 1


def test_a_protected_attribute_in_the_definition_is_refused(tmp_path: Path):
    text = (REPO / "models" / "pd_model.yaml").read_text()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "pd_model.yaml").write_text(
        text.replace("  - {name: dpd, monotone: 1}", "  - {name: dpd, monotone: 1}\n  - {name: gender}")
    )
    (tmp_path / "riskline.yaml").write_text((REPO / "riskline.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ConfigError, match="protected attributes"):
        load_model_definition(load_config(tmp_path / "riskline.yaml"))


def test_exact_reason_codes_cover_every_limit_cut_trigger_of_the_policy(definition: ModelDefinition, cfg):
    # A cut or freeze is an adverse action: its reasons must be exact TreeSHAP, never the approximation.
    policy, reasons = cfg.policy, definition.reason_codes
    worse = policy.grades[policy.grades.index(policy.decrease.from_grade):]
    assert set(worse) <= set(reasons.exact_for_grades)
    assert policy.decrease.min_dpd >= 1 and "dpd" in reasons.exact_when_positive  # any DPD >= 1 is exact
    assert reasons.exact_on_pd_rise_above is not None
    assert reasons.exact_on_pd_rise_above <= policy.decrease.pd_rise_margin
