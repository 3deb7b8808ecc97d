"""A small generated lake with every generator fault on its own day, and curated history before them.

Generated once per session (~2 s); each test gets its own copy, so tests can ingest, tamper and compare
bytes independently. The history is seeded straight into the curated zone (conformed, de-duplicated,
no validation): it stands for nights that were ingested earlier, and seeding 35 days costs well under a
second where real ingests would cost half a minute.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.stages import ingest
from pipelines.store import drops
from pipelines.store import lake
from pipelines.contracts.landing import DATASETS
from tools.generate import write_portfolio
from tools.faults import FAULT_KINDS, Fault
from tools.simulate import GeneratorParams

END = dt.date(2026, 11, 20)
DAYS = 45  # payments start once the first instalments fall due (~30 days in)
ACCOUNTS = 1_000
# The last len(FAULT_KINDS) days carry one fault each, in catalogue order; the day before is clean.
FAULT_DAYS: dict[str, dt.date] = {
    kind: END - dt.timedelta(days=len(FAULT_KINDS) - 1 - i) for i, kind in enumerate(FAULT_KINDS)
}
CLEAN_DAY = END - dt.timedelta(days=len(FAULT_KINDS))


def seed_curated(root: Path, day: dt.date, cfg) -> None:
    for name in DATASETS:
        frame = drops.read_landing(root, name, day, cfg)
        lake.publish_frames(lake.partition_dir(root, "curated", name, day), {ingest.CURATED_FILE: frame})


@dataclass(frozen=True)
class FaultCalendar:
    """Which day of the generated lake carries which fault (tests get it as the ``calendar`` fixture)."""

    clean_day: dt.date
    fault_days: dict[str, dt.date]

    def seed(self, root: Path, day: dt.date, cfg) -> None:
        seed_curated(root, day, cfg)


@pytest.fixture(scope="session")
def calendar() -> FaultCalendar:
    return FaultCalendar(CLEAN_DAY, FAULT_DAYS)


@pytest.fixture(scope="session")
def seeded_lake(tmp_path_factory, cfg) -> Path:
    root = tmp_path_factory.mktemp("lake")
    params = GeneratorParams(accounts=ACCOUNTS, days=DAYS, end_date=END, seed=11)
    write_portfolio(root, params, cfg, faults=[Fault(kind, day) for kind, day in FAULT_DAYS.items()])
    day = params.start_date
    while day < CLEAN_DAY:
        seed_curated(root, day, cfg)
        day += dt.timedelta(days=1)
    return root


@pytest.fixture()
def lake_root(seeded_lake: Path, tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    shutil.copytree(seeded_lake, root, symlinks=True)
    return root
