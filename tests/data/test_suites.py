"""The committed suites are exactly what the contracts imply, and every expectation says what it guards."""

from __future__ import annotations

import json

import pytest

from pipelines.config import decisions as config
from pipelines.quality import gx_suites
from pipelines.contracts.landing import CONTRACT
from pipelines.contracts.outputs import OUTPUT_COLUMNS

RISKS = {"schema drift", "duplicate keys", "duplicate facts", "key loss", "missing value", "unknown value",
         "impossible value", "referential integrity", "leakage", "volume", "completeness"}


def _committed(name: str) -> dict:
    return json.loads((gx_suites.EXPECTATIONS_DIR / f"{name}.json").read_text())


@pytest.mark.parametrize("name", gx_suites.SUITE_NAMES)
def test_committed_suite_equals_what_the_contract_implies(name: str):
    # If this fails after a contract change: `.venv/bin/python -m pipelines.quality.gx_suites`, review, commit.
    assert (gx_suites.EXPECTATIONS_DIR / f"{name}.json").read_text() == gx_suites.suite_json(name)


def test_no_stray_suite_files():
    assert sorted(p.stem for p in gx_suites.EXPECTATIONS_DIR.glob("*.json")) == sorted(gx_suites.SUITE_NAMES)


@pytest.mark.parametrize("name", gx_suites.SUITE_NAMES)
def test_every_expectation_records_risk_and_severity(name: str):
    rules = []
    for exp in _committed(name)["expectations"]:
        meta = exp["meta"]
        assert meta["risk"] in RISKS, exp
        assert meta["severity"] in ("critical", "warning") and exp["severity"] == meta["severity"], exp
        assert meta["level"] in ("row", "table"), exp
        if meta["level"] == "row" and meta["severity"] == "warning":
            assert meta["quarantine_reason"] == meta["rule"], exp
        rules.append(meta["rule"])
    assert len(rules) == len(set(rules)), "rules name results and quarantine reasons: they must be unique"


@pytest.mark.parametrize("name", list(CONTRACT))
def test_landing_columns_and_types_come_from_the_contract(name: str):
    exps = _committed(name)["expectations"]
    types = {e["kwargs"]["column"]: e["kwargs"]["type_"] for e in exps if e["type"] == "expect_column_polars_type_to_be"}
    assert types == {c.curated_name: str(c.curated_dtype) for c in CONTRACT[name].columns}
    (columns,) = [e for e in exps if e["type"] == "expect_table_columns_to_match_set"]
    assert columns["kwargs"]["column_set"] == [c.curated_name for c in CONTRACT[name].columns]


@pytest.mark.parametrize("name", list(OUTPUT_COLUMNS))
def test_output_columns_and_types_come_from_the_output_contract(name: str):
    exps = _committed(name)["expectations"]
    types = {e["kwargs"]["column"]: e["kwargs"]["type_"] for e in exps if e["type"] == "expect_column_polars_type_to_be"}
    assert types == {c: str(t) for c, t in OUTPUT_COLUMNS[name]}
    # every output failure refuses the publish: nothing in an output suite is a mere warning
    assert {e["meta"]["severity"] for e in exps} == {"critical"}


def test_published_value_sets_cover_what_the_config_can_produce(cfg):
    # The sets are a promise to consumers; a config change that leaves them must fail here, not at publish.
    assert set(config.LIMIT_ACTIONS) == set(gx_suites.LIMIT_ACTIONS)
    assert set(config.TREATMENTS) == set(gx_suites.TREATMENTS)
    assert {b.name for b in cfg.collections.buckets} <= set(gx_suites.BUCKETS)
    assert set(cfg.policy.grades) == set(gx_suites.GRADES)
    assert set(cfg.hardship.extension_months) <= set(gx_suites.EXTENSION_MONTHS)


def test_contract_doc_is_generated_from_the_contract():
    text = gx_suites.CONTRACT_DOC.read_text()
    assert gx_suites.contract_doc_text(text) == text, "run `.venv/bin/python -m pipelines.quality.gx_suites`"
