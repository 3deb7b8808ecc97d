from __future__ import annotations

import datetime as dt
import decimal
import hashlib
from pathlib import Path

import polars as pl
import pytest

from pipelines import ingest, lake
from pipelines.contract import CONTRACT, valid_key

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
    out = ingest.conform_to_contract(frame, CONTRACT["behaviour"])
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
    out = ingest.conform_to_contract(_behaviour(amount=amount), CONTRACT["behaviour"], {"amount": 1_000_000})
    assert out["amount_cents"].to_list() == cents


def test_integer_money_is_read_as_cents_only_when_the_name_declares_it():
    frame = _behaviour().drop("amount").with_columns(pl.Series("amount_cents", [None, 1230, 7], dtype=pl.Int32))
    out = ingest.conform_to_contract(frame, CONTRACT["behaviour"], {"amount": 1_000_000})
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
    with pytest.raises(ingest.ContractError, match=fragment) as err:
        ingest.conform_to_contract(frame, CONTRACT["behaviour"], {"amount": bound} if bound else None)
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
    got_data, got_side, got_refused = ingest.account_for_entries(entries)
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
    with pytest.raises(ingest.ContractError) as err:
        ingest.conform_to_contract(_behaviour(**override), CONTRACT["behaviour"])
    assert err.value.column == column


def test_naive_and_foreign_zone_timestamps_become_utc():
    shanghai = pl.Series([dt.datetime(2026, 11, 20, 10, 0)] * 3).dt.replace_time_zone("Asia/Shanghai")
    out = ingest.conform_to_contract(_behaviour(event_time=shanghai), CONTRACT["behaviour"])
    # 10:00 in Shanghai (UTC+8) is 02:00 UTC: converting zones is lossless, so it is accepted.
    assert out["event_time"][0] == dt.datetime(2026, 11, 20, 2, tzinfo=UTC)


def test_keep_latest_delivery_prefers_later_file_then_later_row():
    frame = pl.DataFrame(
        {
            "event_id": ["e1", "e1", "e2", "e1", None],
            "channel": ["first", "second", "x", "third-file", "nullkey"],
            "_file_order": [0, 0, 0, 1, 0],
            "_row_order": [0, 1, 2, 0, 3],
        }
    )
    out, dropped = ingest.keep_latest_delivery(frame, ["event_id"])
    assert dropped == 2
    assert out.filter(pl.col("event_id") == "e1")["channel"].to_list() == ["third-file"]
    assert out["event_id"].null_count() == 1  # null keys are kept for quarantine, not silently dropped


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
    out, dropped = ingest.keep_latest_delivery(frame, ["payment_id"])
    # Two empty ids are two payments, " P1" is not "P1": every row survives for validation to quarantine.
    assert dropped == 0 and sorted(out["amount"].to_list()) == [1, 2, 3, 4, 5, 6]


def test_split_row_defects_follows_the_validation_reasons():
    # The rules live in the validation suites (tests/unit/test_validate.py); ingest only splits by reason.
    frame = ingest.conform_to_contract(_behaviour(), CONTRACT["behaviour"])
    reasons = pl.Series(["", "null_event_id;negative_amount", "unknown_event_type"])
    good, bad = ingest.split_row_defects(frame, reasons)
    assert good["event_id"].to_list() == ["e1"]
    assert bad[ingest.QUARANTINE_REASON].to_list() == ["null_event_id;negative_amount", "unknown_event_type"]
    assert bad.drop(ingest.QUARANTINE_REASON).columns == frame.columns


def test_split_row_defects_refuses_misaligned_reasons():
    frame = ingest.conform_to_contract(_behaviour(), CONTRACT["behaviour"])
    with pytest.raises(ValueError, match="2 quarantine reasons for 3 rows"):
        ingest.split_row_defects(frame, pl.Series(["", ""]))


# --- the I/O entry point ----------------------------------------------------------------------------


