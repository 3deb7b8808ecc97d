"""What a drop must cover that a row count cannot see, pure: the open accounts a snapshot keeps (present, and
not closed en masse), and the rows a redelivery of a curated date keeps. :mod:`pipelines.stages.lake_checks`
reads the lake for them and stops the ingest in one line; :func:`pipelines.store.readers.read_decide_inputs` holds the few
accounts that leave under the share (:func:`accounts_held_out`)."""

from __future__ import annotations

import polars as pl

from pipelines.domain.policy import DECIDED_STATUSES

# The one status of an account that left the book by the contract (landing.ACCOUNT_STATUSES).
CLOSED = "closed"


def open_accounts(snapshot: pl.DataFrame) -> pl.DataFrame:
    """The rows of accounts still open (active or frozen: the statuses the policy decides)."""
    return snapshot.filter(pl.col("status").is_in(DECIDED_STATUSES))


def open_accounts_missing(today: pl.DataFrame, previous: pl.DataFrame) -> pl.DataFrame:
    """Accounts open (active or frozen) in ``previous`` that ``today``'s snapshot lacks (``account_id``, the
    last ``status`` and ``credit_limit_cents``), sorted.

    A snapshot keeps its accounts: one closed upstream comes as a ``closed`` row. An open account missing
    gets no score and no decision, and its payments wait as ``unknown_account``; a snapshot missing many is
    a partial extract, not a book that shrank overnight.
    """
    return (open_accounts(previous).join(today.select("account_id").unique(), on="account_id", how="anti")
            .select("account_id", "status", "credit_limit_cents").sort("account_id"))


def open_accounts_closed(today: pl.DataFrame, previous: pl.DataFrame) -> pl.DataFrame:
    """Accounts open (active or frozen) in ``previous`` whose row in ``today``'s snapshot is ``closed``
    (``account_id``, the last ``status`` and ``credit_limit_cents``), sorted.

    A book closes a few lines a night (paid-off lines; generated books close at most 0.06% of their open
    accounts in a night on 20,000 accounts over 300 nights, 0.10% to 0.13%, one to four lines, on 1,500 to
    5,000); a status mapping fault upstream closed a tenth (review 28, F5), and a closed account gets no score
    and no limit decision.
    """
    closed = today.filter(pl.col("status") == CLOSED).select("account_id").unique()
    return (open_accounts(previous).join(closed, on="account_id", how="semi")
            .select("account_id", "status", "credit_limit_cents").sort("account_id"))


def open_accounts_lost(today: pl.DataFrame, previous: pl.DataFrame) -> pl.DataFrame:
    """Accounts open in their last row of ``previous`` that ``today``'s snapshot lacks or closes: the columns
    of :func:`open_accounts_missing` and ``tonight`` (``"missing"`` or ``"closed"``), sorted by account.

    Both leave the decided book tonight, so both count toward one share: a partial extract and a status
    mapping fault look the same to the customers (no decision, an overdue one queued on the fallback PD)."""
    return pl.concat([
        open_accounts_missing(today, previous).with_columns(pl.lit("missing").alias("tonight")),
        open_accounts_closed(today, previous).with_columns(pl.lit(CLOSED).alias("tonight")),
    ]).sort("account_id")


def accounts_held_out(today: pl.DataFrame, recent: pl.DataFrame, ledger_accounts: pl.DataFrame) -> pl.DataFrame:
    """The accounts that left the decided book lately and are held tonight (no collections contact, no
    hardship offer), with ``left``: ``"missing"`` or ``"closed"``, sorted by account.

    * missing: open in their last row of ``recent`` and absent from ``today`` (left out, or its row
      quarantined);
    * closed: ``closed`` in ``today`` while overdue in the ledger (``overdue_cents > 0``), with an open row in
      ``recent`` (``last_open_dt``). An overdue line is not closed in the normal course (only a paid-off line
      is): a charge-off or a status fault upstream, which only the hold's end tells apart.

    ``today``: D's curated snapshot (``account_id``, ``status``); ``recent``: each account's latest row over the
    snapshots of the hold (``account_id``, ``status``, ``credit_limit_cents``, ``last_open_dt``:
    :func:`~pipelines.store.readers.read_latest_snapshot_rows`); ``ledger_accounts``: ``account_id``,
    ``overdue_cents``.
    """
    overdue = ledger_accounts.filter(pl.col("overdue_cents") > 0).select("account_id")
    lately_open = recent.filter(pl.col("last_open_dt").is_not_null()).select("account_id")
    closed = (today.filter(pl.col("status") == CLOSED).select("account_id").unique()
              .join(lately_open, on="account_id", how="semi").join(overdue, on="account_id", how="semi"))
    return pl.concat([
        open_accounts_missing(today, recent).select("account_id", pl.lit("missing").alias("left")),
        closed.select("account_id", pl.lit(CLOSED).alias("left")),
    ]).sort("account_id")


def curated_rows_removed(curated: pl.DataFrame, delivered: pl.DataFrame, key: str) -> pl.DataFrame:
    """Rows of ``curated`` (a date's curated partition) whose ``key`` the redelivery ``delivered`` lacks."""
    return curated.join(delivered.select(key).unique(), on=key, how="anti").sort(key)


def curated_rows_changed(curated: pl.DataFrame, delivered: pl.DataFrame, key: str,
                         columns: list[str]) -> pl.DataFrame:
    """Rows of ``curated`` whose ``key`` the redelivery ``delivered`` carries with other values in ``columns``
    (null equal to null): ``key`` and, per column, the curated value and the redelivered one (``<column>_now``).

    A redelivery replaces its date's partition whole, so a payment moved to another customer or cut in amount
    would be applied silently (review 28R, P2); a correction of curated money is the operator's call."""
    both = [c for c in columns if c in curated.columns and c in delivered.columns and c != key]
    now = delivered.select(key, *[pl.col(c).alias(f"{c}_now") for c in both]).unique(key, keep="last")
    joined = curated.select(key, *both).join(now, on=key, how="inner")
    differs = pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}_now")) for c in both) if both else pl.lit(False)
    return joined.filter(differs).sort(key)
