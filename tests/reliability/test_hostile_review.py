"""Hostile review of issue 14 (fault monotonicity): violations found with cases the mutation table lacks.

Each test runs the real night on a private copy of a published lake whose NEXT landing drop was changed
the way upstream might change it, and compares every account with a run on the data the customer's
behaviour really produced. Each reproduced a confirmed violation. Fixed since (the tests pass): money in another unit stops the ingest
(``ingest.money_unit_ratio``), rows resent under new ids in a later delivery stop it, and credit on an
overdue account holds it, and a drop declared empty (``{"rows": 0}``) on a day loans fall due is held to the
driver's volume floor like any other drop (a declared count proves the files, not the extract).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import reliability_support
from reliability_support import PublishedLake, build_published_lake, deliver, landing, published_outputs, \
    run_night_without_report
from test_fault_monotonicity import adverse_actions, changed_untouched, touched_accounts

from pipelines.config.settings import RisklineConfig
from pipelines.contracts.landing import DATASETS
from pipelines.errors import IngestError
from pipelines.store import lake, publish
from pipelines.store.zones import ledger_partition
from tools.faults import DATA_FILE


def _run_mutated(pristine: PublishedLake, root: Path, cfg: RisklineConfig,
                 change: Callable[[Path], None]) -> dict[str, pl.DataFrame] | None:
    """Copy the lake to ``root``, apply ``change``, run NEXT; None when the night stopped with a clean error."""
    shutil.copytree(pristine.root, root, symlinks=True)
    change(root)
    try:
        run_night_without_report(root, pristine.next_day, cfg)
    except IngestError as exc:
        assert exc.dataset in DATASETS and f"dt={pristine.next_day.isoformat()}" in str(exc), str(exc)
        assert publish.read_latest(root) == pristine.published
        return None
    return published_outputs(root, pristine.next_day)


def _loan_owner(clean: Path, day: dt.date) -> dict[str, str]:
    loans = pl.read_parquet(ledger_partition(clean, day) / "loans.parquet")
    return dict(zip(loans["loan_id"], loans["account_id"], strict=True))


def _harsher_than_clean(book: PublishedLake, clean_root: Path, root: Path, cfg: RisklineConfig,
                        change: Callable[[Path], None]) -> list[str]:
    """Run NEXT on a copy changed by ``change``: every adverse action the clean run did not give, and every
    account the change did not touch whose rows differ ([] when the night stopped with a clean error)."""
    clean = published_outputs(clean_root, book.next_day)
    faulty = _run_mutated(book, root, cfg, change)
    if faulty is None:
        return []
    touched = touched_accounts(book.root, root, book.next_day, _loan_owner(clean_root, book.next_day))
    return adverse_actions(clean, faulty) + (changed_untouched(clean, faulty, touched) if touched is not None else [])


# --- 1. money in another unit: whole-number amounts in a float or decimal(p,0) column --------------------


def _times_100(dataset: str, columns: tuple[str, ...], dtype: pl.DataType) -> Callable[[Path, PublishedLake], None]:
    """The drop re-sent with its money in integer cents, typed float64 or decimal(18,0) (not Int64, which
    ingest refuses as ambiguous, and not under a ``_cents`` name, which declares the unit)."""

    def change(root: Path, book: PublishedLake) -> None:
        frame = landing(book.root, dataset, book.next_day)
        cents = [(pl.col(c).cast(pl.Float64) * 100).round(0).cast(dtype).alias(c) for c in columns]
        deliver(root, dataset, book.next_day, {DATA_FILE: frame.with_columns(cents)})

    return change


UNIT_CASES = [
    pytest.param(_times_100("installments", ("principal_due", "interest_due"), pl.Float64()), id="instalments-float64-cents"),
    pytest.param(_times_100("installments", ("principal_due", "interest_due"), pl.Decimal(18, 0)),
                 id="instalments-decimal18_0-cents"),
    pytest.param(_times_100("behaviour", ("amount",), pl.Float64()), id="behaviour-float64-cents"),
]


@pytest.mark.parametrize("change", UNIT_CASES)
def test_money_in_cents_typed_float_or_decimal_scale_0_never_cuts_a_customer(
    change: Callable[[Path, PublishedLake], None], published_lake: PublishedLake, clean_next_night: Path,
    quiet_cfg: RisklineConfig, tmp_path: Path,
):
    problems = _harsher_than_clean(published_lake, clean_next_night, tmp_path / "lake", quiet_cfg,
                                   lambda root: change(root, published_lake))
    assert not problems, "\n".join(problems)


# --- 2. an explicit empty-drop marker on a day payments are due ----------------------------------------


def test_an_explicit_empty_payments_drop_on_a_day_loans_fall_due_never_cuts_the_payers(
    published_lake: PublishedLake, clean_next_night: Path, quiet_cfg: RisklineConfig, tmp_path: Path,
):
    day = published_lake.next_day
    paid = landing(published_lake.root, "payments", day)
    assert paid.height > 0, "the clean drop has payments: emptying it loses them"

    def empty_drop(root: Path) -> None:
        deliver(root, "payments", day, {})
        (lake.partition_dir(root, "landing", "payments", day) / lake.SUCCESS).write_text(json.dumps({"rows": 0}))

    clean = published_outputs(clean_next_night, day)
    faulty = _run_mutated(published_lake, tmp_path / "lake", quiet_cfg, empty_drop)
    if faulty is None:
        return
    problems = adverse_actions(clean, faulty)
    assert not problems, f"{paid.height} payments of {paid['account_id'].n_unique()} accounts lost:\n" + "\n".join(problems)


# --- 3. part of an arrear paid against the customer's own repaid loan ----------------------------------

LONG_DAYS = 150  # 60 days hold no repaid loan; 150 do (loans drawn in the first months are closed by NEXT)


@pytest.fixture(scope="module")
def long_lake(tmp_path_factory: pytest.TempPathFactory, quiet_cfg: RisklineConfig) -> PublishedLake:
    """The published lake of ``reliability_support`` over 150 generated days instead of 60 (about a minute)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reliability_support, "DAYS", LONG_DAYS)
        return build_published_lake(tmp_path_factory.mktemp("long-lake"), quiet_cfg)


