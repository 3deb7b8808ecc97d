"""Shared test setup: every test runs against a throwaway data root and Airflow home."""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
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


@pytest.fixture(autouse=True)
def _no_log_handler_on_a_closed_stream() -> Iterator[None]:
    """Drop root log handlers whose stream a finished test closed.

    Importing Airflow adds a root ``StreamHandler`` bound to the ``sys.stdout`` of that moment. When the first
    import happens inside a test using ``capsys``, that stream is closed at the test's end, and every later log
    line becomes a "--- Logging error ---" traceback in the next tests' captured stderr (it broke the one-line
    error checks of tests/reliability/test_storage_errors.py when the reliability folder ran alone).
    """
    yield
    for handler in list(logging.root.handlers):
        if getattr(getattr(handler, "stream", None), "closed", False):
            logging.root.removeHandler(handler)


@pytest.fixture()
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("RISKLINE_DATA_ROOT", str(root))
    return root


@pytest.fixture(scope="session")
def cfg():
    from pipelines.config.settings import load_config

    return load_config(REPO_ROOT / "riskline.yaml")


@pytest.fixture(scope="session")
def quiet_cfg(cfg):
    """The repo config without Data Docs (0.5 s per ingest; the tests that look at them use ``cfg``)."""
    return cfg.model_copy(update={"validation": cfg.validation.model_copy(update={"data_docs": False})})


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API on 127.0.0.1 (moto's server): s3fs, botocore and HTTP all run as against S3."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture()
def s3_root(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://<fresh bucket>/riskline``, with the credentials in the environment (as in production, not in config)."""
    import boto3

    key_id, key = f"test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex  # moto takes any; none is kept in the repo
    env = {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": key_id,
           "AWS_SECRET_ACCESS_KEY": key, "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bucket = f"riskline-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                 aws_access_key_id=key_id, aws_secret_access_key=key).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/riskline"
