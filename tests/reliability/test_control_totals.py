"""Control totals: a payment missing from a first delivery is caught by what upstream declared (review of
stop 27, F2).

A payment withheld from a drop cannot be told from one not made: past the grace its payer was cut and queued
with exit 0. ``_SUCCESS`` may declare the drop's rows and money sums (``contracts.control_totals``); a sum that
differs, or a feed that stops declaring them, stops the ingest before anything of the date is written. A
plain marker from an upstream that never declared anything still works (a real book's first night).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from small_drops import DAY, FRAMES, _AT, land, lenient, money

from pipelines.errors import IngestError
from pipelines.stages import ingest
from pipelines.store import lake
from tools.generate import declared_manifest

FILE = "part-00000.parquet"
NEXT = DAY + dt.timedelta(days=1)


def _day_two() -> dict[str, pl.DataFrame]:
    """The next day's drops: the same snapshot, new behaviour, no new loan, A2 paying L1 again."""
    at = _AT + dt.timedelta(days=1)
    return {
        "accounts": FRAMES["accounts"](),
        "behaviour": FRAMES["behaviour"]().filter(pl.col("event_type") != "cash_draw").with_columns(
            pl.col("event_id") + "-2", pl.lit(at).alias("event_time")),
        "installments": FRAMES["installments"]().clear(),
        "payments": pl.DataFrame({"payment_id": ["P3", "P4"], "account_id": ["A2", "A2"], "loan_id": ["L1", "L1"],
                                  "paid_at": [at, at + dt.timedelta(minutes=1)], "amount": money("254.50", "20.00")}),
    }


def _land_day(root: Path, day: dt.date, frames: dict[str, pl.DataFrame], declare: bool = True,
              **override: tuple[pl.DataFrame, bytes]) -> None:
    """Land every dataset; ``declare``: _SUCCESS carries the totals of what was written; ``override[dataset]``:
    (the file delivered, the marker) for a faulty drop."""
    for name, frame in frames.items():
        written, marker = override.get(name, (frame, declared_manifest(name, {FILE: frame}) if declare else b""))
        land(root, name, {FILE: written}, day, marker)


@pytest.fixture
def lake_with_a_declared_night(tmp_path: Path, cfg):
    """DAY ingested from drops that declare their control totals."""
    _land_day(tmp_path, DAY, {name: build() for name, build in FRAMES.items()})
    ingest.ingest_date(tmp_path, DAY, lenient(cfg))
    return tmp_path


def _curated_payments(root: Path, day: dt.date) -> Path:
    return lake.partition_dir(root, "curated", "payments", day)


def test_a_payment_withheld_from_a_drop_declaring_its_totals_stops_the_ingest(lake_with_a_declared_night, cfg):
    root = lake_with_a_declared_night
    frames = _day_two()
    clean = frames["payments"]
    withheld = clean.filter(pl.col("payment_id") != "P4")
    _land_day(root, NEXT, frames, payments=(withheld, declared_manifest("payments", {FILE: clean})))
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, NEXT, lenient(cfg))
    text = str(err.value)
    assert (err.value.dataset, err.value.file, err.value.column) == ("payments", FILE, "amount"), text
    assert "sums to 254.50 CNY over 1 records against 2 declared" in text and "274.50 CNY" in text, text
    assert " -> " in text and "\n" not in text
    assert not _curated_payments(root, NEXT).exists()


def test_payments_in_another_unit_under_a_declared_sum_stop_the_ingest(lake_with_a_declared_night, cfg):
    """A partial payment sent in jiao pays no instalment at 10x: no unit check sees one row, the sum does."""
    root = lake_with_a_declared_night
    frames = _day_two()
    clean = frames["payments"]
    in_jiao = clean.with_columns(pl.when(pl.col("payment_id") == "P4").then(pl.col("amount").cast(pl.Float64) / 10)
                                 .otherwise(pl.col("amount").cast(pl.Float64)).alias("amount"))
    _land_day(root, NEXT, frames, payments=(in_jiao, declared_manifest("payments", {FILE: clean})))
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, NEXT, lenient(cfg))
    assert err.value.column == "amount" and "off by -18.00" in str(err.value), str(err.value)


def test_a_feed_that_stops_declaring_its_totals_stops_the_ingest(lake_with_a_declared_night, cfg):
    root = lake_with_a_declared_night
    frames = _day_two()
    withheld = frames["payments"].head(1)
    _land_day(root, NEXT, frames, payments=(withheld, b""))  # the extract lost a row, the marker was touched
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, NEXT, lenient(cfg))
    text = str(err.value)
    assert (err.value.dataset, err.value.file) == ("payments", "_SUCCESS"), text
    assert "declares no control totals (rows, sums.amount)" in text and f"up to {DAY}" in text, text
    assert "keep_declaring_days: 0" in text
    assert not _curated_payments(root, NEXT).exists()
    # the operator who knows the feed stopped declaring for good turns the rule off: the drop is judged as
    # any plain one
    off = lenient(cfg)
    off = off.model_copy(update={"ingest": off.ingest.model_copy(update={
        "control_totals": off.ingest.control_totals.model_copy(update={"keep_declaring_days": 0})})})
    ingest.ingest_date(root, NEXT, off)
    assert _curated_payments(root, NEXT).exists()


