"""The synthetic portfolio generator: determinism, contract conformance, faults, realism."""

from __future__ import annotations

import datetime as dt
import dataclasses
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.config.location import as_location
from pipelines.contracts import control_totals
from pipelines.contracts.landing import CONTRACT, DATASETS
from pipelines.store import lake
from tools.generate import LATE_ZONE, release_late, write_portfolio
from tools.faults import FAULT_KINDS, Fault, REDELIVERY_FILE, parse_faults
from tools.simulate import GeneratorParams, PortfolioSimulation
from tools.generator_config import load_generator_config

END = dt.date(2026, 11, 25)
# Small enough to write three times in a few seconds, long enough (75 days) for first instalments to
# fall due and be paid, missed and cured.
SMALL = GeneratorParams(accounts=300, days=75, end_date=END, seed=3)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _landing(root: Path, dataset: str, date: dt.date, zone: str = "landing") -> Path:
    return lake.partition_dir(root, zone, dataset, date)


def _read(root: Path, dataset: str) -> pl.DataFrame:
    """Every landing partition of ``dataset`` with its business date as ``dt``."""
    return pl.concat(
        [
            pl.read_parquet(_landing(root, dataset, d) / "part-00000.parquet").with_columns(dt=pl.lit(d))
            for d in SMALL.dates
        ]
    )


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, cfg) -> Path:
    root = tmp_path_factory.mktemp("clean")
    write_portfolio(root, SMALL, cfg)
    return root


# --- determinism ----------------------------------------------------------------------------------


def test_same_arguments_give_byte_identical_files(clean: Path, tmp_path: Path, cfg) -> None:
    write_portfolio(tmp_path, SMALL, cfg)
    first, second = _files(clean), _files(tmp_path)
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


def test_another_seed_gives_other_data(cfg) -> None:
    # Guards the test above against a generator that ignores its seed.
    def last_events(seed: int) -> pl.DataFrame:
        params = GeneratorParams(accounts=200, days=5, end_date=END, seed=seed)
        return list(PortfolioSimulation(params, load_generator_config(), cfg.business.tz).run())[-1].frames["behaviour"]

    assert not last_events(1).equals(last_events(2))


# --- contract conformance ---------------------------------------------------------------------------


def test_every_day_has_every_dataset_complete_with_the_landing_schema(clean: Path) -> None:
    for dataset in DATASETS:
        for day in SMALL.dates:
            part = _landing(clean, dataset, day)
            assert lake.is_complete(part), part
            assert [p.name for p in lake.parquet_files(part)] == ["part-00000.parquet"]
            schema = pl.read_parquet_schema(part / "part-00000.parquet")
            assert dict(schema) == dict(CONTRACT[dataset].landing_schema()), (dataset, day)
    assert not (clean / LATE_ZONE).exists()


def test_ids_are_unique_and_rows_sorted_by_key(clean: Path) -> None:
    for dataset in ("behaviour", "installments", "payments"):
        frame = _read(clean, dataset)
        key = CONTRACT[dataset].key[0]
        assert frame[key].null_count() == 0
        assert frame[key].n_unique() == frame.height, dataset
    last = pl.read_parquet(_landing(clean, "accounts", END) / "part-00000.parquet")
    # --accounts N means N lines exist at the end date (closed ones stay in the snapshot)
    assert last.height == SMALL.accounts
    assert last["account_id"].is_sorted() and last["account_id"].n_unique() == last.height
    assert last["account_id"][0] == "A0000001"


def test_event_and_payment_times_fall_inside_the_shanghai_business_day(clean: Path) -> None:
    for dataset, column in (("behaviour", "event_time"), ("payments", "paid_at")):
        frame = _read(clean, dataset)
        local_day = frame[column].dt.convert_time_zone("Asia/Shanghai").dt.date()
        assert (local_day == frame["dt"]).all(), dataset


