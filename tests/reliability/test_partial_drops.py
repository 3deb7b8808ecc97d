"""Partial drops the volume floor lets through (new-user review of issue 16, H1 and H2): a snapshot that
leaves out quiet open accounts, and a redelivery of a curated date that lacks some of its payments or
instalments. Each published exit 0 before: hundreds of customers undecided, or payments received removed
from the lake without a word. Payments missing from a first delivery are the grace period's
(``test_fault_monotonicity.py``: ``young_arrears_payments_a_day_late``, ``on_time_payments_missing``)."""

from __future__ import annotations

import datetime as dt
import shutil
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

from pipelines.config.settings import RisklineConfig
from pipelines.errors import IngestError
from pipelines.stages import ingest
from pipelines.store import lake, publish, zones
from tools.faults import DATA_FILE


@pytest.fixture()
def next_drop(published_lake: PublishedLake, tmp_path: Path) -> tuple[Path, dt.date]:
    """A private copy of the published lake, whose NEXT drop a test changes, and NEXT."""
    root = tmp_path / "lake"
    shutil.copytree(published_lake.root, root, symlinks=True)
    return root, published_lake.next_day


def _quiet(root: Path, day: dt.date) -> pl.Series:
    """Open accounts of NEXT's snapshot with no behaviour, instalment or payment tonight, sorted."""
    busy = pl.concat([landing(root, ds, day).select("account_id") for ds in ("behaviour", "installments", "payments")])
    snapshot = landing(root, "accounts", day).filter(pl.col("status").is_in(["active", "frozen"]))
    return snapshot.join(busy, on="account_id", how="anti").get_column("account_id").sort()


