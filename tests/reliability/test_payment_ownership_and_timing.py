"""Payments that name the wrong loan, arrive late or carry no money never harden an outcome (issue 14 review).

Each test changes NEXT's payments drop in a private copy of the published lake and compares the accounts
concerned with the clean run of NEXT (``clean_next_night``):

* a payment naming a loan that is not its account's (another customer's loan, curated or drawn in the same
  drop) is quarantined as ``loan_of_other_account``; the payer and the loan's owner are held (limit
  ``hold`` with ``PAYMENT_PENDING``, no collections contact, no hardship offer, scores flagged
  ``pending_payment``). It used to be curated, left unallocated on the payer while the owner went past due;
* a payment paid on an earlier business day but delivered in tonight's drop (bank settlement) is curated
  and applied as paid on its ``paid_at`` day, within ``ingest.payment_late_days``; older, it is quarantined
  as ``paid_at_before_late_window`` and holds its account. Both used to be quarantined as
  ``paid_at_outside_business_day`` and, once the hold lapsed, the customer was cut for money paid on time;
* a zero or negative amount is quarantined and counts no money in the reconciliation (a negative one
  used to lower ``upstream_cents``).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
from reliability_support import (
    PublishedLake,
    deliver,
    landing,
    published_outputs,
    reconciliation,
    run_night_without_report,
)

from pipelines.store import chain
from pipelines.store import lake
from pipelines.config.settings import RisklineConfig
from pipelines.store.zones import ledger_partition
from tools.faults import DATA_FILE
from pipelines.domain.pending_payments import PAYMENT_PENDING


def _in(ids: list[str] | set[str]) -> pl.Expr:
    return pl.col("account_id").is_in(pl.Series(sorted(ids), dtype=pl.String).implode())


def _quarantined_payments(root: Path, day: dt.date) -> pl.DataFrame:
    part = lake.partition_dir(root, "quarantine", "payments", day)
    return lake.read_partition(part) if lake.is_complete(part) else pl.DataFrame()


def _assert_held(root: Path, day: dt.date, accounts: list[str]) -> None:
    """``held`` for every output: no cut or freeze (one withheld is a ``hold`` with PAYMENT_PENDING; an
    increase is not withheld), no queue entry, no hardship offer, and the score flagged ``pending_payment``."""
    out = published_outputs(root, day)
    limits = {r["account_id"]: r for r in out["limits"].filter(_in(accounts)).to_dicts()}
    for row in limits.values():  # an account without a snapshot row gets no limit decision at all
        assert row["action"] not in ("decrease", "freeze") and row["new_limit"] >= row["previous_limit"], row
        assert row["action"] != "hold" or PAYMENT_PENDING in row["reason_codes"] or "NO_TRIGGER" in row["reason_codes"]
    assert not set(accounts) & set(out["collection_queue"]["account_id"]), "chased while a payment waits"
    assert not set(accounts) & set(out["hardship_offers"]["account_id"]), "re-amortized on a DPD the fault made"
    flagged = out["scores"].filter(_in(accounts))
    assert flagged.height and flagged["pending_payment"].all(), flagged


def _payers(clean: Path, day: dt.date, n: int = 2) -> list[str]:
    """Accounts that pay tonight, each with one payment, in the clean run's limits."""
    pays = landing(clean, "payments", day)
    once = pays.group_by("account_id").len().filter(pl.col("len") == 1)["account_id"]
    decided = set(published_outputs(clean, day)["limits"]["account_id"])
    return sorted(set(once) & decided)[:n]


def test_a_payment_naming_another_customers_loan_is_quarantined_and_holds_both_customers(
    published_lake: PublishedLake, lake_root: Path, clean_next_night: Path, quiet_cfg: RisklineConfig
):
    book = published_lake
    clean = published_outputs(clean_next_night, book.next_day)
    payments = landing(lake_root, "payments", book.next_day)
    (payer, other_payer) = _payers(clean_next_night, book.next_day)
    loans = pl.read_parquet(ledger_partition(clean_next_night, book.next_day) / "loans.parquet")
    # a customer with a hardship offer in the clean run: paid into by mistake, its offer is held too
    owner = sorted(set(clean["hardship_offers"]["account_id"]) - {payer, other_payer})[0]
    owners_loan = loans.filter(pl.col("account_id") == owner)["loan_id"][0]
    # a loan drawn tonight by someone else (in flight: its schedule is in the same ingest)
    drawn = landing(lake_root, "installments", book.next_day).filter(~_in([payer, other_payer, owner]))
    tonight_loan, tonight_owner = drawn.row(0, named=True)["loan_id"], drawn.row(0, named=True)["account_id"]
    wrong = (pl.when(pl.col("account_id") == payer).then(pl.lit(owners_loan))
             .when(pl.col("account_id") == other_payer).then(pl.lit(tonight_loan))
             .otherwise(pl.col("loan_id")))
    deliver(lake_root, "payments", book.next_day, {DATA_FILE: payments.with_columns(wrong.alias("loan_id"))})

    run_night_without_report(lake_root, book.next_day, quiet_cfg)

    held = _quarantined_payments(lake_root, book.next_day)
    assert set(held["account_id"]) == {payer, other_payer}, held
    assert set(held["quarantine_reason"]) == {"loan_of_other_account"}
    curated = lake.read_partition(lake.partition_dir(lake_root, "curated", "payments", book.next_day))
    assert not {payer, other_payer} & set(curated["account_id"])
    _assert_held(lake_root, book.next_day, [payer, other_payer, owner, tonight_owner])
    # every other customer is decided exactly as in the clean run
    spared = ~_in([payer, other_payer, owner, tonight_owner])
    faulty = published_outputs(lake_root, book.next_day)
    for name in ("limits", "hardship_offers"):
        assert faulty[name].filter(spared).equals(clean[name].filter(spared)), name
    # the money is reported as waiting, never lost
    got, want = reconciliation(lake_root, book.next_day), reconciliation(clean_next_night, book.next_day)
    assert got["waiting_payments"] == 2 and got["upstream_cents"] == want["upstream_cents"]


