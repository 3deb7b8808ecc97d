"""What a drop must cover that a row count cannot see, pure: the open accounts a snapshot keeps, and the rows a
redelivery of a curated date keeps. :mod:`pipelines.stages.lake_checks` reads the lake for them and stops the
ingest in one line."""

from __future__ import annotations

import polars as pl

from pipelines.domain.policy import DECIDED_STATUSES


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


def curated_rows_removed(curated: pl.DataFrame, delivered: pl.DataFrame, key: str) -> pl.DataFrame:
    """Rows of ``curated`` (a date's curated partition) whose ``key`` the redelivery ``delivered`` lacks."""
    return curated.join(delivered.select(key).unique(), on=key, how="anti").sort(key)
