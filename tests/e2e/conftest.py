"""Shared end-to-end fixtures: a small generated book, ingested, and one night run and published.

``e2e_lake`` is built once per test session and unpacks as ``(data root, business date, config path)``;
it also names them (``.root``, ``.first_run`` = the night that was run, ``.end`` = the last landed day, which
is landed but not ingested, so a test can run the next night itself) and copies itself (``.copy_to``).
Tests that change the lake work on a copy (``copy_lake()`` or ``e2e_lake.copy_to(path)``): the lake is shared.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]

# Dates in the past, so the real-scheduler tests can backfill the landed-but-not-ingested days after FIRST_RUN;
# those are the business dates of the README's backfill example (2026-11-20 .. 2026-11-22), which
# tests/e2e/test_airflow_first_hour.py runs verbatim.
FIRST_RUN = dt.date(2026, 11, 19)
END = FIRST_RUN + dt.timedelta(days=3)  # landed, not ingested: the next three nights
ACCOUNTS = 3_000  # about 2,500 open lines on the night
# 150 days of history: the OOT snapshot is D - 97 (labels.gap_days + horizon_days); the weekly training snapshots before
# it reach back to the first day (plan_snapshots drops dates without data).
DAYS = 150
TRAINING_SNAPSHOTS = 8
SEED = 11


class E2ELake(NamedTuple):
    root: Path
    as_of: dt.date
    cfg_path: Path

    @property
    def first_run(self) -> dt.date:
        return self.as_of

    @property
    def end(self) -> dt.date:
        return END

    def copy_to(self, dest: Path) -> Path:
        """A private copy of the data root at ``dest`` (returned)."""
        shutil.copytree(self.root, dest, symlinks=True)
        return dest


def write_test_config(folder: Path, data_root: Path) -> Path:
    """riskline.yaml with a shorter training window and the data root in tmp; nothing else changes."""
    raw = yaml.safe_load((REPO_ROOT / "riskline.yaml").read_text())
    raw["paths"]["data_root"] = str(data_root)
    raw["model"]["definition"] = str(REPO_ROOT / raw["model"]["definition"])  # relative to the repo, not tmp
    raw["model"]["training_snapshots"] = TRAINING_SNAPSHOTS
    path = folder / "riskline-e2e.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return path


@pytest.fixture(scope="session")
def e2e_lake(tmp_path_factory: pytest.TempPathFactory) -> E2ELake:
    from pipelines.config.settings import load_config
    from tools.generate import write_portfolio
    from tools.simulate import GeneratorParams
    from pipelines.stages.ingest import ingest_date, ranged_days
    from pipelines.stages.night import run_night

    started = time.perf_counter()
    base = tmp_path_factory.mktemp("e2e-lake")
    root = base / "data"
    root.mkdir()
    cfg_path = write_test_config(base, root)
    cfg = load_config(cfg_path)
    params = GeneratorParams(accounts=ACCOUNTS, days=DAYS, end_date=END, seed=SEED)
    write_portfolio(root, params, cfg)
    # Every history day goes through the real ingest and Great Expectations suites, as `riskline ingest
    # --from-date --to-date` takes them (one GX pass per chunk of dates); Data Docs only for the night itself.
    history = [day for day in params.dates if day < FIRST_RUN]
    for day, ranged in ranged_days(root, history, cfg):
        ingest_date(root, day, cfg, data_docs=False, in_range=ranged)
    run_night(root, FIRST_RUN, cfg)
    print(f"\ne2e_lake: {ACCOUNTS:,} accounts x {DAYS} days, night {FIRST_RUN} run in "
          f"{time.perf_counter() - started:.0f} s at {root}")
    return E2ELake(root, FIRST_RUN, cfg_path)


@pytest.fixture()
def copy_lake(e2e_lake: E2ELake, tmp_path: Path) -> Callable[[], E2ELake]:
    """``copy_lake()`` -> a fresh private copy of the shared lake (same dates and config file)."""
    counter = itertools.count()

    def _copy() -> E2ELake:
        return e2e_lake._replace(root=e2e_lake.copy_to(tmp_path / f"lake-{next(counter)}"))

    return _copy


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Airflow's metadata database in the test AIRFLOW_HOME (tests/conftest.py), migrated once."""
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], env=dict(os.environ), check=True, capture_output=True,
                   timeout=600)


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 3, af: Any = None) -> Any:
    """``check()``'s first truthy value, polled every ``every`` s; after ``timeout`` s an error that says what was
    awaited and, given the deployment ``af``, whether its scheduler is alive and the DAG startable."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                         + (f"\n{af.diagnose()}" if af is not None else ""))
