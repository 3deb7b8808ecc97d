"""Fault monotonicity: a fault upstream never makes a customer's outcome harsher than clean data would.

The differential fault-injection test of issue 14. The published lake (1,000 generated accounts, the night
before NEXT published) is run once on NEXT's clean landing drop (``clean_next_night``). Then, for each
mutation of NEXT's drop in :data:`MUTATIONS` (duplicated, redelivered, malformed, ambiguous, quarantined or
missing rows, extra files, other units...), a private copy of the lake gets the mutated drop, the real
night runs (``run_night``, as ``riskline run`` does), and every account is compared with the clean run:

* the night may stop with a one-line :class:`IngestError` naming the dataset (nothing of NEXT is
  published), or hold or quarantine accounts;
* it may never give an account an adverse action the clean run did not: a lower ``new_limit``, a
  ``freeze`` where clean did not freeze, a collections queue entry clean did not have, a higher overdue
  amount or DPD in the queue;
* nor a hardship offer the clean run did not make (it re-amortizes a loan on the fault's DPD); an account
  held for a waiting payment (scores ``pending_payment``) has no cut, freeze, queue entry or offer;
* every account the mutation did not touch (no landing row of it, or of its loans, changed) gets exactly
  the clean run's published rows in all four outputs (scores and grades, limits, queue, hardship offers;
  only the queue's book-wide ``priority`` may move).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from reliability_support import (
    PublishedLake, deliver, landing, published_outputs, run_night_without_report, write_fault,
)

from pipelines.config.settings import RisklineConfig
from pipelines.contracts.landing import DATASETS
from pipelines.errors import IngestError
from pipelines.store import lake, publish
from pipelines.store.zones import ledger_partition
from tools import generate
from tools.faults import DATA_FILE, REDELIVERY_FILE

ADVERSE_ACTIONS = ("decrease", "freeze")
# How firm a collections contact is: a hardship plan withdrawn for a firmer contact is harsher, and so is a
# call or an agent where the clean run sent a reminder.
TREATMENT_RANK = {"hardship_offer": 0, "auto_reminder": 1, "smart_call": 2, "agent": 3, "external_review": 4}
UNRANKED = {"as_of_date", "priority"}  # priority ranks the whole queue: a touched account may shift others


@dataclass(frozen=True)
class Book:
    """What a mutation may look at: the pristine lake and the clean run of NEXT."""

    lake: PublishedLake
    clean: Path
    cfg: RisklineConfig

    @property
    def day(self) -> dt.date:
        return self.lake.next_day

    def rows(self, dataset: str, day: dt.date | None = None) -> pl.DataFrame:
        return landing(self.lake.root, dataset, day or self.day)

    def late_payers(self) -> list[str]:
        """Accounts past due in the clean run that pay tonight: a lost payment keeps them queued."""
        queued = set(publish.read_output(self.clean, "collection_queue", self.day)["account_id"])
        return sorted(set(self.rows("payments")["account_id"]) & queued)[:3]

    def quiet_overdue(self) -> list[str]:
        """Accounts in the clean queue that sent nothing else tonight."""
        queued = set(publish.read_output(self.clean, "collection_queue", self.day)["account_id"])
        busy = set().union(*(set(self.rows(ds)["account_id"]) for ds in ("behaviour", "installments", "payments")))
        return sorted(queued - busy)[:2]


Change = Callable[[Path, Book], None]


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str  # what upstream did, in words
    change: Change


# --- building blocks ---------------------------------------------------------------------------------


def _in(ids: list[str]) -> pl.Expr:
    return pl.col("account_id").is_in(pl.Series(ids, dtype=pl.String).implode())


def _redeliver(dataset: str, change: Callable[[pl.DataFrame, Book], pl.DataFrame]) -> Change:
    """NEXT's ``dataset`` drop delivered again as one file, with ``change`` applied to its rows."""

    def run(root: Path, book: Book) -> None:
        deliver(root, dataset, book.day, {DATA_FILE: change(book.rows(dataset), book)})

    return run


