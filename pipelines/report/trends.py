"""The report's view over time: the book-level summary a night stores in its manifest, and the trend rows,
the expected-loss tile and the 30-day roll the page builds from the manifests of past nights.

Pure: frames and dicts in, dicts and frames out (no I/O, no clock). The night calls :func:`book_summary` at
publish (``pipelines/stages/night.py``) so the report never has to recompute a past night: it reads each
night's ``manifest["book"]`` and, for a night published before the summary existed, only what that night's
published outputs say (:func:`summary_from_outputs`); the rest of such a row stays missing, never invented.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

# The industry's standard delinquency line, the one the issue asks to trend; not a policy tunable (the bad
# definition of the model, labels.bad_dpd, may move; this measure must stay comparable night over night).
DPD_30 = 30
BOOK_VERSION = 1  # manifest["book"]["version"]: bump when a field's meaning changes
TREND_FIELDS: tuple[str, ...] = (
    "accounts", "dpd30_accounts", "dpd30_rate", "outstanding_cents", "expected_loss_cents", "queue_size",
    "queue_expected_loss_cents", "score_psi",
)


def cents_to_text(cents: int) -> str:
    """Integer cents as an exact CNY decimal string for JSON (``-123456`` -> ``"-1234.56"``): no float on money."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(int(cents)), 100)
    return f"{sign}{whole}.{frac:02d}"


def text_to_cents(text: str) -> int:
    """:func:`cents_to_text` back to integer cents, exactly; ValueError on anything but a 2-place decimal."""
    value = decimal.Decimal(text)
    cents = value * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"not an amount in cents: {text!r}")
    return int(cents)


def book_summary(
    ledger_accounts: pl.DataFrame,
    scores: pl.DataFrame,
    limits: pl.DataFrame,
    queue: pl.DataFrame,
    lgd: float,
    score_psi: float | None,
) -> dict[str, Any]:
    """The night's book in a few numbers, for ``manifest["book"]`` (JSON-able, money as exact CNY strings).

    Args:
        ledger_accounts: ``Ledger.accounts`` of D (``account_id, dpd, outstanding_principal_cents, overdue_cents``).
        scores: ``account_id, pd`` (the published scores of D).
        limits: ``action`` (the published limits of D).
        queue: ``account_id, pd, expected_loss_cents`` (the collection queue of D; its pd includes the
            fallback PD of an overdue account that was not scored).
        lgd: ``collections.lgd``, the one the queue's expected loss uses.
        score_psi: PSI of D's scores against the previous night's, or None without a previous night.

    Returns:
        ``accounts`` (owing money), ``dpd30_accounts``, ``outstanding_principal``, ``expected_loss`` (sum over
        accounts of round(pd x outstanding principal x lgd), the queue's formula, so the queue's expected loss
        is exactly a part of it), ``queue_expected_loss``, ``queue_size``, ``actions`` {action: accounts},
        ``score_psi``, ``unpriced_accounts`` (owing money with no PD: not in the expected loss).
    """
    owing = ledger_accounts.filter((pl.col("outstanding_principal_cents") > 0) | (pl.col("overdue_cents") > 0))
    priced = (
        owing.select("account_id", "dpd", "outstanding_principal_cents")
        .join(scores.select("account_id", pl.col("pd").alias("_pd_score")), on="account_id", how="left")
        .join(queue.select("account_id", pl.col("pd").alias("_pd_queue")), on="account_id", how="left")
        .with_columns(pd=pl.coalesce("_pd_queue", "_pd_score"))  # the queue's pd where it has one: same EL
        .with_columns(el=(pl.col("pd") * lgd * pl.col("outstanding_principal_cents")).round(0).cast(pl.Int64))
    )
    actions = limits.group_by("action").len().sort("action")
    return {
        "version": BOOK_VERSION,
        "accounts": owing.height,
        "dpd30_accounts": owing.filter(pl.col("dpd") >= DPD_30).height,
        "outstanding_principal": cents_to_text(int(owing["outstanding_principal_cents"].sum())),
        "expected_loss": cents_to_text(int(priced["el"].sum())),
        # the model never trained on accounts already 30+ DPD: how much of the EL rests on its PD for them
        "dpd30_expected_loss": cents_to_text(int(priced.filter(pl.col("dpd") >= DPD_30)["el"].sum())),
        "unpriced_accounts": int(priced["pd"].null_count()),
        "queue_expected_loss": cents_to_text(int(queue["expected_loss_cents"].sum())),
        "queue_size": queue.height,
        "actions": {str(a): int(n) for a, n in actions.iter_rows()},
        "score_psi": None if score_psi is None else round(float(score_psi), 6),
    }


def summary_from_outputs(
    limit_actions: pl.Series, queue_expected_loss: pl.Series, queue_rows: int
) -> dict[str, Any]:
    """What the published outputs of an older night (no ``manifest["book"]``) say of its book: the action
    counts (limits), the queue's size and expected loss (collection_queue). Nothing else: the outputs hold no
    balance, DPD or PD of an account outside the queue."""
    counts = limit_actions.value_counts().sort(limit_actions.name)
    return {
        "queue_size": int(queue_rows),
        "queue_expected_loss": cents_to_text(int((queue_expected_loss * 100).cast(pl.Int64).sum())),
        "actions": {str(a): int(n) for a, n in counts.iter_rows()},
    }


SOURCES = {
    "manifest": "the night's manifest",
    "report": "D's own ledger and outputs (its manifest predates the book summary)",
    "outputs": "the night's published outputs only (its manifest predates the book summary)",
    "missing": "nothing: no night was published for this date",
}