def test_amount_rules_of_behaviour(clean: Path) -> None:
    events = _read(clean, "behaviour")
    logins = events.filter(pl.col("event_type") == "login")
    money = events.filter(pl.col("event_type") != "login")
    assert logins["amount"].null_count() == logins.height
    assert money["amount"].null_count() == 0 and (money["amount"] > 0).all()
    assert set(events["event_type"].unique()) == {"login", "purchase", "refund", "cash_draw"}
    assert 0 < events["channel"].null_count() < events.height  # nullable, and exercised


def test_each_loan_schedule_splits_its_draw_exactly_and_falls_due_monthly_after_it(clean: Path) -> None:
    inst = _read(clean, "installments")
    draws = _read(clean, "behaviour").filter(pl.col("event_type") == "cash_draw")
    loans = inst.group_by("loan_id").agg(
        pl.col("account_id").first(),
        pl.col("dt").first(),
        principal=pl.col("principal_due").sum(),
        n=pl.len(),
        first_due=pl.col("due_date").min(),
        nos=pl.col("installment_no").sort(),
    )
    assert set(loans["n"].unique()) <= {3, 6, 12}
    assert all(nos.to_list() == list(range(1, len(nos) + 1)) for nos in loans["nos"])
    # one cash_draw event per loan: same account, same day, same amount to the cent
    joined = loans.join(draws, on=["account_id", "dt"], how="full", coalesce=True)
    assert joined.height == loans.height == draws.height
    assert (joined["principal"] == joined["amount"]).all()
    # the first instalment is due a calendar month after the draw (28-31 days), never on the draw day
    gap = (loans["first_due"] - loans["dt"]).dt.total_days()
    assert gap.min() >= 28 and gap.max() <= 31
    # interest on the balance at a monthly rate between 0.6% and 1.8% (riskline.yaml monthly_rate_bp)
    first = inst.filter(pl.col("installment_no") == 1).join(loans, on="loan_id")
    rate = (first["interest_due"].cast(pl.Float64) / first["principal"].cast(pl.Float64))
    assert rate.min() >= 0.0059 and rate.max() <= 0.0181
    assert (inst["principal_due"] > 0).all() and (inst["interest_due"] >= 0).all()


def test_payments_reference_loans_drawn_earlier_by_the_same_account(clean: Path) -> None:
    loans = _read(clean, "installments").select("loan_id", "account_id", drawn=pl.col("dt")).unique()
    payments = _read(clean, "payments")
    joined = payments.join(loans, on="loan_id", how="left", suffix="_loan")
    assert joined["drawn"].null_count() == 0
    assert (joined["account_id"] == joined["account_id_loan"]).all()
    assert (joined["drawn"] < joined["dt"]).all()
    assert (payments["amount"] > 0).all()


def test_limits_are_250_to_50000_and_skewed_small(clean: Path) -> None:
    accounts = pl.read_parquet(_landing(clean, "accounts", END) / "part-00000.parquet")
    limit = accounts["credit_limit"].cast(pl.Float64)
    assert limit.min() >= 250 and limit.max() <= 50_000
    # median 1,500 CNY in riskline.yaml: most lines are a few hundred to a few thousand
    assert 500 <= limit.median() <= 3_000
    assert (limit <= 10_000).mean() >= 0.9
    assert 0.45 <= accounts["annual_income"].is_not_null().mean() <= 0.75  # ~60% declare an income
    assert accounts["opened_on"].max() > SMALL.start_date  # lines keep opening through the window


def test_draws_never_exceed_available_credit_and_the_source_freezes_30_plus_dpd(cfg) -> None:
    params = GeneratorParams(accounts=2_000, days=120, end_date=END, seed=5)
    sim = PortfolioSimulation(params, load_generator_config(), cfg.business.tz)
    for day in sim.run():
        # outstanding includes today's draws: above the limit would mean a draw beyond available credit
        assert (sim.outstanding <= sim.limit_cents).all() and (sim.outstanding >= 0).all(), day.date
    truth = sim.truth()
    snapshot = day.frames["accounts"].join(truth.select("account_id", "dpd"), on="account_id")
    assert snapshot.filter(pl.col("dpd") >= 30)["status"].unique().to_list() == ["frozen"]
    assert snapshot.filter(pl.col("dpd").is_null())["status"].is_in(["active", "closed"]).all()
    assert day.dpd30_accounts == snapshot.filter(pl.col("dpd") >= 30).height > 0


