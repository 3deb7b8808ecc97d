"""Keys and deliveries at ingest: what upstream sends again, twice, out of order or in part never changes a
customer's outcome (issue 14, classes 2, 6, 7 and 8).

Each test tampers with the landing drop of NEXT in a private copy of the published lake
(``reliability_support``) and checks the outcome the landing contract promises (docs/contracts.md):

* class 2, keys unique across time: an instalment schedule curated on an earlier day and redelivered on NEXT
  is dropped and counted, and the night's ledger and decisions equal a clean night's (it was counted twice:
  outstanding doubled); a ``payment_id`` reused on NEXT with other values stops ingest naming both
  partitions (it used to pass ingest and then stop every later night in the ledger, naming no dataset); a
  date ingested after a later one that curated its payment first stops (it dropped the payment as
  redelivered), and the range ingest its error proposes gives the in-order lake byte for byte;
* class 6: two different rows for one account in one snapshot stop ingest with a sample (the last one won),
  also when they are in two task files of one Spark write (task 1 was taken for a later delivery);
* class 7: deliveries ``part-9`` and ``part-10`` are applied in that order (``part-10`` lost by text order),
  and a file name without a delivery number is refused with the one-line error;
* class 8: one bad instalment holds its whole loan, and the loan's payments are held with it, not lost.
"""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import polars as pl
import pytest
from reliability_support import PublishedLake, deliver, landing, tree_digests

