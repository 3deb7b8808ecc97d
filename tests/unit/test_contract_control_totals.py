"""contracts.control_totals: what a drop holds and what upstream declared, in exact cents."""

from __future__ import annotations

import json
from decimal import Decimal

import polars as pl
import pytest

from pipelines.contracts import control_totals as ct
from pipelines.contracts.landing import CONTRACT
from pipelines.domain.conform import conform_to_contract

PAYMENTS = CONTRACT["payments"]


def _landing(*amounts: str | None) -> pl.DataFrame:
    n = len(amounts)
    return pl.DataFrame({
        "payment_id": [f"P{i}" for i in range(n)], "account_id": ["A1"] * n, "loan_id": ["L1"] * n,
        "paid_at": pl.Series([0] * n).cast(pl.Datetime("us", "UTC")),
        "amount": pl.Series([Decimal(a) if a else None for a in amounts], dtype=pl.Decimal(18, 2)),
    })


def test_a_landing_drop_and_its_conformed_rows_have_the_same_totals():
    frame = _landing("0.10", "0.20", "99999.99", None)
    landing = ct.totals_of(frame, PAYMENTS)
    assert landing == ct.ControlTotals(4, {"amount": 10_000_029})  # 0.1 + 0.2 is exactly 0.30 here
    assert ct.totals_of(conform_to_contract(frame, PAYMENTS), PAYMENTS) == landing


def test_the_manifest_round_trips_as_decimal_strings():
    totals = ct.ControlTotals(3, {"amount": -5, "principal_due": 123_456_789_012})
    raw = json.loads(ct.manifest_bytes(totals), parse_float=Decimal)
    assert raw == {"rows": 3, "sums": {"amount": "-0.05", "principal_due": "1234567890.12"}}
    assert ct.parse({"rows": 3, "sums": {"amount": "-0.05"}}, PAYMENTS).sums == {"amount": -5}


def test_a_sum_may_be_declared_in_cents_or_as_a_number():
    assert ct.parse({"rows": 1, "sums": {"amount_cents": 1050}}, PAYMENTS).sums == {"amount": 1050}
    assert ct.parse({"rows": 1, "sums": {"amount": Decimal("10.5")}}, PAYMENTS).sums == {"amount": 1050}
    assert ct.parse({"rows": 1}, PAYMENTS).fields == {"rows"}


@pytest.mark.parametrize("raw", [
    {"rows": 1.5}, {"rows": True}, {}, {"rows": 1, "sums": []}, {"rows": 1, "sums": {"amount": "1.001"}},
    {"rows": 1, "sums": {"amount_cents": "10.5"}}, {"rows": 1, "sums": {"amount": "NaN"}},
    {"rows": 1, "sums": {"amount": "ten"}}, {"rows": 1, "sums": {"paid_at": "1"}},
])
def test_anything_else_is_refused(raw):
    with pytest.raises(ValueError):
        ct.parse(raw, PAYMENTS)