# --- faults ---------------------------------------------------------------------------------------


def _fault_dates(clean: Path) -> dict[str, dt.date]:
    """One distinct date per kind, each with payments, purchases and instalments to corrupt."""
    ok = [
        d
        for d in SMALL.dates
        if pl.read_parquet(_landing(clean, "payments", d) / "part-00000.parquet").height >= 3
        and pl.read_parquet(_landing(clean, "installments", d) / "part-00000.parquet").height > 0
        and (pl.read_parquet(_landing(clean, "behaviour", d) / "part-00000.parquet")["event_type"]
             == "purchase").sum() >= 3
    ]
    assert len(ok) >= len(FAULT_KINDS)
    return dict(zip(FAULT_KINDS, ok[-len(FAULT_KINDS):], strict=True))


@pytest.fixture(scope="module")
def faulted(tmp_path_factory: pytest.TempPathFactory, cfg, clean: Path) -> tuple[Path, dict[str, dt.date]]:
    root = tmp_path_factory.mktemp("faulted")
    dates = _fault_dates(clean)
    faults = parse_faults(",".join(f"{k}@{d}" for k, d in dates.items()), SMALL)
    summary = write_portfolio(root, SMALL, cfg, faults=faults)
    assert set(summary.fault_rows) == {str(f) for f in faults}
    assert all(any(rows.values()) for rows in summary.fault_rows.values())
    return root, dates


def _pair(clean: Path, faulted: Path, dataset: str, day: dt.date, file: str = "part-00000.parquet"):
    return (pl.read_parquet(_landing(clean, dataset, day) / file),
            pl.read_parquet(_landing(faulted, dataset, day) / file))


def _check_duplicate_events(clean: Path, root: Path, day: dt.date) -> None:
    good, _ = _pair(clean, root, "behaviour", day)
    redelivered = pl.read_parquet(_landing(root, "behaviour", day) / REDELIVERY_FILE)
    assert redelivered.height == max(1, round(good.height * 0.01))
    original = good.join(redelivered, on="event_id", suffix="_again")
    assert original.height == redelivered.height  # same event_ids as the first delivery
    assert (original["channel"].fill_null("-") != original["channel_again"]).all()  # latest wins is visible
    assert original.select(pl.col("amount").eq_missing(pl.col("amount_again"))).to_series().all()


def _check_null_keys(clean: Path, root: Path, day: dt.date) -> None:
    good, bad = _pair(clean, root, "behaviour", day)
    assert bad["account_id"].null_count() == 3 and bad.drop("account_id").equals(good.drop("account_id"))
    good, bad = _pair(clean, root, "payments", day)
    assert bad["payment_id"].null_count() == 3
    assert bad.filter(pl.col("payment_id").is_not_null()).equals(good)  # redelivered copies, originals kept


def _check_negative_amounts(clean: Path, root: Path, day: dt.date) -> None:
    good, bad = _pair(clean, root, "behaviour", day)
    negative = bad.filter(pl.col("amount") < 0)
    assert negative.height == 3 and (negative["event_type"] == "purchase").all()
    assert bad.with_columns(pl.col("amount").abs()).equals(good)


def _check_unknown_event_types(clean: Path, root: Path, day: dt.date) -> None:
    good, bad = _pair(clean, root, "behaviour", day)
    assert (bad["event_type"] == "transfer").sum() == 3
    assert bad.filter(pl.col("event_type") == "transfer")["amount"].null_count() == 0  # the only defect
    assert bad.drop("event_type").equals(good.drop("event_type"))


def _check_unknown_loans(clean: Path, root: Path, day: dt.date) -> None:
    good, bad = _pair(clean, root, "payments", day)
    extra = bad.filter(~pl.col("payment_id").is_in(good["payment_id"].implode()))
    assert extra.height == 3 and bad.head(good.height).equals(good)
    assert extra["payment_id"].n_unique() == 3 and (extra["amount"] > 0).all()
    known_loans = _read(clean, "installments")["loan_id"]
    assert not extra["loan_id"].is_in(known_loans.implode()).any()
    accounts = pl.read_parquet(_landing(clean, "accounts", day) / "part-00000.parquet")
    assert extra["account_id"].is_in(accounts["account_id"].implode()).all()