from pipelines.config.settings import RisklineConfig
from pipelines.domain import conform
from pipelines.entry import cli
from pipelines.errors import IngestError
from pipelines.stages import ingest, night as nightly
from pipelines.store import lake, publish, zones
from pipelines.store.zones import ledger_partition
from tools.faults import DATA_FILE, REDELIVERY_FILE

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_run_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the report stage (4 s a night): it only reads what publish wrote."""
    monkeypatch.setattr(nightly, "stage_report", lambda root, as_of, cfg: {})


@pytest.fixture(scope="module")
def clean_night(published_lake: PublishedLake, quiet_cfg: RisklineConfig,
                tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    """NEXT run on the untouched drop: the loans of its ledger and its published limits and queue."""
    import shutil

    root = tmp_path_factory.mktemp("clean") / "lake"
    shutil.copytree(published_lake.root, root, symlinks=True)
    mp = pytest.MonkeyPatch()
    mp.setattr(nightly, "stage_report", lambda root, as_of, cfg: {})
    try:
        nightly.run_night(root, published_lake.next_day, quiet_cfg, nightly.RunOptions(retrain=False))
    finally:
        mp.undo()
    return _night_outputs(root, published_lake.next_day)


def _night_outputs(root: Path, day: dt.date) -> dict[str, pl.DataFrame]:
    return {
        "loans": pl.read_parquet(ledger_partition(root, day) / "loans.parquet").sort("account_id", "loan_id"),
        "limits": publish.read_output(root, "limits", day).sort("account_id"),
        "collection_queue": publish.read_output(root, "collection_queue", day).sort("account_id"),
    }


def _cli(root: Path, *args: str) -> int:
    return cli.main(["--config", str(REPO / "riskline.yaml"), "--data-root", str(root), *args])


# --- class 2: keys unique across time ---------------------------------------------------------------


def test_a_schedule_redelivered_on_a_later_day_is_counted_once(
    published_lake: PublishedLake, lake_root: Path, quiet_cfg: RisklineConfig, clean_night: dict[str, pl.DataFrame]
):
    book = published_lake
    drawn = book.next_day - dt.timedelta(days=10)
    again = landing(lake_root, "installments", drawn)  # a whole earlier drop's schedules, sent again
    assert again.height > 20
    deliver(lake_root, "installments", book.next_day,
            {DATA_FILE: landing(lake_root, "installments", book.next_day), REDELIVERY_FILE: again})

    result = nightly.run_night(lake_root, book.next_day, quiet_cfg, nightly.RunOptions(retrain=False))

    # counted twice, the redelivered loans' outstanding doubled and their customers were cut
    night = _night_outputs(lake_root, book.next_day)
    for name, clean in clean_night.items():
        assert night[name].equals(clean), f"{name} differs from the clean night's"
    history = zones.scan_curated(lake_root, "installments", book.next_day).collect()
    assert history["installment_id"].is_unique().all()
    assert result.stages["ingest"]["installments"].get("redelivered") == again.height


def test_a_payment_id_reused_on_a_later_day_is_refused_at_ingest_naming_both_partitions(
    published_lake: PublishedLake, lake_root: Path, quiet_cfg: RisklineConfig
):
    book = published_lake
    earlier = book.next_day - dt.timedelta(days=3)
    first = landing(lake_root, "payments", earlier).sort("payment_id").head(1)
    today = landing(lake_root, "payments", book.next_day)
    reused = first.with_columns(  # same id, received again on NEXT with another amount
        pl.lit(dt.datetime.combine(book.next_day, dt.time(2), dt.UTC)).alias("paid_at"),
        (pl.col("amount") + pl.lit(decimal.Decimal("1.00"))).cast(today.schema["amount"]).alias("amount"),
    ).select(today.columns)
    deliver(lake_root, "payments", book.next_day, {DATA_FILE: pl.concat([today, reused])})

    with pytest.raises(IngestError) as err:
        nightly.run_night(lake_root, book.next_day, quiet_cfg, nightly.RunOptions(retrain=False))

    text = str(err.value)
    assert err.value.dataset == "payments" and "\n" not in text, text
    assert text.startswith(f"payments dt={book.next_day} column=payment_id: 1 row(s) conflict")
    assert f"{first['payment_id'][0]} (dt={earlier}: " in text and " -> " in text
    assert not list((lake_root / "curated").glob(f"*/dt={book.next_day}"))
    assert publish.read_latest(lake_root) == book.published


def test_an_event_resent_on_a_later_day_is_counted_once(
    published_lake: PublishedLake, lake_root: Path, quiet_cfg: RisklineConfig, clean_night: dict[str, pl.DataFrame]
):
    # event_id was unique only within a drop: a purchase resent on a later day, stamped into that day,
    # was curated again and counted twice in spend and cash-draw features.
    book = published_lake
    earlier = book.next_day - dt.timedelta(days=3)
    purchases = landing(lake_root, "behaviour", earlier).filter(pl.col("event_type") != "login").sort("event_id")
    today = landing(lake_root, "behaviour", book.next_day)
    restamped = purchases.head(2).with_columns(pl.col("event_time") + pl.duration(days=3)).select(today.columns)
    deliver(lake_root, "behaviour", book.next_day, {DATA_FILE: pl.concat([today, restamped])})
    with pytest.raises(IngestError) as err:
        nightly.run_night(lake_root, book.next_day, quiet_cfg, nightly.RunOptions(retrain=False))
    text = str(err.value)
    assert err.value.dataset == "behaviour" and "\n" not in text and f"(dt={earlier}: event_time" in text, text
    assert publish.read_latest(lake_root) == book.published

    # sent again unchanged: an identical redelivery, dropped and counted; the night is the clean one
    again = purchases.head(5).select(today.columns)
    deliver(lake_root, "behaviour", book.next_day, {DATA_FILE: today, REDELIVERY_FILE: again})
    result = nightly.run_night(lake_root, book.next_day, quiet_cfg, nightly.RunOptions(retrain=False))
    assert result.stages["ingest"]["behaviour"].get("redelivered") == again.height
    night = _night_outputs(lake_root, book.next_day)
    for name, clean in clean_night.items():
        assert night[name].equals(clean), f"{name} differs from the clean night's"


def _curate_a_payment_on_next_first(book: PublishedLake, root: Path, cfg: RisklineConfig) -> tuple[dt.date, str]:
    """Curate a payment of E = NEXT-3 under NEXT first, by real ingests out of date order: E is delivered
    without it and ingested, NEXT delivers it too (bank settlement, paid_at on E: within the late window) and
    is ingested, then upstream resends E complete. Returns E and the payment's id."""
    earlier = book.next_day - dt.timedelta(days=3)
    complete = landing(root, "payments", earlier).sort("payment_id")
    late = complete.head(1)
    deliver(root, "payments", earlier, {DATA_FILE: complete.slice(1)})
    # E is curated complete in the published lake: its delivery without the payment removes it on purpose
    withdrawn = cfg.model_copy(update={"ingest": cfg.ingest.model_copy(update={"max_curated_rows_removed": 1})})
    ingest.ingest_date(root, earlier, withdrawn)
    today = landing(root, "payments", book.next_day)
    deliver(root, "payments", book.next_day, {DATA_FILE: pl.concat([today, late.select(today.columns)])})
    ingest.ingest_date(root, book.next_day, cfg)
    payment = late["payment_id"][0]
    assert payment in zones.scan_curated(root, "payments", book.next_day, dates=[book.next_day]).collect()["payment_id"]
    deliver(root, "payments", earlier, {DATA_FILE: complete})
    return earlier, payment


