"""A small multi-night lake for the report's trend tests: three published nights, the first a month before
the last (so the 30-day roll has a night to roll from), on a book of a few hundred accounts.

Nights: ``END - 31`` (trains the champion), ``END - 7`` and ``END`` (serve it). The lake is built once per
session by :func:`build_trend_lake` (``tests/e2e/conftest.py``'s ``trend_lake``).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import NamedTuple

from .conftest import write_test_config

END = dt.date(2026, 11, 25)
NIGHTS = (END - dt.timedelta(days=31), END - dt.timedelta(days=7), END)
ACCOUNTS = 1000
DAYS = 185  # the first night (END - 31) trains: it needs the OOT snapshot (D - 97) and training weeks before it
SEED = 11


class TrendLake(NamedTuple):
    root: Path
    cfg_path: Path
    nights: tuple[dt.date, ...]


def build_trend_lake(base: Path) -> TrendLake:
    from pipelines.config.settings import load_config
    from pipelines.model.registry import ModelRegistry, NoChampionError
    from pipelines.stages.ingest import ingest_date, ranged_days
    from pipelines.stages.night import RunOptions, run_night
    from tools.generate import write_portfolio
    from tools.simulate import GeneratorParams

    started = time.perf_counter()
    root = base / "data"
    root.mkdir(parents=True)
    cfg_path = write_test_config(base, root)
    cfg = load_config(cfg_path)
    params = GeneratorParams(accounts=ACCOUNTS, days=DAYS, end_date=END, seed=SEED)
    write_portfolio(root, params, cfg)
    for i, night in enumerate(NIGHTS):  # the days before each night through the real ingest, then the night
        after = NIGHTS[i - 1] if i else dt.date.min
        days = [d for d in params.dates if after < d < night]
        for day, ranged in ranged_days(root, days, cfg):
            ingest_date(root, day, cfg, data_docs=False, in_range=ranged)
        # The nights are spaced (a month, then a week): the chain rule wants every business day run in order, so
        # the later ones run forced, as the demo's spaced nights do (recorded in their manifests).
        options = RunOptions(retrain=i == 0, force_chain=i > 0)
        try:
            run_night(root, night, cfg, options)
        except NoChampionError:
            # A book this small can miss the AUC floor; the registered challenger is promoted by hand (the
            # documented model-risk path), which is all the trend needs: a model that serves every night.
            registry = ModelRegistry(root)
            version = registry.versions()[-1]
            registry.set_champion(version, night, "manual_promote", "trend test lake: a small book",
                                  recorded_at=f"{night}T00:00:00+08:00")
            run_night(root, night, cfg, RunOptions(retrain=False, force_chain=i > 0))
    print(f"\ntrend_lake: {ACCOUNTS:,} accounts, nights {', '.join(map(str, NIGHTS))} in "
          f"{time.perf_counter() - started:.0f} s at {root}")
    return TrendLake(root, cfg_path, NIGHTS)
