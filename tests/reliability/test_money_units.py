"""Money has one unit and plausible bounds (issue 14, class 4).

Integer money used to be multiplied by 100 (cents read as yuan: 100x); NaN, inf, decimal(38,18) and amounts
overflowing int64 cents ended in a raw polars exception. Now an integer amount is refused unless its column
name declares cents (``amount_cents``), and every other defect is the one-line
``dataset dt= file= column=: ... -> next step`` error, before anything is curated.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from small_drops import DAY, D, accounts, installments, land_all, lenient, payments

from pipelines.stages import ingest
from pipelines import errors
from pipelines.store import lake

FILE = "part-00000.parquet"


def _payments_amount(amount: pl.Series) -> pl.DataFrame:
    return payments().with_columns(amount.alias("amount"))


CASES: dict[str, tuple[str, str, pl.DataFrame]] = {
    # dataset, column, the delivered file
    "integer_yuan_or_cents": ("payments", "amount", _payments_amount(pl.Series([10000, 5450]))),
    "nan": ("payments", "amount", _payments_amount(pl.Series([100.0, float("nan")]))),
    "inf": ("payments", "amount", _payments_amount(pl.Series([float("-inf"), 54.5]))),
    "beyond_bound": ("payments", "amount", _payments_amount(pl.Series([100.0, 3_000_000.0]))),
    "decimal_38_18_overflow": ("payments", "amount",
                               _payments_amount(pl.Series([D("100"), D("1E+19")], dtype=pl.Decimal(38, 18)))),
    "decimal_38_18_sub_cent": ("payments", "amount",
                               _payments_amount(pl.Series([D("100.001"), D("1")], dtype=pl.Decimal(38, 18)))),
    "cents_overflow_int64": ("payments", "amount", payments().drop("amount").with_columns(
        amount_cents=pl.Series([1, 2**64 - 1], dtype=pl.UInt64))),
    "limit_in_cents_as_integer": ("accounts", "credit_limit", accounts().with_columns(
        credit_limit=pl.Series([250000, 300000]))),
    "principal_sentinel": ("installments", "principal_due", installments().with_columns(
        principal_due=pl.Series([D("9999999999.00"), D("250.00")], dtype=pl.Decimal(18, 2)))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_ambiguous_or_implausible_money_stops_the_ingest_in_one_line(tmp_path: Path, cfg, case: str):
    dataset, column, frame = CASES[case]
    land_all(tmp_path, **{dataset: {FILE: frame}})
    with pytest.raises(errors.IngestError) as err:
        ingest.ingest_date(tmp_path, DAY, lenient(cfg))
    text = str(err.value)
    assert (err.value.dataset, err.value.file, err.value.column) == (dataset, FILE, column), text
    assert text.startswith(f"{dataset} dt={DAY.isoformat()} file={FILE} column={column}: ")
    assert " -> " in text and "\n" not in text
    assert not (tmp_path / "curated").exists()


def test_integer_cents_declared_by_name_are_exact(tmp_path: Path, cfg):
    cents = payments().drop("amount").with_columns(amount_cents=pl.Series([10000, 5450], dtype=pl.Int64))
    land_all(tmp_path, payments={FILE: cents})
    ingest.ingest_date(tmp_path, DAY, lenient(cfg))
    curated = lake.read_partition(lake.partition_dir(tmp_path, "curated", "payments", DAY))
    # 10000 cents is 100.00 CNY: the same cents the decimal(18,2) drop gives, not 100x
    assert curated.sort("payment_id")["amount_cents"].to_list() == [10000, 5450]


def test_the_bound_is_configurable_per_column(tmp_path: Path, cfg):
    big = _payments_amount(pl.Series([D("100.00"), D("3000000.00")], dtype=pl.Decimal(18, 2)))
    land_all(tmp_path, payments={FILE: big})
    raised = cfg.ingest.model_copy(update={"money_max_cny": {**cfg.ingest.money_max_cny,
                                                             "payments": {"amount": 5_000_000}}})
    ingest.ingest_date(tmp_path, DAY, lenient(cfg).model_copy(update={"ingest": raised}))
    curated = lake.read_partition(lake.partition_dir(tmp_path, "curated", "payments", DAY))
    assert curated.sort("payment_id")["amount_cents"].to_list() == [10000, 300000000]
