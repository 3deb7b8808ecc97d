from __future__ import annotations

import datetime as dt
import decimal
import hashlib
from pathlib import Path

import polars as pl
import pytest

from pipelines import errors
from pipelines.contracts.landing import CONTRACT, valid_key
from pipelines.domain import conform, deliveries, plausibility
from pipelines.stages import ingest
from pipelines.store import drops, lake, zones

DAY = dt.date(2026, 11, 20)
UTC = dt.timezone.utc
D = decimal.Decimal


def _land(root: Path, dataset: str, files: dict[str, pl.DataFrame], success: bool = True) -> Path:
    part = root / "landing" / dataset / f"dt={DAY.isoformat()}"
    part.mkdir(parents=True, exist_ok=True)
    for name, frame in files.items():
        frame.write_parquet(part / name)
    if success:
        (part / "_SUCCESS").touch()
    return part


def _behaviour(**overrides) -> pl.DataFrame:
    base = {
        "event_id": ["e1", "e2", "e3"],
        "account_id": ["A1", "A1", "A2"],
        "event_time": [dt.datetime(2026, 11, 20, 2, tzinfo=UTC)] * 3,
        "event_type": ["login", "purchase", "cash_draw"],
        "amount": pl.Series([None, D("12.30"), D("500.00")], dtype=pl.Decimal(18, 2)),
        "channel": ["app", None, "web"],
    }
    base.update(overrides)
    return pl.DataFrame(base)


def _accounts() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_id": ["A1", "A2"],
            "opened_on": [dt.date(2025, 1, 1), dt.date(2026, 3, 1)],
            "credit_limit": [D("250.00"), D("3000.00")],
            "status": ["active", "frozen"],
            "gender": ["f", "m"],
        },
        schema_overrides={"credit_limit": pl.Decimal(18, 2)},
    )


@pytest.fixture()
def cfg(cfg):
    """The repo config without null-share limits: a share of a 3-row frame means nothing (one null channel
    is 33%), and the limits are tested on realistic partitions in tests/data. No Data Docs: they cost ~0.5 s."""
    lenient = cfg.validation.model_copy(update={"max_null_share": {}, "data_docs": False})
    return cfg.model_copy(update={"validation": lenient})


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- pure steps -------------------------------------------------------------------------------------


def test_conform_casts_money_to_exact_cents_and_keeps_extras():
    frame = _behaviour(extra_col=[1, 2, 3])
    out = conform.conform_to_contract(frame, CONTRACT["behaviour"])
    # 12.30 CNY is 1230 cents exactly; a login carries no amount.
    assert out["amount_cents"].to_list() == [None, 1230, 50000]
    assert out.schema["event_time"] == pl.Datetime("us", "UTC")
    assert out["extra_col"].to_list() == [1, 2, 3]


@pytest.mark.parametrize(
    "amount, cents",
    [
        (pl.Series([12.3, 0.125, -0.125], dtype=pl.Float64), [1230, 13, -13]),  # float rounded half away from 0
        (pl.Series([D("1.500"), D("2.000"), D("0.010")], dtype=pl.Decimal(18, 3)), [150, 200, 1]),
        # decimal(38,18) is lossless when every value is whole cents and fits the bound
        (pl.Series([D("1.5"), D("999999.99"), D("-0.01")], dtype=pl.Decimal(38, 18)), [150, 99999999, -1]),
    ],
)
def test_money_casts_that_are_accepted(amount: pl.Series, cents: list[int]):
    out = conform.conform_to_contract(_behaviour(amount=amount), CONTRACT["behaviour"], {"amount": 1_000_000})
    assert out["amount_cents"].to_list() == cents


def test_integer_money_is_read_as_cents_only_when_the_name_declares_it():
    frame = _behaviour().drop("amount").with_columns(pl.Series("amount_cents", [None, 1230, 7], dtype=pl.Int32))
    out = conform.conform_to_contract(frame, CONTRACT["behaviour"], {"amount": 1_000_000})
    # amount_cents is the unit declared by name: 1230 is 12.30 CNY, not 1230 CNY (no x100).
    assert out["amount_cents"].to_list() == [None, 1230, 7]
    assert out.columns.count("amount_cents") == 1


@pytest.mark.parametrize(
    "frame, bound, fragment",
    [
        # cents read as yuan was a silent 100x: an integer under the plain name is refused
        (_behaviour(amount=pl.Series([12, 0, 7], dtype=pl.Int32)), None, "ambiguous"),
        (_behaviour(amount=pl.Series([1.0, float("nan"), 2.0])), None, "not a finite number"),
        (_behaviour(amount=pl.Series([1.0, float("inf"), 2.0])), None, "not a finite number"),
        (_behaviour(amount=pl.Series([1.0, 2_000_000.0, 2.0])), 1_000_000, "beyond the plausible bound"),
        (_behaviour(amount=pl.Series([D("1"), D("-1E+7"), D("2")], dtype=pl.Decimal(18, 2))), 1_000_000,
         "beyond the plausible bound"),
        # 1e19 yuan overflows int64 cents whatever the configured bound: no polars exception escapes
        (_behaviour(amount=pl.Series([D("1"), D("1E+19"), D("2")], dtype=pl.Decimal(38, 18))), None,
         "beyond the plausible bound"),
        (_behaviour(amount=pl.Series([D("1.001"), D("1"), D("2")], dtype=pl.Decimal(38, 18))), None,
         "fractions of a cent"),
        (_behaviour(amount=pl.Series([1e300, 1.0, 2.0])), None, "beyond the plausible bound"),
        (_behaviour().drop("amount").with_columns(pl.Series("amount_cents", [1, 2**64 - 1, 3], dtype=pl.UInt64)),
         None, "beyond the plausible bound"),
        (_behaviour().with_columns(amount_cents=pl.Series([1, 2, 3])), None, "both amount and amount_cents"),
        (_behaviour().drop("amount").with_columns(amount_cents=pl.Series([1.0, 2.0, 3.0])), None, "integer cents"),
    ],
)
def test_ambiguous_or_implausible_money_is_a_contract_error(frame: pl.DataFrame, bound, fragment: str):
    with pytest.raises(errors.ContractError, match=fragment) as err:
        conform.conform_to_contract(frame, CONTRACT["behaviour"], {"amount": bound} if bound else None)
    assert err.value.column.startswith("amount") and err.value.hint