def _files(dataset: str, files: Callable[[pl.DataFrame, Book], dict[str, pl.DataFrame | bytes]]) -> Change:
    def run(root: Path, book: Book) -> None:
        deliver(root, dataset, book.day, files(book.rows(dataset), book))

    return run


def _late_payments(change: Callable[[pl.DataFrame], pl.DataFrame]) -> Callable[[pl.DataFrame, Book], pl.DataFrame]:
    """Apply ``change`` to the payments of the late payers only."""

    def run(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
        hit = _in(book.late_payers())
        return pl.concat([frame.filter(~hit), change(frame.filter(hit))], how="vertical_relaxed")

    return run


def _set(column: str, value: pl.Expr) -> Callable[[pl.DataFrame], pl.DataFrame]:
    return lambda frame: frame.with_columns(value.cast(frame.schema[column]).alias(column))


def _quarantine_accounts(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    broken = pl.when(_in(book.late_payers())).then(pl.lit(0)).otherwise(pl.col("credit_limit"))
    return frame.with_columns(broken.cast(frame.schema["credit_limit"]).alias("credit_limit"))


def _drop_accounts(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    return frame.filter(~_in(book.quiet_overdue() + book.late_payers()[:1]))


def _repeat_rows(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    return pl.concat([frame, frame.head(3)])


def _twice(frame: pl.DataFrame, book: Book) -> dict[str, pl.DataFrame | bytes]:
    return {DATA_FILE: frame, REDELIVERY_FILE: frame}


def _zero_byte_file(frame: pl.DataFrame, book: Book) -> dict[str, pl.DataFrame | bytes]:
    return {DATA_FILE: frame, REDELIVERY_FILE: b""}


def _pad_payment_ids(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    return _late_payments(_set("payment_id", " " + pl.col("payment_id") + " "))(frame, book)


def _bad_instalment(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    first = frame.sort("installment_id").row(0, named=True)["installment_id"]
    negative = pl.when(pl.col("installment_id") == first).then(-pl.col("principal_due")).otherwise(pl.col("principal_due"))
    return frame.with_columns(negative.alias("principal_due"))


def _resent(frame: pl.DataFrame) -> pl.DataFrame:
    """Earlier payments as a resend carries them: stamped when resent (inside tonight's business day)."""
    return frame.with_columns(pl.col("paid_at") + pl.duration(days=1))


def _earlier_schedules(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    """NEXT's drop also carries every instalment of the previous day's drop, unchanged (a redelivery)."""
    return pl.concat([frame, book.rows("installments", book.lake.published)])


def _earlier_payments(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    return pl.concat([frame, _resent(book.rows("payments", book.lake.published))])


def _earlier_payments_under_new_ids(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    earlier = book.rows("payments", book.lake.published)
    return pl.concat([frame, earlier.with_columns(pl.concat_str(pl.lit("R"), pl.col("payment_id")).alias("payment_id"))])


def _earlier_payment_corrected(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    earlier = _resent(book.rows("payments", book.lake.published).sort("payment_id").head(1))
    return pl.concat([frame, earlier.with_columns(pl.col("amount") * 2)])


def _halved_limits(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    half = (pl.col("credit_limit").cast(pl.Float64) / 2).round(0).cast(frame.schema["credit_limit"])
    return frame.filter(_in(book.late_payers())).with_columns(half.alias("credit_limit"))


def _conflicting_accounts(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    """Two rows for one account in one file (one delivery) with different limits: no delivery order decides."""
    return pl.concat([frame, _halved_limits(frame, book)])


def _stale_file_sorting_last(frame: pl.DataFrame, book: Book) -> dict[str, pl.DataFrame | bytes]:
    """Two deliveries of the snapshot: part-9 (older, stale limits) and part-10 (the current one)."""
    return {"part-9.parquet": _halved_limits(frame, book), "part-10.parquet": frame}


def _empty_payment_ids(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    return _late_payments(_set("payment_id", pl.lit("")))(frame, book)


def _cents_as_integers(*columns: str) -> Callable[[pl.DataFrame, Book], pl.DataFrame]:
    return lambda frame, book: frame.with_columns((pl.col(c) * 100).cast(pl.Int64) for c in columns)


def _nan_amount(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    amount = pl.col("amount").cast(pl.Float64)
    return frame.with_columns(pl.when(_in(book.late_payers()[:1])).then(float("nan")).otherwise(amount).alias("amount"))


def _wide_decimal(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    return frame.with_columns(pl.col("amount").cast(pl.Decimal(38, 18)))


def _most_payments_missing(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    return frame.filter(~_in(book.late_payers())).head(max(frame.height // 4, 1))


def _declaring(marker: Callable[[Book], bytes], change: Callable[[pl.DataFrame, Book], pl.DataFrame]) -> Change:
    """NEXT's payments delivered again with ``change`` applied, under the ``_SUCCESS`` ``marker`` returns."""

    def run(root: Path, book: Book) -> None:
        deliver(root, "payments", book.day, {DATA_FILE: change(book.rows("payments"), book)}, marker(book))

    return run


def _clean_totals(book: Book) -> bytes:
    """The control totals of the clean drop: what the extract held, declared by the side that counted it."""
    return generate.declared_manifest("payments", {DATA_FILE: book.rows("payments")})


def _plain_marker(book: Book) -> bytes:
    return b""  # an empty _SUCCESS


def _after_declared_nights(change: Change) -> Change:
    """``change`` on a lake whose payments feed declared its control totals on the week before NEXT."""

    def run(root: Path, book: Book) -> None:
        for back in range(1, 8):
            day = book.day - dt.timedelta(days=back)
            part = lake.partition_dir(root, "landing", "payments", day)
            (part / lake.SUCCESS).write_bytes(
                generate.declared_manifest("payments", {DATA_FILE: book.rows("payments", day)}))
        change(root, book)

    return run


def _a_fifth_missing(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    """A fifth of the payments missing at random: some of an account already past its grace, which without
    a declared total is indistinguishable from a payment not made (docs/guarantees.md)."""
    return frame.sample(fraction=0.8, seed=3, shuffle=False)


def _arrears_payments_withheld(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    """Payments of arrears withheld from the first delivery: past the grace each payer is cut and queued as if
    they had not paid (review of stop 27, F2: A0001553 cut 1,150 -> 850; this book's arrears are younger,
    ``test_control_totals.py`` has one past the grace)."""
    arrears = _loans_last_night(book).filter(pl.col("overdue_cents") > 0)
    return frame.filter(~pl.col("loan_id").is_in(arrears.get_column("loan_id").implode()))


def _late_payers_in_jiao(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    """Late payers' payments a tenth of what they paid (another writer's unit): too few rows for any check
    of units, not for the declared sum."""
    return _late_payments(_set("amount", pl.col("amount").cast(pl.Float64) / 10))(frame, book)


def _loans_last_night(book: Book) -> pl.DataFrame:
    return pl.read_parquet(ledger_partition(book.lake.root, book.lake.published) / "loans.parquet")


def _on_time_payments_missing(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    """Payments of loans current at last night's close missing (a feed of on-time payments lost or late)."""
    current = _loans_last_night(book).filter(pl.col("dpd") == 0).get_column("loan_id")
    return frame.filter(~pl.col("loan_id").is_in(current.implode()))


def _young_arrears_payments_late(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    """Payments of arrears at most a day old last night (DPD 2 at most tonight) not in tonight's drop: paid on
    time, delivered a day or two late (bank settlement). Without the grace each payer is cut for DPD and
    queued tonight."""
    young = _loans_last_night(book).filter((pl.col("overdue_cents") > 0) & (pl.col("dpd") <= 1))
    return frame.filter(~pl.col("loan_id").is_in(young.get_column("loan_id").implode()))


def _closed_early(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    """The extract closed three hours early: the evening's payments come in a later drop."""
    return frame.filter(pl.col("paid_at") <= pl.col("paid_at").max() - pl.duration(hours=3))


def _quiet_accounts_missing(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    """A tenth of the snapshot's accounts, none with activity tonight, left out of the extract."""
    busy = set().union(*(set(book.rows(ds)["account_id"]) for ds in ("behaviour", "installments", "payments")))
    quiet = frame.filter(~_in(sorted(busy))).get_column("account_id").sort()
    return frame.filter(~_in(quiet.gather_every(max(quiet.len() * 10 // frame.height, 1)).to_list()))


def _payments_in_subfolder(frame: pl.DataFrame, book: Book) -> dict[str, pl.DataFrame | bytes]:
    hit = _in(book.late_payers())
    return {DATA_FILE: frame.filter(~hit), "batch=1/part-0.parquet": frame.filter(hit)}


def _dangling_symlink(root: Path, book: Book) -> None:
    (lake.partition_dir(root, "landing", "payments", book.day) / "part-00001.parquet").symlink_to(root / "gone.parquet")


def _others_loan(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    """Late payers' payments name another customer's loan (the next payer's, round robin)."""
    loans = pl.read_parquet(ledger_partition(book.clean, book.day) / "loans.parquet")
    payers = book.late_payers()
    others = loans.filter(~_in(payers)).sort("loan_id")["loan_id"].to_list()
    wrong = pl.col("account_id").replace_strict(payers, others[: len(payers)], default=None)
    return frame.with_columns(pl.coalesce(wrong, pl.col("loan_id")).alias("loan_id"))


def _loan_drawn_tonight_by_another(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
    drawn = book.rows("installments").filter(~_in(book.late_payers())).sort("loan_id")["loan_id"][0]
    return _late_payments(_set("loan_id", pl.lit(drawn)))(frame, book)


def _earlier_purchases(restamp: bool) -> Callable[[pl.DataFrame, Book], pl.DataFrame]:
    """Purchases of three days ago sent again tonight, stamped into tonight or as they were."""

    def run(frame: pl.DataFrame, book: Book) -> pl.DataFrame:
        earlier = book.rows("behaviour", book.day - dt.timedelta(days=3)).filter(pl.col("event_type") != "login")
        again = earlier.sort("event_id").head(3)
        if restamp:
            again = again.with_columns(pl.col("event_time") + pl.duration(days=3))
        return pl.concat([frame, again.select(frame.columns)])

    return run


def _generator(kind: str) -> Change:
    return lambda root, book: write_fault(root, book.lake, kind, book.cfg)


def _own(mutation: Mutation) -> pytest.param:  # type: ignore[valid-type]
    return pytest.param(mutation, id=mutation.name)


# --- the table ---------------------------------------------------------------------------------------

M = Mutation
MUTATIONS = [
    # classes 1 and 14: quarantined or missing accounts, payments waiting in quarantine
    _own(M("account_rows_quarantined", "late payers' snapshot rows with a credit limit of 0",
           _redeliver("accounts", _quarantine_accounts))),
    _own(M("account_rows_missing", "overdue accounts left out of the snapshot (closed or charged off upstream)",
           _redeliver("accounts", _drop_accounts))),
    _own(M("payment_for_undelivered_loan", "late payers' payments name a loan not delivered yet",
           _redeliver("payments", _late_payments(_set("loan_id", pl.lit("L-NOT-DELIVERED")))))),
    _own(M("payment_stamped_next_day", "late payers' payments stamped a day late (outside the business day)",
           _redeliver("payments", _late_payments(_set("paid_at", pl.col("paid_at") + pl.duration(days=1)))))),
    _own(M("payment_without_account", "late payers' payments with a null account_id",
           _redeliver("payments", _late_payments(_set("account_id", pl.lit(None)))))),
    _own(M("payment_account_id_padded", "late payers' payments name their account with spaces around it",
           _redeliver("payments", _late_payments(_set("account_id", " " + pl.col("account_id") + " "))))),
    # handled by ingest as it is
    _own(M("payment_rows_repeated", "3 payment rows repeated in the same file", _redeliver("payments", _repeat_rows))),
    _own(M("payments_delivered_twice", "the payments file delivered twice in one drop", _files("payments", _twice))),
    _own(M("null_keys", "generator fault null_keys", _generator("null_keys"))),
    _own(M("zero_byte_file", "an extra 0-byte file in payments", _files("payments", _zero_byte_file))),
    _own(M("payment_id_padded", "late payers' payment ids with spaces around them",
           _redeliver("payments", _pad_payment_ids))),
    _own(M("dangling_symlink", "a dangling symlink in the payments drop", _dangling_symlink)),
    _own(M("instalment_quarantined", "one instalment of a new loan with a negative principal",
           _redeliver("installments", _bad_instalment))),
    # classes 2 and 7 (ingest-keys, merged): keys unique across time, delivery order by sequence number
    _own(M("earlier_payments_redelivered", "yesterday's payments sent again in tonight's drop",
           _redeliver("payments", _earlier_payments))),
    _own(M("earlier_payments_resent_under_new_ids", "yesterday's payments sent again tonight under new ids, "
           "paid_at and amounts as they were", _redeliver("payments", _earlier_payments_under_new_ids))),
    _own(M("earlier_payment_corrected", "one of yesterday's payment ids again, amount doubled",
           _redeliver("payments", _earlier_payment_corrected))),
    _own(M("earlier_schedule_redelivered", "yesterday's instalment schedules sent again",
           _redeliver("installments", _earlier_schedules))),
    # class 6 (ingest-keys, merged): conflicting rows within one delivery
    _own(M("conflicting_account_rows", "3 accounts twice in one snapshot file, once halved",
           _redeliver("accounts", _conflicting_accounts))),
    _own(M("delivery_order_by_text", "a stale part-9 and the current part-10 of the snapshot",
           _files("accounts", _stale_file_sorting_last))),
    # class 5 (ingest-read, merged) with class 1: an invalid id is quarantined, never de-duplicated, and held
    _own(M("payment_ids_empty", "late payers' payments with an empty payment_id",
           _redeliver("payments", _empty_payment_ids))),
    # class 4 (ingest-read, merged): money has one unit and plausible bounds
    _own(M("instalment_money_in_cents", "instalment amounts as integer cents",
           _redeliver("installments", _cents_as_integers("principal_due", "interest_due")))),
    _own(M("payment_amount_nan", "payment amounts as float64 with a NaN", _redeliver("payments", _nan_amount))),
    _own(M("payment_amount_decimal_38_18", "payment amounts as decimal(38,18)",
           _redeliver("payments", _wide_decimal))),
    # class 3: a short drop on a small book (10 payments a day, 2 delivered) and a file in a subfolder
    _own(M("payments_mostly_missing", "three quarters of the payments drop missing",
           _redeliver("payments", _most_payments_missing))),
    # new-user review of issue 16 (H1, H2): short drops the volume floor lets through
    _own(M("payments_a_fifth_missing_of_a_declared_count", "a fifth of the payments missing, _SUCCESS "
           "declaring the count and sum the extract held", _declaring(_clean_totals, _a_fifth_missing))),
    # review of stop 27 (F2): a tenth of a first payments drop withheld cut and queued payers past their grace
    _own(M("arrears_payments_withheld_marker_emptied", "payments of arrears withheld, _SUCCESS "
           "plain after nights that declared their totals",
           _after_declared_nights(_declaring(_plain_marker, _arrears_payments_withheld)))),
    _own(M("arrears_payments_withheld_under_declared_totals", "payments of arrears withheld, "
           "_SUCCESS declaring what the extract held", _declaring(_clean_totals, _arrears_payments_withheld))),
    _own(M("late_payers_amounts_in_jiao_under_declared_sums", "late payers' payments a tenth of their amount, "
           "_SUCCESS declaring the sum received", _declaring(_clean_totals, _late_payers_in_jiao))),
    _own(M("young_arrears_payments_a_day_late", "payments of arrears due yesterday or the day before, paid "
           "on time and delivered late", _redeliver("payments", _young_arrears_payments_late))),
    _own(M("on_time_payments_missing", "payments of loans current last night missing (lost or a day late)",
           _redeliver("payments", _on_time_payments_missing))),
    _own(M("payments_extract_closed_early", "the payments extract closed 3 hours early",
           _redeliver("payments", _closed_early))),
    _own(M("quiet_accounts_missing", "a tenth of the snapshot's accounts, quiet tonight, left out",
           _redeliver("accounts", _quiet_accounts_missing))),
    _own(M("stale_snapshot_resent", "last night's snapshot delivered again as tonight's",
           _redeliver("accounts", lambda frame, book: book.rows("accounts", book.lake.published)))),
    _own(M("payments_in_subfolder", "late payers' payments in dt=D/batch=1/part-0.parquet",
           _files("payments", _payments_in_subfolder))),
    # review of issue 14, finding 1: a payment's loan must be its account's
    _own(M("payment_names_other_customers_loan", "late payers' payments name other customers' loans",
           _redeliver("payments", _others_loan))),
    _own(M("payment_names_loan_drawn_tonight_by_another", "late payers' payments name a loan drawn tonight "
           "by someone else", _redeliver("payments", _loan_drawn_tonight_by_another))),
    # finding 2: payments settle late; within ingest.payment_late_days they are applied by paid_at
    _own(M("payment_delivered_a_day_late", "late payers' payments paid yesterday, delivered tonight",
           _redeliver("payments", _late_payments(_set("paid_at", pl.col("paid_at") - pl.duration(days=1)))))),
    _own(M("payment_later_than_the_window", "late payers' payments paid 30 days before tonight",
           _redeliver("payments", _late_payments(_set("paid_at", pl.col("paid_at") - pl.duration(days=30)))))),
    # finding 5: a negative amount, and events resent on a later day (unique over time)
    _own(M("payment_amount_negative", "late payers' payments with a negative amount",
           _redeliver("payments", _late_payments(_set("amount", -pl.col("amount")))))),
    _own(M("earlier_purchases_resent_restamped", "purchases of 3 days ago resent, stamped into tonight",
           _redeliver("behaviour", _earlier_purchases(restamp=True)))),
    _own(M("earlier_purchases_redelivered", "purchases of 3 days ago sent again unchanged",
           _redeliver("behaviour", _earlier_purchases(restamp=False)))),
]


# --- comparing two runs ------------------------------------------------------------------------------


def _landing_rows(root: Path, dataset: str, day: dt.date) -> pl.DataFrame | None:
    """Every row under the landing partition (subfolders too) as text; None if some entry cannot be read."""
    frames = []
    for path in sorted(lake.partition_dir(root, "landing", dataset, day).rglob("*")):
        if path.name.startswith(("_", ".")) or path.is_dir():
            continue
        try:
            frames.append(pl.read_parquet(path).select(pl.all().cast(pl.String)))
        except Exception:  # noqa: BLE001 - garbage bytes, CSV, a dangling link: any unreadable entry
            return None
    return pl.concat(frames, how="diagonal") if frames else pl.DataFrame()


def touched_accounts(pristine: Path, mutated: Path, day: dt.date, loan_owner: dict[str, str]) -> set[str] | None:
    """Accounts with a landing row of ``day`` that differs (or a loan that does); None: cannot tell (all)."""
    touched: set[str] = set()
    for dataset in DATASETS:
        before, after = _landing_rows(pristine, dataset, day), _landing_rows(mutated, dataset, day)
        if before is None or after is None:
            return None
        if set(before.columns) != set(after.columns):
            changed = pl.concat([before, after], how="diagonal")
        else:
            cols = before.columns
            changed = pl.concat([before.join(after, on=cols, how="anti", nulls_equal=True),
                                 after.join(before, on=cols, how="anti", nulls_equal=True).select(cols)])
        ids = changed.get_column("account_id").drop_nulls().to_list() if "account_id" in changed.columns else []
        touched |= set(ids) | {i.strip() for i in ids}
        if "loan_id" in changed.columns:
            touched |= {loan_owner[loan] for loan in changed["loan_id"].drop_nulls() if loan in loan_owner}
    return touched


def adverse_actions(clean: dict[str, pl.DataFrame], faulty: dict[str, pl.DataFrame]) -> list[str]:
    """Every account the faulty run treats more harshly than the clean run."""
    problems = []
    limits = clean["limits"].select("account_id", "action", "new_limit").join(
        faulty["limits"].select("account_id", "action", "new_limit"), on="account_id", how="full", coalesce=True,
        suffix="_faulty")
    for r in limits.iter_rows(named=True):
        who, action, was = r["account_id"], r["action_faulty"], r["action"]
        if action is None:
            continue  # no decision tonight (quarantined, or not in the snapshot): nothing was done to it
        if was is None:
            if action in ADVERSE_ACTIONS:
                problems.append(f"{who}: {action}, clean run decided nothing")
            continue
        if r["new_limit_faulty"] < r["new_limit"]:
            problems.append(f"{who}: new_limit {r['new_limit_faulty']} < clean {r['new_limit']} ({was} -> {action})")
        if action == "freeze" and was != "freeze":
            problems.append(f"{who}: frozen, clean run: {was}")
    columns = ("account_id", "dpd", "overdue_amount", "treatment", "pd_source")
    queue = clean["collection_queue"].select(columns).join(
        faulty["collection_queue"].select(columns), on="account_id", how="full", coalesce=True, suffix="_faulty")
    for r in queue.iter_rows(named=True):
        who = r["account_id"]
        if r["dpd_faulty"] is None:
            continue
        if r["dpd"] is None:
            problems.append(f"{who}: queued for collections (dpd {r['dpd_faulty']}), clean run did not queue it")
            continue
        if r["overdue_amount_faulty"] > r["overdue_amount"] or r["dpd_faulty"] > r["dpd"]:
            problems.append(f"{who}: queued at dpd {r['dpd_faulty']} owing {r['overdue_amount_faulty']}, "
                            f"clean run dpd {r['dpd']} owing {r['overdue_amount']}")
        # hostile review 5 (F1): a plan withdrawn, a firmer contact, or a PD of 1 in place of the model's
        if TREATMENT_RANK[r["treatment_faulty"]] > TREATMENT_RANK[r["treatment"]]:
            problems.append(f"{who}: treatment {r['treatment_faulty']}, clean run {r['treatment']}")
        if r["pd_source_faulty"] == "fallback" and r["pd_source"] != "fallback":
            problems.append(f"{who}: queued on the fallback PD, clean run on the model's")
    # a hardship offer re-amortizes a loan (a longer term, more interest) on the night's DPD: one the clean
    # run did not make is a consequence of the fault
    offered = set(faulty["hardship_offers"]["loan_id"]) - set(clean["hardship_offers"]["loan_id"])
    for r in faulty["hardship_offers"].filter(pl.col("loan_id").is_in(sorted(offered))).iter_rows(named=True):
        problems.append(f"{r['account_id']}: hardship offer on loan {r['loan_id']}, clean run made none")
    # held means held in every output: a score flagged pending_payment has no cut, queue entry or offer
    held = set(faulty["scores"].filter(pl.col("pending_payment"))["account_id"])
    for name in ("collection_queue", "hardship_offers"):
        for who in sorted(held & set(faulty[name]["account_id"])):
            problems.append(f"{who}: held for a waiting payment, yet in {name}")
    cut = faulty["limits"].filter(pl.col("action").is_in(ADVERSE_ACTIONS))
    for who in sorted(held & set(cut["account_id"])):
        problems.append(f"{who}: held for a waiting payment, yet its limit was cut or frozen")
    return problems


def changed_untouched(clean: dict[str, pl.DataFrame], faulty: dict[str, pl.DataFrame], touched: set[str]) -> list[str]:
    """Accounts the mutation did not touch whose published rows differ from the clean run's."""
    problems = []
    spared = ~pl.col("account_id").is_in(pl.Series(sorted(touched), dtype=pl.String).implode())
    for name, frame in clean.items():
        cols = [c for c in frame.columns if c not in UNRANKED]
        before = frame.filter(spared).select(cols)
        after = faulty[name].filter(spared).select(cols)
        diff = pl.concat([before.join(after, on=cols, how="anti", nulls_equal=True),
                          after.join(before, on=cols, how="anti", nulls_equal=True)])
        ids = sorted(set(diff["account_id"]))
        if ids:
            problems.append(f"{name}: {len(ids)} untouched account(s) changed: {', '.join(ids[:5])}")
    return problems


# --- the test ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def book(published_lake: PublishedLake, clean_next_night: Path, quiet_cfg: RisklineConfig) -> Book:
    return Book(published_lake, clean_next_night, quiet_cfg)


@pytest.fixture(scope="module")
def clean_outputs(book: Book) -> dict[str, pl.DataFrame]:
    return published_outputs(book.clean, book.day)


@pytest.fixture(scope="module")
def loan_owner(book: Book) -> dict[str, str]:
    loans = pl.read_parquet(ledger_partition(book.clean, book.day) / "loans.parquet")
    return dict(zip(loans["loan_id"], loans["account_id"], strict=True))


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_a_fault_upstream_never_makes_an_outcome_harsher_than_clean_data(
    mutation: Mutation, book: Book, clean_outputs: dict[str, pl.DataFrame], loan_owner: dict[str, str],
    tmp_path: Path,
):
    root = tmp_path / "lake"
    shutil.copytree(book.lake.root, root, symlinks=True)
    mutation.change(root, book)
    touched = touched_accounts(book.lake.root, root, book.day, loan_owner)
    # these change where or how often rows are delivered, not the rows: every account must decide as clean
    same_rows = {"payment_rows_repeated", "payments_delivered_twice", "payments_in_subfolder"}
    assert touched is None or touched or mutation.name in same_rows, (
        f"{mutation.name} changed no landing row: the mutation did nothing")
    try:
        run_night_without_report(root, book.day, book.cfg)
    except IngestError as exc:
        # stopping the night is allowed: one error naming the dataset and date, nothing of NEXT published
        assert exc.dataset in DATASETS and f"dt={book.day.isoformat()}" in str(exc), str(exc)
        assert publish.read_latest(root) == book.lake.published
        return
    faulty = published_outputs(root, book.day)
    accounts = set().union(*(set(f["account_id"]) for o in (clean_outputs, faulty) for f in o.values()))
    problems = adverse_actions(clean_outputs, faulty)
    if touched is not None:
        problems += changed_untouched(clean_outputs, faulty, touched)
    print(f"{mutation.name}: compared {len(accounts)} accounts in {len(faulty)} outputs "
          f"({sum(f.height for f in faulty.values())} rows), {'all' if touched is None else len(touched)} touched")
    assert not problems, f"{mutation.name} ({mutation.what}):\n  " + "\n  ".join(problems)

