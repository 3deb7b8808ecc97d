"""What a drop must cover (pipelines/domain/coverage.py): by hand on small frames."""

from __future__ import annotations

import polars as pl

from pipelines.domain.coverage import curated_rows_removed, open_accounts_missing


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