def test_a_date_ingested_after_a_later_one_holding_its_rows_is_refused(
    published_lake: PublishedLake, lake_root: Path, quiet_cfg: RisklineConfig
):
    # Dropping the payment at E as "redelivered" lost it on every night E..NEXT-1: its customer looked past
    # due (cut and queued) and the night exited 0. The earliest date owns a fact, not the earliest ingest.
    book = published_lake
    earlier, payment = _curate_a_payment_on_next_first(book, lake_root, quiet_cfg)
    before = tree_digests(lake_root, "curated") | tree_digests(lake_root, "quarantine")

    with pytest.raises(IngestError) as err:
        ingest.ingest_date(lake_root, earlier, quiet_cfg)

    text = str(err.value)
    assert err.value.dataset == "payments" and "\n" not in text, text
    assert text.startswith(f"payments dt={earlier} column=payment_id: 1 row(s) identical to rows already "
                           f"curated on the later dt={book.next_day}"), text
    assert payment in text
    assert f"riskline ingest --from-date {earlier} --to-date {book.next_day}" in text
    assert tree_digests(lake_root, "curated") | tree_digests(lake_root, "quarantine") == before


def test_a_range_ingest_after_an_out_of_order_one_rebuilds_the_in_order_lake(
    published_lake: PublishedLake, lake_root: Path, quiet_cfg: RisklineConfig, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
):
    import shutil

    book = published_lake
    earlier, payment = _curate_a_payment_on_next_first(book, lake_root, quiet_cfg)
    # The refused error's next step: the dates again, in order, in one call.
    assert _cli(lake_root, "ingest", "--from-date", str(earlier), "--to-date", str(book.next_day)) == 0, (
        capsys.readouterr().err)

    in_order = tmp_path / "in-order"
    shutil.copytree(book.root, in_order, symlinks=True)
    today = landing(in_order, "payments", book.next_day)
    late = landing(in_order, "payments", earlier).filter(pl.col("payment_id") == payment)
    deliver(in_order, "payments", book.next_day, {DATA_FILE: pl.concat([today, late.select(today.columns)])})
    day = earlier
    while day <= book.next_day:
        assert _cli(in_order, "ingest", "--date", str(day)) == 0, capsys.readouterr().err
        day += dt.timedelta(days=1)

    # E keeps the payment, NEXT drops its copy as a redelivery of E: byte for byte the in-order lake
    assert payment in zones.scan_curated(lake_root, "payments", earlier, dates=[earlier]).collect()["payment_id"]
    for part in ("curated", "quarantine"):
        assert tree_digests(lake_root, part) == tree_digests(in_order, part), part


def test_a_range_rebuild_stopped_before_its_later_dates_leaves_them_marked_and_nights_refuse(
    published_lake: PublishedLake, lake_root: Path, quiet_cfg: RisklineConfig, capsys: pytest.CaptureFixture[str],
):
    # The range keeps the payment on E and would drop NEXT's copy when it reaches NEXT; stopped before (a
    # middle date's drop incomplete), NEXT still held the copy, the next command exited 0 and the history
    # held the payment twice. Now NEXT is marked until re-ingested, and nights refuse the history meanwhile.
    book = published_lake
    earlier, payment = _curate_a_payment_on_next_first(book, lake_root, quiet_cfg)
    middle = earlier + dt.timedelta(days=1)
    marker = lake.partition_dir(lake_root, "landing", "accounts", middle) / lake.SUCCESS
    marker.rename(marker.with_name("_SUCCESS.away"))  # the middle date's snapshot is not complete yet

    assert _cli(lake_root, "ingest", "--from-date", str(earlier), "--to-date", str(book.next_day)) == 1
    err = capsys.readouterr().err
    assert f"error: curated payments dt={book.next_day} still hold rows now curated on an earlier date" in err, err
    assert f"riskline ingest --from-date {book.next_day} --to-date {book.next_day}" in err, err
    assert zones.owed_reingests(lake_root) == [("payments", book.next_day, earlier)]
    with pytest.raises(IngestError) as refused:
        nightly.stage_features(lake_root, book.next_day, quiet_cfg)
    assert str(refused.value).startswith(f"payments dt={book.next_day}: curated partition still holds copies of "
                                         f"rows now curated on dt={earlier}"), str(refused.value)

    # The next step it names: the marked date re-ingested drops its copy, and the marker with it.
    marker.with_name("_SUCCESS.away").rename(marker)
    assert _cli(lake_root, "ingest", "--date", str(book.next_day)) == 0, capsys.readouterr().err
    assert zones.owed_reingests(lake_root) == []
    paid = zones.scan_curated(lake_root, "payments", book.next_day).filter(pl.col("payment_id") == payment).collect()
    assert paid["dt"].to_list() == [earlier]


