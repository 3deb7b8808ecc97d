"""The feature peers of `riskline bench` (benchmarks/peers/) compute exactly riskline's features.

The bench compares times of riskline, DuckDB SQL and pandas on the behaviour-window features; that
comparison is honest only if all three return the same values for the same Parquet. This book puts
events on every window edge (ages 6/7, 29/30, 89/90, 179/180 days), after D, with null amounts, refunds
without purchases, and accounts without events, frozen or closed.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines.contracts.landing import CONTRACT
from pipelines.domain.features import build_features
from pipelines.domain.ledger import build_ledger
from pipelines.store import lake, zones

AS_OF = dt.date(2026, 6, 30)
RUNNER = Path(__file__).resolve().parents[2] / "benchmarks" / "peers" / "run_peers.py"


def _load_runner():
    spec = importlib.util.spec_from_file_location("run_peers", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ts(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(5), dt.UTC)


@pytest.fixture()
def book(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(lake, "fsync_dir", lambda folder: None)  # durability is not under test here
    monkeypatch.setattr(lake, "_fsync_dir_files", lambda folder: None)
    events: dict[dt.date, list[tuple]] = {}

    def add(account: str, age: int, kind: str, cents: int | None) -> None:
        day = AS_OF - dt.timedelta(days=age)
        rows = events.setdefault(day, [])
        rows.append((f"e{len(rows)}-{day}", account, _ts(day), kind, cents, "app"))

    for age in (0, 6, 7, 29, 30, 89, 90, 179, 180, 200, -1):  # -1: after D, must be ignored
        add("A1", age, "purchase", 1_000 + age)
        add("A1", age, "cash_draw", 50_000 + age)
        add("A1", age, "login", None)
    add("A1", 3, "refund", 700)
    add("A2", 10, "refund", 500)  # a refund with no purchase: ratio undefined (null), not infinite
    add("A2", 40, "purchase", 900)  # prior spend only: trend 0.0
    add("A3", 5, "login", None)  # frozen, logins only
    add("A5", 1, "purchase", 300)  # closed: no row at all
    for day, rows in events.items():
        frame = pl.DataFrame(rows, schema=CONTRACT["behaviour"].curated_schema(), orient="row")
        lake.publish_frames(lake.partition_dir(data_root, "curated", "behaviour", day), {"part-0.parquet": frame})
    accounts = [
        (f"A{k}", dt.date(2025, 1, 1), 100_000, status, None, None, None, None)
        for k, status in ((1, "active"), (2, "active"), (3, "frozen"), (4, "active"), (5, "closed"))
    ]
    lake.publish_frames(lake.partition_dir(data_root, "curated", "accounts", AS_OF), {
        "part-0.parquet": pl.DataFrame(accounts, schema=CONTRACT["accounts"].curated_schema(), orient="row")})
    return data_root


def _riskline_features(root: Path, columns: tuple[str, ...]) -> pl.DataFrame:
    """The features riskline's nightly build publishes (build_features), restricted to the compared columns."""
    ledger = build_ledger(zones.scan_curated(root, "installments", AS_OF), zones.scan_curated(root, "payments", AS_OF),
                          AS_OF)
    accounts = zones.scan_curated(root, "accounts", AS_OF)
    behaviour = zones.scan_curated(root, "behaviour", AS_OF)
    return build_features(accounts, behaviour, ledger, AS_OF).select(columns)


def test_riskline_duckdb_and_pandas_features_are_equal(book):
    runner = _load_runner()
    expected = _riskline_features(book, runner.SUBSET_COLUMNS)
    # hand-checked anchors, so the three cannot agree on something wrong: A1 bought at ages 0, 6 in the last
    # 7 days (1000 + 1006 cents), refunded 700 of 3 purchases' worth over 30 days, and A2 has no spend
    a1 = expected.row(0, named=True)
    assert expected["account_id"].to_list() == ["A1", "A2", "A3", "A4"]
    assert (a1["spend_7d_cents"], a1["purchase_count_7d"], a1["login_count_180d"]) == (2_006, 2, 8)
    assert a1["refund_ratio_30d"] == pytest.approx(700 / (1_000 + 1_006 + 1_007 + 1_029))
    assert a1["spend_trend_30d"] == pytest.approx((4_042 / 30) / ((1_030 + 1_089) / 60))
    a2 = expected.row(1, named=True)
    assert a2["refund_ratio_30d"] is None and a2["spend_trend_30d"] == 0.0 and a2["spend_90d_cents"] == 900
    for name in ("riskline", "duckdb", "pandas"):
        assert_frame_equal(runner.RUNNERS[name](book, AS_OF), expected), name


def test_the_scan_floors_read_every_row(book):
    runner = _load_runner()
    # 8 in-window ages x 3 events for A1 (ages 180, 200 and -1 are outside), 5 more events, 5 accounts
    assert runner.scan_behaviour(book, AS_OF) == 8 * 3 + 5 + 5
