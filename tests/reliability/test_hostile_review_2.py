"""Second hostile review (of the checks added for issue 14): the money unit ratio, rows resent under new ids,
and credit on an overdue account holding it. Every test here reproduced a confirmed gap and is
``xfail(strict=True)`` until its gap was fixed. Fixed since: a cent a month on a closed loan no longer renews the credit hold (counted from the first unapplied payment);
instalments in jiao stop the ingest (most loans over their line: ``ingest.max_share_of_loans_over_line``); cents in
part of the rows move a decile (``money_unit_drift`` compares the median and both outer deciles); schedules re-sent
under new ids, within a drop with interest a cent off or yesterday's in tonight's drop, have no cash draw left to
account for them (``loans_without_a_draw``: a loan is one draw).

Night-level cases reuse the pattern of ``test_hostile_review.py`` (a private copy of the published lake
whose NEXT drop is changed, compared account by account with the clean run); the rest call the pure
functions on small frames.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from reliability_support import PublishedLake, deliver, landing
from test_hostile_review import _harsher_than_clean

from pipelines.config.settings import RisklineConfig
from pipelines.domain.plausibility import money_unit_drift
from pipelines.domain.pending_payments import unapplied_credit_holds
from pipelines.errors import IngestError
from pipelines.stages import ingest
from pipelines.store import zones
from tools.faults import DATA_FILE

def _cents(values: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"amount_cents": values}, schema={"amount_cents": pl.Int64()})


HISTORY = _cents([5_000 + 100 * i for i in range(200)])  # 50..249 CNY, median about 150 CNY


# --- 1. money unit ratio --------------------------------------------------------------------------------


def test_instalments_in_jiao_never_cut_a_customer(
    published_lake: PublishedLake, clean_next_night: Path, quiet_cfg: RisklineConfig, tmp_path: Path,
):
    def jiao(root: Path) -> None:
        frame = landing(published_lake.root, "installments", published_lake.next_day)
        tenfold = [(pl.col(c).cast(pl.Float64) * 10).alias(c) for c in ("principal_due", "interest_due")]
        deliver(root, "installments", published_lake.next_day, {DATA_FILE: frame.with_columns(tenfold)})

    problems = _harsher_than_clean(published_lake, clean_next_night, tmp_path / "lake", quiet_cfg, jiao)
    assert not problems, "\n".join(problems)


def test_cents_in_two_rows_of_five_are_seen(quiet_cfg: RisklineConfig):
    rows = HISTORY.get_column("amount_cents").to_list()[:100]
    mixed = _cents([v * 100 if i % 5 < 2 else v for i, v in enumerate(rows)])
    assert money_unit_drift(mixed, HISTORY, ["amount_cents"], quiet_cfg.ingest.money_unit_ratio)


# --- 2. rows resent under new ids -------------------------------------------------------------------------


@pytest.fixture()
def next_drop(published_lake: PublishedLake, tmp_path: Path) -> tuple[Path, dt.date]:
    """A private copy of the published lake, whose NEXT drop a test changes, and NEXT."""
    root = tmp_path / "lake"
    shutil.copytree(published_lake.root, root, symlinks=True)
    return root, published_lake.next_day


def _second_equal_loan(root: Path, day: dt.date, draw: str | None) -> str:
    """A later delivery books a second loan equal to one of tonight's (same account, amounts and dates,
    its own ids): a customer who drew the same amount twice. ``draw``: with ``"own"`` cash draw in the
    behaviour drop (a second after the first), with a ``"copy"`` of the first loan's draw (the same
    facts under another event_id), or without one (None): then it is the first loan's schedule re-sent.
    Returns the second loan's id."""
    schedule = landing(root, "installments", day)
    first = schedule.get_column("loan_id").sort()[0]
    second = schedule.filter(pl.col("loan_id") == first).with_columns(
        pl.col("loan_id").str.replace("^.", "Z"), pl.col("installment_id").str.replace("^.", "Z"))
    deliver(root, "installments", day, {"part-0.parquet": schedule, "part-1.parquet": second})
    if draw is not None:
        events = landing(root, "behaviour", day)
        account = second.get_column("account_id")[0]
        principal = second.get_column("principal_due").cast(pl.Float64).sum()
        draws = events.filter((pl.col("account_id") == account) & (pl.col("event_type") == "cash_draw")
                              & (pl.col("amount").cast(pl.Float64) == principal)).head(1)
        assert draws.height == 1, "the first loan has its draw"
        later = pl.duration(seconds=1 if draw == "own" else 0)
        deliver(root, "behaviour", day, {DATA_FILE: pl.concat([events, draws.with_columns(
            pl.col("event_id").str.replace("^.", "Z"), pl.col("event_time") + later)])})
    return second.get_column("loan_id")[0]