def test_a_payment_delivered_late_is_applied_on_the_day_it_was_paid(
    published_lake: PublishedLake, lake_root: Path, clean_next_night: Path, quiet_cfg: RisklineConfig
):
    book = published_lake
    payments = landing(lake_root, "payments", book.next_day)
    late = _payers(clean_next_night, book.next_day)
    # paid yesterday (inside PUBLISHED's business day) but settled into tonight's drop
    back = pl.when(_in(late)).then(pl.col("paid_at") - pl.duration(days=1)).otherwise(pl.col("paid_at"))
    deliver(lake_root, "payments", book.next_day, {DATA_FILE: payments.with_columns(back.alias("paid_at"))})

    run_night_without_report(lake_root, book.next_day, quiet_cfg)

    assert _quarantined_payments(lake_root, book.next_day).is_empty(), "a late payment is not a defect"
    ledger = pl.read_parquet(ledger_partition(lake_root, book.next_day) / "installments.parquet")
    mine = ledger.filter(_in(late) & pl.col("paid_off_date").is_not_null())
    assert mine.filter(pl.col("paid_off_date") == book.published).height, "applied by its paid_at day"
    # paid a day earlier than in the clean run: never worse off (no DPD for the delay, nothing held)
    faulty, clean = published_outputs(lake_root, book.next_day), published_outputs(clean_next_night, book.next_day)
    for who in late:
        now = faulty["limits"].filter(pl.col("account_id") == who).row(0, named=True)
        was = clean["limits"].filter(pl.col("account_id") == who).row(0, named=True)
        assert now["new_limit"] >= was["new_limit"] and PAYMENT_PENDING not in now["reason_codes"], (now, was)
    assert not set(late) & (set(faulty["collection_queue"]["account_id"]) - set(clean["collection_queue"]["account_id"]))
    # the published night before NEXT never read NEXT's drop: it stays valid, nothing is marked stale
    assert chain.stale_nights(lake_root) == {}
    assert reconciliation(lake_root, book.next_day)["upstream_cents"] == reconciliation(
        clean_next_night, book.next_day)["upstream_cents"]


def test_a_payment_later_than_the_window_waits_in_quarantine_with_its_next_step_and_holds_its_account(
    published_lake: PublishedLake, lake_root: Path, clean_next_night: Path, quiet_cfg: RisklineConfig
):
    book = published_lake
    payments = landing(lake_root, "payments", book.next_day)
    late = _payers(clean_next_night, book.next_day)
    days = quiet_cfg.ingest.payment_late_days + 1
    back = pl.when(_in(late)).then(pl.col("paid_at") - pl.duration(days=days)).otherwise(pl.col("paid_at"))
    deliver(lake_root, "payments", book.next_day, {DATA_FILE: payments.with_columns(back.alias("paid_at"))})

    run_night_without_report(lake_root, book.next_day, quiet_cfg)

    held = _quarantined_payments(lake_root, book.next_day)
    assert set(held["account_id"]) == set(late)
    assert set(held["quarantine_reason"]) == {"paid_at_before_late_window"}
    _assert_held(lake_root, book.next_day, late)
    got = reconciliation(lake_root, book.next_day)
    assert got["waiting_payments"] == held.height and got["waiting_cents"] == int(held["amount_cents"].sum())
    # the quarantine reason's rule names the next step (the suite's notes, shown in the validation results)
    suite = json.loads((Path(__file__).parents[2] / "expectations" / "payments.json").read_text())
    (rule,) = [e for e in suite["expectations"] if e["meta"]["rule"] == "paid_at_before_late_window"]
    assert "raise ingest.payment_late_days" in rule["notes"] and "rerun ingest" in rule["notes"]


def test_a_negative_payment_is_quarantined_and_counts_no_money_upstream(
    published_lake: PublishedLake, lake_root: Path, clean_next_night: Path, quiet_cfg: RisklineConfig
):
    book = published_lake
    payments = landing(lake_root, "payments", book.next_day)
    (payer,) = _payers(clean_next_night, book.next_day, 1)
    amount = payments.filter(pl.col("account_id") == payer)["amount"][0]
    negative = pl.when(pl.col("account_id") == payer).then(-pl.col("amount")).otherwise(pl.col("amount"))
    deliver(lake_root, "payments", book.next_day, {DATA_FILE: payments.with_columns(negative.alias("amount"))})

    run_night_without_report(lake_root, book.next_day, quiet_cfg)

    held = _quarantined_payments(lake_root, book.next_day)
    assert held["quarantine_reason"].to_list() == ["non_positive_amount"]
    got, want = reconciliation(lake_root, book.next_day), reconciliation(clean_next_night, book.next_day)
    cents = int(amount * 100)
    # the row's money is unknown: it counts 0, never -amount (which lowered what upstream had sent)
    assert (got["waiting_payments"], got["waiting_cents"]) == (1, 0)
    assert got["upstream_cents"] == want["upstream_cents"] - cents
    _assert_held(lake_root, book.next_day, [payer])

