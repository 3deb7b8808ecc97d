"""Upstream defects ``riskline generate --faults KIND@YYYY-MM-DD`` injects into a generated day's landing
partitions (docs/contracts.md lists the kinds): the suites and ingest are tested against them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from tools.simulate import GeneratorParams, PortfolioDay, conform_landing, money_expr
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl


FAULT_KINDS: dict[str, str] = {
    "duplicate_events": "behaviour gets a second file part-00001.parquet redelivering ~1% of the day's "
    "events (same event_id, channel changed so 'latest delivery wins' is observable)",
    "null_keys": "a few behaviour rows get a null account_id; a few payments are redelivered with a null "
    "payment_id (the originals stay)",
    "negative_amounts": "a few purchase amounts are negated",
    "unknown_event_types": "a few behaviour rows with an amount get event_type 'transfer'",
    "unknown_loans": "a few extra payments of real accounts reference a loan_id that exists nowhere",
    "corrupt_file": "behaviour's part-00000.parquet is replaced by garbage bytes (_SUCCESS kept)",
    "dropped_column": "payments are written without the required amount column",
    "wrong_type": "installments are written with principal_due as strings",
    "late_partition": "every dataset's partition of the day is withheld in landing_late/<dataset>/dt=D/ "
    "until `riskline generate --release-late`",
    "missing_success": "the payments partition is written without _SUCCESS",
}

# "A few" rows per defect: enough for a test to find, small enough that the day is still mostly good.
_FEW = 3
_DUPLICATE_SHARE = 0.01
_UNKNOWN_EVENT_TYPE = "transfer"

DATA_FILE = "part-00000.parquet"
REDELIVERY_FILE = "part-00001.parquet"


@dataclass(frozen=True)
class Fault:
    """One upstream defect to inject on one business date."""

    kind: str
    date: dt.date

    def __str__(self) -> str:
        return f"{self.kind}@{self.date.isoformat()}"


def parse_faults(text: str | None, params: GeneratorParams | None = None) -> list[Fault]:
    """Parse ``KIND@YYYY-MM-DD[,KIND@YYYY-MM-DD...]`` (empty -> no faults).

    Raises ValueError naming the bad item for an unknown kind, a bad date, a repeated item, or (when
    ``params`` is given) a date outside the generated window.
    """
    faults: list[Fault] = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        kind, sep, date_text = item.partition("@")
        kind = kind.strip()
        if not sep:
            raise ValueError(f"fault {item!r} must look like KIND@YYYY-MM-DD")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r} in {item!r}; known: {', '.join(FAULT_KINDS)}")
        try:
            date = dt.date.fromisoformat(date_text.strip())
        except ValueError:
            raise ValueError(f"fault {item!r}: not a date (want YYYY-MM-DD): {date_text!r}") from None
        fault = Fault(kind, date)
        if fault in faults:
            raise ValueError(f"fault {fault} is listed twice")
        faults.append(fault)
    if params is not None:
        check_fault_dates(faults, params)
    return faults


def check_fault_dates(faults: Sequence[Fault], params: GeneratorParams) -> None:
    for fault in faults:
        if not params.start_date <= fault.date <= params.end_date:
            raise ValueError(
                f"fault {fault}: date is outside the generated window "
                f"{params.start_date.isoformat()}..{params.end_date.isoformat()}"
            )


@dataclass
class LandingPartition:
    """What upstream drops for one dataset on one day: file name -> frame (or raw bytes), and how."""

    files: dict[str, pl.DataFrame | bytes]
    success: bool = True
    late: bool = False


_Parts = dict[str, LandingPartition]


def inject_faults(
    day: PortfolioDay, faults: Sequence[Fault], seed: int, tz: ZoneInfo
) -> tuple[dict[str, LandingPartition], dict[str, dict[str, int]]]:
    """The day's landing partitions with ``faults`` (those dated ``day.date``) injected.

    Each fault draws from its own Generator seeded with ``(seed, date ordinal, kind number)``, so the
    clean data of every day is the same with or without faults. Returns the partitions and, per fault,
    how many rows of which dataset it touched (0 means the day had nothing to corrupt).
    """
    parts = {ds: LandingPartition({DATA_FILE: frame}) for ds, frame in day.frames.items()}
    report: dict[str, dict[str, int]] = {}
    kinds = list(FAULT_KINDS)
    for fault in sorted((f for f in faults if f.date == day.date), key=lambda f: kinds.index(f.kind)):
        rng = np.random.default_rng([seed, day.date.toordinal(), kinds.index(fault.kind) + 1])
        report[str(fault)] = INJECTORS[fault.kind](parts, day, rng, tz)
    return parts, report


def _frame(parts: dict[str, LandingPartition], dataset: str) -> pl.DataFrame:
    frame = parts[dataset].files[DATA_FILE]
    assert isinstance(frame, pl.DataFrame), f"{dataset} data file was already replaced"
    return frame


def _pick(rng: np.random.Generator, candidates: pl.Series | np.ndarray, height: int, k: int) -> pl.Series:
    """Row mask of ``k`` rows drawn among the ``candidates`` (a boolean mask over ``height`` rows)."""
    pool = np.flatnonzero(np.asarray(candidates)) if height else np.empty(0, np.int64)
    chosen = rng.choice(pool, min(k, pool.size), replace=False) if pool.size else pool
    mask = np.zeros(height, dtype=bool)
    mask[chosen] = True
    return pl.Series(mask)


def _duplicate_events(
    parts: _Parts, day: PortfolioDay, rng: np.random.Generator, tz: ZoneInfo
) -> dict[str, int]:
    events = _frame(parts, "behaviour")
    k = max(1, round(events.height * _DUPLICATE_SHARE)) if events.height else 0
    redelivered = events.filter(_pick(rng, np.ones(events.height, bool), events.height, k)).with_columns(
        channel=pl.when(pl.col("channel") == "app").then(pl.lit("web")).otherwise(pl.lit("app"))
    )
    parts["behaviour"].files[REDELIVERY_FILE] = redelivered
    return {"behaviour": redelivered.height}


def _null_keys(
    parts: _Parts, day: PortfolioDay, rng: np.random.Generator, tz: ZoneInfo
) -> dict[str, int]:
    events = _frame(parts, "behaviour")
    hit = _pick(rng, np.ones(events.height, bool), events.height, _FEW)
    parts["behaviour"].files[DATA_FILE] = events.with_columns(
        account_id=pl.when(hit).then(None).otherwise(pl.col("account_id"))
    )
    payments = _frame(parts, "payments")
    # Redelivered copies, so the real payment still lands and the book's truth is unchanged.
    copies = payments.filter(_pick(rng, np.ones(payments.height, bool), payments.height, _FEW))
    parts["payments"].files[DATA_FILE] = pl.concat(
        [payments, copies.with_columns(payment_id=pl.lit(None, dtype=pl.String))]
    )
    return {"behaviour": int(hit.sum()), "payments": copies.height}


def _negative_amounts(
    parts: _Parts, day: PortfolioDay, rng: np.random.Generator, tz: ZoneInfo
) -> dict[str, int]:
    events = _frame(parts, "behaviour")
    hit = _pick(rng, events["event_type"] == "purchase", events.height, _FEW)
    parts["behaviour"].files[DATA_FILE] = events.with_columns(
        amount=pl.when(hit).then(-pl.col("amount")).otherwise(pl.col("amount"))
    )
    return {"behaviour": int(hit.sum())}


def _unknown_event_types(
    parts: _Parts, day: PortfolioDay, rng: np.random.Generator, tz: ZoneInfo
) -> dict[str, int]:
    events = _frame(parts, "behaviour")
    # Rows with an amount, so the unknown type is the row's only defect.
    hit = _pick(rng, events["amount"].is_not_null(), events.height, _FEW)
    parts["behaviour"].files[DATA_FILE] = events.with_columns(
        event_type=pl.when(hit).then(pl.lit(_UNKNOWN_EVENT_TYPE)).otherwise(pl.col("event_type"))
    )
    return {"behaviour": int(hit.sum())}


def _unknown_loans(
    parts: _Parts, day: PortfolioDay, rng: np.random.Generator, tz: ZoneInfo
) -> dict[str, int]:
    accounts = day.frames["accounts"]
    payments = _frame(parts, "payments")
    payers = accounts.filter(_pick(rng, accounts["status"] != "closed", accounts.height, _FEW))
    k = payers.height
    ymd = day.date.strftime("%Y%m%d")
    day_start = dt.datetime(day.date.year, day.date.month, day.date.day, tzinfo=tz)
    # Loan numbers from the top of the 7-digit range: no day draws anywhere near 10 million loans.
    ghosts = pl.DataFrame(
        {
            "payment_id": [f"P{ymd}-{payments.height + 1 + i:07d}" for i in range(k)],
            "account_id": payers["account_id"],
            "loan_id": [f"L{ymd}-{9_999_999 - i:07d}" for i in range(k)],
            "paid_at": [day_start + dt.timedelta(hours=12, minutes=i) for i in range(k)],
            "_cents": rng.integers(50, 500, k) * 100,
        }
    ).with_columns(amount=money_expr("_cents"))
    parts["payments"].files[DATA_FILE] = pl.concat([payments, conform_landing("payments", ghosts)])
    return {"payments": k}


def _corrupt_file(
    parts: _Parts, day: PortfolioDay, rng: np.random.Generator, tz: ZoneInfo
) -> dict[str, int]:
    parts["behaviour"].files[DATA_FILE] = b"garbage, not parquet\n" + rng.bytes(1024)
    return {"behaviour": day.frames["behaviour"].height}


def _dropped_column(
    parts: _Parts, day: PortfolioDay, rng: np.random.Generator, tz: ZoneInfo
) -> dict[str, int]:
    payments = _frame(parts, "payments")
    parts["payments"].files[DATA_FILE] = payments.drop("amount")
    return {"payments": payments.height}


def _wrong_type(
    parts: _Parts, day: PortfolioDay, rng: np.random.Generator, tz: ZoneInfo
) -> dict[str, int]:
    installments = _frame(parts, "installments")
    parts["installments"].files[DATA_FILE] = installments.with_columns(
        pl.col("principal_due").cast(pl.String)
    )
    return {"installments": installments.height}


def _late_partition(
    parts: _Parts, day: PortfolioDay, rng: np.random.Generator, tz: ZoneInfo
) -> dict[str, int]:
    for part in parts.values():
        part.late = True
    return {ds: frame.height for ds, frame in day.frames.items()}


def _missing_success(
    parts: _Parts, day: PortfolioDay, rng: np.random.Generator, tz: ZoneInfo
) -> dict[str, int]:
    parts["payments"].success = False
    return {"payments": day.frames["payments"].height}


INJECTORS = {
    "duplicate_events": _duplicate_events,
    "null_keys": _null_keys,
    "negative_amounts": _negative_amounts,
    "unknown_event_types": _unknown_event_types,
    "unknown_loans": _unknown_loans,
    "corrupt_file": _corrupt_file,
    "dropped_column": _dropped_column,
    "wrong_type": _wrong_type,
    "late_partition": _late_partition,
    "missing_success": _missing_success,
}
