"""An overdue account missing from tonight's snapshot never blocks the publish (issue 14, class 14).

Upstream drops an account from the snapshot when it is closed or charged off, but the ledger still holds
its overdue loans, so collections must still work it. It has no features and no score tonight: its queue
row is published with the documented fallback PD (``collections.unscored_pd``) and flagged
``pd_source = fallback``, instead of a null PD that failed the output suite at the end of the night.

A partial extract drops accounts too (hostile review 5, F1: three overdue accounts queued on a PD of 1, one
losing its hardship offer). So an account open in a snapshot of the grace period (``pending_payments.
grace_days``) and missing tonight is held first: no queue entry, no offer; one still missing after the grace
is the charge-off, queued on the fallback PD.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from reliability_support import (
    PublishedLake,
    account_rows,
    deliver,
    landing,
    published_outputs,
    run_night_without_report,
)

from pipelines.store import publish
from pipelines.config.settings import RisklineConfig
from tools.faults import DATA_FILE

IDENTITY = ("dpd", "bucket", "overdue_amount", "outstanding_balance", "treatment", "channel")


def _drop_two_overdue_accounts(book: PublishedLake, root: Path, clean: dict[str, pl.DataFrame]) -> list[str]:
    """Leave two overdue accounts that sent nothing else tonight out of NEXT's snapshot (so dropping them
    quarantines no other row); returns them."""
    active = {ds: set(landing(root, ds, book.next_day)["account_id"])
              for ds in ("behaviour", "installments", "payments")}
    gone = sorted(set(clean["collection_queue"]["account_id"]) - set().union(*active.values()))[:2]
    assert len(gone) == 2
    accounts = landing(root, "accounts", book.next_day)
    deliver(root, "accounts", book.next_day, {DATA_FILE: accounts.filter(~pl.col("account_id").is_in(gone))})
    return gone


def test_an_overdue_account_missing_from_the_snapshot_is_held_through_the_grace(
    published_lake: PublishedLake, lake_root: Path, clean_next_night: Path, quiet_cfg: RisklineConfig
):
    book = published_lake
    clean = published_outputs(clean_next_night, book.next_day)
    gone = _drop_two_overdue_accounts(book, lake_root, clean)

    summary = run_night_without_report(lake_root, book.next_day, quiet_cfg)

    assert publish.read_latest(lake_root) == book.next_day
    rows = account_rows(published_outputs(lake_root, book.next_day), gone)
    assert not any(rows.values()), rows  # no score, no decision, no queue entry, no offer: held
    assert summary.stages["decide"]["held_missing_from_snapshot"] == 2


def test_an_overdue_account_missing_after_the_grace_is_published_with_the_fallback_pd(
    published_lake: PublishedLake, lake_root: Path, clean_next_night: Path, quiet_cfg: RisklineConfig
):
    book = published_lake
    clean = published_outputs(clean_next_night, book.next_day)
    gone = _drop_two_overdue_accounts(book, lake_root, clean)
    # no grace left: missing tonight is missing for longer than the grace (a charge-off purged upstream)
    after_grace = quiet_cfg.model_copy(update={
        "pending_payments": quiet_cfg.pending_payments.model_copy(update={"grace_days": 0})})

    run_night_without_report(lake_root, book.next_day, after_grace)  # before the fix: PublishError (pd null)

    assert publish.read_latest(lake_root) == book.next_day
    faulty = published_outputs(lake_root, book.next_day)
    rows, before = account_rows(faulty, gone), account_rows(clean, gone)
    assert not rows["limits"] and not rows["scores"]  # not in the snapshot: no decision, no score
    for row, was in zip(rows["collection_queue"], before["collection_queue"], strict=True):
        # still worked as the ledger says, ranked and published with the fallback PD, and flagged as such
        assert {c: row[c] for c in IDENTITY} == {c: was[c] for c in IDENTITY}
        assert (row["pd"], row["pd_source"], row["model_version"]) == (
            quiet_cfg.collections.unscored_pd, "fallback", None)
    assert len(rows["collection_queue"]) == 2
    others = faulty["collection_queue"].filter(~pl.col("account_id").is_in(gone))
    assert set(others["pd_source"]) == {"model"} and others["pd"].null_count() == 0
