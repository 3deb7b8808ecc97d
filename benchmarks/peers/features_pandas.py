"""Peer: the behaviour-window features written the straightforward way in pandas.

What a data scientist would write first: read the last 180 days of curated behaviour, then for each
window and event type filter the events and group by account. The same definitions and types as
``pipelines.domain.features.aggregate_behaviour`` joined to the book of D (see ``benchmarks/peers/run_peers.py``
for the exact column subset), so `riskline bench` can compare times and tests/unit/test_peers_equal.py
can check that all three implementations agree value for value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

WINDOWS = (7, 30, 90, 180)
RATIO_WINDOWS = (30, 90, 180)
TREND_RECENT, TREND_PRIOR = 30, 60
HISTORY = 180
SCORED_STATUSES = ("active", "frozen")


def behaviour_features(
    behaviour_files: Sequence[tuple[dt.date, Path]], accounts_file: Path, as_of: dt.date
) -> pd.DataFrame:
    """One row per active/frozen account of the snapshot in ``accounts_file``, sorted by account_id.

    Args:
        behaviour_files: (business date, curated behaviour file) pairs; files outside the last 180 days
            (or after ``as_of``) are skipped.
    """
    book = pd.read_parquet(accounts_file, columns=["account_id", "status"])
    book = book.loc[book["status"].isin(SCORED_STATUSES), ["account_id"]]

    parts = []
    for day, path in behaviour_files:
        age = (as_of - day).days
        if 0 <= age < HISTORY:
            part = pd.read_parquet(path, columns=["account_id", "event_type", "amount_cents"])
            part["age"] = age
            parts.append(part)
    events = pd.concat(parts, ignore_index=True)
    events["amount_cents"] = events["amount_cents"].fillna(0).astype("int64")

    def window(kind: str, lo: int, hi: int) -> tuple[pd.Series, pd.Series]:
        chosen = events[(events["event_type"] == kind) & (events["age"] >= lo) & (events["age"] < hi)]
        grouped = chosen.groupby("account_id")["amount_cents"]
        return grouped.sum(), grouped.size()

    out = book.set_index("account_id")
    refunds = {}
    for w in WINDOWS:
        spend, purchases = window("purchase", 0, w)
        draw_cents, draws = window("cash_draw", 0, w)
        _, logins = window("login", 0, w)
        out[f"spend_{w}d_cents"] = spend
        out[f"purchase_count_{w}d"] = purchases
        out[f"cash_draw_count_{w}d"] = draws
        out[f"cash_draw_amount_{w}d_cents"] = draw_cents
        out[f"login_count_{w}d"] = logins
        if w in RATIO_WINDOWS:
            refunds[w] = window("refund", 0, w)[0]
    prior_spend, _ = window("purchase", TREND_RECENT, TREND_RECENT + TREND_PRIOR)

    for column in out.columns:
        out[column] = out[column].fillna(0).astype("int32" if "_count_" in column else "int64")
    for w in RATIO_WINDOWS:
        spend = out[f"spend_{w}d_cents"]
        refund = refunds[w].reindex(out.index).fillna(0)
        out[f"refund_ratio_{w}d"] = (refund.astype("float64") / spend.astype("float64")).where(spend > 0)
    recent = out[f"spend_{TREND_RECENT}d_cents"] * TREND_PRIOR
    prior = prior_spend.reindex(out.index).fillna(0).astype("int64") * TREND_RECENT
    out["spend_trend_30d"] = (recent.astype("float64") / prior.astype("float64")).where(prior > 0)
    return out.reset_index().sort_values("account_id", ignore_index=True)
