"""A payment received upstream is never lost (issue 14, class 1).

When ingest quarantines a payment (its account's snapshot row was quarantined that day, or the payment
row itself is defective), the money was still paid. Each test breaks a real landing drop of the published
lake and compares the accounts concerned with the clean run of NEXT (``clean_next_night``):

* quarantined for a reference only: the payment is applied once its account is valid again, from its
  own business date, so the customer's next decisions are exactly those of the clean run;
* waiting (not applicable yet): the account is held, not cut, frozen or queued, with a reason code and an
  explanation; the reconciliation still counts the money upstream sent.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import polars as pl
from reliability_support import (
    PublishedLake, account_rows, deliver, landing, published_outputs, reconciliation, run_night_without_report,
)

from pipelines.config.settings import RisklineConfig
from pipelines.domain.pending_payments import PAYMENT_PENDING
from pipelines.stages.ingest import ingest_date
from pipelines.store import lake
from pipelines.store.zones import ledger_partition
from tools.faults import DATA_FILE


def _in(ids: list[str] | set[str]) -> pl.Expr:
    return pl.col("account_id").is_in(pl.Series(sorted(ids), dtype=pl.String).implode())


def _paid_on_time_on(clean: Path, book: PublishedLake, day: dt.date) -> list[str]:
    """Accounts whose payments of ``day`` paid off an instalment due by then, and that sent nothing else
    that day (no behaviour event, no new loan): without those payments they are past due the next morning."""
    installments = pl.read_parquet(ledger_partition(clean, book.next_day) / "installments.parquet")
    paid = set(installments.filter((pl.col("paid_off_date") == day) & (pl.col("due_date") <= day))["account_id"])
    busy = set(landing(clean, "behaviour", day)["account_id"]) | set(landing(clean, "installments", day)["account_id"])
    return sorted(paid - busy)[:2]


def test_a_payment_quarantined_with_its_account_is_applied_once_the_account_is_valid_again(
    published_lake: PublishedLake, lake_root: Path, clean_next_night: Path, quiet_cfg: RisklineConfig
):
    book = published_lake
    day = book.published
    payers = _paid_on_time_on(clean_next_night, book, day)
    assert len(payers) == 2, "the generated book should have customers who paid on time that day"
    # The drop of `day` had their snapshot rows broken (a credit limit of 0): ingest it as that night did.
    accounts = landing(lake_root, "accounts", day)
    broken = pl.when(_in(payers)).then(pl.lit(0)).otherwise(pl.col("credit_limit"))
    deliver(lake_root, "accounts", day,
            {DATA_FILE: accounts.with_columns(broken.cast(accounts.schema["credit_limit"]).alias("credit_limit"))})
    ingest_date(lake_root, day, quiet_cfg, data_docs=False)
    held = lake.read_partition(lake.partition_dir(lake_root, "quarantine", "payments", day))
    # the fault of the issue: their payments followed the accounts into quarantine, not into the ledger
    assert set(held["account_id"]) == set(payers) and set(held["quarantine_reason"]) == {"unknown_account"}

    run_night_without_report(lake_root, book.next_day, quiet_cfg)

    # Valid again on NEXT: the payments are applied as paid on `day`, so nothing differs from the clean run
    # (without this they would be 1 DPD tonight: queued for collections and cut).
    faulty, clean = published_outputs(lake_root, book.next_day), published_outputs(clean_next_night, book.next_day)
    assert account_rows(faulty, payers) == account_rows(clean, payers)
    assert account_rows(faulty, payers)["limits"] and not account_rows(faulty, payers)["collection_queue"]
    got, want = reconciliation(lake_root, book.next_day), reconciliation(clean_next_night, book.next_day)
    assert (got["resolved_payments"], got["resolved_cents"]) == (held.height, int(held["amount_cents"].sum()))
    assert (got["received_cents"], got["upstream_cents"], got["waiting_payments"]) == (
        want["received_cents"], want["upstream_cents"], 0)


def _cny(value: Decimal) -> str:
    """As the explanations write money: whole yuan without decimals, else two decimals."""
    return str(int(value)) if value == int(value) else f"{value:.2f}"


def test_while_a_payment_waits_in_quarantine_its_account_is_held_not_cut_frozen_or_queued(
    published_lake: PublishedLake, lake_root: Path, clean_next_night: Path, quiet_cfg: RisklineConfig
):
    book = published_lake
    clean = published_outputs(clean_next_night, book.next_day)
    payments = landing(lake_root, "payments", book.next_day)
    # customers already past due who pay tonight: losing their payment would keep them in the queue
    late = sorted(set(payments["account_id"]) & set(clean["collection_queue"]["account_id"]))
    assert late, "the generated book should have past-due customers paying on NEXT"
    # Upstream stamps their payments a day late: outside the business day, quarantined, not applicable.
    shifted = pl.when(_in(late)).then(pl.col("paid_at") + pl.duration(days=1)).otherwise(pl.col("paid_at"))
    deliver(lake_root, "payments", book.next_day, {DATA_FILE: payments.with_columns(shifted.alias("paid_at"))})
    waiting = payments.filter(_in(late))

    run_night_without_report(lake_root, book.next_day, quiet_cfg)

    faulty = published_outputs(lake_root, book.next_day)
    assert not set(late) & set(faulty["collection_queue"]["account_id"]), "chased for a payment already made"
    templates = quiet_cfg.policy.explanations.templates
    held = faulty["limits"].filter(_in(late)).to_dicts()
    assert [r["account_id"] for r in held] == late
    for row in held:
        assert row["action"] == "hold" and row["new_limit"] == row["previous_limit"], row
        assert PAYMENT_PENDING in row["reason_codes"], row
        assert row["explanation_en"] == templates["en"]["hold_payment_pending"].format(new_limit=_cny(row["new_limit"]))
        assert row["explanation"] == templates["zh"]["hold_payment_pending"].format(new_limit=_cny(row["new_limit"]))
    # the money is still on the books: reported as waiting, all of it counted as received upstream
    got, want = reconciliation(lake_root, book.next_day), reconciliation(clean_next_night, book.next_day)
    waiting_cents = int((waiting["amount"] * 100).cast(pl.Int64).sum())
    assert (got["waiting_payments"], got["waiting_cents"]) == (waiting.height, waiting_cents)
    assert got["upstream_cents"] == want["upstream_cents"] == want["received_cents"]
    assert got["received_cents"] == want["received_cents"] - waiting_cents
