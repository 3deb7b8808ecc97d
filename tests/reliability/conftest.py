"""Fixtures of the reliability tests: one published lake per session, a private copy per test."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_support import PublishedLake, build_published_lake, run_night_without_report

from pipelines.config.settings import RisklineConfig


@pytest.fixture(scope="session")
def published_lake(tmp_path_factory: pytest.TempPathFactory, quiet_cfg: RisklineConfig) -> PublishedLake:
    return build_published_lake(tmp_path_factory.mktemp("published-lake"), quiet_cfg)


@pytest.fixture(scope="session")
def clean_next_night(
    published_lake: PublishedLake, tmp_path_factory: pytest.TempPathFactory, quiet_cfg: RisklineConfig
) -> Path:
    """A copy of the published lake with NEXT run on its clean landing drop: the reference the fault tests
    compare against (never modify it)."""
    root = tmp_path_factory.mktemp("clean-next-night") / "lake"
    shutil.copytree(published_lake.root, root, symlinks=True)
    run_night_without_report(root, published_lake.next_day, quiet_cfg)
    return root


@pytest.fixture()
def lake_root(published_lake: PublishedLake, tmp_path: Path) -> Path:
    """A private copy of the published lake (about 6 MB)."""
    root = tmp_path / "lake"
    shutil.copytree(published_lake.root, root, symlinks=True)
    return root


@pytest.fixture()
def children() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts: any still running when it ends (say, held at a pause when an assertion
    failed) are killed, so a failing test never leaves a child behind."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