@pytest.mark.parametrize(
    "entries, data, side, refused",
    [
        # what a Spark/Hadoop writer leaves: data, marker, commit markers, checksums -- read or ignored on purpose
        ([("part-00000-1f3e.snappy.parquet", "file"), ("_SUCCESS", "file"), ("_committed_42", "file"),
          ("_started_42", "file"), (".part-00000-1f3e.snappy.parquet.crc", "file"), ("._SUCCESS.crc", "file")],
         ["part-00000-1f3e.snappy.parquet"], ["._SUCCESS.crc", ".part-00000-1f3e.snappy.parquet.crc",
                                               "_SUCCESS", "_committed_42", "_started_42"], []),
        # a non-Parquet name is still a data file: the read fails loudly instead of skipping it
        ([("part-0.csv", "file"), ("_SUCCESS", "file")], ["part-0.csv"], ["_SUCCESS"], []),
        ([("batch=1", "folder"), ("gone.parquet", "dangling_link"), (".part-1.parquet", "file"),
          ("_temporary", "folder"), ("_manifest", "file"), ("fifo", "special"), ("v/a.parquet", "file")],
         [], [], ["batch=1", "gone.parquet", ".part-1.parquet", "_temporary", "_manifest", "fifo", "v/a.parquet"]),
    ],
)
def test_every_landing_entry_is_read_ignored_on_purpose_or_refused(entries, data, side, refused):
    got_data, got_side, got_refused = drops.account_for_entries(entries)
    assert got_data == data and got_side == side
    assert sorted(n for n, _ in got_refused) == sorted(refused)
    assert len(got_data) + len(got_side) + len(got_refused) == len(entries)  # nothing falls through


@pytest.mark.parametrize(
    "override, column",
    [
        ({"amount": pl.Series(["12.30", "1", "2"])}, "amount"),  # strings are not money
        ({"amount": pl.Series([D("1.005"), D("1"), D("2")], dtype=pl.Decimal(18, 3))}, "amount"),  # sub-cent
        ({"event_time": pl.Series(["2026-11-20T02:00:00"] * 3)}, "event_time"),
        ({"event_type": pl.Series([1, 2, 3])}, "event_type"),
    ],
)
def test_lossy_or_wrong_types_are_rejected(override: dict, column: str):
    with pytest.raises(errors.ContractError) as err:
        conform.conform_to_contract(_behaviour(**override), CONTRACT["behaviour"])
    assert err.value.column == column


def test_naive_and_foreign_zone_timestamps_become_utc():
    shanghai = pl.Series([dt.datetime(2026, 11, 20, 10, 0)] * 3).dt.replace_time_zone("Asia/Shanghai")
    out = conform.conform_to_contract(_behaviour(event_time=shanghai), CONTRACT["behaviour"])
    # 10:00 in Shanghai (UTC+8) is 02:00 UTC: converting zones is lossless, so it is accepted.
    assert out["event_time"][0] == dt.datetime(2026, 11, 20, 2, tzinfo=UTC)


def test_keep_latest_delivery_prefers_the_later_delivery_and_drops_identical_repeats():
    frame = pl.DataFrame(
        {
            "event_id": ["e1", "e1", "e2", "e1", None, "e2"],
            "channel": ["first", "first", "x", "later-delivery", "nullkey", "x"],
            "_file_order": [0, 0, 0, 10, 0, 9],
            "_row_order": [0, 1, 2, 0, 3, 0],
        }
    )
    out, dropped = conform.keep_latest_delivery(frame, ["event_id"])
    # e1: delivery 10 corrects delivery 0 (whose two rows are the same row twice); e2 delivered by 0 and 9.
    assert dropped == 3
    assert out.filter(pl.col("event_id") == "e1")["channel"].to_list() == ["later-delivery"]
    assert out["event_id"].null_count() == 1  # null keys are kept for quarantine, not silently dropped


def test_conflicting_rows_within_one_delivery_are_refused_with_a_sample():
    # Two rows for one account in one snapshot with different limits: neither may win silently.
    frame = pl.DataFrame(
        {
            "account_id": ["A1", "A1", "A2", "A3", "A3"],
            "credit_limit_cents": [25000, 900000, 100, 5, 5],
            "_file_order": [0, 0, 0, 0, 0],
            "_row_order": [0, 1, 2, 3, 4],
        }
    )
    with pytest.raises(conform.ConflictingDuplicatesError) as err:
        conform.keep_latest_delivery(frame, ["account_id"])
    assert err.value.column == "account_id"
    assert "A1 in delivery part-0 (credit_limit_cents 25000 vs 900000)" in str(err.value)
    assert "A3" not in str(err.value)  # identical repeats are not conflicts


def test_conflicts_replaced_by_a_later_delivery_or_only_in_extra_columns_are_not_refused():
    frame = pl.DataFrame(
        {
            "account_id": ["A1", "A1", "A1", "A2", "A2"],
            "credit_limit_cents": [25000, 900000, 30000, 100, 100],
            "extracted_at": ["t0", "t1", "t2", "t3", "t4"],  # an extra column upstream added
            "_file_order": [0, 0, 1, 0, 0],
            "_row_order": [0, 1, 0, 2, 3],
        }
    )
    out, dropped = conform.keep_latest_delivery(frame, ["account_id"], ["account_id", "credit_limit_cents"])
    # A1's two rows in delivery 0 are replaced whole by delivery 1; A2's differ only in the extra column
    assert dict(out.select("account_id", "credit_limit_cents").iter_rows()) == {"A1": 30000, "A2": 100}
    assert dropped == 3


@pytest.mark.parametrize(
    "names, expected",
    [
        # part-10 is a later delivery than part-9: integers, not text (the old order put part-10 first)
        (["part-9.parquet", "part-10.parquet", "part-1.parquet"], [1, 9, 10]),
        (["part-00010.parquet", "part-00009-abc.snappy.parquet"], [9, 10]),
        (["part-20261125093000.parquet"], [20261125093000]),  # a UTC timestamp written as digits
        (["part-00000.csv"], [0]),  # named right; whether it is Parquet is checked when read
    ],
)
def test_delivery_sequence_sorts_numerically(names: list[str], expected: list[int]):
    assert sorted(deliveries.delivery_sequence(n) for n in names) == expected


@pytest.mark.parametrize("name", ["a.parquet", "part-.parquet", "part-x1.parquet", "data-00001.parquet",
                                  "part-1x.parquet", "PART-1.parquet"])
def test_names_without_a_delivery_sequence_are_refused(name: str):
    assert deliveries.delivery_sequence(name) is None