def test_a_second_equal_loan_in_a_later_delivery_is_curated_when_it_has_its_own_draw(
    next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig,
):
    # Hostile review 2: a later delivery's rows equal to an earlier one's but for their ids stopped the
    # ingest, also for two real loans of one customer. The draws tell them apart.
    root, day = next_drop
    second = _second_equal_loan(root, day, draw="own")
    ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    curated = zones.scan_curated(root, "installments", day, dates=[day]).collect()
    assert second in set(curated["loan_id"])


@pytest.mark.parametrize("draw", [None, "copy"], ids=["no_draw", "a_copy_of_the_first_draw"])
def test_a_second_equal_loan_without_a_draw_is_refused_as_resent(
    next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig, draw: str | None,
):
    # Review 28 (F3): a draw repeated under another id in one drop is one draw (its copy is quarantined as
    # same_as_another_event), so it cannot back a second loan either.
    root, day = next_drop
    second = _second_equal_loan(root, day, draw=draw)
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    assert f"installments dt={day} file=part-0.parquet,+1 column=loan_id: 1 of " in str(err.value), str(err.value)
    assert second in str(err.value) and "; its draws: " in str(err.value), str(err.value)  # one, the first loan's


def test_schedules_resent_under_new_ids_with_interest_one_cent_off_never_cut_a_customer(
    published_lake: PublishedLake, clean_next_night: Path, quiet_cfg: RisklineConfig, tmp_path: Path,
):
    day = published_lake.next_day

    def resent(root: Path) -> None:
        frame = landing(published_lake.root, "installments", day)
        again = frame.with_columns(pl.col("loan_id", "installment_id").str.replace("^.", "Z"),
                                   (pl.col("interest_due").cast(pl.Float64) + 0.01).cast(frame.schema["interest_due"]))
        deliver(root, "installments", day, {"part-0.parquet": frame, "part-1.parquet": again})

    problems = _harsher_than_clean(published_lake, clean_next_night, tmp_path / "lake", quiet_cfg, resent)
    assert not problems, "\n".join(problems)


def test_schedules_resent_under_new_ids_stop_the_ingest_in_one_line(
    next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig,
):
    root, day = next_drop
    tonight = landing(root, "installments", day)
    again = landing(root, "installments", day - dt.timedelta(days=1)).with_columns(
        pl.col("loan_id", "installment_id").str.replace("^.", "Z"))
    deliver(root, "installments", day, {DATA_FILE: pl.concat([tonight, again.select(tonight.columns)])})
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    text = str(err.value)
    resent = again.get_column("loan_id").n_unique()
    assert text.startswith(f"installments dt={day} ") and "column=loan_id" in text and "\n" not in text, text
    assert f"{resent:,} of {resent + tonight.get_column('loan_id').n_unique():,} loans have no cash draw" in text, text
    assert "-> ask upstream whether these schedules re-send loans already delivered" in text, text
    assert not zones.curated_dates(root, "installments")[-1] == day  # nothing of the date was written


def _one_loan_times_ten(root: Path, day: dt.date, largest: bool, draw: str) -> str:
    """Multiply one of tonight's loans by 10 (the one largest or smallest against its line); its cash draw
    is left as it is, nulled or multiplied too (``draw``). Returns the loan id."""
    schedule = landing(root, "installments", day)
    lines = landing(root, "accounts", day).select("account_id", pl.col("credit_limit").cast(pl.Float64))
    loans = (schedule.group_by("loan_id", "account_id").agg(pl.col("principal_due").cast(pl.Float64).sum())
             .join(lines, on="account_id").with_columns((pl.col("principal_due") / pl.col("credit_limit")).alias("r"))
             .sort("r", "loan_id", descending=[largest, False]))
    loan, account, principal = loans.row(0)[:3]
    deliver(root, "installments", day, {DATA_FILE: schedule.with_columns(
        pl.when(pl.col("loan_id") == loan).then(pl.col("principal_due").cast(pl.Float64) * 10)
        .otherwise(pl.col("principal_due").cast(pl.Float64)).cast(schedule.schema["principal_due"]))})
    events = landing(root, "behaviour", day)
    mine = (pl.col("account_id") == account) & (pl.col("event_type") == "cash_draw")
    amount = pl.col("amount").cast(pl.Float64)
    new = {"same": amount, "null": pl.lit(None, pl.Float64), "x10": amount * 10}[draw]
    deliver(root, "behaviour", day, {DATA_FILE: events.with_columns(
        pl.when(mine & (amount == principal)).then(new).otherwise(amount).cast(events.schema["amount"]))})
    return loan


