"""Shared test setup: every test runs against a throwaway data root and Airflow home."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Airflow reads AIRFLOW_HOME when first imported; point it at a throwaway folder before any test imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="riskline-airflow-"))
os.environ.setdefault("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(Path(__file__).resolve().parents[1] / "dags"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("RISKLINE_DATA_ROOT", str(root))
    return root


@pytest.fixture(scope="session")
def cfg():
    from pipelines.config import load_config

    return load_config(REPO_ROOT / "riskline.yaml")