JOB = "3f2a9c1e-7b4d-4e21-9a0f-1c2d3e4f5a6b"


@pytest.mark.parametrize(
    "name, job",
    [
        (f"part-00000-{JOB}-c000.snappy.parquet", JOB),
        (f"part-00001-{JOB.upper()}-c000.snappy.parquet", JOB),  # hex in either case
        (f"part-00003-{JOB}.snappy.parquet", JOB),
        (f"part-00007-{JOB}_00002.c000.snappy.parquet", JOB),  # a bucketed write: _<bucket>
        (f"part-00000-tid-4138929584234542286-{JOB}-45-1-c000.snappy.parquet", JOB),  # Databricks' commit
        ("part-00009-abc.snappy.parquet", None),  # not a uuid: delivery 9, as before
        ("part-7-3f2a.snappy.parquet", None),
        (f"part-00000.{JOB}.parquet", None),  # the uuid must follow part-<N>-
    ],
)
def test_spark_task_files_are_told_from_numbered_deliveries(name: str, job: str | None):
    # Review of stop 28, F4: in Spark's names N is the task's index within one write, not a delivery; a
    # task file has no delivery sequence of its own
    assert deliveries.spark_write_job(name) == job
    assert (deliveries.delivery_sequence(name) is None) == (job is not None)


def test_spark_task_files_are_one_delivery_and_never_mixed_with_numbered_ones():
    other = "00000000-0000-4000-8000-00000000000a"
    tasks = [f"part-00001-{JOB}-c000.snappy.parquet", f"part-00000-{JOB}-c000.snappy.parquet",
             f"part-00000-{other}-c000.snappy.parquet"]  # two jobs: their order is unknown too
    ordered = deliveries.order_deliveries(tasks)
    assert [name for name, _ in ordered] == sorted(tasks)  # name order within the one delivery
    assert {seq for _, seq in ordered} == {deliveries.SPARK_WRITE}
    assert deliveries.order_deliveries(["part-10.parquet", "part-9.parquet", "part-9-b.parquet"]) == [
        ("part-9-b.parquet", 9), ("part-9.parquet", 9), ("part-10.parquet", 10)]
    # beside a numbered delivery nothing says which is later: refused, naming the Spark file
    with pytest.raises(deliveries.DeliveryOrderError, match=r"beside numbered deliveries \(part-3.parquet\)") as err:
        deliveries.order_deliveries([*tasks, "part-3.parquet"])
    assert err.value.file == sorted(tasks)[0] and "redeliver" in err.value.hint
    with pytest.raises(deliveries.DeliveryOrderError, match="carries no delivery sequence") as err:
        deliveries.order_deliveries([*tasks, "accounts.parquet"])
    assert err.value.file == "accounts.parquet"


def _schedule(loan: str, n: int, principal: int = 10000, first_id: int = 1) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "installment_id": [f"{loan}-{i:02d}" for i in range(first_id, first_id + n)],
            "loan_id": [loan] * n,
            "account_id": ["A1"] * n,
            "installment_no": pl.Series(list(range(first_id, first_id + n)), dtype=pl.Int32),
            "due_date": [DAY + dt.timedelta(days=30 * i) for i in range(first_id, first_id + n)],
            "principal_due_cents": [principal] * n,
            "interest_due_cents": [100] * n,
        }
    )