@pytest.mark.parametrize("draw", ["same", "null", "x10"])
def test_one_loan_in_another_unit_stops_the_ingest_whatever_its_draw_says(
    next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig, draw: str,
):
    # Hostile review 3: one loan x10 passed when its cash draw's amount was null (it "backed any loan") or
    # x10 too (one writer in jiao for the customer); a loan of twice its line or more is a unit error.
    root, day = next_drop
    loan = _one_loan_times_ten(root, day, largest=True, draw=draw)
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    text = str(err.value)
    assert text.startswith(f"installments dt={day} file=part-") and loan in text, text
    assert "column=principal_due: 1 of " in text, text
    assert "2x their account's credit limit or more" in text and "\n" not in text, text


def test_one_loan_in_another_unit_within_its_line_is_named_a_unit_error_not_a_resent_schedule(
    next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig,
):
    # Hostile review 3: the draw check told upstream to remove re-sent schedules; the draw is there, 10x off.
    root, day = next_drop
    loan = _one_loan_times_ten(root, day, largest=False, draw="same")
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    text = str(err.value)
    assert text.startswith(f"installments dt={day} file=") and f"{loan} " in text and "(10x)" in text, text
    assert "column=principal_due: 1 loan(s) differ from a cash draw of their account by a power of ten" in text, text
    assert "re-send" not in text, text


