"""Security: user input cannot leave the data root, no secrets are committed, the local Airflow is
private and behind a login, and published outputs carry no protected attribute and cannot be rewritten
by other users."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import re
import stat
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import polars as pl
import psutil
import pytest
from reliability_support import PublishedLake, tree_digests

from pipelines.entry import cli
from pipelines.store import lake
from pipelines.entry import airflow as orchestration
from pipelines.store import publish
from pipelines.contracts.landing import PROTECTED_ATTRIBUTES
from pipelines.contracts.outputs import OUTPUTS

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "../../etc"


def _cli(*args: str) -> int:
    return cli.main(["--config", str(REPO / "riskline.yaml"), *args])


# --- paths -----------------------------------------------------------------------------------------


def test_a_hostile_model_version_is_refused_before_any_work(
    published_lake: PublishedLake, lake_root: Path, capsys: pytest.CaptureFixture[str]
):
    day = published_lake.next_day.isoformat()
    before = tree_digests(lake_root, ".")
    assert _cli("--data-root", str(lake_root), "score", "--as-of", day, "--model-version", HOSTILE) == 2
    assert f"not a model version: {HOSTILE!r}" in capsys.readouterr().err
    assert _cli("--data-root", str(lake_root), "run", "--as-of", day, "--model-version", HOSTILE) == 1
    err = capsys.readouterr().err
    assert f"not a model version: {HOSTILE!r}" in err and "nothing was published" in err
    # refused up front: not even the ingest of the date ran (no curated partition, no validation result)
    assert tree_digests(lake_root, ".") == before


def test_dataset_names_and_partition_paths_cannot_escape_the_data_root(
    published_lake: PublishedLake, lake_root: Path, capsys: pytest.CaptureFixture[str]
):
    day = published_lake.next_day
    assert _cli("--data-root", str(lake_root), "ingest", "--date", day.isoformat(), "--dataset", HOSTILE) == 1
    assert "unknown dataset(s) ['../../etc']" in capsys.readouterr().err
    with pytest.raises(orchestration.StageFailed, match="unknown dataset"):
        orchestration.ingest_one(HOSTILE, day.isoformat(), data_root=str(lake_root))
    for zone, dataset in [("curated", HOSTILE), ("..", "accounts"), ("curated", "/etc")]:
        with pytest.raises(lake.PathEscapeError, match="escapes the data root"):
            lake.partition_dir(lake_root, zone, dataset, day)


def test_dag_params_refuse_a_path_and_the_stage_refuses_it_again(published_lake: PublishedLake, lake_root: Path):
    from airflow.sdk.exceptions import ParamValidationError

    spec = importlib.util.spec_from_file_location("riskline_nightly_dag", REPO / "dags" / "riskline_nightly.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    param = module.riskline_nightly().params.get_param("model_version")
    with pytest.raises(ParamValidationError):
        param.resolve(HOSTILE)
    assert param.resolve(published_lake.model_version) == published_lake.model_version
    # a run triggered around the UI (CLI `airflow dags test`, a hand-made conf) meets the registry's own check
    with pytest.raises(orchestration.StageFailed, match=re.escape(f"not a model version: {HOSTILE!r}")):
        orchestration.run_stage("score", published_lake.published.isoformat(), data_root=str(lake_root),
                                model_version=HOSTILE)


def test_a_symlink_out_of_the_data_root_is_not_followed_for_writing(
    published_lake: PublishedLake, lake_root: Path, tmp_path: Path
):
    elsewhere = tmp_path / "elsewhere"
    (lake_root / "outputs").rename(elsewhere)
    (lake_root / "outputs").symlink_to(elsewhere, target_is_directory=True)
    before = tree_digests(elsewhere, ".")
    day = f"as_of_date={published_lake.published.isoformat()}"
    frames = {n: pl.read_parquet(elsewhere / n / day / publish.PART_FILE) for n in OUTPUTS}
    with pytest.raises(lake.PathEscapeError, match="escapes the data root"):
        publish.publish_outputs(lake_root, published_lake.next_day, frames, {})
    assert tree_digests(elsewhere, ".") == before


# --- secrets ---------------------------------------------------------------------------------------

SECRET_PATTERNS: dict[str, re.Pattern[str]] = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    "credentials in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:[^/\s:@'\"]+@"),
    "hard-coded secret": re.compile(
        r"(?i)(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?key|token)\w*[\"']?\s*[:=]\s*[\"'][^\"'\s]{6,}[\"']"
    ),
}
SECRET_FILES = re.compile(r"(^|/)(\.env|id_rsa|id_ed25519|airflow\.cfg|.*\.pem|.*\.key|.*passwords?.*\.generated)$")


def find_secrets(files: list[Path], base: Path) -> list[str]:
    found = []
    for path in files:
        name = str(path.relative_to(base))
        if SECRET_FILES.search(name):
            found.append(f"{name}: a credentials file")
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue  # binary: Parquet fixtures, images
        for kind, pattern in SECRET_PATTERNS.items():
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{name}:{line}: {kind}")
    return found


def test_no_credentials_in_the_repository(tmp_path: Path):
    # tracked files and the untracked ones git would pick up (not .venv, data/, airflow_home/: ignored)
    listing = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                             capture_output=True, check=True).stdout.decode().split("\0")
    files = [REPO / f for f in listing if f and (REPO / f).is_file()]
    assert len(files) > 50  # the listing worked: the repository, not an empty folder
    assert find_secrets(files, REPO) == []
    # the scan can fail: each planted secret is found (split here so that this file does not match)
    planted = {
        "key.txt": "-----BEGIN OPENSSH PRIVATE " + "KEY-----\nb3BlbnNzaC1rZXk=\n",
        "settings.py": "DB_PASS" + 'WORD = "hunter2hunter2"\n',
        "conn.yaml": "sql_alchemy_conn: postgresql://airflow" + ":s3cr3t@db:5432/airflow\n",
        "ci.sh": "export GH=ghp_" + "a" * 36 + "\n",
        ".env": "X=1\n",
    }
    for name, text in planted.items():
        (tmp_path / name).write_text(text)
    found = find_secrets(sorted(tmp_path.iterdir()), tmp_path)
    assert {f.split(":")[0] for f in found} == set(planted), found


# --- the local Airflow -----------------------------------------------------------------------------


@pytest.mark.slow  # starts the real Airflow components (~20 s); not skipped: `make test` runs it
def test_local_airflow_listens_on_loopback_only_and_requires_login(tmp_path: Path):
    from tools.airflow_local import LocalAirflow

    (tmp_path / "data").mkdir()
    with LocalAirflow(home=tmp_path / "airflow", data_root=tmp_path / "data") as af:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{af.url}/api/v2/dags", timeout=30)
        assert err.value.code == 401  # no token: refused
        dags = af.api("GET", "/api/v2/dags", token=af.token())  # the generated admin password works
        assert "riskline_nightly" in {d["dag_id"] for d in dags["dags"]}
        listening = []
        for proc in af.processes.values():
            root = psutil.Process(proc.pid)
            for p in (root, *root.children(recursive=True)):
                listening += [(p.name(), c.laddr) for c in p.net_connections(kind="inet")
                              if c.status == psutil.CONN_LISTEN]
        assert listening, "the api-server should listen somewhere"
        assert all(addr.ip in ("127.0.0.1", "::1") for _, addr in listening), listening
        assert af.port in {addr.port for _, addr in listening}


# --- published outputs -----------------------------------------------------------------------------


def test_published_outputs_hold_no_protected_attribute(published_lake: PublishedLake):
    root, day = published_lake.root, published_lake.published
    for name in OUTPUTS:
        frame = publish.read_output(root, name, day)
        assert frame.height or name == "hardship_offers", name
        assert not PROTECTED_ATTRIBUTES & set(frame.columns), name
        # nor as a reason given to a customer
        reasons = [c for c in ("reason_1", "reason_2", "reason_3", "reason_codes") if c in frame.columns]
        for column in reasons:
            values = frame[column].explode() if frame.schema[column] == pl.List(pl.String) else frame[column]
            assert not PROTECTED_ATTRIBUTES & set(values.drop_nulls().to_list()), (name, column)


def _world_writable(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in [root, *root.rglob("*")] if p.stat().st_mode & stat.S_IWOTH]


def test_published_files_are_not_world_writable_even_under_a_lenient_umask(
    published_lake: PublishedLake, tmp_path: Path
):
    assert _world_writable(published_lake.root / "outputs") == []
    frames = {n: publish.read_output(published_lake.root, n, published_lake.published) for n in OUTPUTS}
    root = tmp_path / "lake"
    previous = os.umask(0)  # a container or cron job with umask 000
    try:
        publish.publish_outputs(root, dt.date(2026, 11, 20), frames, {"note": "umask test"})
        publish.publish_outputs(root, dt.date(2026, 11, 20), frames, {"note": "umask test, rerun"})
    finally:
        os.umask(previous)
    assert _world_writable(root / "outputs") == []
