"""Labels: a hand-built book where each account tests one rule of the definition."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines.config.settings import LabelsConfig
from pipelines.contracts.landing import CONTRACT
from pipelines.domain.labels import LabelsNotMaturedError, build_labels, is_matured
from pipelines.domain.ledger import build_ledger
from pipelines.stages.train import build_labels_for, write_labels_for
from pipelines.store import lake

D = dt.date
S = D(2024, 3, 31)  # snapshot date
# 90 days, 30 DPD, no gap: the window is (s, s+90] and ends Jun 29 (the gap has its own test below)
H = LabelsConfig(gap_days=0)
END = D(2024, 6, 29)
UTC = dt.timezone.utc


def _frame(dataset: str, rows: list[tuple]) -> pl.LazyFrame:
    schema = {**CONTRACT[dataset].curated_schema(), "dt": pl.Date()}
    return pl.LazyFrame(rows, schema=schema, orient="row")


def _inst(acc: str, due: dt.date, draw: dt.date, loan: str | None = None) -> tuple:
    loan = loan or f"{acc}-L"
    return (f"{loan}-1", loan, acc, 1, due, 10_000, 0, draw)


def _pay(acc: str, day: dt.date, cents: int = 10_000, loan: str | None = None) -> tuple:
    return (f"{acc}-{day}", acc, loan or f"{acc}-L", dt.datetime.combine(day, dt.time(3), UTC), cents, day)


def _book(extra_after: dt.date | None = None) -> dict[str, pl.LazyFrame]:
    drawn = D(2024, 1, 15)
    accounts = [
        (acc, D(2023, 1, 1), 100_000, status, None, None, None, None, S)
        for acc, status in [
            ("BAD", "active"), ("EDGE29", "active"), ("INDEFAULT", "active"), ("CLOSED", "closed"),
            ("NEWLOAN", "frozen"), ("TOOLATE", "active"), ("AT29", "active"), ("CLEAN", "active"),
        ]
    ]
    inst = [
        _inst("BAD", D(2024, 4, 30), drawn),  # unpaid until May 31: 30 DPD on May 30 -> bad
        _inst("EDGE29", D(2024, 4, 30), drawn),  # paid May 30: worst close is May 29 at 29 DPD -> good
        _inst("INDEFAULT", D(2024, 2, 29), drawn),  # 31 DPD at the snapshot -> excluded
        _inst("CLOSED", D(2024, 4, 30), drawn),  # never pays, but closed at s -> excluded
        _inst("NEWLOAN", D(2024, 5, 15), D(2024, 4, 15)),  # drawn after s, unpaid: 30 DPD Jun 14 -> bad
        _inst("TOOLATE", D(2024, 6, 1), drawn),  # unpaid: 28 DPD at the end of the horizon -> good
        _inst("AT29", D(2024, 3, 2), drawn),  # 29 DPD at s: in the population, 30 DPD on Apr 1 -> bad
        _inst("CLEAN", D(2024, 4, 30), drawn),
    ]
    pay = [
        _pay("BAD", D(2024, 5, 31)),
        _pay("EDGE29", D(2024, 5, 30)),
        _pay("CLEAN", D(2024, 4, 30)),
        _pay("AT29", D(2024, 4, 20)),
    ]
    if extra_after is not None:  # data after s+H: TOOLATE pays, CLEAN draws a loan it never repays
        pay.append(_pay("TOOLATE", extra_after))
        inst.append(_inst("CLEAN", extra_after + dt.timedelta(days=1), extra_after, loan="CLEAN-L2"))
    return {
        "accounts": _frame("accounts", accounts),
        "installments": _frame("installments", inst),
        "payments": _frame("payments", pay),
    }


def _labels(book: dict[str, pl.LazyFrame], ledger_as_of: dt.date = END) -> pl.DataFrame:
    ledger = build_ledger(book["installments"], book["payments"], ledger_as_of)
    return build_labels(book["accounts"], ledger, S, H)


def test_labels_on_a_hand_built_book():
    labels = _labels(_book())
    got = dict(zip(labels["account_id"], labels["bad"], strict=True))
    assert got == {"AT29": 1, "BAD": 1, "CLEAN": 0, "EDGE29": 0, "NEWLOAN": 1, "TOOLATE": 0}
    worst = dict(zip(labels["account_id"], labels["worst_dpd_in_horizon"], strict=True))
    # EDGE29 peaks at 29 (one day short), TOOLATE at 28 on Jun 29 (due Jun 1)
    assert (worst["EDGE29"], worst["TOOLATE"], worst["CLEAN"]) == (29, 28, 0)
    assert labels.schema["bad"] == pl.Int8 and set(labels["snapshot_date"]) == {S}
    assert labels["horizon_days"].unique().to_list() == [90] and labels["gap_days"].unique().to_list() == [0]


def test_labels_use_nothing_after_the_horizon():
    base = _labels(_book())
    later = _labels(_book(extra_after=D(2024, 7, 1)), ledger_as_of=D(2024, 9, 30))
    assert_frame_equal(later, base)


def test_immature_snapshot_is_refused():
    book = _book()
    ledger = build_ledger(book["installments"], book["payments"], END - dt.timedelta(days=1))
    with pytest.raises(LabelsNotMaturedError, match="needs data up to 2024-06-29"):
        build_labels(book["accounts"], ledger, S, H)
    assert is_matured(S, END, H) and not is_matured(S, END - dt.timedelta(days=1), H)


def test_shorter_horizon_from_config():
    book = _book()
    short = LabelsConfig(horizon_days=45, gap_days=0)  # ends May 15: BAD reaches only 15 DPD by then
    ledger = build_ledger(book["installments"], book["payments"], S + dt.timedelta(days=45))
    got = dict(zip(*build_labels(book["accounts"], ledger, S, short).select("account_id", "bad")
                   .to_dict(as_series=False).values(), strict=True))
    assert got["BAD"] == 0 and got["AT29"] == 1


def _publish_book(root: Path, book: dict[str, pl.LazyFrame]) -> None:
    for dataset, lf in book.items():
        frame = lf.collect()
        days = sorted(set(frame["dt"])) + ([END] if dataset != "accounts" else [])
        for day in days:
            part = frame.filter(pl.col("dt") == day).drop("dt")
            lake.publish_frames(lake.partition_dir(root, "curated", dataset, day), {"part-0.parquet": part})


def test_build_labels_for_reads_the_curated_zone(data_root, cfg):
    cfg = cfg.model_copy(update={"labels": H})
    _publish_book(data_root, _book())
    labels = build_labels_for(data_root, S, cfg)
    assert_frame_equal(labels, _labels(_book()))
    path = write_labels_for(data_root, S, cfg)
    assert_frame_equal(lake.read_partition(path), labels)


def test_build_labels_for_needs_the_horizon_end_partitions(data_root, cfg):
    cfg = cfg.model_copy(update={"labels": H})
    _publish_book(data_root, _book())
    lake.remove_partition(lake.partition_dir(data_root, "curated", "payments", END))
    with pytest.raises(LabelsNotMaturedError, match="no complete payments partition for 2024-06-29"):
        build_labels_for(data_root, S, cfg)
    with pytest.raises(LabelsNotMaturedError, match="after the run date"):
        build_labels_for(data_root, S, cfg, as_of=D(2024, 6, 1))


def test_the_outcome_window_starts_gap_days_after_the_snapshot():
    drawn = D(2024, 1, 15)
    accounts = [(acc, D(2023, 1, 1), 100_000, "active", None, None, None, None, S) for acc in ("EARLY", "LATE")]
    book = {
        "accounts": _frame("accounts", accounts),
        # EARLY: due Mar 2, 29 DPD at s, 30-31 DPD on Apr 1-2, repaid Apr 3: its arrears are in the features of s
        # LATE: due Jun 5, unpaid: 30 DPD on Jul 5, after the classic window (ends Jun 29)
        "installments": _frame(
            "installments", [_inst("EARLY", D(2024, 3, 2), drawn), _inst("LATE", D(2024, 6, 5), drawn)]
        ),
        "payments": _frame("payments", [_pay("EARLY", D(2024, 4, 3))]),
    }
    gap = LabelsConfig(gap_days=7)  # window (Apr 7, Jul 6]: matures on Jul 6
    ledger = build_ledger(book["installments"], book["payments"], D(2024, 7, 6))

    def bad(cfg: LabelsConfig) -> dict[str, int]:
        labels = build_labels(book["accounts"], ledger, S, cfg)
        return dict(zip(labels["account_id"], labels["bad"], strict=True))

    assert bad(gap) == {"EARLY": 0, "LATE": 1}
    assert bad(H) == {"EARLY": 1, "LATE": 0}  # the classic window counts what the gap leaves out
    assert is_matured(S, D(2024, 7, 6), gap) and not is_matured(S, D(2024, 7, 5), gap)
    with pytest.raises(LabelsNotMaturedError, match="needs data up to 2024-07-06"):
        build_labels(book["accounts"], build_ledger(book["installments"], book["payments"], D(2024, 7, 5)), S, gap)
    assert LabelsConfig().gap_days == 7  # the default keeps a week between features and outcomes