def unpublished_rows(nights: Sequence[dt.date]) -> list[dict[str, Any]]:
    """A row for every date between the first and last of ``nights`` (sorted) with no published night: shown as
    "not published", every value missing, so the trend's lines break there instead of joining across it."""
    have = set(nights)
    days = [nights[0] + dt.timedelta(days=i) for i in range((nights[-1] - nights[0]).days + 1)] if nights else []
    return [trend_row(day, {}, "missing", "", None) for day in days if day not in have]


def trend_row(
    night: dt.date, book: Mapping[str, Any], source: str, model_version: str, model_as_of: dt.date | None
) -> dict[str, Any]:
    """One night of the trend: a stored book summary (or the outputs' part of one) as typed fields.

    ``source`` is a key of :data:`SOURCES`: where the night's figures were read.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown trend source {source!r}")

    def cents(key: str) -> int | None:
        return text_to_cents(book[key]) if book.get(key) is not None else None

    accounts, dpd30 = book.get("accounts"), book.get("dpd30_accounts")
    return {
        "as_of": night,
        "source": source,
        "accounts": accounts,
        "dpd30_accounts": dpd30,
        "dpd30_rate": dpd30 / accounts if accounts and dpd30 is not None else None,
        "outstanding_cents": cents("outstanding_principal"),
        "expected_loss_cents": cents("expected_loss"),
        "queue_size": book.get("queue_size"),
        "queue_expected_loss_cents": cents("queue_expected_loss"),
        "score_psi": book.get("score_psi"),
        "actions": dict(book.get("actions", {})),
        "model_version": model_version,
        "model_as_of": model_as_of,
        # a backfill served by a champion trained later: it scored with knowledge of the night's future
        "model_after_date": model_as_of is not None and model_as_of > night,
    }


def trend_frame(rows: Sequence[Mapping[str, Any]], actions: Sequence[str]) -> pl.DataFrame:
    """Trend rows, oldest first, one column per action (``action_<name>``, null where the night's book is unknown)."""
    schema = {"as_of": pl.Date, "source": pl.String, "accounts": pl.Int64, "dpd30_accounts": pl.Int64,
              "dpd30_rate": pl.Float64, "outstanding_cents": pl.Int64, "expected_loss_cents": pl.Int64,
              "queue_size": pl.Int64, "queue_expected_loss_cents": pl.Int64, "score_psi": pl.Float64,
              **{f"action_{a}": pl.Int64 for a in actions},
              "model_version": pl.String, "model_as_of": pl.Date, "model_after_date": pl.Boolean}
    flat = [{**{k: v for k, v in r.items() if k != "actions"},
             **{f"action_{a}": (r["actions"].get(a, 0) if r["actions"] else None) for a in actions}} for r in rows]
    return pl.DataFrame(flat, schema=schema, orient="row").sort("as_of")


def nearest_night(nights: Sequence[dt.date], target: dt.date, tolerance_days: int) -> dt.date | None:
    """The night nearest ``target`` within ``tolerance_days`` (the earlier one on a tie), or None."""
    close = [n for n in nights if abs((n - target).days) <= tolerance_days]
    return min(close, key=lambda n: (abs((n - target).days), n)) if close else None


@dataclass(frozen=True)
class ExpectedLossTile:
    """Book-level expected loss of D and the part of it in the collection queue (cents)."""

    expected_loss_cents: int
    queue_expected_loss_cents: int
    outstanding_cents: int
    unpriced_accounts: int
    dpd30_expected_loss_cents: int | None = None  # the part on accounts already 30+ DPD (None: not stored)

    @property
    def queue_share(self) -> float | None:
        return self.queue_expected_loss_cents / self.expected_loss_cents if self.expected_loss_cents else None


def expected_loss_tile(book: Mapping[str, Any]) -> ExpectedLossTile:
    return ExpectedLossTile(text_to_cents(book["expected_loss"]), text_to_cents(book["queue_expected_loss"]),
                            text_to_cents(book["outstanding_principal"]), int(book.get("unpriced_accounts", 0)),
                            text_to_cents(book["dpd30_expected_loss"]) if "dpd30_expected_loss" in book else None)


@dataclass(frozen=True)
class Roll30:
    """The 30-day (statement-to-statement) roll: D against the published night nearest D - 30."""

    target: dt.date  # D - 30
    night: dt.date | None  # the night compared with, or None: see note
    roll: pl.DataFrame | None  # roll_rates(night, D)
    note: str


@dataclass(frozen=True)
class TrendSection:
    nights: int  # asked for (report.trend_nights)
    frame: pl.DataFrame  # trend_frame, oldest first
    actions: list[str]
    tile: ExpectedLossTile | None
    tile_note: str
    roll30: Roll30
    notes: list[str]
    bad_dpd: int = DPD_30  # labels.bad_dpd: the event the PD predicts
    pd_event: str = "reaching 30+ DPD within the label horizon"  # said on the EL tile and the trend caption
    pd_short: str = "30+ DPD within the label horizon"  # the same, in the few words the tile has room for

    @property
    def missing_book(self) -> list[dt.date]:
        """Nights published before manifests carried the book summary (their book figures are missing)."""
        return self.frame.filter(pl.col("source") == "outputs")["as_of"].to_list()

    @property
    def unpublished(self) -> list[dt.date]:
        """Dates inside the trend's span with no published night (rows "not published")."""
        return self.frame.filter(pl.col("source") == "missing")["as_of"].to_list()

    @property
    def scored_later(self) -> pl.DataFrame:
        """Nights scored by a model trained after their business date."""
        return self.frame.filter(pl.col("model_after_date"))