def _yuan_as_cents(frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Four payments in a second file whose writer sends ``amount_cents`` holding whole yuan (45 for 45.16)."""
    moved = frame.tail(4)
    return {"part-0.parquet": frame.head(frame.height - 4), "part-1.parquet": moved.with_columns(
        pl.col("amount").cast(pl.Float64).floor().cast(pl.Int64).alias("amount_cents")).drop("amount")}


def _every_third_divided(by: int) -> Callable[[pl.DataFrame], dict[str, pl.DataFrame]]:
    def change(frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
        amount = pl.col("amount").cast(pl.Float64)
        odd = pl.int_range(pl.len()) % 3 == 0
        return {DATA_FILE: frame.with_columns(pl.when(odd).then(amount / by).otherwise(amount)
                                              .round(2).cast(frame.schema["amount"]))}
    return change


@pytest.mark.parametrize("change", [_yuan_as_cents, _every_third_divided(10)],
                         ids=["yuan_as_cents_in_a_second_file", "a_third_in_jiao"])
def test_payments_in_another_unit_in_part_of_the_drop_stop_the_ingest(
    next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig,
    change: Callable[[pl.DataFrame], dict[str, pl.DataFrame]],
):
    # Hostile review 3 (F1-F3): too few rows to move a decile, or 10x (under money_unit_ratio): each payment
    # was applied as a fraction of what was paid, exit 0, the payers cut and queued.
    root, day = next_drop
    deliver(root, "payments", day, change(landing(root, "payments", day)))
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    text = str(err.value)
    assert text.startswith(f"payments dt={day} file=part-") and "column=amount: " in text and "\n" not in text, text
    assert "payments are an instalment of their loan 10x, 100x or 1000x off" in text, text


@pytest.mark.parametrize("how", ["in_the_drop", "corrected_by_a_later_delivery"])
def test_credit_lines_in_another_unit_stop_the_ingest(
    next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig, how: str,
):
    # Hostile review 3 (F4): three lines /10, inside the product bounds, moved no decile: exit 0, the three
    # customers cut from the wrong line (1,500 -> 100). Also when a later delivery "corrects" them.
    root, day = next_drop
    snapshot = landing(root, "accounts", day)
    three = snapshot.filter(pl.col("credit_limit").cast(pl.Float64) >= 500).head(3).get_column("account_id")
    low = pl.col("account_id").is_in(three.implode())
    lowered = snapshot.with_columns(pl.when(low).then(pl.col("credit_limit").cast(pl.Float64) / 10)
                                    .otherwise(pl.col("credit_limit").cast(pl.Float64))
                                    .cast(snapshot.schema["credit_limit"]))
    files = ({DATA_FILE: lowered} if how == "in_the_drop"
             else {"part-0.parquet": snapshot, "part-1.parquet": lowered.filter(low)})
    deliver(root, "accounts", day, files)
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    text = str(err.value)
    assert text.startswith(f"accounts dt={day} file=part-"), text
    assert "column=credit_limit: 3 credit line(s) are 5x or more off the account's last known line" in text, text
    assert all(a in text for a in three) and "\n" not in text, text


def _incomes(snapshot: pl.DataFrame, factor: float, accounts: pl.Series | None = None) -> pl.DataFrame:
    """``snapshot`` with ``annual_income`` times ``factor`` (of ``accounts`` only, when given)."""
    income = pl.col("annual_income").cast(pl.Float64)
    hit = pl.lit(True) if accounts is None else pl.col("account_id").is_in(accounts.implode())
    return snapshot.with_columns(pl.when(hit).then(income * factor).otherwise(income)
                                 .cast(snapshot.schema["annual_income"]).alias("annual_income"))


@pytest.mark.parametrize("factor", [0.1, 0], ids=["a_tenth", "zeroed"])
def test_incomes_in_another_unit_stop_the_ingest(next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig,
                                                 factor: float):
    # Review 28, F6: annual_income /10 across the whole snapshot, 10x, under the 20x drift ratio (which sees
    # it only against the recent days' medians): exit 0, 4 increases withheld by the affordability cap. The
    # per-account check of the lines now judges incomes too, against each account's last known income.
    # Review 28R, N4: incomes mapped to 0 across the snapshot did the same: a positive income zeroed moved.
    root, day = next_drop
    snapshot = landing(root, "accounts", day)
    deliver(root, "accounts", day, {DATA_FILE: _incomes(snapshot, factor)})
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    text = str(err.value)
    assert text.startswith(f"accounts dt={day} file={DATA_FILE} column=annual_income: "), text
    assert "annual income(s) are 5x or more off the account's last known income (of " in text, text
    first = snapshot.filter(pl.col("annual_income").is_not_null()).sort("account_id").row(0, named=True)
    was = f"{first['annual_income']:,.2f}"  # the sample shows both values: last known -> tonight
    assert f"{first['account_id']} {was} -> {float(first['annual_income']) * factor:,.2f} CNY" in text, text
    assert "raise ingest.max_share_of_incomes_in_another_unit" in text and "\n" not in text, text
    assert day not in zones.curated_dates(root, "accounts")


def test_a_few_incomes_re_declared_tenfold_are_curated(next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig):
    # a genuine re-declaration of one account may be large: two in a night (under 3) are not a unit
    root, day = next_drop
    snapshot = landing(root, "accounts", day)
    two = snapshot.filter(pl.col("annual_income").is_not_null()).sort("account_id").get_column("account_id").head(2)
    deliver(root, "accounts", day, {DATA_FILE: _incomes(snapshot, 10, two)})
    ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    assert day in zones.curated_dates(root, "accounts")


# --- 3. credit on an overdue account ---------------------------------------------------------------------


def test_a_cent_a_month_on_a_closed_loan_does_not_shield_large_arrears(quiet_cfg: RisklineConfig):
    as_of = dt.date(2026, 11, 30)
    credit = pl.DataFrame({"account_id": ["A1"] * 12, "paid_on": [as_of - dt.timedelta(days=29 * i) for i in range(12)],
                           "unallocated_cents": [1] * 12})
    accounts = pl.DataFrame({"account_id": ["A1"], "overdue_cents": [5_000_000]})
    held = unapplied_credit_holds(credit, accounts, as_of, quiet_cfg.pending_payments.max_hold_days)
    assert held.is_empty(), f"held for {held['pending_cents'].sum()} cent(s) since {held['pending_since'][0]}"


def test_yesterdays_schedules_resent_tonight_under_new_ids_never_cut_a_customer(
    published_lake: PublishedLake, clean_next_night: Path, quiet_cfg: RisklineConfig, tmp_path: Path,
):
    day = published_lake.next_day

    def resent(root: Path) -> None:
        tonight = landing(published_lake.root, "installments", day)
        yesterday = landing(published_lake.root, "installments", day - dt.timedelta(days=1))
        again = yesterday.with_columns(pl.col("loan_id", "installment_id").str.replace("^.", "Z"))
        assert again.height
        deliver(root, "installments", day, {DATA_FILE: pl.concat([tonight, again.select(tonight.columns)])})

    problems = _harsher_than_clean(published_lake, clean_next_night, tmp_path / "lake", quiet_cfg, resent)
    assert not problems, "\n".join(problems)


def test_a_whole_drop_in_another_unit_names_upstreams_column(next_drop: tuple[Path, dt.date], quiet_cfg: RisklineConfig):
    # New-user review of issue 16 (L2): every payment x100 was refused naming riskline's amount_cents, a column
    # upstream never sent.
    root, day = next_drop
    frame = landing(root, "payments", day)
    deliver(root, "payments", day, {DATA_FILE: frame.with_columns(pl.col("amount") * 100)})
    with pytest.raises(IngestError) as err:
        ingest.ingest_date(root, day, quiet_cfg, data_docs=False)
    text = str(err.value)
    assert f"payments dt={day} file={DATA_FILE} column=amount: amount: median amount " in text, text
