"""An overdue account missing from tonight's snapshot never blocks the publish (issue 14, class 14).

Upstream drops an account from the snapshot when it is closed or charged off, but the ledger still holds
its overdue loans, so collections must still work it. It has no features and no score tonight: its queue
row is published with the documented fallback PD (``collections.unscored_pd``) and flagged
``pd_source = fallback``, instead of a null PD that failed the output suite at the end of the night.

A partial extract drops accounts too, and a broken row is quarantined (hostile reviews 5 and 6, F1, G1: overdue
accounts queued on a PD of 1, one losing its hardship offer). So an account open in a curated snapshot of the
last ``pending_payments.max_hold_days`` and missing from tonight's is held first, like a waiting payment: no
queue entry, no offer; one still missing after the hold is the charge-off, queued on the fallback PD.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
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


def _drop_two_overdue_accounts(book: PublishedLake, root: Path, clean: dict[str, pl.DataFrame],
                               quarantined: bool = False) -> list[str]:
    """Leave two overdue accounts that sent nothing else tonight out of NEXT's snapshot (so dropping them
    quarantines no other row), or send their rows broken (a credit limit of 0: quarantined); returns them."""
    active = {ds: set(landing(root, ds, book.next_day)["account_id"])
              for ds in ("behaviour", "installments", "payments")}
    gone = sorted(set(clean["collection_queue"]["account_id"]) - set().union(*active.values()))[:2]
    assert len(gone) == 2
    accounts = landing(root, "accounts", book.next_day)
    hit = pl.col("account_id").is_in(gone)
    broken = accounts.with_columns(pl.when(hit).then(0).otherwise(pl.col("credit_limit"))
                                   .cast(accounts.schema["credit_limit"]).alias("credit_limit"))
    deliver(root, "accounts", book.next_day, {DATA_FILE: broken if quarantined else accounts.filter(~hit)})
    return gone


@pytest.mark.parametrize("quarantined", [False, True], ids=["left_out", "row_quarantined"])
def test_an_overdue_account_missing_from_the_snapshot_is_held(
    published_lake: PublishedLake, lake_root: Path, clean_next_night: Path, quiet_cfg: RisklineConfig,
    quarantined: bool,
):
    book = published_lake
    clean = published_outputs(clean_next_night, book.next_day)
    gone = _drop_two_overdue_accounts(book, lake_root, clean, quarantined)
    # held for max_hold_days, not only through the grace (hostile review 6, G1: quarantined for 4 nights, the
    # account was queued on a PD of 1 on the fourth): with no grace at all it is held tonight all the same
    no_grace = quiet_cfg.model_copy(update={
        "pending_payments": quiet_cfg.pending_payments.model_copy(update={"grace_days": 0})})

    summary = run_night_without_report(lake_root, book.next_day, no_grace)

    assert publish.read_latest(lake_root) == book.next_day
    rows = account_rows(published_outputs(lake_root, book.next_day), gone)
    assert not any(rows.values()), rows  # no score, no decision, no queue entry, no offer: held
    assert summary.stages["decide"]["held_missing_from_snapshot"] == 2


def test_an_overdue_account_missing_after_the_hold_is_published_with_the_fallback_pd(
    published_lake: PublishedLake, lake_root: Path, clean_next_night: Path, quiet_cfg: RisklineConfig
):
    book = published_lake
    clean = published_outputs(clean_next_night, book.next_day)
    gone = _drop_two_overdue_accounts(book, lake_root, clean)
    # no hold left: missing tonight is missing for longer than the hold (a charge-off purged upstream)
    after_hold = quiet_cfg.model_copy(update={
        "pending_payments": quiet_cfg.pending_payments.model_copy(update={"max_hold_days": 0})})

    run_night_without_report(lake_root, book.next_day, after_hold)  # before the fix: PublishError (pd null)

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