def test_a_snapshot_missing_a_twentieth_of_its_accounts_stops_the_ingest(
    next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig,
):
    root, day = next_drop
    snapshot = landing(root, "accounts", day)
    gone = _quiet(root, day).head(snapshot.height // 20)
    deliver(root, "accounts", day, {DATA_FILE: snapshot.filter(~pl.col("account_id").is_in(gone.implode()))})
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    text = str(err.value)
    assert text.startswith(f"accounts dt={day} file={DATA_FILE} column=account_id: {gone.len():,} of the "), text
    assert "accounts open in their last snapshot (dt=" in text and gone[0] in text and "\n" not in text, text
    assert not lake.is_complete(zones.curated(root, "accounts", day))


def test_a_few_open_accounts_leaving_the_snapshot_are_curated(
    next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig,
):
    # A charge-off purged upstream is legitimate (issue 14 class 14 publishes such an account with the fallback
    # PD): up to ingest.max_share_of_open_accounts_missing (1%) of the open accounts may leave.
    root, day = next_drop
    snapshot = landing(root, "accounts", day)
    gone = _quiet(root, day).head(2)
    deliver(root, "accounts", day, {DATA_FILE: snapshot.filter(~pl.col("account_id").is_in(gone.implode()))})
    ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    curated = lake.read_partition(zones.curated(root, "accounts", day))
    assert curated.height == snapshot.height - 2


@pytest.mark.parametrize("dataset, key", [("payments", "payment_id"), ("installments", "installment_id")])
def test_a_redelivery_lacking_curated_rows_stops_the_ingest_and_keeps_them(
    next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig, dataset: str, key: str,
):
    root, day = next_drop
    ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    before = lake.read_partition(zones.curated(root, dataset, day))
    drop = landing(root, dataset, day)
    lost = drop.sort(key).get_column(key).head(1)
    deliver(root, dataset, day, {DATA_FILE: drop.filter(~pl.col(key).is_in(lost.implode()))})
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    text = str(err.value)
    assert text.startswith(f"{dataset} dt={day} file={DATA_FILE} column={key}: this redelivery lacks 1 {dataset} "
                           f"rows curated (or waiting in quarantine) for dt={day} and on no other date ({lost[0]})"), text
    assert "max_curated_rows_removed" in text and "\n" not in text, text
    assert lake.read_partition(zones.curated(root, dataset, day)).equals(before)
    # the whole day again (a later delivery adding rows) is curated as before
    deliver(root, dataset, day, {DATA_FILE: drop})
    ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    assert lake.read_partition(zones.curated(root, dataset, day)).equals(before)


@pytest.mark.parametrize("moved_to", ["its_own_day", "a_later_day_of_the_range"])
def test_a_payment_moved_to_another_day_is_not_a_removal(
    published_lake: PublishedLake, next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig, moved_to: str,
):
    # Hostile reviews 5 and 6 (F3, G3): a late payment of E delivered in NEXT's drop, then moved by upstream to
    # E's drop (its own day); or E's payment moved to NEXT's. The documented range re-ingest refused the date
    # it left ("lacks a payment curated for it") although the range curates it where it went.
    root, day = next_drop
    earlier = published_lake.published
    before, after = landing(root, "payments", earlier), landing(root, "payments", day)
    if moved_to == "its_own_day":
        paid = before.sort("payment_id").head(1)
        late = paid.with_columns(pl.lit("PLATE-1").alias("payment_id"), pl.col("paid_at") + pl.duration(seconds=1),
                                 pl.lit(1).cast(paid.schema["amount"]).alias("amount"))
        deliver(root, "payments", day, {DATA_FILE: pl.concat([after, late])})
        ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
        moved, home, left = "PLATE-1", earlier, day
        deliver(root, "payments", earlier, {DATA_FILE: pl.concat([before, late])})
        deliver(root, "payments", day, {DATA_FILE: after})
    else:  # E's curated payment re-sent by NEXT's drop only (settled late), E redelivered without it
        ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
        moving = before.sort("payment_id").head(1)
        moved, home, left = moving["payment_id"][0], day, earlier
        deliver(root, "payments", earlier, {DATA_FILE: before.filter(pl.col("payment_id") != moved)})
        deliver(root, "payments", day, {DATA_FILE: pl.concat([after, moving])})
    for d, later in ((earlier, [day]), (day, [])):  # riskline ingest --from-date E --to-date NEXT
        ingest.ingest_date(root, d, quiet_cfg, data_docs=False, reingesting=later)
    curated = {d: lake.read_partition(zones.curated(root, "payments", d))["payment_id"] for d in (earlier, day)}
    assert moved in curated[home].to_list() and moved not in curated[left].to_list()


def test_a_snapshot_eroded_a_little_each_night_stops_the_ingest(
    next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig,
):
    # Hostile review 5 (F2): 8 quiet accounts more left out each night, none returning: under 1% a night, so
    # a comparison with the last snapshot alone never saw it. The last known row over a week does.
    root, day = next_drop
    per_night = max(len(_quiet(root, day)) // 150, 1)  # under 1% of the open accounts a night
    gone: list[str] = []
    for d in (day - dt.timedelta(days=2), day - dt.timedelta(days=1), day):
        quiet = [a for a in _quiet(root, d).to_list() if a not in gone]
        gone += quiet[:per_night]
        snapshot = landing(root, "accounts", d)
        deliver(root, "accounts", d, {DATA_FILE: snapshot.filter(~pl.col("account_id").is_in(gone))})
    for d in (day - dt.timedelta(days=2), day - dt.timedelta(days=1)):  # already curated complete: re-ingest
        ingest.ingest_date(root, d, quiet_cfg, data_docs=False)
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    assert f"column=account_id: {len(gone):,} of the " in str(err.value), str(err.value)


def test_yesterdays_payments_resent_under_new_ids_stop_the_ingest(
    published_lake: PublishedLake, next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig,
):
    # New-user review of stop 27 (F1): yesterday's payments re-sent in tonight's drop under new ids, with their
    # own paid_at and amounts, passed every key check: exit 0, the money counted twice, PDs up, three lines cut.
    root, day = next_drop
    yesterday = landing(root, "payments", published_lake.published).sort("payment_id").head(3)
    again = yesterday.with_columns(pl.concat_str(pl.lit("R"), pl.col("payment_id")).alias("payment_id"))
    tonight = landing(root, "payments", day)
    deliver(root, "payments", day, {DATA_FILE: pl.concat([tonight, again.select(tonight.columns)])})
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    text = str(err.value)
    assert text.startswith(f"payments dt={day} file={DATA_FILE} column=payment_id: 3 payment(s) repeat a payment "
                           "curated on an earlier date under a new payment_id"), text
    assert f"= {yesterday['payment_id'][0]} of dt={published_lake.published}" in text and "\n" not in text, text
    assert not lake.is_complete(zones.curated(root, "payments", day))


def test_yesterdays_snapshot_resent_as_todays_stops_the_ingest(
    next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig, published_lake: PublishedLake,
):
    # Review of stop 27, F3: the stale extract passed every count (exit 0); accounts opened tonight went
    # undecided and a line upstream moved tonight would have been published back at yesterday's value.
    root, day = next_drop
    yesterday = landing(root, "accounts", published_lake.published)
    opened = set(landing(root, "accounts", day)["account_id"]) - set(yesterday["account_id"])
    active = set(landing(root, "behaviour", day)["account_id"])
    assert opened & active, "accounts opened tonight act tonight: what tells the stale snapshot"
    deliver(root, "accounts", day, {DATA_FILE: yesterday})
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    text = str(err.value)
    assert text.startswith(f"accounts dt={day} file={DATA_FILE} column=account_id: the snapshot is identical, row "
                           f"for row, to the one of dt={published_lake.published} ({yesterday.height:,} accounts), "
                           f"yet "), text
    assert min(opened & active) in text and "refuse_stale_snapshot: false" in text and "\n" not in text, text
    assert not lake.is_complete(zones.curated(root, "accounts", day))


def test_an_unchanged_snapshot_of_a_quiet_book_is_curated(
    next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig, published_lake: PublishedLake,
):
    # A card book's lines and statuses move once a month, and a book opening no account may not change for
    # days: an identical snapshot whose accounts are all tonight's active ones is a quiet day, not a stale one.
    root, day = next_drop
    yesterday = landing(root, "accounts", published_lake.published)
    for name in ("behaviour", "installments", "payments"):
        rows = landing(root, name, day)
        deliver(root, name, day, {DATA_FILE: rows.filter(pl.col("account_id").is_in(yesterday["account_id"].implode()))})
    deliver(root, "accounts", day, {DATA_FILE: yesterday})
    ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    assert lake.is_complete(zones.curated(root, "accounts", day))


def _closed(snapshot: pl.DataFrame, ids: pl.Series | list[str]) -> pl.DataFrame:
    """``snapshot`` with the accounts ``ids`` marked closed (a status mapping fault upstream)."""
    hit = pl.col("account_id").is_in(pl.Series(ids, dtype=pl.String).implode())
    return snapshot.with_columns(pl.when(hit).then(pl.lit("closed")).otherwise(pl.col("status")).alias("status"))


def test_a_status_fault_closing_a_tenth_of_the_open_accounts_stops_the_ingest(
    next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig,
):
    # Review 28, F5: a status mapping fault marked 10% of the active accounts closed: exit 0, 130 accounts with
    # no score and no limit, 6 overdue ones queued on the fallback PD. Closed tonight counts with missing toward
    # ingest.max_share_of_open_accounts_missing (1%; a book closes at most 0.13% of its open accounts a night).
    root, day = next_drop
    snapshot = landing(root, "accounts", day)
    known = snapshot.filter(pl.col("status").is_in(["active", "frozen"]), pl.col("opened_on") < day)
    flipped = known.get_column("account_id").sort().gather_every(10)  # a tenth of the book (not tonight's new)
    deliver(root, "accounts", day, {DATA_FILE: _closed(snapshot, flipped)})
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    text = str(err.value)
    assert text.startswith(f"accounts dt={day} file={DATA_FILE} column=account_id: {flipped.len():,} of the "), text
    assert f"are missing from this one or closed in it (0 missing, {flipped.len():,} closed: {flipped[0]} (" in text
    assert "statuses are mis-mapped" in text and "max_share_of_open_accounts_missing" in text, text
    assert "\n" not in text
    assert not lake.is_complete(zones.curated(root, "accounts", day))


@pytest.mark.parametrize("hold", ["within_the_hold", "after_the_hold"])
def test_overdue_accounts_closed_tonight_are_held_then_queued_on_the_fallback_pd(
    published_lake: PublishedLake, lake_root: Path, clean_next_night: Path, quiet_cfg: RisklineConfig, hold: str,
):
    # Review 28, F5 (c13): three overdue accounts closed tonight (under the share) were queued on the fallback PD
    # 1.0 instead of the model's (A0000324: pd 0.07 -> 1.0, priority 13 -> 2). An overdue line is not closed in
    # the normal course: like an account missing from the snapshot it is held (no queue entry, no offer) for
    # pending_payments.max_hold_days after its last open row, then worked on the fallback PD (a charge-off).
    book, root = published_lake, lake_root
    clean = published_outputs(clean_next_night, book.next_day)
    busy = set().union(*(landing(root, ds, book.next_day)["account_id"] for ds in ("behaviour", "installments",
                                                                                   "payments")))
    gone = sorted(set(clean["collection_queue"]["account_id"]) - busy)[:2]
    assert len(gone) == 2
    deliver(root, "accounts", book.next_day, {DATA_FILE: _closed(landing(root, "accounts", book.next_day), gone)})
    hold_days = quiet_cfg.pending_payments.max_hold_days if hold == "within_the_hold" else 0
    cfg = quiet_cfg.model_copy(update={
        "pending_payments": quiet_cfg.pending_payments.model_copy(update={"max_hold_days": hold_days})})

    summary = run_night_without_report(root, book.next_day, cfg)

    assert publish.read_latest(root) == book.next_day
    rows = account_rows(published_outputs(root, book.next_day), gone)
    assert not rows["limits"] and not rows["scores"]  # closed: no decision, no score
    decide = summary.stages["decide"]
    if hold == "within_the_hold":
        assert not rows["collection_queue"] and not rows["hardship_offers"], rows
        assert (decide["held_closed_while_overdue"], decide["held_missing_from_snapshot"]) == (2, 0)
    else:
        assert [(r["pd"], r["pd_source"]) for r in rows["collection_queue"]] == [
            (quiet_cfg.collections.unscored_pd, "fallback")] * 2
        assert decide["held_closed_while_overdue"] == 0


def test_a_redelivery_losing_a_payment_waiting_in_quarantine_stops_the_ingest(
    next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig,
):
    # Review 28R, P1: a payment quarantined for an unknown loan (held, money reported) vanished with exit 0 when
    # upstream redelivered the day without it, and its payer was queued. A waiting payment is money received.
    root, day = next_drop
    drop = landing(root, "payments", day)
    first = drop.sort("payment_id").row(0, named=True)["payment_id"]
    orphan = drop.with_columns(pl.when(pl.col("payment_id") == first).then(pl.lit("L-NOT-DELIVERED"))
                               .otherwise(pl.col("loan_id")).alias("loan_id"))
    deliver(root, "payments", day, {DATA_FILE: orphan})
    ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    assert first in lake.read_partition(zones.quarantine(root, "payments", day))["payment_id"].to_list()
    deliver(root, "payments", day, {DATA_FILE: orphan.filter(pl.col("payment_id") != first)})
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    assert "waiting in quarantine" in str(err.value) and first in str(err.value), str(err.value)
    # the copy of another payment, once quarantined, may leave: that is the redelivery asked for
    copy = drop.filter(pl.col("payment_id") == first).with_columns(pl.lit("Z-COPY").alias("payment_id"))
    deliver(root, "payments", day, {DATA_FILE: pl.concat([drop, copy])})
    ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    deliver(root, "payments", day, {DATA_FILE: drop})
    ingest.ingest_date(root, day, quiet_cfg, data_docs=False)


def test_a_redelivery_changing_a_curated_payment_stops_the_ingest(
    next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig,
):
    # Review 28R, P2: a same-date redelivery cutting a curated payment's amount (or moving it to another
    # customer) replaced the partition with exit 0, and its payer was queued.
    root, day = next_drop
    ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    before = lake.read_partition(zones.curated(root, "payments", day))
    drop = landing(root, "payments", day)
    first = drop.sort("payment_id").row(0, named=True)["payment_id"]
    cut = drop.with_columns(pl.when(pl.col("payment_id") == first).then(pl.col("amount").cast(pl.Float64) / 10)
                            .otherwise(pl.col("amount").cast(pl.Float64)).alias("amount"))
    deliver(root, "payments", day, {DATA_FILE: cut})
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    text = str(err.value)
    assert text.startswith(f"payments dt={day} file={DATA_FILE} column=payment_id: this redelivery changes 1 "), text
    assert f"{first} (amount_cents " in text and "\n" not in text, text
    assert lake.read_partition(zones.curated(root, "payments", day)).equals(before)