def test_a_conflict_with_a_later_date_names_the_rebuild_in_order(
    published_lake: PublishedLake, lake_root: Path, quiet_cfg: RisklineConfig,
):
    # The in-order hint ("correct the earlier drop, rerun it first") pointed at the later date, whose rerun
    # alone is refused again: whichever copy is right, the dates are rebuilt in order in one call.
    book = published_lake
    earlier, payment = _curate_a_payment_on_next_first(book, lake_root, quiet_cfg)
    complete = landing(lake_root, "payments", earlier)
    changed = complete.with_columns(
        pl.when(pl.col("payment_id") == payment).then(pl.col("amount") + pl.lit(decimal.Decimal("1.00")))
        .otherwise(pl.col("amount")).cast(complete.schema["amount"]).alias("amount"))
    deliver(lake_root, "payments", earlier, {DATA_FILE: changed})
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(lake_root, earlier, quiet_cfg)
    text = str(err.value)
    assert f"conflict with rows already curated on dt={book.next_day}" in text, text
    assert text.endswith(f"riskline ingest --from-date {earlier} --to-date {book.next_day} (nights published "
                         "since then become stale)"), text


# --- class 6: conflicting duplicates within a delivery ----------------------------------------------


@pytest.mark.parametrize("rogue", [
    pl.col("credit_limit") * 2,
    pl.lit("frozen").alias("status"),
], ids=["limit", "status"])
def test_two_different_rows_for_one_account_in_one_snapshot_stop_ingest_with_a_sample(
    published_lake: PublishedLake, lake_root: Path, quiet_cfg: RisklineConfig, rogue: pl.Expr
):
    book = published_lake
    snapshot = landing(lake_root, "accounts", book.next_day)
    victim = snapshot.filter(pl.col("status") == "active").sort("account_id").head(1)
    twin = victim.with_columns(rogue.cast(snapshot.schema[rogue.meta.output_name()]))
    deliver(lake_root, "accounts", book.next_day, {DATA_FILE: pl.concat([snapshot, twin])})

    with pytest.raises(IngestError) as err:
        ingest.ingest_date(lake_root, book.next_day, quiet_cfg)

    text = str(err.value)
    assert text.startswith(f"accounts dt={book.next_day} file={DATA_FILE} column=account_id: 1 account_id "
                           "value(s)"), text
    assert f"{victim['account_id'][0]} (" in text and " -> " in text
    assert not list((lake_root / "curated").glob(f"*/dt={book.next_day}"))


def test_a_snapshot_written_by_one_spark_job_with_a_rogue_task_stops_ingest_naming_its_files(
    published_lake: PublishedLake, lake_root: Path, quiet_cfg: RisklineConfig
):
    # Review of stop 28, F4: task 1's rows were taken for a later delivery correcting task 0 (Spark's
    # part-<task>-<uuid>), so 5 accounts were frozen or had their lines halved, with exit 0.
    book = published_lake
    snapshot = landing(lake_root, "accounts", book.next_day).sort("account_id")
    half = snapshot.height // 2
    victims = snapshot.filter(pl.col("status") == "active").head(5)
    rogue = victims.with_columns(pl.lit("frozen").alias("status"),
                                 (pl.col("credit_limit") / 2).cast(snapshot.schema["credit_limit"]))
    job = "3f2a9c1e-7b4d-4e21-9a0f-1c2d3e4f5a6b"
    tasks = {f"part-00000-{job}-c000.snappy.parquet": snapshot.head(half),
             f"part-00001-{job}-c000.snappy.parquet": pl.concat([snapshot.tail(snapshot.height - half), rogue])}
    deliver(lake_root, "accounts", book.next_day, tasks)

    with pytest.raises(IngestError) as err:
        ingest.ingest_date(lake_root, book.next_day, quiet_cfg)

    text = str(err.value)
    files = ",".join(sorted(tasks))
    assert text.startswith(f"accounts dt={book.next_day} file={files} column=account_id: 5 account_id value(s) "
                           "delivered more than once with different values in one delivery"), text
    assert f"{victims['account_id'][0]} (credit_limit_cents " in text and "; status active vs frozen)" in text
    assert "\n" not in text and " -> " in text
    assert not list((lake_root / "curated").glob(f"*/dt={book.next_day}"))


