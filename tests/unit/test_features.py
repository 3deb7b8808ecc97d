"""Features: hand-computed windows, point-in-time correctness, the dictionary, shards."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines.contracts.landing import CONTRACT
from pipelines.domain.feature_dictionary import FEATURES, FEATURE_NAMES, KEY_COLUMNS, feature, monotone_constraints
from pipelines.domain.features import build_features
from pipelines.domain.ledger import build_ledger
from pipelines.stages.features import IncompleteHistoryError, build_feature_snapshot, merge_shards
from pipelines.store import lake
from pipelines.store.zones import LEDGER_FILES, feature_partition, ledger_partition, read_features

D = dt.date
AS_OF = D(2024, 6, 30)
UTC = dt.timezone.utc


def _frame(dataset: str, rows: list[tuple], extra: dict | None = None) -> pl.LazyFrame:
    schema = {**CONTRACT[dataset].curated_schema(), "dt": pl.Date(), **(extra or {})}
    return pl.LazyFrame(rows, schema=schema, orient="row")


def _ago(days: int) -> dt.date:
    return AS_OF - dt.timedelta(days=days)


def _ts(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(3), UTC)


def _book(extra_days: int = 0) -> dict[str, pl.LazyFrame]:
    """A1 (active, a loan with one late and one missed instalment, busy), A2 (frozen, new, idle),
    A3 (closed). ``extra_days`` > 0 appends rows dated after AS_OF, which must change nothing."""
    acc = [
        # account_id, opened_on, credit_limit_cents, status, annual_income_cents, region, gender, marital, dt
        ("A1", D(2023, 1, 15), 200_000, "active", None, "r1", "f", "single", AS_OF),
        ("A2", D(2024, 6, 1), 100_000, "frozen", None, "r2", "m", None, AS_OF),
        ("A3", D(2022, 1, 1), 100_000, "closed", None, "r1", None, None, AS_OF),
        ("A1", D(2023, 1, 15), 160_000, "active", None, "r1", "f", "single", _ago(30)),
        ("A1", D(2023, 1, 15), 160_000, "active", None, "r1", "f", "single", _ago(90)),
        ("A1", D(2023, 1, 15), 100_000, "active", None, "r1", "f", "single", _ago(180)),
    ]
    beh = []
    for k, (age, cents) in enumerate(
        [(0, 100), (6, 200), (7, 400), (29, 800), (30, 1600), (89, 3200), (90, 6400), (179, 12800), (180, 25600)]
    ):
        beh.append((f"pu{k}", "A1", _ts(_ago(age)), "purchase", cents, "app", _ago(age)))
    beh += [
        ("rf", "A1", _ts(_ago(3)), "refund", 150, "app", _ago(3)),
        ("cd", "A1", _ts(_ago(2)), "cash_draw", 50_000, "app", _ago(2)),
        ("lg1", "A1", _ts(_ago(0)), "login", None, "app", _ago(0)),
        ("lg2", "A1", _ts(_ago(0)), "login", None, "web", _ago(0)),
        ("lg3", "A1", _ts(_ago(10)), "login", None, "app", _ago(10)),
    ]
    draw = D(2024, 3, 10)
    inst = [
        (f"i{n}", "L1", "A1", n, due, 30_000, 1_000, draw)
        for n, due in enumerate((D(2024, 4, 10), D(2024, 5, 10), D(2024, 6, 10)), start=1)
    ]
    pay = [
        ("p1", "A1", "L1", _ts(D(2024, 4, 10)), 31_000, D(2024, 4, 10)),  # on time
        ("p2", "A1", "L1", _ts(D(2024, 5, 20)), 31_000, D(2024, 5, 20)),  # 10 days late
    ]
    for k in range(1, extra_days + 1):
        later = AS_OF + dt.timedelta(days=k)
        acc += [("A1", D(2023, 1, 15), 900_000, "frozen", None, "r1", "f", "single", later),
                ("A4", later, 100_000, "active", None, "r1", None, None, later)]
        beh.append((f"late{k}", "A1", _ts(later), "purchase", 99_999, "app", later))
        inst.append((f"late{k}", f"LL{k}", "A1", 1, later + dt.timedelta(days=30), 5_000, 10, later))
        pay.append((f"late{k}", "A1", "L1", _ts(later), 31_000, later))
    return {
        "accounts": _frame("accounts", acc),
        "behaviour": _frame("behaviour", beh),
        "installments": _frame("installments", inst),
        "payments": _frame("payments", pay),
    }


def _features(book: dict[str, pl.LazyFrame], as_of: dt.date = AS_OF) -> pl.DataFrame:
    ledger = build_ledger(book["installments"], book["payments"], as_of)
    return build_features(book["accounts"], book["behaviour"], ledger, as_of)


@pytest.fixture(scope="module")
def features() -> pl.DataFrame:
    return _features(_book())


def _row(frame: pl.DataFrame, account_id: str) -> dict:
    (row,) = frame.filter(pl.col("account_id") == account_id).to_dicts()
    return row


# --- the dictionary --------------------------------------------------------------------------------


def test_dictionary_covers_every_feature_column_exactly(features):
    columns = [c for c in features.columns if c not in KEY_COLUMNS]
    assert len(columns) == len(set(columns))
    assert set(columns) == set(FEATURE_NAMES), set(columns) ^ set(FEATURE_NAMES)
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES))


def test_dictionary_entries_are_complete():
    for feat in FEATURES:
        assert feat.meaning and feat.high_en and feat.high_zh and feat.low_en and feat.low_zh, feat.name
        assert feat.high_en != feat.low_en and feat.high_zh != feat.low_zh, feat.name
        if feat.window_days is not None:  # the window is spelled in the name, e.g. spend_30d_cents
            assert f"_{feat.window_days}d_" in f"{feat.name}_", feat.name
        else:
            assert not any(tok[:-1].isdigit() and tok.endswith("d") for tok in feat.name.split("_")), feat.name
    # the phrase a reason code quotes is the risky side: late history is "high", on-time is "low"
    assert feature("cash_draw_count_30d").risk_phrase_zh == "近30天取现次数较多"
    assert feature("on_time_ratio_90d").risk_phrase_en.startswith("some instalments")
    constraints = monotone_constraints()
    assert constraints["dpd"] == constraints["overdue_cents"] == constraints["utilization"] == 1
    assert constraints["on_time_ratio_90d"] == -1
    with pytest.raises(KeyError, match="not in the feature dictionary"):
        feature("gender")


def test_features_are_numeric_for_xgboost(features):
    for name in FEATURE_NAMES:
        assert features.schema[name].is_numeric(), (name, features.schema[name])
    assert features.schema["as_of_date"] == pl.Date()


# --- hand-computed values --------------------------------------------------------------------------


def test_population_is_active_and_frozen_accounts(features):
    assert features.get_column("account_id").to_list() == ["A1", "A2"]  # A3 is closed
    assert (_row(features, "A1")["is_frozen"], _row(features, "A2")["is_frozen"]) == (0, 1)


def test_behaviour_windows(features):
    a1 = _row(features, "A1")
    # purchases at ages 0,6 | 7,29 | 30,89 | 90,179 (age 180 is outside the 180-day history)
    assert [a1[f"spend_{w}d_cents"] for w in (7, 30, 90, 180)] == [300, 1_500, 6_300, 25_500]
    assert [a1[f"purchase_count_{w}d"] for w in (7, 30, 90, 180)] == [2, 4, 6, 8]
    assert (a1["cash_draw_count_7d"], a1["cash_draw_amount_7d_cents"]) == (1, 50_000)
    assert (a1["login_count_7d"], a1["login_count_30d"]) == (2, 3)
    assert a1["refund_ratio_30d"] == pytest.approx(150 / 1_500)
    assert a1["refund_ratio_180d"] == pytest.approx(150 / 25_500)
    # daily average of the last 30 days (1500/30 = 50) over that of the 60 before (4800/60 = 80)
    assert a1["spend_trend_30d"] == pytest.approx(50 / 80)
    a2 = _row(features, "A2")
    assert a2["spend_180d_cents"] == 0 and a2["login_count_180d"] == 0
    assert a2["refund_ratio_30d"] is None and a2["spend_trend_30d"] is None  # undefined, not 0


def test_ledger_features(features):
    a1 = _row(features, "A1")
    # instalment 3 (due Jun 10, 310.00 CNY) unpaid: 20 DPD on Jun 30, 300.00 principal left
    assert (a1["dpd"], a1["overdue_cents"], a1["missed_installments"]) == (20, 31_000, 1)
    assert a1["outstanding_principal_cents"] == 30_000
    assert (a1["max_dpd_30d"], a1["max_dpd_90d"], a1["open_loans"]) == (20, 20, 1)
    assert a1["utilization"] == pytest.approx(30_000 / 200_000)
    # 30 days ago: instalments 1-2 paid (300.00 left) against the 1600.00 line of that snapshot
    assert a1["utilization_trend_30d"] == pytest.approx(0.15 - 30_000 / 160_000)
    # last 30 days: 310.00 fell due, nothing repaid; last 90: 930.00 due (Apr 10..Jun 10), 620.00 repaid
    assert a1["payment_to_due_ratio_30d"] == 0.0
    assert a1["payment_to_due_ratio_90d"] == pytest.approx(2 / 3)
    assert a1["on_time_ratio_90d"] == pytest.approx(1 / 3)  # only the Apr 10 instalment was on time
    assert (a1["days_since_last_draw"], a1["days_since_last_payment"]) == (112, 41)  # Mar 10, May 20
    a2 = _row(features, "A2")
    assert (a2["dpd"], a2["utilization"], a2["open_loans"]) == (0, 0.0, 0)
    assert a2["utilization_trend_30d"] is None  # no snapshot 30 days ago
    assert a2["days_since_last_payment"] is None and a2["payment_to_due_ratio_90d"] is None


def test_snapshot_features(features):
    a1, a2 = _row(features, "A1"), _row(features, "A2")
    # 2000.00 today vs 1600.00 (30 and 90 days ago) and 1000.00 (180 days ago)
    assert (a1["limit_change_30d_ratio"], a1["limit_change_90d_ratio"]) == (pytest.approx(0.25),) * 2
    assert a1["limit_change_180d_ratio"] == pytest.approx(1.0)
    assert a2["limit_change_30d_ratio"] is None
    assert (a1["months_on_book"], a2["months_on_book"]) == (17, 0)  # 2023-01-15 -> 2024-06-30
    assert a1["credit_limit_cents"] == 200_000


@pytest.mark.parametrize(
    ("opened", "months"),
    [(D(2024, 5, 30), 1), (D(2024, 5, 31), 0), (D(2023, 6, 30), 12), (D(2024, 6, 30), 0)],
)
def test_months_on_book(opened, months):
    book = _book()
    book["accounts"] = book["accounts"].with_columns(pl.lit(opened).alias("opened_on"))
    # a month counts once its day-of-month is reached: May 31 -> Jun 30 is not yet a whole month
    assert _row(_features(book), "A1")["months_on_book"] == months


def test_rows_after_the_as_of_date_change_nothing(features):
    assert_frame_equal(_features(_book(extra_days=5)), features)


def test_ledger_of_another_date_is_refused():
    book = _book()
    ledger = build_ledger(book["installments"], book["payments"], _ago(1))
    with pytest.raises(ValueError, match="ledger is as of"):
        build_features(book["accounts"], book["behaviour"], ledger, AS_OF)


# --- I/O: the curated zone in, features and ledger out --------------------------------------------

FIRST = D(2024, 1, 1)
LAST = D(2024, 2, 14)


def _publish(root: Path, dataset: str, day: dt.date, rows: list[tuple]) -> None:
    frame = pl.DataFrame(rows, schema=CONTRACT[dataset].curated_schema(), orient="row")
    lake.publish_frames(lake.partition_dir(root, "curated", dataset, day), {"part-0.parquet": frame})


def _write_zone(root: Path, last: dt.date = LAST, n_accounts: int = 24, seed: int = 3) -> None:
    """A random little book: every account draws loans, pays on time, late, partly or not at all."""
    rng = np.random.default_rng(seed)
    ids = [f"AC{k:05d}" for k in range(n_accounts)]
    days = [FIRST + dt.timedelta(days=i) for i in range((last - FIRST).days + 1)]
    inst: dict[dt.date, list] = {d: [] for d in days}
    pay: dict[dt.date, list] = {d: [] for d in days}
    beh: dict[dt.date, list] = {d: [] for d in days}
    for a, acc in enumerate(ids):
        for n_loan in range(int(rng.integers(0, 3))):
            draw = days[int(rng.integers(0, 20))]
            loan = f"{acc}-L{n_loan}"
            for no in (1, 2, 3):
                due = draw + dt.timedelta(days=10 * no)
                inst[draw].append((f"{loan}-{no}", loan, acc, no, due, int(rng.integers(1, 9)) * 1_000, 150))
                lag = int(rng.choice([0, 0, 3, 15, 99]))
                cents = int(rng.choice([1_150, 8_000, 700]))
                paid_on = due + dt.timedelta(days=lag)
                if paid_on in pay:  # later payments belong to days not written
                    pay[paid_on].append((f"{loan}-P{no}", acc, loan, _ts(paid_on), cents))
        for d in days:
            day_rng = np.random.default_rng([seed, a, d.toordinal()])  # a day's events never depend on `last`
            for e in range(int(day_rng.poisson(0.6))):
                kind = str(day_rng.choice(["login", "purchase", "refund", "cash_draw"]))
                cents = None if kind == "login" else int(day_rng.integers(100, 5_000))
                beh[d].append((f"{acc}-{d}-{e}", acc, _ts(d), kind, cents, "app"))
        if a % 7 == 0:
            pay[days[5]].append((f"{acc}-orphan", acc, "NO-SUCH-LOAN", _ts(days[5]), 4_321))
    for d in days:
        _publish(root, "installments", d, inst[d])
        _publish(root, "payments", d, pay[d])
        _publish(root, "behaviour", d, beh[d])
    for d in sorted({days[0], LAST - dt.timedelta(days=30), LAST, last}):
        status = ["frozen" if k % 5 == 0 else "closed" if k % 11 == 0 else "active" for k in range(n_accounts)]
        _publish(root, "accounts", d, [
            (acc, D(2023, 3, 1), 100_000 + 1_000 * k + (d - FIRST).days, status[k], None, None, "f", None)
            for k, acc in enumerate(ids)
        ])


def _ledger_files(root: Path) -> dict[str, pl.DataFrame]:
    part = ledger_partition(root, LAST)
    return {name: pl.read_parquet(part / name) for name in LEDGER_FILES}


def test_snapshot_is_identical_in_one_or_four_shards(data_root, cfg):
    _write_zone(data_root)
    path = build_feature_snapshot(data_root, LAST, cfg)
    assert path == feature_partition(data_root, LAST) and lake.is_complete(path)
    whole, whole_ledger = read_features(data_root, LAST), _ledger_files(data_root)
    whole_rec = json.loads((ledger_partition(data_root, LAST) / "_reconciliation.json").read_text())
    assert whole.height == 24 - 2  # accounts 11 and 22 are closed
    assert whole_rec["unknown_loan_cents"] == 4 * 4_321  # accounts 0, 7, 14, 21 paid a non-existent loan

    shard_rows = []
    for shard in range(4):
        shard_dir = build_feature_snapshot(data_root, LAST, cfg, shard=shard, n_shards=4)
        shard_rows.append(lake.read_partition(shard_dir).height)
    assert sum(shard_rows) == whole.height and min(shard_rows) > 0  # disjoint, none empty
    merge_shards(data_root, LAST, 4)
    assert_frame_equal(read_features(data_root, LAST), whole)
    for name, frame in _ledger_files(data_root).items():
        assert_frame_equal(frame, whole_ledger[name], check_row_order=True), name
    merged_rec = json.loads((ledger_partition(data_root, LAST) / "_reconciliation.json").read_text())
    assert merged_rec == whole_rec


def test_snapshot_ignores_partitions_after_the_as_of_date(data_root, cfg):
    _write_zone(data_root)
    build_feature_snapshot(data_root, LAST, cfg)
    before = read_features(data_root, LAST)
    ledger_before = _ledger_files(data_root)
    shutil.rmtree(data_root / "curated")
    _write_zone(data_root, last=LAST + dt.timedelta(days=20))  # same seed: same past, plus 20 more days
    build_feature_snapshot(data_root, LAST, cfg)
    assert_frame_equal(read_features(data_root, LAST), before)
    for name, frame in _ledger_files(data_root).items():
        assert_frame_equal(frame, ledger_before[name]), name


def test_a_missing_payments_day_stops_the_run(data_root, cfg):
    _write_zone(data_root)
    gap = D(2024, 1, 20)
    (lake.partition_dir(data_root, "curated", "payments", gap) / lake.SUCCESS).unlink()
    with pytest.raises(IncompleteHistoryError, match="payments: missing curated partitions 2024-01-20"):
        build_feature_snapshot(data_root, LAST, cfg)
    assert not feature_partition(data_root, LAST).exists()  # nothing half-published


def test_merge_refuses_missing_shards(data_root, cfg):
    _write_zone(data_root)
    build_feature_snapshot(data_root, LAST, cfg, shard=0, n_shards=2)
    with pytest.raises(IncompleteHistoryError, match="shards not complete"):
        merge_shards(data_root, LAST, 2)
