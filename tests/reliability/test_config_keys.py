"""Configuration names real columns (issue 14, class 9).

``ingest.business_keys: {payments: [account_id]}`` used to load and then de-duplicate every payment of an
account but one away; a typo'd dataset name was ignored. Now the config load fails, naming the file and the
key, and ``riskline`` says so in one line before touching any data.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.entry import cli
from pipelines.config.settings import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, section: str, value) -> Path:
    raw = yaml.safe_load((REPO / "riskline.yaml").read_text())
    section_path = section.split(".")
    node = raw
    for part in section_path[:-1]:
        node = node[part]
    node[section_path[-1]] = value
    path = tmp_path / "riskline.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


@pytest.mark.parametrize(
    "section, value, fragment",
    [
        # a key coarser than the dataset's id merges distinct rows (11 of 74 payments dropped)
        ("ingest.business_keys", {"payments": ["account_id"]}, "ingest.business_keys.payments"),
        ("ingest.business_keys", {"installments": ["loan_id"]}, "ingest.business_keys.installments"),
        ("ingest.business_keys", {"paymnets": ["payment_id"]}, "unknown dataset 'paymnets'"),
        ("ingest.business_keys", {"payments": ["payment_idd"]}, "payment_idd"),
        ("ingest.business_keys", {"payments": ["payment_id", "payment_id"]}, "repeats"),
        ("ingest.money_max_cny", {"payments": {"amount": 0}}, "ingest.money_max_cny.payments.amount"),
        ("ingest.money_max_cny", {"payments": {"account_id": 5}}, "not a money column"),
        ("ingest.money_max_cny", {"loans": {"amount": 5}}, "unknown dataset 'loans'"),
    ],
)
def test_config_naming_what_the_contract_lacks_fails_at_load(tmp_path: Path, section, value, fragment):
    path = _config(tmp_path, section, value)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and fragment in str(err.value), str(err.value)


def test_a_finer_business_key_is_allowed(tmp_path: Path):
    # payment_id plus account_id can only keep more rows apart; true repeats still fail unique_key
    cfg = load_config(_config(tmp_path, "ingest.business_keys", {"payments": ["payment_id", "account_id"]}))
    assert cfg.ingest.business_keys["payments"] == ["payment_id", "account_id"]
    assert cfg.ingest.money_max_cny["payments"]["amount"] > 0


def test_riskline_refuses_the_bad_key_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = _config(tmp_path, "ingest.business_keys", {"payments": ["account_id"]})
    code = cli.main(["--config", str(path), "--data-root", str(tmp_path / "data"), "ingest", "--date", "2026-11-20"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: config file ") and err.count("\n") == 1, err
    assert "ingest.business_keys.payments" in err
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "drop, fragment",
    [
        # riskline.yaml is the one source of the customer texts: the settings model has no defaults to fall back on
        (("policy", "explanations", "templates"), "policy.explanations.templates: Field required"),
        (("policy", "explanations", "templates", "zh", "freeze"), "explanations.templates.zh lacks ['freeze']"),
        # a frozen line that is cut must be told draws stay paused: the plain decrease text is no fallback
        (("policy", "explanations", "templates", "en", "decrease_frozen"),
         "explanations.templates.en lacks ['decrease_frozen']"),
        (("policy", "explanations", "phrases"), "policy.explanations.phrases: Field required"),
    ],
)
def test_a_config_without_a_customer_text_fails_at_load(tmp_path: Path, drop: tuple[str, ...], fragment: str):
    raw = yaml.safe_load((REPO / "riskline.yaml").read_text())
    node = raw
    for part in drop[:-1]:
        node = node[part]
    del node[drop[-1]]
    path = tmp_path / "riskline.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and fragment in str(err.value), str(err.value)