def test_an_upstream_that_never_declares_is_judged_as_before(tmp_path: Path, cfg):
    """A real upstream's plain _SUCCESS (a card book converted by someone else's script) needs nothing."""
    _land_day(tmp_path, DAY, {name: build() for name, build in FRAMES.items()}, declare=False)
    ingest.ingest_date(tmp_path, DAY, lenient(cfg))
    _land_day(tmp_path, NEXT, _day_two(), declare=False)
    ingest.ingest_date(tmp_path, NEXT, lenient(cfg))
    assert _curated_payments(tmp_path, NEXT).exists()


def test_a_dataset_required_to_declare_refuses_a_plain_marker(tmp_path: Path, cfg):
    strict = lenient(cfg)
    strict = strict.model_copy(update={"ingest": strict.ingest.model_copy(update={
        "control_totals": strict.ingest.control_totals.model_copy(update={"required_for": ["payments"]})})})
    _land_day(tmp_path, DAY, {name: build() for name, build in FRAMES.items()}, declare=False)
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(tmp_path, DAY, strict)
    assert err.value.dataset == "payments" and "required_for lists payments" in str(err.value), str(err.value)
    _land_day(tmp_path, DAY, {name: build() for name, build in FRAMES.items()})
    ingest.ingest_date(tmp_path, DAY, strict)


@pytest.mark.parametrize("manifest, why", [
    ({"rows": 2, "sums": {"amout": "154.50"}}, "not a money column of payments"),
    ({"rows": 2, "sums": {"amount": "154.505"}}, "whole cents"),
    ({"rows": 2, "sums": {"amount": "154.50", "amount_cents": 15450}}, "twice"),
    ({"rows": 2, "sums": {"amount": True}}, "a number or a decimal string"),
    ({"rows": -1}, '"rows" must be a whole number'),
    ({"rows": 2.5}, '"rows" must be a whole number'),
    ([2], "JSON object"),
])
def test_a_marker_that_is_not_control_totals_stops_in_one_line(tmp_path: Path, cfg, manifest, why):
    _land_day(tmp_path, DAY, {name: build() for name, build in FRAMES.items()},
              payments=(FRAMES["payments"](), json.dumps(manifest).encode()))
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(tmp_path, DAY, lenient(cfg))
    text = str(err.value)
    assert (err.value.dataset, err.value.file) == ("payments", "_SUCCESS") and why in text, text
    assert " -> " in text and "\n" not in text


def test_sums_in_cents_and_as_json_numbers_are_exact(tmp_path: Path, cfg):
    """``amount_cents`` as an integer and ``amount`` as a JSON number (read as a decimal, never a float)."""
    for day, manifest in ((DAY, {"rows": 2, "sums": {"amount_cents": 15450}}),):
        _land_day(tmp_path, day, {name: build() for name, build in FRAMES.items()},
                  payments=(FRAMES["payments"](), json.dumps(manifest).encode()))
        ingest.ingest_date(tmp_path, day, lenient(cfg))
    frames = _day_two()
    _land_day(tmp_path, NEXT, frames, payments=(frames["payments"], b'{"rows": 2, "sums": {"amount": 274.50}}'))
    ingest.ingest_date(tmp_path, NEXT, lenient(cfg))
    assert _curated_payments(tmp_path, NEXT).exists()


def test_a_record_repeated_in_the_files_cannot_stand_in_for_one_left_out(lake_with_a_declared_night, cfg):
    """Review 28, F1: the extract repeats P3 and leaves out P4 of the same amount; counted as rows written,
    the totals matched and P4 was lost (its payer queued). The totals count records, one per payment_id."""
    root = lake_with_a_declared_night
    frames = _day_two()
    clean = frames["payments"].with_columns(amount=money("20.00", "20.00"))
    repeated = pl.concat([clean.head(1), clean.head(1)])  # P3 twice, P4 missing: 2 rows, 40.00
    _land_day(root, NEXT, {**frames, "payments": clean},
              payments=(repeated, declared_manifest("payments", {FILE: clean})))
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, NEXT, lenient(cfg))
    text = str(err.value)
    assert (err.value.dataset, err.value.column) == ("payments", "amount"), text
    assert "over 1 records against 2 declared" in text, text


