"""The published output contract: what downstream systems read every morning.

``DATA_ROOT/outputs/<name>/as_of_date=YYYY-MM-DD/part-0.parquet`` + ``_SUCCESS`` for the four outputs below.
Column names and types here are a promise to consumers: add columns at the end, never rename or drop one
without bumping :data:`SCHEMA_VERSION`. Money is decimal(18,2) CNY; internally every stage computes in
integer cents (``<name>_cents``) and :func:`to_published` converts exactly at the boundary.
"""

from __future__ import annotations

import datetime as dt
import decimal

import polars as pl

from pipelines.vocab import OUTPUTS as CATALOG_OUTPUTS

# 1.1: collection_queue.pd_source; 1.2: scores.pending_payment; 1.3: hardship_offers' cost (totals repayable
# and interest under the current and the proposed plan, interest arrears) and explanation (all additive)
SCHEMA_VERSION = "1.3"
MONEY = pl.Decimal(18, 2)

# name -> ordered (column, dtype); a column whose dtype is MONEY is built from "<column>_cents".
OUTPUT_COLUMNS: dict[str, tuple[tuple[str, pl.DataType], ...]] = {
    "scores": (
        ("account_id", pl.String()),
        ("as_of_date", pl.Date()),
        ("pd", pl.Float64()),
        ("score", pl.Int32()),
        ("grade", pl.String()),
        ("reason_1", pl.String()),
        ("reason_2", pl.String()),
        ("reason_3", pl.String()),
        ("model_version", pl.String()),
        # true: a payment of the account waits in quarantine, so its ledger (and PD) may lack that money;
        # its limit, queue entry and hardship offer are held tonight (docs/guarantees.md)
        ("pending_payment", pl.Boolean()),
    ),
    "limits": (
        ("account_id", pl.String()),
        ("as_of_date", pl.Date()),
        ("previous_limit", MONEY),
        ("new_limit", MONEY),
        ("action", pl.String()),
        ("reason_codes", pl.List(pl.String())),
        ("explanation", pl.String()),
        ("explanation_en", pl.String()),
        ("test_cell", pl.String()),
        ("policy_version", pl.String()),
        ("model_version", pl.String()),
    ),
    "collection_queue": (
        ("account_id", pl.String()),
        ("as_of_date", pl.Date()),
        ("dpd", pl.Int32()),
        ("bucket", pl.String()),
        ("overdue_amount", MONEY),
        ("outstanding_balance", MONEY),
        ("pd", pl.Float64()),
        ("expected_loss", MONEY),
        ("treatment", pl.String()),
        ("priority", pl.Int32()),
        ("channel", pl.String()),
        ("overflow", pl.Boolean()),
        ("model_version", pl.String()),
        ("policy_version", pl.String()),
        ("pd_source", pl.String()),  # model | fallback (PD_SOURCES): where pd came from
    ),
    "hardship_offers": (
        ("account_id", pl.String()),
        ("loan_id", pl.String()),
        ("as_of_date", pl.Date()),
        ("outstanding_principal", MONEY),
        ("current_instalment", MONEY),
        ("extension_months", pl.Int32()),
        ("new_instalment", MONEY),
        ("new_end_date", pl.Date()),
        ("model_version", pl.String()),
        ("policy_version", pl.String()),
        # 1.3, the offer's cost (pipelines/domain/hardship.py, docs/contracts.md): what the customer still owes on
        # the loan as scheduled, and under the offer (the new schedule plus the interest already due, which is
        # not capitalized); proposed - current = the interest the longer term adds
        ("current_total_repayable", MONEY),
        ("current_total_interest", MONEY),
        ("proposed_total_repayable", MONEY),
        ("proposed_total_interest", MONEY),
        ("interest_arrears", MONEY),
        ("explanation", pl.String()),  # the customer's language (accounts.language, else the default)
        ("explanation_en", pl.String()),
    ),
}
OUTPUTS: tuple[str, ...] = tuple(OUTPUT_COLUMNS)
# collection_queue.pd_source: "model" (the PD of D) or "fallback" (an overdue account without a score, e.g.
# missing from tonight's snapshot, published with collections.unscored_pd instead of a null that would
# block the publish).
PD_SOURCES: tuple[str, ...] = ("model", "fallback")
assert OUTPUTS == CATALOG_OUTPUTS, "pipelines.vocab.OUTPUTS and OUTPUT_COLUMNS disagree"
OUTPUT_KEYS: dict[str, tuple[str, ...]] = {
    "scores": ("account_id",),
    "limits": ("account_id",),
    "collection_queue": ("account_id",),
    "hardship_offers": ("account_id", "loan_id"),
}


def cents_to_money(expr: pl.Expr) -> pl.Expr:
    """Integer cents -> decimal(18,2) CNY, exactly (no float on the way)."""
    return (expr.cast(pl.Decimal(20, 0)) * pl.lit(decimal.Decimal("0.01"), dtype=pl.Decimal(3, 2))).cast(MONEY)


def to_published(name: str, frame: pl.DataFrame, as_of: dt.date, versions: dict[str, str]) -> pl.DataFrame:
    """Shape an internal frame into output ``name``'s contract: exact columns, order, types, sorted by key.

    ``versions`` fills ``model_version``/``policy_version`` where the frame lacks them. Missing contract
    columns raise KeyError naming the output and column (a bug in our own code, caught before publish).
    """
    exprs = []
    for col, dtype in OUTPUT_COLUMNS[name]:
        if col == "as_of_date":
            exprs.append(pl.lit(as_of, dtype=pl.Date()).alias(col))
        elif dtype == MONEY:
            if f"{col}_cents" not in frame.columns:
                raise KeyError(f"output {name}: internal frame lacks {col}_cents")
            exprs.append(cents_to_money(pl.col(f"{col}_cents")).alias(col))
        elif col in frame.columns:
            exprs.append(pl.col(col).cast(dtype).alias(col))
        elif col in versions:
            exprs.append(pl.lit(versions[col], dtype=pl.String()).alias(col))
        else:
            raise KeyError(f"output {name}: internal frame lacks column {col!r}")
    return frame.select(exprs).sort(list(OUTPUT_KEYS[name]))