# --- class 7: latest delivery wins, by delivery number ----------------------------------------------


def test_delivery_ten_is_later_than_delivery_nine(
    published_lake: PublishedLake, lake_root: Path, quiet_cfg: RisklineConfig
):
    book = published_lake
    snapshot = landing(lake_root, "accounts", book.next_day)
    stale = snapshot.with_columns((pl.col("credit_limit") / 2).cast(snapshot.schema["credit_limit"]))
    deliver(lake_root, "accounts", book.next_day, {"part-9.parquet": stale, "part-10.parquet": snapshot})

    ingest.ingest_date(lake_root, book.next_day, quiet_cfg)

    curated = lake.read_partition(lake.partition_dir(lake_root, "curated", "accounts", book.next_day))
    expected = conform.conform_to_contract(snapshot, ingest.CONTRACT["accounts"]).sort("account_id")
    assert curated.sort("account_id")["credit_limit_cents"].equals(expected["credit_limit_cents"])


def test_a_file_without_a_delivery_number_is_refused_in_one_line(
    published_lake: PublishedLake, lake_root: Path, quiet_cfg: RisklineConfig
):
    book = published_lake
    snapshot = landing(lake_root, "accounts", book.next_day)
    deliver(lake_root, "accounts", book.next_day, {DATA_FILE: snapshot, "accounts-final.parquet": snapshot})

    with pytest.raises(IngestError) as err:
        ingest.ingest_date(lake_root, book.next_day, quiet_cfg)

    text = str(err.value)
    assert text.startswith(f"accounts dt={book.next_day} file=accounts-final.parquet: file name carries no "
                           "delivery sequence"), text
    assert "\n" not in text and " -> " in text


# --- class 8: a loan is curated whole or held whole -------------------------------------------------


def test_one_bad_instalment_holds_its_whole_loan_and_the_loans_payments(
    published_lake: PublishedLake, lake_root: Path, quiet_cfg: RisklineConfig
):
    book = published_lake
    day = book.next_day
    schedules = landing(lake_root, "installments", day)
    longest = schedules.group_by("loan_id").len().sort("len", "loan_id", descending=[True, False])
    loan_id, instalments = longest.row(0)
    assert instalments >= 6
    broken = schedules.with_columns(  # one instalment of the loan with a negative principal
        pl.when((pl.col("loan_id") == loan_id) & (pl.col("installment_no") == 2))
        .then(-pl.col("principal_due")).otherwise(pl.col("principal_due"))
        .cast(schedules.schema["principal_due"]).alias("principal_due")
    )
    deliver(lake_root, "installments", day, {DATA_FILE: broken})
    account = schedules.filter(pl.col("loan_id") == loan_id)["account_id"][0]
    payments = landing(lake_root, "payments", day)
    paid = pl.DataFrame({"payment_id": ["P-HELD-LOAN"], "account_id": [account], "loan_id": [loan_id],
                         "paid_at": [dt.datetime.combine(day, dt.time(3), dt.UTC)]}).with_columns(
        pl.lit(decimal.Decimal("12.34")).cast(payments.schema["amount"]).alias("amount"))
    deliver(lake_root, "payments", day, {DATA_FILE: pl.concat([payments, paid.select(payments.columns)])})

    results = {r.dataset: r for r in ingest.ingest_date(lake_root, day, quiet_cfg)}

    curated = lake.read_partition(lake.partition_dir(lake_root, "curated", "installments", day))
    assert loan_id not in set(curated["loan_id"]), "part of a loan was curated: its principal is misstated"
    held = lake.read_partition(lake.partition_dir(lake_root, "quarantine", "installments", day))
    assert held.filter(pl.col("loan_id") == loan_id).height == instalments
    assert results["installments"].quarantine_reasons == {
        "negative_principal_due": 1, "held_with_loan_id:negative_principal_due": instalments - 1}
    # the payment for the held loan is not lost: held with the loan, counted, in the quarantine's shape
    q_pay = lake.read_partition(lake.partition_dir(lake_root, "quarantine", "payments", day))
    assert q_pay.filter(pl.col("payment_id") == "P-HELD-LOAN")["quarantine_reason"].to_list() == ["loan_held"]
    c_pay = lake.read_partition(lake.partition_dir(lake_root, "curated", "payments", day))
    assert c_pay.height + q_pay.height == payments.height + 1
    assert q_pay.drop("quarantine_reason").columns == c_pay.columns