def _check_corrupt_file(clean: Path, root: Path, day: dt.date) -> None:
    part = _landing(root, "behaviour", day)
    assert lake.is_complete(part)
    with pytest.raises(Exception):  # noqa: B017 - whatever the reader raises, it must not read
        pl.read_parquet(part / "part-00000.parquet")


def _check_dropped_column(clean: Path, root: Path, day: dt.date) -> None:
    good, bad = _pair(clean, root, "payments", day)
    assert "amount" not in bad.columns and bad.equals(good.drop("amount"))


def _check_wrong_type(clean: Path, root: Path, day: dt.date) -> None:
    good, bad = _pair(clean, root, "installments", day)
    assert bad.schema["principal_due"] == pl.String
    assert (bad["principal_due"] == good["principal_due"].cast(pl.String)).all()


def _check_late_partition(clean: Path, root: Path, day: dt.date) -> None:
    for dataset in DATASETS:
        assert not _landing(root, dataset, day).exists()
        assert lake.is_complete(_landing(root, dataset, day, zone=LATE_ZONE))
    released = release_late(root)
    assert released == [_landing(root, dataset, day) for dataset in DATASETS]
    for dataset in DATASETS:
        assert lake.is_complete(_landing(root, dataset, day))
        assert _files(_landing(root, dataset, day)) == _files(_landing(clean, dataset, day))
        # the drop's marker comes with it (declared control totals too: test_every_drop_declares...)
        assert lake.declared_manifest(_landing(root, dataset, day)) == lake.declared_manifest(_landing(clean, dataset, day))
    assert not any((root / LATE_ZONE).rglob("*.parquet"))
    assert release_late(root) == []  # nothing left to release


def _check_missing_success(clean: Path, root: Path, day: dt.date) -> None:
    part = _landing(root, "payments", day)
    assert (part / "part-00000.parquet").is_file() and not lake.is_complete(part)
    assert all(lake.is_complete(_landing(root, ds, day)) for ds in DATASETS if ds != "payments")


_CHECKS = {
    "duplicate_events": _check_duplicate_events,
    "null_keys": _check_null_keys,
    "negative_amounts": _check_negative_amounts,
    "unknown_event_types": _check_unknown_event_types,
    "unknown_loans": _check_unknown_loans,
    "corrupt_file": _check_corrupt_file,
    "dropped_column": _check_dropped_column,
    "wrong_type": _check_wrong_type,
    "late_partition": _check_late_partition,
    "missing_success": _check_missing_success,
}


def test_every_fault_kind_has_a_check() -> None:
    assert _CHECKS.keys() == FAULT_KINDS.keys()


@pytest.mark.parametrize("kind", list(FAULT_KINDS))
def test_fault_injects_what_the_catalogue_says(kind: str, clean: Path, faulted) -> None:
    root, dates = faulted
    _CHECKS[kind](clean, root, dates[kind])


def test_faults_leave_every_other_partition_byte_identical(clean: Path, faulted) -> None:
    root, dates = faulted
    touched = set(dates.values())
    for dataset in DATASETS:
        for day in SMALL.dates:
            if day not in touched:
                assert _files(_landing(root, dataset, day)) == _files(_landing(clean, dataset, day))
    summary = json.loads((root / "generator" / "summary.json").read_text())
    assert len(summary["faults"]) == len(FAULT_KINDS)