def test_ingest_publishes_curated_and_quarantine(tmp_path: Path, cfg):
    _land(tmp_path, "accounts", {"a.parquet": _accounts()})  # behaviour's account ids are checked against it
    _land(tmp_path, "behaviour", {"a.parquet": _behaviour(event_type=["login", "purchase", "transfer"])})
    (res,) = ingest.ingest_date(tmp_path, DAY, cfg, ["behaviour"])
    assert (res.rows_in, res.rows_curated, res.quarantined) == (3, 2, 1)
    # One bad row of three is within validation.warning_min_rows (5): quarantined, not fatal.
    assert res.quarantine_reasons == {"unknown_event_type": 1}
    curated = lake.read_partition(tmp_path / "curated" / "behaviour" / "dt=2026-11-20")
    assert curated["event_id"].to_list() == ["e1", "e2"]
    q = lake.read_partition(tmp_path / "quarantine" / "behaviour" / "dt=2026-11-20")
    assert q["event_id"].to_list() == ["e3"]


def test_reingest_is_byte_identical_and_clears_stale_quarantine(tmp_path: Path, cfg):
    _land(tmp_path, "accounts", {"a.parquet": _accounts()})
    part = _land(tmp_path, "behaviour", {"a.parquet": _behaviour(event_type=["login", "purchase", "transfer"])})
    ingest.ingest_date(tmp_path, DAY, cfg, ["behaviour"])
    first = _digests(tmp_path / "curated")
    ingest.ingest_date(tmp_path, DAY, cfg, ["behaviour"])
    assert _digests(tmp_path / "curated") == first
    # Upstream redelivers a clean file: the quarantine partition of that date must disappear.
    (part / "a.parquet").unlink()
    _land(tmp_path, "behaviour", {"a.parquet": _behaviour()})
    ingest.ingest_date(tmp_path, DAY, cfg, ["behaviour"])
    assert not (tmp_path / "quarantine" / "behaviour" / "dt=2026-11-20").exists()


def test_optional_columns_absent_are_null_and_protected_carried(tmp_path: Path, cfg):
    _land(tmp_path, "accounts", {"a.parquet": _accounts()})
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
        ("corrupt", "file=a.parquet: file is not readable Parquet"),
        ("zero_byte", "file=a.parquet: file is not readable Parquet"),
        ("dropped_column", "column=amount: required column(s) missing: amount"),
        ("wrong_type", "column=amount: type String cannot be cast"),
    ],
)
def test_contract_failures_name_dataset_partition_file_column(tmp_path: Path, cfg, setup: str, fragment: str):
    if setup != "not_delivered":
        part = _land(tmp_path, "behaviour", {"a.parquet": _behaviour()}, success=setup != "missing_success")
    if setup == "corrupt":
        (part / "a.parquet").write_bytes(b"this is not parquet")
    elif setup == "zero_byte":
        (part / "a.parquet").write_bytes(b"")
    elif setup == "dropped_column":
        _behaviour().drop("amount").write_parquet(part / "a.parquet")
    elif setup == "wrong_type":
        _behaviour(amount=["1", "2", "3"]).write_parquet(part / "a.parquet")
    with pytest.raises(ingest.IngestError) as err:
        ingest.ingest_date(tmp_path, DAY, cfg, ["behaviour"])
    assert str(err.value).startswith("behaviour dt=2026-11-20")
    assert fragment in str(err.value)
    assert "->" in str(err.value), "the error must say what to do next"


def test_one_bad_dataset_leaves_every_curated_partition_untouched(tmp_path: Path, cfg):
    _land(tmp_path, "accounts", {"a.parquet": _accounts()})
    _land(tmp_path, "behaviour", {"a.parquet": _behaviour()})
    ingest.ingest_date(tmp_path, DAY, cfg, ["accounts", "behaviour"])
    before = _digests(tmp_path / "curated")
    # Next delivery: accounts changed, behaviour corrupt -> nothing of that date may change.
    _land(tmp_path, "accounts", {"a.parquet": _accounts().with_columns(pl.lit("closed").alias("status"))})
    (tmp_path / "landing" / "behaviour" / "dt=2026-11-20" / "a.parquet").write_bytes(b"garbage")
    with pytest.raises(ingest.IngestError):
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
    with pytest.raises(ingest.IngestError, match="unknown dataset"):
        ingest.ingest_date(tmp_path, DAY, cfg, ["loans"])