def test_records_already_curated_on_another_date_are_within_the_declared_count(lake_with_a_declared_night, cfg):
    """Review 28, F7: yesterday's payments sent again beside today's, counted in _SUCCESS as the drop's records,
    are dropped as redeliveries and the night goes on (it stopped on an exact count that could not match)."""
    root = lake_with_a_declared_night
    frames = _day_two()
    both = pl.concat([frames["payments"], FRAMES["payments"]()], how="vertical_relaxed")
    _land_day(root, NEXT, {**frames, "payments": both})
    results = {r.dataset: r for r in ingest.ingest_date(root, NEXT, lenient(cfg))}
    assert (results["payments"].redelivered, results["payments"].rows_curated) == (2, 2)


def test_a_repeated_key_in_the_manifest_is_refused(tmp_path: Path, cfg):
    """Review 28, F9: {"rows": 5, "rows": 2} took the last value silently."""
    _land_day(tmp_path, DAY, {name: build() for name, build in FRAMES.items()},
              payments=(FRAMES["payments"](), b'{"rows": 5, "rows": 2}'))
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(tmp_path, DAY, lenient(cfg))
    assert err.value.file == "_SUCCESS" and "'rows' given twice" in str(err.value), str(err.value)
    _land_day(tmp_path, DAY, {name: build() for name, build in FRAMES.items()},
              payments=(FRAMES["payments"](), b'{"rows": 2.0, "sums": {"amount_cents": 15450.0}}'))
    ingest.ingest_date(tmp_path, DAY, lenient(cfg))  # whole numbers however JSON spells them


def test_a_feed_that_declared_is_held_to_it_after_its_landing_drops_are_purged(lake_with_a_declared_night, cfg):
    """Review 28, F2: with the landing history gone (retention), the rule read no earlier marker and let a
    plain, short drop through. The curated partition keeps the totals it was curated from."""
    root = lake_with_a_declared_night
    assert lake.declared_manifest(_curated_payments(root, DAY)) == {"rows": 2, "sums": {"amount": "154.50"}}
    shutil.rmtree(root / "landing")
    frames = _day_two()
    _land_day(root, NEXT, frames, payments=(frames["payments"].head(1), b""))
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, NEXT, lenient(cfg))
    assert "declares no control totals (rows, sums.amount)" in str(err.value) and f"up to {DAY}" in str(err.value)


def test_a_payment_minted_twice_cannot_stand_in_for_one_left_out(lake_with_a_declared_night, cfg):
    """Review 28, N2: a source that mints ids on every extract re-sent P3 under a new id in place of P4 (same
    amount): the records matched by id and the copy was then quarantined, so P4 was lost with exit 0. A copy
    of another payment's facts is not a record."""
    root = lake_with_a_declared_night
    frames = _day_two()
    clean = frames["payments"].with_columns(amount=money("20.00", "20.00"))
    minted = pl.concat([clean.head(1), clean.head(1).with_columns(pl.lit("P3B").alias("payment_id"))])
    _land_day(root, NEXT, {**frames, "payments": clean},
              payments=(minted, declared_manifest("payments", {FILE: clean})))
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, NEXT, lenient(cfg))
    text = str(err.value)
    assert err.value.column == "amount" and "over 1 records (distinct payment_ids, less 1 repeating another " in text
    assert "against 2 declared" in text and "times a millisecond or more apart" in text, text


def test_an_optional_column_no_longer_sent_needs_no_sum(lake_with_a_declared_night, cfg):
    """Review 28, N7: an accounts feed that declared the sum of the optional annual_income stops sending the
    column (no affordability cap, docs/contracts.md): there is nothing to sum, so nothing is missing. A
    required column's sum still is (the message names the dataset's records, not payments)."""
    root = lake_with_a_declared_night
    frames = _day_two()
    frames["accounts"] = frames["accounts"].drop("annual_income")
    _land_day(root, NEXT, frames)
    ingest.ingest_date(root, NEXT, lenient(cfg))
    assert lake.is_complete(lake.partition_dir(root, "curated", "accounts", NEXT))
    land(root, "accounts", {FILE: frames["accounts"]}, NEXT, b'{"rows": 2}')
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, NEXT, lenient(cfg))
    text = str(err.value)
    assert "declares no control totals (sums.credit_limit)" in text and "missing accounts" in text, text
    assert "payer" not in text


def test_a_count_no_drop_could_hold_is_refused_naming_the_marker(tmp_path: Path, cfg):
    """Review 28, N9: {"rows": 1e999} is a whole number, and no drop: it printed a 1,000-digit count."""
    _land_day(tmp_path, DAY, {name: build() for name, build in FRAMES.items()},
              payments=(FRAMES["payments"](), b'{"rows": 1e999}'))
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(tmp_path, DAY, lenient(cfg))
    assert err.value.file == "_SUCCESS" and len(str(err.value)) < 600, str(err.value)