def test_parse_faults_reads_a_list() -> None:
    assert parse_faults("null_keys@2026-11-20, corrupt_file@2026-11-21", SMALL) == [
        Fault("null_keys", dt.date(2026, 11, 20)),
        Fault("corrupt_file", dt.date(2026, 11, 21)),
    ]
    assert parse_faults("") == [] and parse_faults(None) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus@2026-11-20", "unknown fault kind 'bogus'"),
        ("null_keys", "must look like KIND@YYYY-MM-DD"),
        ("null_keys@2026-13-01", "not a date"),
        ("null_keys@2026-11-20,null_keys@2026-11-20", "listed twice"),
        # SMALL covers 2026-09-12..2026-11-25 (75 days)
        ("null_keys@2026-09-11", "outside the generated window 2026-09-12..2026-11-25"),
        ("null_keys@2026-11-26", "outside the generated window"),
    ],
)
def test_parse_faults_rejects_bad_input_clearly(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_faults(text, SMALL)


def test_write_portfolio_rejects_a_fault_outside_the_window(tmp_path: Path, cfg) -> None:
    with pytest.raises(ValueError, match="outside the generated window"):
        write_portfolio(tmp_path, SMALL, cfg, faults=[Fault("null_keys", END + dt.timedelta(days=1))])
    assert not (tmp_path / "landing").exists()


# --- realism --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def book(cfg):
    """3,000 accounts x 200 days in memory: the truth plus every behaviour event."""
    params = GeneratorParams(accounts=3_000, days=200, end_date=END, seed=11)
    sim = PortfolioSimulation(params, load_generator_config(), cfg.business.tz)
    events, last = [], None
    for day in sim.run():
        events.append(day.frames["behaviour"].with_columns(dt=pl.lit(day.date)))
        last = day
    return params, sim.truth(), pl.concat(events), last


def test_book_ends_with_a_few_percent_30_plus_dpd(book) -> None:
    _, truth, _, last = book
    # Ant Group reported 1.56% 30+ DPD at end-2019; the calibration aims at ~2% (1-5% is plausible).
    assert 0.01 <= last.dpd30_rate <= 0.05
    assert 0.03 <= truth["shocked_on"].is_not_null().mean() <= 0.3


def test_shocked_accounts_default_far_more_often(book) -> None:
    _, truth, _, _ = book
    ever30 = truth.group_by(shocked=pl.col("shocked_on").is_not_null()).agg(
        rate=pl.col("first_dpd30_on").is_not_null().mean()
    )
    rate = dict(ever30.iter_rows())
    # hardship is the main road to 30+ DPD: shocked accounts pay 15% of instalments, healthy ones ~97%
    assert rate[True] >= 5 * rate[False]


def test_behaviour_of_shocked_accounts_shifts_before_their_first_missed_payment(book) -> None:
    params, truth, events, _ = book
    cohort = truth.filter(
        pl.col("shocked_on") >= params.start_date + dt.timedelta(days=30),
        pl.col("first_missed_on") > pl.col("shocked_on") + dt.timedelta(days=7),
    ).select("account_id", "shocked_on", "first_missed_on")
    assert cohort.height >= 50
    window = (
        pl.when(pl.col("dt").is_between(pl.col("shocked_on") - dt.timedelta(days=30), pl.col("shocked_on"),
                                        closed="left"))
        .then(pl.lit("before"))
        .when(pl.col("dt").is_between(pl.col("shocked_on"), pl.col("first_missed_on"), closed="left"))
        .then(pl.lit("after"))
    )
    seen = events.join(cohort, on="account_id").with_columns(window=window).drop_nulls("window")
    account_days = {
        "before": 30 * cohort.height,
        "after": (cohort["first_missed_on"] - cohort["shocked_on"]).dt.total_days().sum(),
    }

    def per_day(kind: str, when: str) -> float:
        return seen.filter(pl.col("event_type") == kind, pl.col("window") == when).height / account_days[when]

    logins = seen.filter(pl.col("event_type") == "login")
    night = logins.group_by("window").agg(
        (pl.col("event_time").dt.convert_time_zone("Asia/Shanghai").dt.hour() < 6).mean()
    )
    night_share = dict(night.iter_rows())
    # riskline.yaml: purchases x0.4, cash draws x5, logins x1.6, night logins 8% -> 20% after a shock,
    # all while payments still go out on time; the margins leave room for sampling noise.
    assert per_day("purchase", "after") < 0.7 * per_day("purchase", "before")
    assert per_day("cash_draw", "after") > 1.5 * per_day("cash_draw", "before")
    assert per_day("login", "after") > 1.2 * per_day("login", "before")
    assert night_share["after"] > 1.5 * night_share["before"]


def test_protected_attributes_carry_no_latent_risk(book, cfg) -> None:
    params, truth, _, last = book
    people = last.frames["accounts"].join(truth, on="account_id")
    for attribute in ("gender", "marital_status"):
        means = people.group_by(attribute).agg(pl.col("base_risk").mean(), n=pl.len())
        means = means.filter(pl.col("n") >= 200)
        # base risk is N(0, 1) drawn independently: group means of >= 200 accounts stay within ~4 SE
        assert means["base_risk"].abs().max() < 4 / np.sqrt(200), attribute


def test_a_book_with_withheld_and_unfinished_drops_on_an_object_store_matches_the_local_one(tmp_path: Path, cfg) -> None:
    # fsspec's memory:// file system has object-store semantics (no folder rename); S3 itself: tests/e2e.
    import uuid

    params = GeneratorParams(accounts=200, days=5, end_date=dt.date(2026, 6, 30), seed=7)
    faults = parse_faults("late_partition@2026-06-30,missing_success@2026-06-29", params)
    remote = as_location(f"memory://generate-{uuid.uuid4().hex}/riskline")
    for root in (tmp_path, remote):
        write_portfolio(root, params, cfg, faults=faults)
    day, unfinished = dt.date(2026, 6, 30), dt.date(2026, 6, 29)
    for root in (tmp_path, remote):
        assert not lake.is_complete(_landing(root, "payments", unfinished))
        assert lake.exists(_landing(root, "payments", unfinished))  # the files, without _SUCCESS
        assert lake.is_complete(_landing(root, "accounts", day, LATE_ZONE))
        assert len(release_late(root)) == len(DATASETS)
        assert not lake.exists(_landing(root, "accounts", day, LATE_ZONE))
    for name in DATASETS:
        for date in params.dates:
            local, there = _landing(tmp_path, name, date), _landing(remote, name, date)
            assert lake.is_complete(local) == lake.is_complete(there), (name, date)
            if lake.is_complete(local):
                assert [f.read_bytes() for f in lake.parquet_files(local)] == \
                    [f.read_bytes() for f in lake.parquet_files(there)], (name, date)


# --- profiles ---------------------------------------------------------------------------------------


def _digest(root: Path) -> str:
    """Every file's path and bytes; a ``_SUCCESS`` counts as the empty marker it was before drops declared
    their control totals (checked apart)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            content = b"" if path.name == lake.SUCCESS else path.read_bytes()
            digest.update(str(path.relative_to(root)).encode() + b"\0" + content)
    return digest.hexdigest()


def test_default_profile_writes_the_same_bytes_as_before_profiles_existed(tmp_path: Path, cfg) -> None:
    # The digest of this book (landing and generator/ files) as written by the generator before the card
    # profile was added (commit e0ea04b): the demo's data must not move by a byte.
    params = GeneratorParams(accounts=300, days=40, end_date=dt.date(2026, 11, 20), seed=5, profile="default")
    write_portfolio(tmp_path, params, cfg)
    assert _digest(tmp_path) == "22c385443d2970c2d26fdd9542f1f35c672514b162f71696bcb1873f070d35e6"


def test_every_drop_declares_the_rows_and_sums_it_holds(tmp_path: Path, cfg) -> None:
    """``_SUCCESS`` carries the control totals of the files beside it (what ingest checks exactly), as
    ``riskline generate`` writes it; ``control_totals=False`` is the plain marker of an upstream that declares
    nothing."""
    params = GeneratorParams(accounts=200, days=5, end_date=END, seed=5)  # the library's default: plain
    late = Fault("late_partition", END)  # a withheld day keeps its totals when released
    write_portfolio(tmp_path / "declared", dataclasses.replace(params, control_totals=True), cfg, faults=[late])
    assert len(release_late(tmp_path / "declared")) == len(DATASETS)
    write_portfolio(tmp_path / "plain", params, cfg)
    for name in DATASETS:
        for day in params.dates:
            part = lake.partition_dir(tmp_path / "declared", "landing", name, day)
            frame = pl.read_parquet(lake.parquet_files(part))
            declared = json.loads((part / lake.SUCCESS).read_bytes())
            assert declared == json.loads(control_totals.manifest_bytes(
                control_totals.totals_of(frame, CONTRACT[name]))), (name, day)
            assert declared["rows"] == frame.height
            plain = lake.partition_dir(tmp_path / "plain", "landing", name, day) / lake.SUCCESS
            assert plain.read_bytes() == b""
    assert json.loads((part / lake.SUCCESS).read_bytes())["sums"].keys() == {"amount"}  # payments


CARD = GeneratorParams(accounts=400, days=90, end_date=END, seed=3, profile="card")


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory, cfg) -> Path:
    root = tmp_path_factory.mktemp("card")
    write_portfolio(root, CARD, cfg)
    return root


def _read_card(root: Path, dataset: str) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(_landing(root, dataset, d) / "part-00000.parquet").with_columns(dt=pl.lit(d))
                      for d in CARD.dates], how="diagonal_relaxed")


def test_card_accounts_carry_no_optional_column(card: Path) -> None:
    columns = pl.read_parquet_schema(_landing(card, "accounts", END) / "part-00000.parquet")
    assert list(columns) == [c.name for c in CONTRACT["accounts"].required]


def test_card_statements_fall_on_cycle_days_1_to_31_with_a_minimum_payment_due_after_grace(card: Path, cfg) -> None:
    import calendar

    statements = _read_card(card, "installments")
    assert statements["installment_no"].unique().to_list() == [1]  # one minimum payment per statement
    assert statements["loan_id"].str.starts_with("S").all()
    assert ((statements["due_date"] - statements["dt"]).dt.total_days() == load_generator_config().card.grace_days).all()
    # Each account is billed on one cycle day c, on day min(c, days in the month): so a 31-day month's 31st
    # and the 29th-31st of a short month carry only some cycles.
    days = statements.select("account_id", "dt").unique().with_columns(
        dom=pl.col("dt").dt.day(),
        month_end=pl.col("dt").map_elements(lambda d: calendar.monthrange(d.year, d.month)[1], pl.Int64))
    per_account = days.group_by("account_id").agg(
        pl.col("dom").filter(pl.col("dom") < pl.col("month_end")).unique().alias("inside"))
    assert (per_account["inside"].list.len() <= 1).all()
    assert days["dom"].n_unique() >= 29
    # revolving: balances carried past a statement are charged interest on the next one
    assert (statements["interest_due"] > 0).sum() > 0
    # the minimum is 5% of the balance with a 50 CNY floor: never below the floor unless the whole balance
    due = statements["principal_due"] + statements["interest_due"]
    assert due.min() > 0


def test_card_payments_settle_minimums_partly_or_fully_and_behaviour_is_sparse(card: Path) -> None:
    statements = _read_card(card, "installments").with_columns(
        due=pl.col("principal_due") + pl.col("interest_due"))
    payments = _read_card(card, "payments")
    paid = payments.group_by("loan_id").agg(pl.col("amount").sum().alias("paid"), pl.len().alias("n"))
    settled = statements.join(paid, on="loan_id", how="left").with_columns(pl.col("paid").fill_null(0))
    assert (settled["paid"] <= settled["due"]).all()  # the landed amount settles the minimum, no more
    partial = settled.filter((pl.col("paid") > 0) & (pl.col("paid") < pl.col("due")))
    assert partial.height > 0, "some statements only partly paid"
    assert settled.filter(pl.col("paid") == pl.col("due")).height > partial.height
    # sparse behaviour: far under one event per account and day
    events = _read_card(card, "behaviour")
    assert events.height / (CARD.accounts * CARD.days) < 0.1
    # payments come on due dates (and cures of past-due minimums): a day's count follows the schedule
    on_due = payments.join(statements.select("loan_id", "due_date"), on="loan_id").filter(
        pl.col("dt") == pl.col("due_date"))
    assert on_due.height > 0.8 * payments.height


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown profile 'mortgage'"):
        GeneratorParams(accounts=1, days=1, end_date=END, profile="mortgage")
