"""A tiny but valid landing drop of all four datasets (two accounts, one loan, one payment) for tests that
tamper with one entry, one column or one key and look at what ingest does. Seconds, not a published lake.
It passes the shipped riskline.yaml as it is (no null above validation.max_null_share).
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
from pathlib import Path

import polars as pl

from pipelines.store import lake

DAY = dt.date(2026, 11, 20)
D = decimal.Decimal
_AT = dt.datetime(2026, 11, 20, 2, tzinfo=dt.UTC)  # 10:00 in Shanghai: inside the business day


def money(*values: str) -> pl.Series:
    return pl.Series([D(v) if v is not None else None for v in values], dtype=pl.Decimal(18, 2))


def accounts() -> pl.DataFrame:
    return pl.DataFrame({
        "account_id": ["A1", "A2"],
        "opened_on": [dt.date(2025, 1, 1), dt.date(2026, 3, 1)],
        "credit_limit": money("2500.00", "3000.00"),
        "status": ["active", "active"],
        "annual_income": money("90000.00", "120000.00"),
        "region": ["north", "south"],
    })


def behaviour() -> pl.DataFrame:
    return pl.DataFrame({
        "event_id": ["E1", "E2", "E3"],
        "account_id": ["A1", "A1", "A2"],
        "event_time": [_AT] * 3,
        "event_type": ["login", "purchase", "cash_draw"],
        "amount": money(None, "12.30", "500.00"),
        "channel": ["app", "app", "web"],
    })


def installments() -> pl.DataFrame:
    return pl.DataFrame({
        "installment_id": ["I1", "I2"],
        "loan_id": ["L1", "L1"],
        "account_id": ["A2", "A2"],
        "installment_no": pl.Series([1, 2], dtype=pl.Int32),
        "due_date": [DAY + dt.timedelta(days=30), DAY + dt.timedelta(days=60)],
        "principal_due": money("250.00", "250.00"),
        "interest_due": money("4.50", "4.50"),
    })


def payments() -> pl.DataFrame:
    return pl.DataFrame({
        "payment_id": ["P1", "P2"],
        "account_id": ["A2", "A2"],
        "loan_id": ["L1", "L1"],
        "paid_at": [_AT, _AT],
        "amount": money("100.00", "54.50"),
    })


FRAMES = {"accounts": accounts, "behaviour": behaviour, "installments": installments, "payments": payments}


def land(root: Path, dataset: str, files: dict[str, pl.DataFrame | bytes], day: dt.date = DAY,
         marker: bytes = b"") -> Path:
    """Write one landing drop as upstream does: the files (``a/b`` names make folders), then ``_SUCCESS``
    (``marker``: its content, e.g. control totals; plain by default)."""
    part = root / "landing" / dataset / f"dt={day.isoformat()}"
    part.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = part / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            content.write_parquet(path)
    (part / lake.SUCCESS).write_bytes(marker)
    return part


def land_all(root: Path, day: dt.date = DAY, **replace: dict[str, pl.DataFrame | bytes]) -> None:
    """A clean drop of every dataset, one file each, with ``replace[dataset]`` as that dataset's files."""
    for name, build in FRAMES.items():
        land(root, name, replace.get(name, {"part-00000.parquet": build()}), day)


def dangling_link(part: Path, name: str) -> None:
    os.symlink(part / "gone-before-the-read.parquet", part / name)


def lenient(cfg):
    """``cfg`` without null-share limits (one null of a 2-row frame is 50%) and without Data Docs."""
    return cfg.model_copy(update={"validation": cfg.validation.model_copy(
        update={"max_null_share": {}, "data_docs": False})})
