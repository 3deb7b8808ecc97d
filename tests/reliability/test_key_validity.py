"""Keys are valid strings; a bad key never de-duplicates a real row away (issue 14, class 5).

Two different payments that both arrive with an empty ``payment_id`` used to be "one redelivered payment":
one was dropped and the other curated with an empty id. Padded ids (``" P2"``) passed as new keys. Now a key
that is empty, padded, too long or outside the contract charset is quarantined with ``invalid_<column>``,
and de-duplication runs only on valid keys, so every such row reaches quarantine (money is held, not lost).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from small_drops import DAY, accounts, behaviour, land_all, lenient, money, payments

from pipelines.domain.features import aggregate_behaviour
from pipelines.stages import ingest
from pipelines.store import lake, zones

FILE = "part-00000.parquet"


def _ingest(root: Path, cfg) -> dict[str, ingest.IngestResult]:
    return {r.dataset: r for r in ingest.ingest_date(root, DAY, lenient(cfg))}


def _zone(root: Path, zone: str, dataset: str) -> pl.DataFrame:
    return lake.read_partition(lake.partition_dir(root, zone, dataset, DAY))


@pytest.mark.parametrize(
    "bad_ids",
    [["", ""], [" P3", "P3 "], ["P\t3", "P3\n"], ["P" * 65, "P" * 65], ["付款3", "P 3"]],
    ids=["empty_twice", "padded", "control_chars", "too_long_twice", "outside_charset"],
)
def test_payments_with_invalid_ids_are_all_quarantined_none_deduplicated(tmp_path: Path, cfg, bad_ids):
    extra = pl.DataFrame({"payment_id": bad_ids, "account_id": ["A2", "A2"], "loan_id": ["L1", "L1"],
                          "paid_at": payments()["paid_at"].head(2), "amount": money("10.00", "20.00")})
    land_all(tmp_path, payments={FILE: pl.concat([payments(), extra])})
    res = _ingest(tmp_path, cfg)["payments"]
    assert res.duplicates_dropped == 0, res.describe()  # two payments are two payments, whatever their ids
    quarantined = _zone(tmp_path, "quarantine", "payments")
    assert sorted(quarantined["amount_cents"].to_list()) == [1000, 2000]  # both held, nothing lost
    assert set(quarantined["quarantine_reason"]) == {"invalid_payment_id"}
    assert _zone(tmp_path, "curated", "payments")["payment_id"].sort().to_list() == ["P1", "P2"]


def test_a_valid_redelivered_payment_is_still_deduplicated(tmp_path: Path, cfg):
    land_all(tmp_path, payments={FILE: pl.concat([payments(), payments().head(1)])})
    res = _ingest(tmp_path, cfg)["payments"]
    assert (res.duplicates_dropped, res.rows_curated, res.quarantined) == (1, 2, 0)


def test_a_padded_account_id_is_quarantined_not_a_second_account(tmp_path: Path, cfg):
    snapshot = pl.concat([accounts(), accounts().head(1).with_columns(pl.lit("A1 ").alias("account_id"))])
    land_all(tmp_path, accounts={FILE: snapshot})
    res = _ingest(tmp_path, cfg)["accounts"]
    assert res.quarantine_reasons == {"invalid_account_id": 1}, res.describe()
    assert _zone(tmp_path, "curated", "accounts")["account_id"].sort().to_list() == ["A1", "A2"]


def test_a_payment_minted_twice_under_two_ids_is_credited_once_and_the_copy_held(tmp_path: Path, cfg):
    # New-user review of issue 16 (H3): five payments repeated in the same file under new ids (same account,
    # loan, paid_at to the microsecond and amount) were all curated: money never received credited twice.
    # A second real payment of the same amount has its own time and is curated.
    original = payments()
    copy = original.head(1).with_columns(pl.lit("P0").alias("payment_id"))  # the copy sorts first
    second = original.head(1).with_columns(pl.lit("P9").alias("payment_id"),
                                           pl.col("paid_at") + pl.duration(seconds=1))
    land_all(tmp_path, payments={FILE: pl.concat([original, copy, second])})
    res = _ingest(tmp_path, cfg)["payments"]
    assert res.quarantine_reasons == {"same_as_another_payment": 1}, res.describe()
    curated = _zone(tmp_path, "curated", "payments")
    assert curated["payment_id"].sort().to_list() == ["P0", "P2", "P9"]  # the smallest id is the payment
    quarantined = _zone(tmp_path, "quarantine", "payments")
    assert quarantined["payment_id"].to_list() == ["P1"]  # held (its account too), its money reported


def _activity(root: Path) -> pl.DataFrame:
    """Each account's activity features of DAY from the curated events, as the night builds them."""
    events = zones.scan_curated(root, "behaviour", DAY)
    return aggregate_behaviour(events, DAY).collect().sort("account_id")


@pytest.mark.parametrize("cut", ["1ms", "1s"])
def test_events_repeated_under_new_ids_in_one_delivery_count_once(tmp_path: Path, cfg, cut: str):
    # Review 28 (F3): a day's events of 40 accounts written twice in one file under new event_ids (every other
    # column equal, to the microsecond) were all curated: spend and cash draws doubled, a line cut 950 -> 450.
    # Here A1's login (no amount: null equals null) and purchase and A2's cash draw are repeated; one copy's id
    # sorts first, so it is the event and its original waits. A second purchase a second later is real. The
    # copies carry their times cut to the millisecond or the second (a re-extract's coarser clock: review 28
    # N3, review 30 Q1).
    original = behaviour().with_columns(pl.col("event_time") + pl.duration(microseconds=4_321))
    second = original.filter(pl.col("event_id") == "E2").with_columns(
        pl.lit("E9").alias("event_id"), pl.col("event_time") + pl.duration(seconds=1))
    copies = original.with_columns(pl.Series("event_id", ["X1", "X2", "D3"]), pl.col("event_time").dt.truncate(cut))
    clean, faulty = tmp_path / "clean", tmp_path / "faulty"
    land_all(clean, behaviour={FILE: pl.concat([original, second])})
    land_all(faulty, behaviour={FILE: pl.concat([original, copies, second])})
    _ingest(clean, cfg)
    res = _ingest(faulty, cfg)["behaviour"]
    assert res.quarantine_reasons == {"same_as_another_event": 3}, res.describe()
    assert _zone(faulty, "curated", "behaviour")["event_id"].sort().to_list() == ["D3", "E1", "E2", "E9"]
    assert _zone(faulty, "quarantine", "behaviour")["event_id"].sort().to_list() == ["E3", "X1", "X2"]
    # each event counts once in the features: exactly those of the drop without the copies
    got = _activity(faulty)
    assert got.equals(_activity(clean))
    assert got.select("account_id", "spend_7d_cents", "purchase_count_7d", "login_count_7d",
                      "cash_draw_amount_7d_cents").rows() == [("A1", 2460, 2, 1, 0), ("A2", 0, 0, 0, 50000)]