def _payment(account: str, loan: str, cents: int, day: dt.date, schema: pl.Schema) -> pl.DataFrame:
    """One extra payment of ``day`` (02:00 UTC, inside the Shanghai business day)."""
    return pl.DataFrame({
        "payment_id": [f"P{day:%Y%m%d}-9999999"], "account_id": [account], "loan_id": [loan],
        "paid_at": [dt.datetime.combine(day, dt.time(2), tzinfo=dt.UTC)], "amount": [cents / 100],
    }).with_columns(pl.col(c).cast(schema[c]) for c in schema)


def test_part_of_an_arrear_paid_against_the_customers_own_repaid_loan_does_not_escalate_them(
    long_lake: PublishedLake, quiet_cfg: RisklineConfig, tmp_path: Path,
):
    day = long_lake.next_day
    reference = tmp_path / "reference"
    shutil.copytree(long_lake.root, reference, symlinks=True)
    run_night_without_report(reference, day, quiet_cfg)
    loans = pl.read_parquet(ledger_partition(reference, day) / "loans.parquet")
    queued = set(publish.read_output(reference, "collection_queue", day)["account_id"])
    overdue = loans.filter(pl.col("overdue_cents") > 0)
    closed = loans.filter(~pl.col("is_open")).group_by("account_id").agg(pl.col("loan_id").min().alias("repaid"))
    # an account queued with two or more overdue loans and a repaid one: paying off the worst loan's arrear
    # lowers its DPD, yet is less than the account's whole arrears (so the credit-covers-arrears hold is out)
    candidates = (
        overdue.group_by("account_id").agg(pl.len().alias("n"), pl.col("overdue_cents").sum().alias("arrears"),
                                           pl.col("loan_id").sort_by("dpd").last().alias("worst"),
                                           pl.col("overdue_cents").sort_by("dpd").last().alias("worst_cents"),
                                           (pl.col("dpd").max() > pl.col("dpd").top_k(2).min()).alias("drops"))
        .filter(pl.col("n") >= 2, pl.col("drops"), pl.col("account_id").is_in(sorted(queued)))
        .join(closed, on="account_id").sort("account_id")
    )
    assert candidates.height, "the 150-day book has no queued account with a repaid loan and two overdue loans"
    who = candidates.row(0, named=True)
    payments = landing(long_lake.root, "payments", day)

    def paying(loan: str) -> Callable[[Path], None]:
        extra = _payment(who["account_id"], loan, who["worst_cents"], day, payments.schema)
        return lambda root: deliver(root, "payments", day, {DATA_FILE: pl.concat([payments, extra])})

    paid_right = _run_mutated(long_lake, tmp_path / "paid-right", quiet_cfg, paying(who["worst"]))
    paid_to_repaid = _run_mutated(long_lake, tmp_path / "paid-to-repaid", quiet_cfg, paying(who["repaid"]))
    assert paid_right is not None and paid_to_repaid is not None
    mine = pl.col("account_id") == who["account_id"]
    problems = adverse_actions({k: v.filter(mine) for k, v in paid_right.items()},
                               {k: v.filter(mine) for k, v in paid_to_repaid.items()})
    assert not problems, (f"{who['account_id']} paid {who['worst_cents'] / 100:.2f} of {who['arrears'] / 100:.2f} "
                          f"overdue against repaid loan {who['repaid']} instead of {who['worst']}:\n" + "\n".join(problems))


# --- 4. rows resent with regenerated ids ----------------------------------------------------------------


def _resent_under_new_ids(dataset: str, rows: pl.Expr, ids: tuple[str, ...]) -> Callable[[PublishedLake, Path], None]:
    """NEXT's ``rows`` delivered again one delivery later by a source that mints ids on every extract: the
    same facts under renamed ids (first letter -> Z), so no key repeats."""

    def change(book: PublishedLake, root: Path) -> None:
        frame = landing(book.root, dataset, book.next_day)
        again = frame.filter(rows).with_columns(pl.col(*ids).str.replace("^.", "Z"))
        assert again.height and again.join(frame, on=ids[-1], how="semi").is_empty()
        deliver(root, dataset, book.next_day, {"part-0.parquet": frame, "part-1.parquet": again})

    return change


RESENT_CASES = [
    # every loan drawn tonight twice: balances double (the volume rule has only a minimum per cash draw)
    pytest.param(_resent_under_new_ids("installments", pl.lit(True), ("loan_id", "installment_id")),
                 id="schedules"),
    # every login twice: the behaviour maximum is a warning, skipped below a 200-row median
    pytest.param(_resent_under_new_ids("behaviour", pl.col("event_type") == "login", ("event_id",)), id="logins"),
]


@pytest.mark.parametrize("change", RESENT_CASES)
def test_rows_resent_under_new_ids_never_cut_a_customer(
    change: Callable[[PublishedLake, Path], None], published_lake: PublishedLake, clean_next_night: Path,
    quiet_cfg: RisklineConfig, tmp_path: Path,
):
    problems = _harsher_than_clean(published_lake, clean_next_night, tmp_path / "lake", quiet_cfg,
                                   lambda root: change(published_lake, root))
    assert not problems, "\n".join(problems)