def _curated(frame: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    return frame.with_columns(pl.lit(day).alias("dt"))


def test_split_redeliveries_drops_identical_rows_already_curated():
    earlier = _curated(_schedule("L1", 3), DAY - dt.timedelta(days=3))
    today = pl.concat([_schedule("L1", 3), _schedule("L2", 2)])
    found = conform.split_redeliveries(today, earlier, ["installment_id"], ["loan_id"])
    # L1's schedule was curated three days ago exactly as sent again: counting it twice doubles its principal.
    assert found.dropped == 3 and found.dropped_from == (DAY - dt.timedelta(days=3),)
    assert found.kept["loan_id"].unique().to_list() == ["L2"]
    assert found.conflicts.is_empty()


def test_split_redeliveries_names_each_dropped_row_with_the_earliest_date_it_is_curated_on():
    # L1 curated three days ago and (out of order) tomorrow: three days ago owns it, so ingest drops it here.
    # L2 curated only tomorrow: that date was ingested first, and ingest refuses to drop it here.
    before, after = DAY - dt.timedelta(days=3), DAY + dt.timedelta(days=1)
    earlier = pl.concat([_curated(_schedule("L1", 1), before), _curated(_schedule("L1", 1), after),
                         _curated(_schedule("L2", 1), after)])
    found = conform.split_redeliveries(pl.concat([_schedule("L2", 1), _schedule("L1", 1)]), earlier,
                                       ["installment_id"], ["loan_id"])
    assert found.dropped_keys.rows() == [("L1-01", before), ("L2-01", after)]
    assert found.kept.is_empty() and found.conflicts.is_empty()


def test_split_redeliveries_with_nothing_curated_drops_no_keys():
    earlier = _curated(_schedule("L1", 1), DAY).clear()
    found = conform.split_redeliveries(_schedule("L1", 2), earlier, ["installment_id"], ["loan_id"])
    assert found.dropped == 0 and found.dropped_keys.columns == ["installment_id", "dt"]
    assert found.dropped_keys.is_empty()


def test_split_redeliveries_names_a_changed_row_and_its_curated_date():
    earlier = _curated(_schedule("L1", 3), DAY - dt.timedelta(days=3))
    today = _schedule("L1", 3).with_columns(
        pl.when(pl.col("installment_no") == 2).then(12000).otherwise(pl.col("principal_due_cents"))
        .alias("principal_due_cents"))
    found = conform.split_redeliveries(today, earlier, ["installment_id"], ["loan_id"])
    assert found.conflicts["installment_id"].to_list() == ["L1-02"]
    assert found.conflicts["dt"].to_list() == [DAY - dt.timedelta(days=3)]
    assert found.conflicts["conflict"][0] == "principal_due_cents 10000 curated, 12000 now"


def test_split_redeliveries_refuses_new_rows_for_a_unit_already_curated():
    # A loan is delivered once: instalments 4..5 added later to a curated 3-instalment loan are a conflict.
    earlier = _curated(_schedule("L1", 3), DAY - dt.timedelta(days=3))
    found = conform.split_redeliveries(_schedule("L1", 2, first_id=4), earlier, ["installment_id"], ["loan_id"])
    assert found.conflicts["installment_id"].to_list() == ["L1-04", "L1-05"]
    assert "loan_id L1 already curated whole" in found.conflicts["conflict"][0]


def test_hold_whole_units_holds_every_instalment_of_a_loan_with_one_bad_row():
    frame = pl.concat([_schedule("L1", 12), _schedule("L2", 2)])
    reasons = pl.Series("reasons", ["negative_principal_due"] + [""] * 13)
    held = conform.hold_whole_units(frame, reasons, ["loan_id"])
    # 11 clean instalments of L1 would otherwise be curated and misstate its principal; L2 is untouched.
    assert held.to_list()[:12] == ["negative_principal_due"] + ["held_with_loan_id:negative_principal_due"] * 11
    assert held.to_list()[12:] == ["", ""]
    assert conform.hold_whole_units(frame, reasons, ()).to_list() == reasons.to_list()


@pytest.mark.parametrize(
    "value, valid",
    [("P20261120-0000001", True), ("acc:1.x_y", True), ("A" * 64, True), ("A" * 65, False), ("", False),
     (" A1", False), ("A1 ", False), ("A1\n", False), ("A 1", False), ("账户1", False), (None, False)],
)
def test_valid_key_is_the_contract_identifier_rule(value, valid: bool):
    frame = pl.DataFrame({"account_id": [value]}, schema={"account_id": pl.String})
    # a trailing newline must not pass: the pattern's $ is the very end of the text in polars (Rust regex)
    assert frame.select(valid_key(["account_id"]))[0, 0] is valid


def test_invalid_keys_are_never_deduplicated():
    frame = pl.DataFrame(
        {
            "payment_id": ["", "", " P1", "P1", "P1 ", "P\n"],
            "amount": [1, 2, 3, 4, 5, 6],
            "_file_order": [0] * 6,
            "_row_order": list(range(6)),
        }
    ).with_columns(pl.col("payment_id").str.replace("\\n", "\n", literal=True))
    out, dropped = conform.keep_latest_delivery(frame, ["payment_id"])
    # Two empty ids are two payments, " P1" is not "P1": every row survives for validation to quarantine.
    assert dropped == 0 and sorted(out["amount"].to_list()) == [1, 2, 3, 4, 5, 6]


def test_split_row_defects_follows_the_validation_reasons():
    # The rules live in the validation suites (tests/unit/test_validate.py); ingest only splits by reason.
    frame = conform.conform_to_contract(_behaviour(), CONTRACT["behaviour"])
    reasons = pl.Series(["", "null_event_id;negative_amount", "unknown_event_type"])
    good, bad = conform.split_row_defects(frame, reasons)
    assert good["event_id"].to_list() == ["e1"]
    assert bad[conform.QUARANTINE_REASON].to_list() == ["null_event_id;negative_amount", "unknown_event_type"]
    assert bad.drop(conform.QUARANTINE_REASON).columns == frame.columns


def test_split_row_defects_refuses_misaligned_reasons():
    frame = conform.conform_to_contract(_behaviour(), CONTRACT["behaviour"])
    with pytest.raises(ValueError, match="2 quarantine reasons for 3 rows"):
        conform.split_row_defects(frame, pl.Series(["", ""]))


# --- the I/O entry point ----------------------------------------------------------------------------


def test_ingest_publishes_curated_and_quarantine(tmp_path: Path, cfg):
    _land(tmp_path, "accounts", {"part-00000.parquet": _accounts()})  # behaviour's account ids are checked against it
    _land(tmp_path, "behaviour", {"part-00000.parquet": _behaviour(event_type=["login", "purchase", "transfer"])})
    (res,) = ingest.ingest_date(tmp_path, DAY, cfg, ["behaviour"])
    assert (res.rows_in, res.rows_curated, res.quarantined) == (3, 2, 1)
    # One bad row of three is within validation.warning_min_rows (5): quarantined, not fatal.
    assert res.quarantine_reasons == {"unknown_event_type": 1}
    curated = lake.read_partition(tmp_path / "curated" / "behaviour" / "dt=2026-11-20")
    assert curated["event_id"].to_list() == ["e1", "e2"]
    q = lake.read_partition(tmp_path / "quarantine" / "behaviour" / "dt=2026-11-20")
    assert q["event_id"].to_list() == ["e3"]


def test_reingest_is_byte_identical_and_clears_stale_quarantine(tmp_path: Path, cfg):
    _land(tmp_path, "accounts", {"part-00000.parquet": _accounts()})
    part = _land(tmp_path, "behaviour", {"part-00000.parquet": _behaviour(event_type=["login", "purchase", "transfer"])})
    ingest.ingest_date(tmp_path, DAY, cfg, ["behaviour"])
    first = _digests(tmp_path / "curated")
    ingest.ingest_date(tmp_path, DAY, cfg, ["behaviour"])
    assert _digests(tmp_path / "curated") == first
    # Upstream redelivers a clean file: the quarantine partition of that date must disappear.
    (part / "part-00000.parquet").unlink()
    _land(tmp_path, "behaviour", {"part-00000.parquet": _behaviour()})
    ingest.ingest_date(tmp_path, DAY, cfg, ["behaviour"])
    assert not (tmp_path / "quarantine" / "behaviour" / "dt=2026-11-20").exists()


def test_optional_columns_absent_are_null_and_protected_carried(tmp_path: Path, cfg):
    _land(tmp_path, "accounts", {"part-00000.parquet": _accounts()})
    ingest.ingest_date(tmp_path, DAY, cfg, ["accounts"])
    out = lake.read_partition(tmp_path / "curated" / "accounts" / "dt=2026-11-20")
    assert out["credit_limit_cents"].to_list() == [25000, 300000]
    assert out["annual_income_cents"].null_count() == 2
    assert out["gender"].to_list() == ["f", "m"]


@pytest.mark.parametrize(
    "setup, fragment",
    [
        ("missing_success", "no _SUCCESS"),
        ("not_delivered", "not delivered"),
        ("corrupt", "file=part-00000.parquet: file is not readable Parquet"),
        ("zero_byte", "file=part-00000.parquet: file is not readable Parquet"),
        ("dropped_column", "column=amount: required column(s) missing: amount"),
        ("wrong_type", "column=amount: type String cannot be cast"),
    ],
)
def test_contract_failures_name_dataset_partition_file_column(tmp_path: Path, cfg, setup: str, fragment: str):
    if setup != "not_delivered":
        part = _land(tmp_path, "behaviour", {"part-00000.parquet": _behaviour()}, success=setup != "missing_success")
    if setup == "corrupt":
        (part / "part-00000.parquet").write_bytes(b"this is not parquet")
    elif setup == "zero_byte":
        (part / "part-00000.parquet").write_bytes(b"")
    elif setup == "dropped_column":
        _behaviour().drop("amount").write_parquet(part / "part-00000.parquet")
    elif setup == "wrong_type":
        _behaviour(amount=["1", "2", "3"]).write_parquet(part / "part-00000.parquet")
    with pytest.raises(errors.IngestError) as err:
        ingest.ingest_date(tmp_path, DAY, cfg, ["behaviour"])
    assert str(err.value).startswith("behaviour dt=2026-11-20")
    assert fragment in str(err.value)
    assert "->" in str(err.value), "the error must say what to do next"


def test_one_bad_dataset_leaves_every_curated_partition_untouched(tmp_path: Path, cfg):
    _land(tmp_path, "accounts", {"part-00000.parquet": _accounts()})
    _land(tmp_path, "behaviour", {"part-00000.parquet": _behaviour()})
    ingest.ingest_date(tmp_path, DAY, cfg, ["accounts", "behaviour"])
    before = _digests(tmp_path / "curated")
    # Next delivery: accounts changed, behaviour corrupt -> nothing of that date may change.
    _land(tmp_path, "accounts", {"part-00000.parquet": _accounts().with_columns(pl.lit("closed").alias("status"))})
    (tmp_path / "landing" / "behaviour" / "dt=2026-11-20" / "part-00000.parquet").write_bytes(b"garbage")
    with pytest.raises(errors.IngestError):
        ingest.ingest_date(tmp_path, DAY, cfg, ["accounts", "behaviour"])
    assert _digests(tmp_path / "curated") == before


def test_complete_drop_without_files_is_an_empty_day(tmp_path: Path, cfg):
    part = tmp_path / "landing" / "payments" / "dt=2026-11-20"
    part.mkdir(parents=True)
    (part / "_SUCCESS").touch()
    (res,) = ingest.ingest_date(tmp_path, DAY, cfg, ["payments"])
    assert res.rows_curated == 0
    out = lake.read_partition(tmp_path / "curated" / "payments" / "dt=2026-11-20")
    assert out.schema == CONTRACT["payments"].curated_schema()


def test_unknown_dataset_is_refused(tmp_path: Path, cfg):
    with pytest.raises(errors.IngestError, match="unknown dataset"):
        ingest.ingest_date(tmp_path, DAY, cfg, ["loans"])


# --- keys over time, delivery order, loans held whole (I/O) ------------------------------------------


def _land_on(root: Path, dataset: str, day: dt.date, files: dict[str, pl.DataFrame]) -> Path:
    part = root / "landing" / dataset / f"dt={day.isoformat()}"
    part.mkdir(parents=True, exist_ok=True)
    for old in part.glob("*.parquet"):
        old.unlink()
    for name, frame in files.items():
        frame.write_parquet(part / name)
    (part / "_SUCCESS").touch()
    return part


def _landing_schedule(loan: str, n: int, principal: str = "100.00") -> pl.DataFrame:
    frame = _schedule(loan, n)
    return frame.drop("principal_due_cents", "interest_due_cents").with_columns(
        pl.lit(D(principal)).cast(pl.Decimal(18, 2)).alias("principal_due"),
        pl.lit(D("1.00")).cast(pl.Decimal(18, 2)).alias("interest_due"),
    )


def _accounts_on(root: Path, *days: dt.date) -> None:
    for day in days:
        _land_on(root, "accounts", day, {"part-00000.parquet": _accounts()})


def test_an_identical_redelivery_of_a_curated_schedule_is_dropped_and_counted(tmp_path: Path, cfg):
    earlier = DAY - dt.timedelta(days=2)
    _accounts_on(tmp_path, earlier, DAY)
    _land_on(tmp_path, "installments", earlier, {"part-00000.parquet": _landing_schedule("L1", 3)})
    ingest.ingest_date(tmp_path, earlier, cfg, ["accounts", "installments"])
    today = pl.concat([_landing_schedule("L1", 3), _landing_schedule("L2", 2)])
    _land_on(tmp_path, "installments", DAY, {"part-00000.parquet": today})
    results = {r.dataset: r for r in ingest.ingest_date(tmp_path, DAY, cfg, ["accounts", "installments"])}
    assert (results["installments"].redelivered, results["installments"].rows_curated) == (3, 2)
    curated = zones.scan_curated(tmp_path, "installments", DAY).collect()
    assert curated["installment_id"].is_unique().all()  # L1 is counted once, on the day it was drawn
    report = (tmp_path / "validation" / f"dt={DAY.isoformat()}" / "installments.json").read_text()
    assert f"3 rows already curated identically on dt={earlier.isoformat()}" in report
    # a rerun of either date gives the same bytes (the earlier date does not see its own partition)
    before = _digests(tmp_path / "curated")
    ingest.ingest_date(tmp_path, earlier, cfg, ["accounts", "installments"])
    ingest.ingest_date(tmp_path, DAY, cfg, ["accounts", "installments"])
    assert _digests(tmp_path / "curated") == before


def test_a_payment_id_reused_with_other_values_is_critical_naming_both_dates(tmp_path: Path, cfg):
    earlier = DAY - dt.timedelta(days=5)
    _accounts_on(tmp_path, earlier, DAY)
    _land_on(tmp_path, "installments", earlier, {"part-00000.parquet": _landing_schedule("L1", 3)})
    pay = pl.DataFrame({"payment_id": ["P1"], "account_id": ["A1"], "loan_id": ["L1"],
                        "paid_at": [dt.datetime(2026, 11, 15, 3, tzinfo=UTC)],
                        "amount": pl.Series([D("10.00")], dtype=pl.Decimal(18, 2))})
    _land_on(tmp_path, "payments", earlier, {"part-00000.parquet": pay})
    ingest.ingest_date(tmp_path, earlier, cfg, ["accounts", "installments", "payments"])
    reused = pay.with_columns(pl.lit(dt.datetime(2026, 11, 20, 3, tzinfo=UTC)).alias("paid_at"))
    _land_on(tmp_path, "payments", DAY, {"part-00000.parquet": reused})
    with pytest.raises(errors.IngestError) as err:
        ingest.ingest_date(tmp_path, DAY, cfg, ["accounts", "payments"])
    text = str(err.value)
    assert text.startswith(f"payments dt={DAY.isoformat()} column=payment_id: 1 row(s) conflict")
    assert f"P1 (dt={earlier.isoformat()}: paid_at" in text and "->" in text
    assert not (tmp_path / "curated" / "payments" / f"dt={DAY.isoformat()}").exists()


def test_deliveries_are_ordered_by_their_number_and_odd_names_refused(tmp_path: Path, cfg):
    old = _accounts().with_columns(pl.lit(D("9999.00")).cast(pl.Decimal(18, 2)).alias("credit_limit"))
    part = _land_on(tmp_path, "accounts", DAY, {"part-9.parquet": old, "part-10.parquet": _accounts()})
    (res,) = ingest.ingest_date(tmp_path, DAY, cfg, ["accounts"])
    assert res.duplicates_dropped == 2
    curated = lake.read_partition(tmp_path / "curated" / "accounts" / f"dt={DAY.isoformat()}")
    assert curated["credit_limit_cents"].to_list() == [25000, 300000]  # part-10 is the later delivery
    _accounts().write_parquet(part / "accounts.parquet")
    with pytest.raises(errors.IngestError, match=r"accounts dt=2026-11-20 file=accounts.parquet: file name carries"):
        ingest.ingest_date(tmp_path, DAY, cfg, ["accounts"])


def test_two_rows_for_one_account_in_one_snapshot_are_critical(tmp_path: Path, cfg):
    rogue = pl.concat([_accounts(), _accounts().head(1).with_columns(
        pl.lit(D("50000.00")).cast(pl.Decimal(18, 2)).alias("credit_limit"))])
    _land_on(tmp_path, "accounts", DAY, {"part-00000.parquet": rogue})
    with pytest.raises(errors.IngestError) as err:
        ingest.ingest_date(tmp_path, DAY, cfg, ["accounts"])
    assert str(err.value).startswith(
        "accounts dt=2026-11-20 file=part-00000.parquet column=account_id: 1 account_id value(s)")
    assert "A1 (credit_limit_cents 25000 vs 5000000)" in str(err.value)


def test_conflicting_rows_in_two_spark_task_files_are_critical_not_a_correction(tmp_path: Path, cfg):
    # Review of stop 28, F4: task 1 of one Spark write was taken for a later delivery, and its frozen,
    # halved A1 won silently; the rows of one write are one delivery's. Identical rows are one row.
    rogue = _accounts().head(1).with_columns(pl.lit("frozen").alias("status"))
    tasks = {f"part-00000-{JOB}-c000.snappy.parquet": _accounts(),
             f"part-00001-{JOB}-c000.snappy.parquet": pl.concat([rogue, _accounts().tail(1)])}
    _land_on(tmp_path, "accounts", DAY, tasks)
    with pytest.raises(errors.IngestError) as err:
        ingest.ingest_date(tmp_path, DAY, cfg, ["accounts"])
    text = str(err.value)
    assert text.startswith(f"accounts dt=2026-11-20 file={','.join(sorted(tasks))} column=account_id: "
                           "1 account_id value(s)"), text
    assert "A1 (status active vs frozen)" in text and "A2" not in text and "Spark task files" in text
    assert not (tmp_path / "curated").exists()

    tasks[f"part-00001-{JOB}-c000.snappy.parquet"] = _accounts().tail(1)  # A2 again, the same row: kept once
    _land_on(tmp_path, "accounts", DAY, tasks)
    (res,) = ingest.ingest_date(tmp_path, DAY, cfg, ["accounts"])
    assert (res.files, res.duplicates_dropped, res.rows_curated) == (2, 1, 2)


def test_spark_task_files_beside_a_numbered_delivery_are_refused(tmp_path: Path, cfg):
    task = f"part-00000-{JOB}-c000.snappy.parquet"
    _land_on(tmp_path, "accounts", DAY, {task: _accounts(), "part-00001.parquet": _accounts()})
    with pytest.raises(errors.IngestError) as err:
        ingest.ingest_date(tmp_path, DAY, cfg, ["accounts"])
    assert str(err.value).startswith(f"accounts dt=2026-11-20 file={task}: Spark task files"), str(err.value)
    assert " -> " in str(err.value) and not (tmp_path / "curated").exists()


def test_a_loan_with_one_bad_instalment_is_held_whole_with_its_payments(tmp_path: Path, cfg):
    _accounts_on(tmp_path, DAY)
    bad = _landing_schedule("L1", 12).with_columns(
        pl.when(pl.col("installment_no") == 3).then(pl.lit(D("-1.00"))).otherwise(pl.col("principal_due"))
        .cast(pl.Decimal(18, 2)).alias("principal_due"))
    _land_on(tmp_path, "installments", DAY, {"part-00000.parquet": pl.concat([bad, _landing_schedule("L2", 3)])})
    pay = pl.DataFrame({"payment_id": ["P1", "P2"], "account_id": ["A1", "A1"], "loan_id": ["L1", "L2"],
                        "paid_at": [dt.datetime(2026, 11, 20, 3, tzinfo=UTC)] * 2,
                        "amount": pl.Series([D("10.00"), D("5.00")], dtype=pl.Decimal(18, 2))})
    _land_on(tmp_path, "payments", DAY, {"part-00000.parquet": pay})
    results = {r.dataset: r for r in ingest.ingest_date(tmp_path, DAY, cfg, ["accounts", "installments", "payments"])}
    # one defective instalment holds all 12 of its loan, each saying why; L2 is curated
    assert results["installments"].quarantine_reasons == {
        "negative_principal_due": 1, "held_with_loan_id:negative_principal_due": 11}
    curated = lake.read_partition(tmp_path / "curated" / "installments" / f"dt={DAY.isoformat()}")
    assert set(curated["loan_id"]) == {"L2"}
    # the payment for the held loan is not lost and not an "unknown loan": it is held with the loan
    assert results["payments"].quarantine_reasons == {"loan_held": 1}
    held = lake.read_partition(tmp_path / "quarantine" / "payments" / f"dt={DAY.isoformat()}")
    assert held["payment_id"].to_list() == ["P1"]
    assert held.columns == [*CONTRACT["payments"].curated_schema().names(), conform.QUARANTINE_REASON]
    # a later payment for the still-held loan is held too, read from the quarantine zone
    later = DAY + dt.timedelta(days=1)
    _accounts_on(tmp_path, later)
    _land_on(tmp_path, "installments", later, {})
    _land_on(tmp_path, "payments", later, {"part-00000.parquet": pay.head(1).with_columns(
        pl.lit("P3").alias("payment_id"), pl.lit(dt.datetime(2026, 11, 21, 3, tzinfo=UTC)).alias("paid_at"))})
    res = {r.dataset: r for r in ingest.ingest_date(tmp_path, later, cfg, ["accounts", "installments", "payments"])}
    assert res["payments"].quarantine_reasons == {"loan_held": 1}


@pytest.mark.parametrize("tonight, drifted", [
    ([10_000] * 5, True),  # the same amounts sent in cents under a CNY column: 100x
    ([100] * 5, False),  # the usual amounts
    ([2_000] * 5, True),  # exactly the ratio (20x)
    ([1_999] * 5, False),
    ([5] * 5, True),  # 20x below
    ([10_000] * 4, False),  # too few amounts tonight to judge a unit
])
def test_money_unit_drift_compares_medians_with_the_recent_days(tonight: list[int], drifted: bool):
    history = pl.DataFrame({"amount_cents": [100] * 20 + [0, None]}, schema={"amount_cents": pl.Int64})
    now = pl.DataFrame({"amount_cents": tonight + [None, 0]}, schema={"amount_cents": pl.Int64})
    got = plausibility.money_unit_drift(now, history, ["amount_cents"], 20.0)
    assert got == ([("amount_cents", tonight[0], 100, "median")] if drifted else [])


def test_money_unit_drift_sees_another_unit_in_part_of_the_rows():
    history = pl.DataFrame({"amount_cents": [5_000 + 100 * i for i in range(200)]})
    rows = history.get_column("amount_cents").to_list()[:100]
    # a second extract writer: cents in two rows of five (100x), in one of five (100x), jiao read as CNY
    # in one of five (10x lower); the median stays, a decile moves
    for share, factor, quantile in ((2, 100, "90th percentile"), (1, 100, "90th percentile"),
                                    (1, 0.01, "10th percentile")):
        mixed = pl.DataFrame({"amount_cents": [int(v * factor) if i % 5 < share else v
                                               for i, v in enumerate(rows)]})
        (drift,) = plausibility.money_unit_drift(mixed, history, ["amount_cents"], 20.0)
        assert drift.quantile == quantile, (share, factor, drift)
    # a legitimate day with a few large amounts is not a unit
    few_large = pl.DataFrame({"amount_cents": [v * 15 if i % 20 == 0 else v for i, v in enumerate(rows)]})
    assert plausibility.money_unit_drift(few_large, history, ["amount_cents"], 20.0) == []


def _deliveries(*rows: tuple[str, str, int, int]) -> pl.DataFrame:
    """rows: (event_id, account_id, amount, delivery)."""
    return pl.DataFrame(rows, schema={"event_id": pl.String, "account_id": pl.String, "amount": pl.Int64,
                                      conform.FILE_ORDER: pl.Int64}, orient="row")


def test_a_later_delivery_repeating_rows_under_new_ids_is_refused_and_a_correction_is_not():
    columns = ["event_id", "account_id", "amount"]
    with pytest.raises(conform.ResentUnderNewIdsError, match="Z1 \\(part-1\\) repeats E1 \\(part-0\\)"):
        conform.refuse_resent_under_new_ids(_deliveries(("E1", "A", 5, 0), ("Z1", "A", 5, 1)), "behaviour", columns)
    # the same id again (a correction or a redelivery), identical rows in one delivery, other content: fine
    for frame in (_deliveries(("E1", "A", 5, 0), ("E1", "A", 5, 1)),
                  _deliveries(("E1", "A", 5, 0), ("E2", "A", 5, 0)),
                  _deliveries(("E1", "A", 5, 0), ("Z1", "A", 6, 1))):
        conform.refuse_resent_under_new_ids(frame, "behaviour", columns)
    # datasets whose ids are not minted by the extract (the accounts snapshot) are not compared
    conform.refuse_resent_under_new_ids(_deliveries(("E1", "A", 5, 0), ("Z1", "A", 5, 1)), "accounts", columns)


def test_loans_over_their_lines_are_counted_against_the_days_snapshot():
    schedule = pl.DataFrame({
        "loan_id": ["L1", "L1", "L2", "L3", "L4"],
        "account_id": ["A1", "A1", "A2", "A3", "A9"],  # A9: no line known tonight, not judged
        "principal_due_cents": [15_000, 15_000, 20_000, 50_001, 99_999],
    })
    limits = pl.DataFrame({"account_id": ["A1", "A2", "A3"], "credit_limit_cents": [30_000, 10_000, 50_000]})
    known, over = plausibility.loans_over_their_lines(schedule, limits)
    assert known == 3  # L1 exactly at its line is not over it
    assert over.select("loan_id", "principal_cents", "credit_limit_cents").rows() == [
        ("L2", 20_000, 10_000), ("L3", 50_001, 50_000)]  # the largest excess first


def _loans(*loans: tuple[str, str, int]) -> pl.DataFrame:
    """A schedule of two instalments per (loan_id, account_id, principal cents)."""
    return pl.DataFrame({"loan_id": [lo for lo, _, _ in loans for _ in range(2)],
                         "account_id": [a for _, a, _ in loans for _ in range(2)],
                         "principal_due_cents": [c // 2 + (c % 2) * i for _, _, c in loans for i in range(2)]})


def _draws(*draws: tuple[str, int]) -> pl.DataFrame:
    return pl.DataFrame({"account_id": [a for a, _ in draws], "amount_cents": [c for _, c in draws]},
                        schema={"account_id": pl.String, "amount_cents": pl.Int64})


def test_a_loan_is_one_draw_and_a_draw_backs_one_loan():
    earlier = _loans(("L1", "A1", 30_000), ("L2", "A2", 10_001))
    before = _draws(("A1", 30_000), ("A2", 10_001))
    # Tonight: A1 draws 30,000 again (a real second loan of the same amount: its own draw backs it); A2's
    # loan is re-sent under a new id (its one draw is taken by L2); A3 has no draw at all.
    tonight = _loans(("L3", "A1", 30_000), ("Z2", "A2", 10_001), ("L4", "A3", 5_000))
    draws = pl.concat([before, _draws(("A1", 30_000))])
    backing = plausibility.loans_without_a_draw(tonight, earlier, draws, before)
    assert (backing.evidence, backing.unbacked_before) == (2, 0)
    assert backing.unbacked.select("loan_id", "account_id", "principal_cents").rows() == [
        ("L4", "A3", 5_000), ("Z2", "A2", 10_001)]
    # A draw of another amount backs nothing: the amount is the loan's principal, to the cent.
    assert plausibility.loans_without_a_draw(_loans(("L5", "A1", 30_001)), earlier, draws, before).unbacked.height == 1
    # A draw whose amount is missing backs nothing (a loan in another unit beside it would pass).
    unknown = pl.concat([draws, pl.DataFrame({"account_id": ["A3"], "amount_cents": [None]},
                                             schema=draws.schema)])
    assert plausibility.loans_without_a_draw(tonight, earlier, unknown, before).unbacked["loan_id"].to_list() == [
        "L4", "Z2"]
    # A book whose earlier loans are not draws (a card book's statements) says so: the caller does not judge.
    assert plausibility.loans_without_a_draw(tonight, earlier, draws, _draws()).unbacked_before == 2


def test_a_payment_that_is_an_instalment_in_another_unit_has_the_signature():
    dues = pl.DataFrame({"loan_id": ["L1", "L1", "L2"], "due_cents": [4_516, 4_516, 10_000]})
    payments = pl.DataFrame({
        "payment_id": ["P1", "P2", "P3", "P4", "P5", "P6"],
        "loan_id": ["L1", "L1", "L2", "L2", "L2", "L9"],
        # P1 as due; P2 whole yuan sent as cents (45 for 45.16 CNY); P3 100x too small; P4 10x too big;
        # P5 a partial payment; P6 a loan with no schedule known
        "amount_cents": [4_516, 45, 100, 100_000, 2_500, 1_000],
    })
    odd = plausibility.payments_in_another_unit(payments, dues)
    assert odd.select("payment_id", "due_cents", "factor").rows() == [
        ("P2", 4_516, 100.0), ("P3", 10_000, 100.0), ("P4", 10_000, 0.1)]


def test_a_line_moved_further_than_the_policy_ever_moves_one_is_found():
    previous = pl.DataFrame({"account_id": ["A1", "A2", "A3", "A4", "A5", "A7"],
                             "credit_limit_cents": [150_000, 80_000, 100_000, 50_000, 0, 120_000]})
    today = pl.DataFrame({"account_id": ["A1", "A2", "A3", "A4", "A5", "A6", "A7"],
                          # A1 /10, A2 x100, A3 a cut to 60% (the policy), A4 unchanged, A5 frozen at 0 then
                          # restored, A6 new, A7 raised 20% by the policy and sent in jiao (144, 8.3x)
                          "credit_limit_cents": [15_000, 8_000_000, 60_000, 50_000, 50_000, 1_000, 14_400]})
    compared, moved = plausibility.amounts_in_another_unit(today, previous, "credit_limit_cents", 5.0)
    assert moved.select("account_id", "factor").rows() == [("A1", 0.1), ("A2", 100.0), ("A7", 0.12)]
    assert compared == 5  # A5's line at 0 and the new A6 say nothing


def test_an_income_moved_far_is_found_and_a_missing_one_compares_nothing():
    # The same per-account check on the optional annual_income (review 28, F6): null on either side (not
    # declared) and 0 say nothing; a column tonight's snapshot does not carry compares nothing at all.
    previous = pl.DataFrame({"account_id": ["A1", "A2", "A3", "A4", "A5"],
                             "annual_income_cents": [12_000_000, None, 8_000_000, 0, 9_000_000]},
                            schema_overrides={"annual_income_cents": pl.Int64()})
    today = pl.DataFrame({"account_id": ["A1", "A2", "A3", "A4", "A5"],
                          # A1 /10 (another unit), A2 declared tonight, A3 withdrawn, A4 from 0, A5 x2 (a raise)
                          "annual_income_cents": [1_200_000, 5_000_000, None, 6_000_000, 18_000_000]},
                         schema_overrides={"annual_income_cents": pl.Int64()})
    compared, moved = plausibility.amounts_in_another_unit(today, previous, "annual_income_cents", 5.0)
    assert (compared, moved.select("account_id", "was_cents", "annual_income_cents").rows()) == (
        2, [("A1", 12_000_000, 1_200_000)])
    assert plausibility.amounts_in_another_unit(today.drop("annual_income_cents"), previous, "annual_income_cents",
                                           5.0)[0] == 0
    # Review 28, N4: an income zeroed tonight moved (factor 0): a snapshot of incomes mapped to 0 capped every
    # increase at nothing with exit 0
    zeroed = today.with_columns(pl.when(pl.col("account_id") == "A5").then(0)
                                .otherwise(pl.col("annual_income_cents")).alias("annual_income_cents"))
    compared, moved = plausibility.amounts_in_another_unit(zeroed, previous, "annual_income_cents", 5.0)
    assert (compared, moved.select("account_id", "factor").rows()) == (2, [("A1", 0.1), ("A5", 0.0)])


def test_a_later_delivery_repeating_a_schedule_under_new_ids_is_refused_where_draws_cannot_tell(tmp_path: Path, cfg):
    # A young lake (no week of loans following draws): the draws cannot tell a second equal loan from a
    # schedule sent again, so the later delivery is refused as before, in one line naming both parts.
    _accounts_on(tmp_path, DAY)
    again = _landing_schedule("L1", 3).with_columns(pl.col("loan_id").str.replace("L", "Z"),
                                                    pl.col("installment_id").str.replace("^.", "Z"))
    _land_on(tmp_path, "installments", DAY, {"part-0.parquet": _landing_schedule("L1", 3), "part-1.parquet": again})
    with pytest.raises(errors.IngestError) as err:
        ingest.ingest_date(tmp_path, DAY, cfg, ["accounts", "installments"])
    text = str(err.value)
    assert text.startswith(f"installments dt={DAY} column=installment_id:") and "(part-1) repeats" in text, text
    assert not (tmp_path / "curated" / "installments").exists()


def test_a_loan_with_its_draw_in_another_unit_is_told_apart_from_a_resent_one():
    unbacked = pl.DataFrame({"loan_id": ["L1", "L2", "L3"], "account_id": ["A1", "A2", "A3"],
                             "principal_cents": [175_000, 10_000, 10_000]})
    # A1's draw is 10x below its loan, A2's 100x above; A3's draw is another amount altogether
    draws = pl.DataFrame({"account_id": ["A1", "A2", "A3", "A3"], "amount_cents": [17_500, 1_000_000, 9_000, None]})
    off = plausibility.loans_off_their_draw(unbacked, draws)
    assert off.select("loan_id", "amount_cents", "factor").rows() == [("L1", 17_500, 10), ("L2", 1_000_000, 100)]
