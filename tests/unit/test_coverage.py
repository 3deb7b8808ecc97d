"""What a drop must cover (pipelines/domain/coverage.py): by hand on small frames."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from pipelines.domain.coverage import (
    accounts_held_out, curated_rows_removed, open_accounts_closed, open_accounts_lost, open_accounts_missing,
)

D = dt.date(2026, 11, 25)


def test_open_accounts_missing_from_a_snapshot_by_hand():
    previous = pl.DataFrame({
        "account_id": ["A1", "A2", "A3", "A4"],
        "status": ["active", "frozen", "closed", "active"],
        "credit_limit_cents": [100_00, 200_00, 300_00, 400_00],
    })
    today = pl.DataFrame({"account_id": ["A4", "A9"]})  # A9 is new; A3 was closed: leaving is no loss
    missing = open_accounts_missing(today, previous)
    assert missing.to_dicts() == [
        {"account_id": "A1", "status": "active", "credit_limit_cents": 100_00},
        {"account_id": "A2", "status": "frozen", "credit_limit_cents": 200_00},
    ]
    assert open_accounts_missing(previous.select("account_id"), previous).is_empty()


def test_curated_rows_a_redelivery_lacks_by_hand():
    curated = pl.DataFrame({"payment_id": ["P3", "P1", "P2"]})
    delivered = pl.DataFrame({"payment_id": ["P2", "P4", "P2"]})  # P4 is new; a repeat counts once
    assert curated_rows_removed(curated, delivered, "payment_id")["payment_id"].to_list() == ["P1", "P3"]


def _previous() -> pl.DataFrame:
    """Each account's last known row: A1 active, A2 frozen, A3 closed, A4 active."""
    return pl.DataFrame({
        "account_id": ["A1", "A2", "A3", "A4"],
        "status": ["active", "frozen", "closed", "active"],
        "credit_limit_cents": [100_00, 200_00, 300_00, 400_00],
    })


def test_open_accounts_closed_tonight_by_hand():
    # review 28, F5: a status mapping fault closes open accounts; one closed already (A3) is no news, and an
    # account left open (A4) or new and closed (A9) is not an open account closing
    today = pl.DataFrame({"account_id": ["A1", "A2", "A3", "A4", "A9"],
                          "status": ["closed", "closed", "closed", "active", "closed"]})
    assert open_accounts_closed(today, _previous())["account_id"].to_list() == ["A1", "A2"]
    assert open_accounts_closed(_previous(), _previous()).is_empty()


def test_missing_and_closed_count_toward_one_share_by_hand():
    # A1 missing, A2 closed, A4 kept open: both ways out of the decided book are listed, each saying how
    today = pl.DataFrame({"account_id": ["A2", "A3", "A4"], "status": ["closed", "closed", "frozen"]})
    lost = open_accounts_lost(today, _previous())
    assert lost.select("account_id", "status", "tonight").rows() == [("A1", "active", "missing"),
                                                                     ("A2", "frozen", "closed")]


@pytest.mark.parametrize("last_open, overdue, held", [
    (D - dt.timedelta(days=1), 5_000, True),  # closed tonight while overdue: a fault or a charge-off, held
    (D - dt.timedelta(days=1), 0, False),  # a paid-off line closing: the normal course, nothing to hold
    (None, 5_000, False),  # closed in every snapshot of the hold: the hold is over, queued on the fallback PD
])
def test_an_account_closed_while_overdue_is_held_within_the_hold(last_open, overdue, held):
    recent = pl.DataFrame({"account_id": ["A1", "A2"], "status": ["closed", "active"],
                           "credit_limit_cents": [100_00, 200_00], "last_open_dt": [last_open, D]},
                          schema_overrides={"last_open_dt": pl.Date()})
    today = pl.DataFrame({"account_id": ["A1", "A3"], "status": ["closed", "active"]})  # A2 missing tonight
    ledger = pl.DataFrame({"account_id": ["A1", "A2", "A3"], "overdue_cents": [overdue, 0, 7_000]})
    out = accounts_held_out(today, recent, ledger)
    assert out.rows() == ([("A1", "closed")] if held else []) + [("A2", "missing")]
