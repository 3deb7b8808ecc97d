"""Control totals: what upstream declares in a landing drop's ``_SUCCESS``, and what a drop holds.

A payment missing from a drop cannot be told from one not made: the customer would go past due, be cut and
queued. Only a count and a sum declared by the side that knows (the extract, reconciled with the payment
channel's settlement) prove a drop whole. So ``_SUCCESS`` may be a manifest (docs/contracts.md, "Declared
row counts and control totals")::

    {"rows": 1234, "sums": {"amount": "56789.01"}}

``rows``: the drop's distinct records, one per business key (a payment counts once however many files repeat
it; a row whose key is missing or invalid counts as one); ``sums``: per money column of the contract, the sum
of its non-null values over those records, in CNY (a decimal string or number, whole cents) or, under
``<column>_cents``, in integer cents. Records, not rows written: a row repeated in the files must not stand
in for a record left out (review 28, F1). A sum proves what a count cannot: a payment swapped for another,
amounts in another unit.

Pure: the store reads the marker's bytes, the generator writes what :func:`manifest` returns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import polars as pl

from pipelines.contracts.landing import CENTS_SUFFIX, Dataset

# The manifest's fields, as a requirement names them: "rows", or "sums.<column>".
ROWS = "rows"
_INT64_MAX = 2**63 - 1  # what a count or a sum in cents can be (1e999 is whole, and no drop)


@dataclass(frozen=True)
class ControlTotals:
    """A drop's row count and its money columns' sums in cents (``sums`` keyed by contract column)."""

    rows: int
    sums: Mapping[str, int] = field(default_factory=dict)

    @property
    def fields(self) -> frozenset[str]:
        return frozenset({ROWS} | {f"sums.{c}" for c in self.sums})


def money_columns(dataset: Dataset) -> tuple[str, ...]:
    return tuple(c.name for c in dataset.columns if c.kind == "money")


def totals_of(frame: pl.DataFrame, dataset: Dataset) -> ControlTotals:
    """The control totals of ``frame``, one row per record: landing (decimal or float CNY, or
    ``<column>_cents``) or curated (cents).

    A money column absent from the frame has no sum (an optional column not delivered); nulls (and NaN,
    which ingest refuses anyway) add nothing.
    """
    sums: dict[str, int] = {}
    for name in money_columns(dataset):
        if f"{name}{CENTS_SUFFIX}" in frame.columns:
            sums[name] = int(frame.get_column(f"{name}{CENTS_SUFFIX}").cast(pl.Int64).sum() or 0)
        elif name in frame.columns:
            values = frame.get_column(name)
            if values.dtype.is_float():
                values = values.fill_nan(None).round(2)
            total = values.cast(pl.Decimal(38, 2)).sum()
            sums[name] = int((Decimal(total or 0) * 100).to_integral_value())
    return ControlTotals(frame.height, sums)


def manifest(totals: ControlTotals) -> dict[str, Any]:
    """The ``_SUCCESS`` manifest declaring ``totals`` (sums as decimal strings: JSON numbers are floats)."""
    return {ROWS: totals.rows,
            "sums": {name: f"{Decimal(cents).scaleb(-2):.2f}" for name, cents in sorted(totals.sums.items())}}


def manifest_bytes(totals: ControlTotals) -> bytes:
    return json.dumps(manifest(totals), sort_keys=True).encode()


def parse(raw: Mapping[str, Any], dataset: Dataset) -> ControlTotals:
    """Control totals from a parsed manifest (floats parsed as ``Decimal``).

    Raises:
        ValueError: ``rows`` is not a whole number >= 0, or a sum names no money column of the contract, is
            not a number or not in whole cents.
    """
    rows = raw.get(ROWS)
    if isinstance(rows, Decimal) and rows.is_finite() and rows == rows.to_integral_value():
        rows = int(rows)  # 51.0 is a whole number however JSON spells it
    if isinstance(rows, bool) or not isinstance(rows, int) or not 0 <= rows <= _INT64_MAX:
        raise ValueError(f'"rows" must be a whole number from 0 to 2^63-1, got {str(raw.get(ROWS))[:40]}')
    sums_raw = raw.get("sums", {})
    if not isinstance(sums_raw, Mapping):
        raise ValueError(f'"sums" must map money columns to amounts, got {sums_raw!r:.40}')
    known = money_columns(dataset)
    sums: dict[str, int] = {}
    for key, value in sums_raw.items():
        in_cents = isinstance(key, str) and key.endswith(CENTS_SUFFIX)
        name = key.removesuffix(CENTS_SUFFIX) if in_cents else key
        if name not in known:
            raise ValueError(f'"sums" names {key!r}, not a money column of {dataset.name} '
                             f"({', '.join(known) or 'none'})")
        if name in sums:
            raise ValueError(f'"sums" declares {name!r} twice (as {name} and {name}{CENTS_SUFFIX})')
        sums[name] = _cents(value, in_cents, key)
    return ControlTotals(rows, sums)


def _cents(value: Any, in_cents: bool, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        raise ValueError(f'"sums.{key}" must be a number or a decimal string, got {value!r:.40}')
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError(f'"sums.{key}" is not a number: {value!r:.40}') from None
    cents = amount if in_cents else amount * 100
    if not cents.is_finite() or cents != cents.to_integral_value():
        raise ValueError(f'"sums.{key}" must be whole {"cents" if in_cents else "cents in CNY"}, got {str(value)[:40]}')
    if abs(cents) > _INT64_MAX:
        raise ValueError(f'"sums.{key}" is beyond any drop (over 2^63-1 cents), got {str(value)[:40]}')
    return int(cents)


def cny(cents: int) -> str:
    """Cents as a CNY amount for an error line (``12,345.67``)."""
    return f"{Decimal(cents).scaleb(-2):,.2f}"
