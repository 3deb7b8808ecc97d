from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config.settings import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


def test_committed_config_loads_with_business_timezone():
    cfg = load_config(REPO / "riskline.yaml")
    assert cfg.business.timezone == "Asia/Shanghai"
    assert cfg.source_sha256 and len(cfg.source_sha256) == 64


def test_data_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cfg = load_config(REPO / "riskline.yaml")
    monkeypatch.delenv("RISKLINE_DATA_ROOT", raising=False)
    # Relative config paths resolve against the config file's folder, not the cwd (Airflow's cwd varies).
    assert cfg.data_root() == (REPO / "data").resolve()
    monkeypatch.setenv("RISKLINE_DATA_ROOT", str(tmp_path / "env"))
    assert cfg.data_root() == tmp_path / "env"
    assert cfg.data_root(tmp_path / "flag") == tmp_path / "flag"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("paths: [1, 2", "not valid YAML"),
        ("- a list", "mapping"),
        ("ingest: {business_keys: {}}\nproduct: {min_limit_cny: 100, max_limit_cny: 50}", "min_limit_cny"),
        ("ingest: {business_keys: {}}\nbusiness: {timezone: Mars/Olympus}", "business"),
        ("ingest: {business_keys: {}}\npaths: {data_root: x, typo: 1}", "paths.typo"),
    ],
)
def test_invalid_config_fails_loudly(tmp_path: Path, text: str, fragment: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        load_config(path)


def test_missing_config_file_names_the_path(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")
