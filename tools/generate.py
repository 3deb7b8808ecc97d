"""Synthetic portfolio: a deterministic upstream feed of a small-ticket credit-line book.

``riskline generate`` writes, for every business day of the window, one landing partition per contract
dataset (``landing/<dataset>/dt=D/part-00000.parquet`` + ``_SUCCESS``), exactly as a well-behaved upstream
would, optionally with injected defects (:data:`FAULT_KINDS`) for the ingest and validation tests.

What is true in the data (so a model has something to learn and a policy something to act on):

* every account has a latent risk (fixed part + slow drift). The lender's underwriting sees it only
  through a noisy score, which sets the credit line (250 to 50,000 CNY, skewed small) and the price.
* hardship shocks (income loss) hit some accounts. Behaviour shifts at once (fewer and smaller purchases,
  more cash draws, more and later-at-night logins) while savings still cover a few weeks of instalments;
  only then do repayments fail. Some shocked accounts recover and cure their arrears.
* a cash draw is a loan of 3, 6 or 12 monthly instalments (equal principal, interest on the balance at a
  monthly rate), never above the available credit. Purchases are spending on the platform paid from the
  customer's own funds; they do not use the line but say a lot about the customer's cash flow.
* the lender freezes lines 30+ days past due and unfreezes them once fully current; paid-off lines close.
* gender, marital status and region are drawn independently of everything else: a fair model has
  nothing to learn from them.

That is the ``default`` profile (the demo's). ``GeneratorParams.profile="card"`` (``riskline generate
--profile card``) writes a credit-card book instead, through the same contract: :class:`CardSimulation`
says how statements, minimum payments and revolving balances map onto it.

:class:`PortfolioSimulation` and :func:`land_day` are pure (no disk, no clock, no environment); the I/O
entry points :func:`write_portfolio` and :func:`release_late` are at the bottom.
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from pipelines.store import lake
from pipelines.config.settings import GeneratorConfig, RisklineConfig
from pipelines.contracts.landing import ACCOUNT_STATUSES, CONTRACT, DATASETS, EVENT_TYPES

# --- fault catalogue -------------------------------------------------------------------------------

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
LATE_ZONE = "landing_late"
SUMMARY_FILE = "summary.json"
TRUTH_FILE = "truth.parquet"


@dataclass(frozen=True)
class Fault:
    """One upstream defect to inject on one business date."""

    kind: str
    date: dt.date

    def __str__(self) -> str:
        return f"{self.kind}@{self.date.isoformat()}"


PROFILE_NAMES = ("default", "card")  # the classes: PROFILES, below the simulations


@dataclass(frozen=True)
class GeneratorParams:
    """What to generate: ``accounts`` lines existing at ``end_date``, ``days`` business days ending there."""

    accounts: int
    days: int
    end_date: dt.date
    seed: int = 7
    profile: str = "default"  # the book's shape: "default" (the demo's credit lines) or "card"

    def __post_init__(self) -> None:
        if self.accounts <= 0 or self.days <= 0:
            raise ValueError(f"accounts and days must be > 0 (got {self.accounts}, {self.days})")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0 (got {self.seed})")
        if self.profile not in PROFILE_NAMES:
            raise ValueError(f"unknown profile {self.profile!r}; profiles: {', '.join(PROFILE_NAMES)}")

    @property
    def start_date(self) -> dt.date:
        return self.end_date - dt.timedelta(days=self.days - 1)

    @property
    def dates(self) -> list[dt.date]:
        return [self.start_date + dt.timedelta(days=i) for i in range(self.days)]


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


# --- simulation ------------------------------------------------------------------------------------

_ACTIVE = ACCOUNT_STATUSES.index("active")
_FROZEN = ACCOUNT_STATUSES.index("frozen")
_CLOSED = ACCOUNT_STATUSES.index("closed")
_LOGIN = EVENT_TYPES.index("login")
_PURCHASE = EVENT_TYPES.index("purchase")
_REFUND = EVENT_TYPES.index("refund")
_CASH_DRAW = EVENT_TYPES.index("cash_draw")

# Province-level region codes (ISO 3166-2:CN), drawn uniformly and independently of risk.
_REGIONS = (
    "CN-AH", "CN-BJ", "CN-CQ", "CN-FJ", "CN-GD", "CN-GS", "CN-GX", "CN-GZ", "CN-HA", "CN-HB", "CN-HE",
    "CN-HI", "CN-HL", "CN-HN", "CN-JL", "CN-JS", "CN-JX", "CN-LN", "CN-NM", "CN-NX", "CN-QH", "CN-SC",
    "CN-SD", "CN-SH", "CN-SN", "CN-SX", "CN-TJ", "CN-XJ", "CN-XZ", "CN-YN", "CN-ZJ",
)  # fmt: skip
_GENDERS = ("F", "M")
_MARITAL = ("single", "married", "divorced", "widowed")
_MARITAL_WEIGHTS = (0.42, 0.50, 0.06, 0.02)

_DPD_BUCKET_30 = 30
_NEVER = np.iinfo(np.int32).max  # "no unpaid instalment due" sentinel for day indexes
_NIGHT_END = 0.25  # 00:00-06:00 local counts as night


@dataclass(frozen=True)
class PortfolioDay:
    """One business day of upstream data (contract landing schema, rows sorted by key) and book stats."""

    date: dt.date
    frames: dict[str, pl.DataFrame]
    open_accounts: int
    dpd30_accounts: int
    shocked_accounts: int

    @property
    def dpd30_rate(self) -> float:
        return self.dpd30_accounts / self.open_accounts if self.open_accounts else 0.0


class _InstalmentBook:
    """Unpaid instalments of every loan, one row each, in loan order (a loan's rows contiguous, by number).

    Fully paid rows are dropped now and then, so the book holds only what can still be paid.
    """

    _DTYPES: dict[str, type[np.generic]] = {
        "acct": np.int32,
        "loan": np.int64,
        "no": np.int16,
        "due": np.int32,
        "principal": np.int64,
        "interest": np.int64,
        "paid": np.int64,
    }

    def __init__(self) -> None:
        self.size = 0
        self._cols = {k: np.zeros(1024, dtype=t) for k, t in self._DTYPES.items()}

    def __getitem__(self, name: str) -> np.ndarray:
        return self._cols[name][: self.size]

    def remaining(self) -> np.ndarray:
        return self["principal"] + self["interest"] - self["paid"]

    def append(self, **cols: np.ndarray) -> None:
        k = len(cols["acct"])
        need = self.size + k
        cap = len(self._cols["acct"])
        if need > cap:
            cap = max(need, 2 * cap)
            for name, arr in self._cols.items():
                grown = np.zeros(cap, dtype=arr.dtype)
                grown[: self.size] = arr[: self.size]
                self._cols[name] = grown
        for name, arr in cols.items():
            self._cols[name][self.size : need] = arr
        self.size = need

    def compact(self) -> None:
        keep = self.remaining() > 0
        if keep.sum() * 2 > self.size:
            return
        for arr in self._cols.values():
            kept = arr[: self.size][keep]
            arr[: len(kept)] = kept
        self.size = int(keep.sum())


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _add_months(day: dt.date, months: int) -> dt.date:
    """Same day of month ``months`` later, clamped to the month's end (Jan 31 + 1 month -> Feb 28/29)."""
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _day_index_to_date(
    days: np.ndarray, start: dt.date, missing: np.ndarray | None = None
) -> pl.Series:
    """Day numbers relative to ``start`` (day 0) as dates; ``missing`` marks nulls."""
    epoch_days = days.astype(np.int32) + (start - dt.date(1970, 1, 1)).days
    series = pl.Series(epoch_days, dtype=pl.Int32)
    if missing is not None:
        series = series.set(pl.Series(missing), None)
    return series.cast(pl.Date)


def _money(col: str) -> pl.Expr:
    """Integer cents -> the landing Decimal(18, 2) of CNY, exactly."""
    return (pl.col(col).cast(pl.Decimal(18, 2)) / 100).cast(pl.Decimal(18, 2))


def _ids(prefix: str | pl.Expr, seq: pl.Expr, width: int) -> pl.Expr:
    return pl.concat_str([prefix if isinstance(prefix, pl.Expr) else pl.lit(prefix),
                          seq.cast(pl.String).str.zfill(width)])


def _conform(dataset: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Exactly the contract's landing columns, in contract order, with the landing types."""
    return frame.select(
        pl.col(c.name).cast(c.landing_dtype, strict=True) for c in CONTRACT[dataset].columns
    )


class PortfolioSimulation:
    """The book as state vectors (one slot per account, one row per unpaid instalment), advanced daily.

    Pure: the output depends only on ``params``, ``cfg`` and ``tz``. Each day draws from its own numpy
    Generator seeded with ``(seed, date ordinal)``; account ids are ``A`` + zero-padded number in
    opening order, so they are stable and sort like opening dates.
    """

    _LOAN_PREFIX = "L"
    _LOAN_SEQ_WIDTH = 7
    _EVENT_SEQ_WIDTH = 8
    _PAYMENT_SEQ_WIDTH = 7

    def __init__(self, params: GeneratorParams, cfg: GeneratorConfig, tz: ZoneInfo) -> None:
        self.params, self.cfg, self.tz = params, cfg, tz
        self._dates = params.dates
        self._ymd = pl.Series([d.strftime("%Y%m%d") for d in self._dates], dtype=pl.String)
        self._ran = False
        self._init_population(np.random.default_rng([params.seed, 0]))
        self._book = _InstalmentBook()
        self._loan_first = np.zeros(params.days + 1, dtype=np.int64)  # global loan number of each day's first
        self._n_loans = 0
        self._refunds: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._last_day = -1

    # -- population ------------------------------------------------------------------------------

    def _init_population(self, rng: np.random.Generator) -> None:
        cfg, n, days = self.cfg, self.params.accounts, self.params.days
        pre = rng.random(n) < cfg.opened_before_share
        age = rng.integers(1, cfg.max_account_age_days + 1, n)
        open_day = np.where(pre, -age, rng.integers(0, days, n))
        # ids follow opening order, so the accounts existing on day t are a prefix of the arrays
        self.open_day = np.sort(open_day).astype(np.int32)

        z = rng.standard_normal(n)
        # The lender sees the latent risk only through a noisy underwriting score (corr 0.6).
        score = 0.6 * z + 0.8 * rng.standard_normal(n)
        income_z = -0.3 * z + np.sqrt(1 - 0.09) * rng.standard_normal(n)
        limit_z = -0.7 * score + 0.4 * income_z + 0.6 * rng.standard_normal(n)
        self.risk = z
        self.drift = cfg.risk_drift_sd * rng.standard_normal(n)

        income_cny = np.exp(np.log(cfg.income_median_cny) + cfg.income_sigma * income_z)
        self.income_cents = (np.round(income_cny / 1000) * 1000 * 100).astype(np.int64)
        self.has_income = rng.random(n) < cfg.income_present_share
        step = cfg.limit_step_cny
        limit_cny = np.exp(np.log(cfg.limit_median_cny) + cfg.limit_sigma * limit_z)
        limit_cny = np.clip(np.floor(limit_cny / step) * step, cfg.limit_min_cny, cfg.limit_max_cny)
        self.limit_cents = limit_cny.astype(np.int64) * 100
        lo, hi = cfg.monthly_rate_bp
        self.rate_bp = np.rint(lo + (hi - lo) * _sigmoid(1.7 * score)).astype(np.int64)

        # Activity propensities, log-normal with mean ~1: most accounts are quiet, a few very active.
        self.engagement = np.exp(0.8 * rng.standard_normal(n) - 0.32)
        self.shopper = np.exp(0.7 * rng.standard_normal(n) - 0.245) * np.exp(0.3 * income_z)
        self.draw_propensity = np.exp(1.2 * rng.standard_normal(n) - 0.72 + 0.3 * z - 0.045)
        self.shock_hazard = cfg.shock_rate * np.exp(
            cfg.shock_risk_slope * z - cfg.shock_risk_slope**2 / 2
        )

        # Protected attributes and region: independent draws, never an input to any behaviour above.
        self.region = rng.integers(0, len(_REGIONS), n).astype(np.int32)
        self.gender = rng.integers(0, len(_GENDERS), n).astype(np.int32)
        self.marital = rng.choice(len(_MARITAL), n, p=_MARITAL_WEIGHTS).astype(np.int32)

        # Lines opened before the window may already have closed (only lines with no balance close).
        p_closed = 1 - np.exp(-cfg.close_rate * np.maximum(-self.open_day, 0))
        self.status = np.where(rng.random(n) < p_closed, _CLOSED, _ACTIVE).astype(np.int8)

        self.outstanding = np.zeros(n, dtype=np.int64)  # unpaid principal of all loans, cents
        self.shocked = np.zeros(n, dtype=bool)
        self.distress_from = np.full(n, _NEVER, dtype=np.int32)  # shocked and savings run out
        self.first_shock = np.full(n, -1, dtype=np.int32)
        self.last_recovery = np.full(n, -1, dtype=np.int32)
        self.first_miss = np.full(n, -1, dtype=np.int32)
        self.first_dpd30 = np.full(n, -1, dtype=np.int32)
        self.oldest_due = np.full(n, _NEVER, dtype=np.int32)

        width = max(7, len(str(n)))
        self._account_ids = pl.select(_ids("A", pl.int_range(1, n + 1), width)).to_series()
        start = self.params.start_date
        self._static_accounts = pl.DataFrame(
            {
                "account_id": self._account_ids,
                "opened_on": _day_index_to_date(self.open_day, start),
                "_limit": self.limit_cents,
                "_income": pl.Series(self.income_cents).set(pl.Series(~self.has_income), None),
                "region": pl.Series(_REGIONS).gather(self.region),
                "gender": pl.Series(_GENDERS).gather(self.gender),
                "marital_status": pl.Series(_MARITAL).gather(self.marital),
            }
        ).with_columns(credit_limit=_money("_limit"), annual_income=_money("_income"))

    # -- one day ---------------------------------------------------------------------------------

    def run(self) -> Iterator[PortfolioDay]:
        """Yield every business day of the window in order (the simulation can run once)."""
        if self._ran:
            raise RuntimeError("a PortfolioSimulation runs once; make a new one")
        self._ran = True
        for t, date in enumerate(self._dates):
            yield self._simulate_day(t, date)
            self._last_day = t

    def _day_window(self, date: dt.date) -> tuple[int, int]:
        """The business day's start (UTC microseconds) and length in microseconds (both profiles)."""
        day_start = dt.datetime(date.year, date.month, date.day, tzinfo=self.tz)
        next_start = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), tzinfo=self.tz)
        return int(day_start.timestamp()) * 1_000_000, int((next_start - day_start).total_seconds()) * 1_000_000

    def _simulate_day(self, t: int, date: dt.date) -> PortfolioDay:
        rng = np.random.default_rng([self.params.seed, date.toordinal()])
        start_us, day_us = self._day_window(date)

        live = (self.open_day <= t) & (self.status != _CLOSED)
        self._advance_latent_state(t, rng, live)
        payments = self._collect_payments(t, rng, start_us, day_us)
        self._refresh_arrears(t)
        loans, installments = self._draw_loans(t, date, rng, live)
        behaviour = self._behaviour(t, rng, live, loans, start_us, day_us)
        self._update_status(t, rng, live)

        n_t = int(np.searchsorted(self.open_day, t, side="right"))
        accounts = (
            self._static_accounts.head(n_t)
            .with_columns(status=pl.Series(ACCOUNT_STATUSES).gather(self.status[:n_t]))
        )
        frames = {
            "accounts": _conform("accounts", accounts),
            "behaviour": _conform("behaviour", behaviour),
            "installments": _conform("installments", installments),
            "payments": _conform("payments", payments),
        }
        open_now = (self.open_day <= t) & (self.status != _CLOSED)
        dpd30 = open_now & (self.oldest_due <= t - _DPD_BUCKET_30)
        return PortfolioDay(
            date=date,
            frames={ds: frames[ds] for ds in DATASETS},
            open_accounts=int(open_now.sum()),
            dpd30_accounts=int(dpd30.sum()),
            shocked_accounts=int((open_now & self.shocked).sum()),
        )

    def _advance_latent_state(self, t: int, rng: np.random.Generator, live: np.ndarray) -> None:
        cfg, n = self.cfg, self.params.accounts
        phi = np.exp(-1.0 / cfg.risk_drift_days)
        self.drift = phi * self.drift + cfg.risk_drift_sd * np.sqrt(1 - phi**2) * rng.standard_normal(n)
        u_shock, u_recover = rng.random(n), rng.random(n)
        shock = live & ~self.shocked & (u_shock < self.shock_hazard)
        buffer = rng.integers(cfg.shock_buffer_days[0], cfg.shock_buffer_days[1] + 1, int(shock.sum()))
        recover = live & self.shocked & (u_recover < cfg.recovery_rate)
        self.shocked[recover] = False
        self.distress_from[recover] = _NEVER
        self.last_recovery[recover] = t
        self.shocked[shock] = True
        self.distress_from[shock] = t + buffer
        self.first_shock[shock & (self.first_shock < 0)] = t

    def _repayment_odds(self, t: int, acct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Chance to pay an instalment falling due today, and daily chance to cure arrears."""
        cfg = self.cfg
        risk = self.risk[acct] + self.drift[acct]
        on_time = 1 - _sigmoid(cfg.miss_logit + cfg.miss_logit_per_risk * risk)
        cure = np.clip(cfg.cure_rate * np.exp(-0.5 * risk), 0.01, 0.95)
        distressed = t >= self.distress_from[acct]
        return (np.where(distressed, cfg.shock_pay_prob, on_time),
                np.where(distressed, cfg.shock_cure_rate, cure))

    def _collect_payments(
        self, t: int, rng: np.random.Generator, start_us: int, day_us: int
    ) -> pl.DataFrame:
        """Decide, loan by loan, what each account pays today; apply it oldest instalment first."""
        n, book = self.params.accounts, self._book
        u_pay, partial_frac = rng.random(n), rng.uniform(0.2, 0.8, n)
        remaining = book.remaining()
        rows = np.flatnonzero((book["due"] <= t) & (remaining > 0))
        if rows.size == 0:
            return self._payments_frame(t, np.empty(0, np.int64), np.empty(0, np.int32),
                                        np.empty(0, np.int64), np.empty(0, np.int64))
        loan = book["loan"][rows]
        starts = np.flatnonzero(np.r_[True, loan[1:] != loan[:-1]])
        lengths = np.diff(np.r_[starts, rows.size])
        rem = remaining[rows]
        loan_due = np.add.reduceat(rem, starts)
        acct = book["acct"][rows[starts]]
        falls_due_today = book["due"][rows[starts]] == t  # nothing older unpaid on this loan
        on_time, cure = self._repayment_odds(t, acct)
        # One uniform per account: an account that pays one loan today tends to pay the others too.
        p = np.where(falls_due_today, on_time, cure)
        u = u_pay[acct]
        pays = u < p
        partial = pays & (u >= p * (1 - self.cfg.partial_pay_share)) & (loan_due > 1)
        amount = np.where(
            partial,
            np.clip((loan_due * partial_frac[acct]).astype(np.int64), 1, loan_due - 1),
            loan_due,
        )
        amount = np.where(pays, amount, 0)

        # Oldest instalment first, interest before principal: the usual waterfall.
        group = np.repeat(np.arange(starts.size), lengths)
        cum = np.cumsum(rem)
        before = cum - rem - (cum - rem)[starts][group]
        pay_row = np.clip(amount[group] - before, 0, rem)
        paid_col = book["paid"]
        interest = book["interest"][rows]
        principal_before = np.maximum(paid_col[rows] - interest, 0)
        paid_col[rows] += pay_row
        principal_paid = np.maximum(paid_col[rows] - interest, 0) - principal_before
        np.subtract.at(self.outstanding, book["acct"][rows], principal_paid)

        payers = np.flatnonzero(pays)
        paid_at = start_us + np.minimum(
            (rng.uniform(8 / 24, 23 / 24, payers.size) * day_us).astype(np.int64), day_us - 1
        )
        return self._payments_frame(t, loan[starts][payers], acct[payers], amount[payers], paid_at)

    def _payments_frame(
        self, t: int, loan: np.ndarray, acct: np.ndarray, amount: np.ndarray, paid_at: np.ndarray
    ) -> pl.DataFrame:
        order = np.lexsort((loan, acct, paid_at))
        loan, acct, amount, paid_at = loan[order], acct[order], amount[order], paid_at[order]
        loan_day = np.searchsorted(self._loan_first[: t + 1], loan, side="right") - 1
        loan_seq = loan - self._loan_first[loan_day] + 1
        frame = pl.DataFrame(
            {
                "_seq": np.arange(1, len(loan) + 1, dtype=np.int64),
                "_loan_day": loan_day.astype(np.int64),
                "_loan_seq": loan_seq,
                "_amount": amount,
                "_paid_at": paid_at,
            }
        )
        return frame.with_columns(
            account_id=self._account_ids.gather(acct),
        ).select(
            payment_id=_ids(f"P{self._ymd[t]}-", pl.col("_seq"), self._PAYMENT_SEQ_WIDTH),
            account_id=pl.col("account_id"),
            loan_id=self._loan_id_expr(),
            paid_at=pl.col("_paid_at").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            amount=_money("_amount"),
        )

    def _loan_id_expr(self) -> pl.Expr:
        ymd = pl.lit(self._ymd).gather(pl.col("_loan_day"))
        return _ids(pl.concat_str([pl.lit(self._LOAN_PREFIX), ymd, pl.lit("-")]), pl.col("_loan_seq"),
                    self._LOAN_SEQ_WIDTH)

    def _refresh_arrears(self, t: int) -> None:
        """Oldest unpaid due day per account after today's payments; record first misses and 30+ DPD."""
        book = self._book
        overdue = (book["due"] <= t) & (book.remaining() > 0)
        self.oldest_due.fill(_NEVER)
        np.minimum.at(self.oldest_due, book["acct"][overdue], book["due"][overdue])
        missed_today = self.oldest_due <= t
        self.first_miss[missed_today & (self.first_miss < 0)] = t
        dpd30 = self.oldest_due <= t - _DPD_BUCKET_30
        self.first_dpd30[dpd30 & (self.first_dpd30 < 0)] = t
        book.compact()

    def _draw_loans(
        self, t: int, date: dt.date, rng: np.random.Generator, live: np.ndarray
    ) -> tuple[dict[str, np.ndarray], pl.DataFrame]:
        """Cash draws of the day (at most one per account) and their repayment schedules."""
        cfg, n = self.cfg, self.params.accounts
        u_draw = rng.random(n)
        available = self.limit_cents - self.outstanding
        min_draw, step = cfg.min_draw_cny * 100, cfg.draw_step_cny * 100
        p_draw = cfg.draw_rate * self.draw_propensity * np.where(
            self.shocked, cfg.draw_rate_shock_multiplier, 1.0
        )
        # Lines with arrears or a freeze cannot draw; a draw never exceeds the available credit.
        eligible = live & (self.status == _ACTIVE) & (self.oldest_due > t) & (available >= min_draw)
        acct = np.flatnonzero(eligible & (u_draw < p_draw))
        # Share of the available credit drawn: ~40% usually, ~67% in hardship.
        frac_normal, frac_shocked = rng.beta(2, 3, acct.size), rng.beta(4, 2, acct.size)
        frac = np.where(self.shocked[acct], frac_shocked, frac_normal)
        principal = np.maximum((frac * available[acct]).astype(np.int64) // step * step, min_draw)
        k = acct.size
        term = np.asarray(cfg.term_months, dtype=np.int64)[
            rng.choice(len(cfg.term_months), k, p=np.asarray(cfg.term_weights) / sum(cfg.term_weights))
        ]
        loan = self._n_loans + np.arange(k, dtype=np.int64)
        self._loan_first[t] = self._n_loans
        self._n_loans += k
        self._loan_first[t + 1] = self._n_loans
        self.outstanding[acct] += principal

        # Equal principal per instalment (the last one takes the cents that do not divide), interest
        # on the balance outstanding before each instalment at the account's monthly rate, rounded
        # half up to the cent in integer arithmetic.
        total = int(term.sum())
        owner = np.repeat(np.arange(k), term)
        no = np.arange(total) - np.repeat(np.cumsum(term) - term, term) + 1
        base = principal // term
        principal_due = np.where(no == term[owner], principal[owner] - base[owner] * (term[owner] - 1),
                                 base[owner])
        balance_before = principal[owner] - base[owner] * (no - 1)
        interest_due = (balance_before * self.rate_bp[acct][owner] + 5_000) // 10_000
        due_by_no = np.array(
            [(_add_months(date, m) - self.params.start_date).days for m in range(max(cfg.term_months) + 1)],
            dtype=np.int32,
        )
        due = due_by_no[no]
        self._book.append(acct=acct[owner], loan=loan[owner], no=no, due=due,
                          principal=principal_due, interest=interest_due, paid=np.zeros(total, np.int64))

        start_epoch_day = (self.params.start_date - dt.date(1970, 1, 1)).days
        installments = pl.DataFrame(
            {
                "_loan_seq": (loan - self._loan_first[t] + 1)[owner],
                "_loan_day": np.full(total, t, dtype=np.int64),
                "installment_no": no.astype(np.int32),
                "_due": due.astype(np.int32) + start_epoch_day,
                "_principal": principal_due,
                "_interest": interest_due,
            }
        ).with_columns(account_id=self._account_ids.gather(acct[owner])).select(
            installment_id=pl.concat_str([self._loan_id_expr(), pl.lit("-"),
                                          pl.col("installment_no").cast(pl.String).str.zfill(2)]),
            loan_id=self._loan_id_expr(),
            account_id=pl.col("account_id"),
            installment_no=pl.col("installment_no"),
            due_date=pl.col("_due").cast(pl.Date),
            principal_due=_money("_principal"),
            interest_due=_money("_interest"),
        )
        return {"acct": acct, "principal": principal}, installments

    def _behaviour(
        self,
        t: int,
        rng: np.random.Generator,
        live: np.ndarray,
        loans: dict[str, np.ndarray],
        start_us: int,
        day_us: int,
    ) -> pl.DataFrame:
        """Logins, purchases, refunds and the cash-draw events of today's loans."""
        cfg, n = self.cfg, self.params.accounts
        shocked = self.shocked
        lam_login = cfg.login_rate * self.engagement * np.where(
            shocked, cfg.login_rate_shock_multiplier, 1
        )
        lam_purchase = cfg.purchase_rate * self.shopper * np.where(
            shocked, cfg.purchase_rate_shock_multiplier, 1
        )
        n_login = rng.poisson(np.where(live, lam_login, 0.0))
        n_purchase = rng.poisson(np.where(live, lam_purchase, 0.0))

        login_acct = np.repeat(np.arange(n), n_login)
        night_share = np.where(shocked, cfg.night_login_share_shocked, cfg.night_login_share)
        login_time = _event_times(rng, night_share[login_acct], day_us)

        purchase_acct = np.repeat(np.arange(n), n_purchase)
        size = cfg.purchase_median_cny * 100 * np.exp(0.9 * rng.standard_normal(purchase_acct.size))
        size *= np.where(shocked[purchase_acct], cfg.purchase_amount_shock_multiplier, 1.0)
        purchase_amount = np.maximum(np.rint(size).astype(np.int64), 100)
        purchase_time = _event_times(rng, np.full(purchase_acct.size, cfg.night_login_share), day_us)

        # Some purchases come back as refunds 1-14 days later (if the line is still open then).
        nothing = (np.empty(0, np.int64), np.empty(0, np.int64))
        refunded = rng.random(purchase_acct.size) < cfg.refund_share
        delay = rng.integers(1, 15, purchase_acct.size)
        for d in np.unique(delay[refunded]):
            pick = refunded & (delay == d)
            old = self._refunds.get(t + int(d), nothing)
            self._refunds[t + int(d)] = (np.r_[old[0], purchase_acct[pick]],
                                         np.r_[old[1], purchase_amount[pick]])
        refund_acct, refund_amount = self._refunds.pop(t, nothing)
        keep = live[refund_acct]
        refund_acct, refund_amount = refund_acct[keep], refund_amount[keep]
        refund_time = _event_times(rng, np.zeros(refund_acct.size), day_us)

        draw_acct = loans["acct"]
        draw_time = _event_times(rng, np.zeros(draw_acct.size), day_us)

        acct = np.concatenate([login_acct, purchase_acct, refund_acct, draw_acct]).astype(np.int64)
        kind = np.repeat(
            np.array([_LOGIN, _PURCHASE, _REFUND, _CASH_DRAW], dtype=np.int64),
            [login_acct.size, purchase_acct.size, refund_acct.size, draw_acct.size],
        )
        time = start_us + np.concatenate([login_time, purchase_time, refund_time, draw_time])
        amount = np.concatenate(
            [np.zeros(login_acct.size, np.int64), purchase_amount, refund_amount, loans["principal"]]
        )
        return self._events_frame(t, rng, acct, kind, time, amount)

    def _events_frame(self, t: int, rng: np.random.Generator, acct: np.ndarray, kind: np.ndarray,
                      time: np.ndarray, amount: np.ndarray) -> pl.DataFrame:
        """The day's behaviour rows in landing shape, ordered by time, account and kind (both profiles).

        The channel is drawn here, after every other draw of the day, so each profile's random stream (and
        the default profile's bytes) stays as it was."""
        weights = np.asarray(list(self.cfg.channel_weights.values()))
        channel = np.searchsorted(np.cumsum(weights), rng.random(acct.size), side="right")
        order = np.lexsort((kind, acct, time))
        channels = pl.Series([*self.cfg.channel_weights, None], dtype=pl.String)
        frame = pl.DataFrame({
            "_seq": np.arange(1, acct.size + 1, dtype=np.int64), "_time": time[order],
            "_kind": kind[order], "_amount": amount[order],
        }).with_columns(
            account_id=self._account_ids.gather(acct[order]),
            event_type=pl.Series(EVENT_TYPES).gather(kind[order]),
            channel=channels.gather(channel[order]),
        )
        return frame.select(
            event_id=_ids(f"E{self._ymd[t]}-", pl.col("_seq"), self._EVENT_SEQ_WIDTH),
            account_id=pl.col("account_id"),
            event_time=pl.col("_time").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            event_type=pl.col("event_type"),
            amount=pl.when(pl.col("_kind") != _LOGIN).then(_money("_amount")),
            channel=pl.col("channel"),
        )

    def _update_status(self, t: int, rng: np.random.Generator, live: np.ndarray) -> None:
        """The source system's end-of-day line status: freeze 30+ DPD, unfreeze when current, closures."""
        u_close = rng.random(self.params.accounts)
        status = self.status
        freeze = (status == _ACTIVE) & (self.oldest_due <= t - _DPD_BUCKET_30)
        unfreeze = (status == _FROZEN) & (self.oldest_due > t)
        close = (
            live & (status == _ACTIVE) & ~freeze & (self.outstanding == 0) & (self.open_day < t)
            & (u_close < self.cfg.close_rate)
        )
        status[freeze] = _FROZEN
        status[unfreeze] = _ACTIVE
        status[close] = _CLOSED

    @property
    def loans_drawn(self) -> int:
        return self._n_loans

    # -- ground truth ----------------------------------------------------------------------------

    def truth(self) -> pl.DataFrame:
        """Per-account latent state after the last simulated day: for tests and model checks, never landed.

        ``shocked_on`` is the first hardship shock in the window, ``recovered_on`` the last recovery,
        ``first_missed_on`` the first day an instalment stayed unpaid past its due date, ``dpd`` the days
        past due of the oldest unpaid instalment (null when current).
        """
        if self._last_day < 0:
            raise RuntimeError("run the simulation before asking for its truth")
        t = self._last_day
        start = self.params.start_date

        def as_date(days: np.ndarray) -> pl.Series:
            return _day_index_to_date(days, start, missing=days < 0)

        dpd = np.where(self.oldest_due <= t, t - self.oldest_due.astype(np.int64), -1)
        return pl.DataFrame(
            {
                "account_id": self._account_ids,
                "latent_risk": self.risk + self.drift,
                "base_risk": self.risk,
                "shocked_on": as_date(self.first_shock),
                "recovered_on": as_date(self.last_recovery),
                "in_hardship": self.shocked,
                "first_missed_on": as_date(self.first_miss),
                "first_dpd30_on": as_date(self.first_dpd30),
                "dpd": pl.Series(dpd).set(pl.Series(dpd < 0), None).cast(pl.Int32),
                "status": pl.Series(ACCOUNT_STATUSES).gather(self.status),
            }
        )



class CardSimulation(PortfolioSimulation):
    """The ``card`` profile: a credit-card book mapped onto the same landing contract.

    What a card issuer has, and where it lands in the contract:

    * **statements**: each account has a cycle day 1..31 (in a shorter month, its last day). On it, interest
      on the balance carried since the last statement is charged and a statement is cut for the revolving
      balance. A statement with a balance is one ``installments`` row: ``loan_id`` ``S<yyyymmdd>-<seq>``
      (the statement), ``installment_no`` 1, ``due_date`` = statement date + ``card.grace_days``, and the
      **minimum payment** as what is due (``card.min_payment_share`` of the balance, at least
      ``card.min_payment_floor_cny``, capped at the balance; the cycle's interest first in
      ``interest_due``, the rest in ``principal_due``). So on days where no cycle's due date falls (a
      31st after a 30-day month, a small book) no instalment falls due and nobody pays.
    * **payments**: on the due date an account pays with the generator's repayment odds (latent risk,
      hardship shocks); a payer clears the whole statement (``card.full_payment_share``), pays only part
      of the minimum (``partial_pay_share``: a partial payment, the statement stays past due) or something
      between the minimum and the statement balance; a missed minimum is cured later at ``cure_rate``.
      The landed ``amount`` is the part that settles the minimum due (capped at it): the rest pays down the
      revolving balance, which the contract does not carry (``outstanding`` in the ledger is the unpaid
      minimum dues, not the card balance).
    * **behaviour** is sparse: purchases (``card.purchase_rate``; they go on the balance, within the
      available credit), cash advances as ``cash_draw`` events (on the next statement, no schedule of their
      own) and a few logins. Accounts lines carry no ``annual_income``, ``region`` or protected attributes:
      the optional columns are absent from the files.
    * **status**: frozen at 30+ days past due on a minimum payment, unfrozen once current; lines with a
      zero balance close at ``close_rate``.
    """

    _LOAN_PREFIX = "S"

    def __init__(self, params: GeneratorParams, cfg: GeneratorConfig, tz: ZoneInfo) -> None:
        super().__init__(params, cfg, tz)
        card, n = cfg.card, params.accounts
        rng = np.random.default_rng([params.seed, 0, 1])  # the card's own draws; the base population is shared
        self.cycle_day = rng.integers(1, 32, n).astype(np.int32)
        limit_z = -0.7 * (0.6 * self.risk + 0.8 * rng.standard_normal(n)) + 0.5 * rng.standard_normal(n)
        limit = np.exp(np.log(card.limit_median_cny) + card.limit_sigma * limit_z)
        limit = np.clip(np.floor(limit / 100) * 100, card.limit_min_cny, card.limit_max_cny)
        self.limit_cents = limit.astype(np.int64) * 100
        self.statement_cents = np.zeros(n, dtype=np.int64)  # balance on the last statement
        self.carried_cents = np.zeros(n, dtype=np.int64)  # of it, still unpaid (interest is charged on this)
        self._static_accounts = self._static_accounts.select("account_id", "opened_on").with_columns(
            credit_limit=pl.Series(self.limit_cents).cast(pl.Decimal(18, 2)) / 100)

    def _simulate_day(self, t: int, date: dt.date) -> PortfolioDay:
        rng = np.random.default_rng([self.params.seed, date.toordinal(), 1])
        start_us, day_us = self._day_window(date)

        live = (self.open_day <= t) & (self.status != _CLOSED)
        self._advance_latent_state(t, rng, live)
        payments = self._pay_minimums(t, rng, start_us, day_us)
        self._refresh_arrears(t)
        behaviour = self._spend(t, rng, live, start_us, day_us)
        installments = self._cut_statements(t, date, live)
        self._update_status(t, rng, live)

        n_t = int(np.searchsorted(self.open_day, t, side="right"))
        accounts = self._static_accounts.head(n_t).with_columns(
            status=pl.Series(ACCOUNT_STATUSES).gather(self.status[:n_t]))
        frames = {"accounts": _conform_delivered("accounts", accounts),
                  "behaviour": _conform("behaviour", behaviour),
                  "installments": _conform("installments", installments),
                  "payments": _conform("payments", payments)}
        open_now = (self.open_day <= t) & (self.status != _CLOSED)
        dpd30 = open_now & (self.oldest_due <= t - _DPD_BUCKET_30)
        return PortfolioDay(date=date, frames={ds: frames[ds] for ds in DATASETS},
                            open_accounts=int(open_now.sum()), dpd30_accounts=int(dpd30.sum()),
                            shocked_accounts=int((open_now & self.shocked).sum()))

    def _pay_minimums(self, t: int, rng: np.random.Generator, start_us: int, day_us: int) -> pl.DataFrame:
        """Minimum payments falling due today, and cures of past-due ones; the balance goes down by all
        that is paid, the landed payment by what settles the minimum."""
        n, book, card = self.params.accounts, self._book, self.cfg.card
        u_pay, u_kind, frac = rng.random(n), rng.random(n), rng.uniform(0.2, 0.8, n)
        remaining = book.remaining()
        rows = np.flatnonzero((book["due"] <= t) & (remaining > 0))
        acct = book["acct"][rows]
        on_time, cure = self._repayment_odds(t, acct)
        due_today = book["due"][rows] == t
        pays = u_pay[acct] < np.where(due_today, on_time, cure)
        rem = remaining[rows]
        partial = pays & due_today & (u_kind[acct] < self.cfg.partial_pay_share) & (rem > 1)
        full = pays & due_today & ~partial & (u_kind[acct] > 1 - card.full_payment_share)
        balance_paid = np.where(
            full, np.maximum(self.statement_cents[acct], rem),
            np.where(partial, np.clip((rem * frac[acct]).astype(np.int64), 1, rem - 1),
                     rem + (np.maximum(self.statement_cents[acct] - rem, 0) * frac[acct] * due_today).astype(np.int64)))
        balance_paid = np.where(pays, np.minimum(balance_paid, np.maximum(self.outstanding[acct], rem)), 0)
        landed = np.minimum(balance_paid, rem)
        book["paid"][rows] += landed
        np.subtract.at(self.outstanding, acct, balance_paid)
        np.maximum(self.outstanding, 0, out=self.outstanding)
        np.subtract.at(self.carried_cents, acct, balance_paid)
        np.maximum(self.carried_cents, 0, out=self.carried_cents)
        payers = np.flatnonzero(pays)
        paid_at = start_us + np.minimum(
            (rng.uniform(8 / 24, 23 / 24, payers.size) * day_us).astype(np.int64), day_us - 1)
        return self._payments_frame(t, book["loan"][rows][payers], acct[payers], landed[payers], paid_at)

    def _spend(self, t: int, rng: np.random.Generator, live: np.ndarray, start_us: int,
               day_us: int) -> pl.DataFrame:
        """Sparse behaviour: purchases and cash advances on the balance (within the limit), a few logins."""
        cfg, card, n = self.cfg, self.cfg.card, self.params.accounts
        active = live & (self.status == _ACTIVE)
        n_login = rng.poisson(np.where(live, card.login_rate * self.engagement, 0.0))
        n_buy = rng.poisson(np.where(active, card.purchase_rate * self.shopper, 0.0))
        advance = active & (rng.random(n) < card.cash_advance_rate * self.draw_propensity
                            * np.where(self.shocked, cfg.draw_rate_shock_multiplier, 1.0))
        buy_acct = np.repeat(np.arange(n), n_buy)
        size = card.purchase_median_cny * 100 * np.exp(0.9 * rng.standard_normal(buy_acct.size))
        buy_amount = np.maximum(np.rint(size).astype(np.int64), 100)
        available = self.limit_cents - self.outstanding
        # Purchases beyond the available credit are declined (not landed), in draw order per account.
        order = np.argsort(buy_acct, kind="stable")
        sorted_acct, sorted_amount = buy_acct[order], buy_amount[order]
        starts = np.flatnonzero(np.r_[True, sorted_acct[1:] != sorted_acct[:-1]]) if order.size else order
        group = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, order.size]))
        cum = np.cumsum(sorted_amount)
        spent = cum - (cum - sorted_amount)[starts][group]
        ok = np.zeros(order.size, dtype=bool)
        ok[order] = spent <= available[sorted_acct]
        buy_acct, buy_amount = buy_acct[ok], buy_amount[ok]
        np.add.at(self.outstanding, buy_acct, buy_amount)
        adv_acct = np.flatnonzero(advance & (self.limit_cents - self.outstanding >= 10_000))
        adv_amount = ((self.limit_cents - self.outstanding)[adv_acct] * rng.beta(2, 4, adv_acct.size)
                      ).astype(np.int64) // 10_000 * 10_000
        keep = adv_amount > 0
        adv_acct, adv_amount = adv_acct[keep], adv_amount[keep]
        np.add.at(self.outstanding, adv_acct, adv_amount)

        login_acct = np.repeat(np.arange(n), n_login)
        acct = np.concatenate([login_acct, buy_acct, adv_acct]).astype(np.int64)
        kind = np.repeat(np.array([_LOGIN, _PURCHASE, _CASH_DRAW], dtype=np.int64),
                         [login_acct.size, buy_acct.size, adv_acct.size])
        time = start_us + _event_times(rng, np.full(acct.size, cfg.night_login_share), day_us)
        amount = np.concatenate([np.zeros(login_acct.size, np.int64), buy_amount, adv_amount])
        return self._events_frame(t, rng, acct, kind, time, amount)

    def _cut_statements(self, t: int, date: dt.date, live: np.ndarray) -> pl.DataFrame:
        """Statements of the accounts whose cycle day is today: one minimum-payment instalment each."""
        card = self.cfg.card
        last_day = calendar.monthrange(date.year, date.month)[1]
        cycle = live & (np.minimum(self.cycle_day, last_day) == date.day) & (self.open_day < t)
        interest = self.carried_cents * self.rate_bp // 10_000 * cycle
        self.outstanding += interest
        acct = np.flatnonzero(cycle & (self.outstanding > 0))
        balance = self.outstanding[acct]
        minimum = np.minimum(balance, np.maximum(card.min_payment_floor_cny * 100,
                                                 (balance * card.min_payment_share).astype(np.int64)))
        interest_due = np.minimum(interest[acct], minimum)
        self.statement_cents[acct] = balance
        self.carried_cents[cycle] = self.outstanding[cycle]
        k = acct.size
        loan = self._n_loans + np.arange(k, dtype=np.int64)
        self._loan_first[t] = self._n_loans
        self._n_loans += k
        self._loan_first[t + 1] = self._n_loans
        due = np.full(k, t + card.grace_days, dtype=np.int32)
        self._book.append(acct=acct, loan=loan, no=np.ones(k, np.int16), due=due,
                          principal=minimum - interest_due, interest=interest_due, paid=np.zeros(k, np.int64))
        start_epoch_day = (self.params.start_date - dt.date(1970, 1, 1)).days
        return pl.DataFrame({
            "_loan_seq": np.arange(1, k + 1, dtype=np.int64), "_loan_day": np.full(k, t, dtype=np.int64),
            "_due": due + start_epoch_day, "_principal": minimum - interest_due, "_interest": interest_due,
        }).with_columns(account_id=self._account_ids.gather(acct)).select(
            installment_id=pl.concat_str([self._loan_id_expr(), pl.lit("-01")]),
            loan_id=self._loan_id_expr(),
            account_id=pl.col("account_id"),
            installment_no=pl.lit(1, dtype=pl.Int32),
            due_date=pl.col("_due").cast(pl.Int32).cast(pl.Date),
            principal_due=_money("_principal"),
            interest_due=_money("_interest"),
        )


PROFILES: dict[str, type[PortfolioSimulation]] = {"default": PortfolioSimulation, "card": CardSimulation}


def _conform_delivered(dataset: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Like :func:`_conform`, but only the contract columns the frame has: optional ones stay absent."""
    return frame.select(
        pl.col(c.name).cast(c.landing_dtype, strict=True) for c in CONTRACT[dataset].columns if c.name in frame.columns
    )

def _event_times(rng: np.random.Generator, night_share: np.ndarray, day_us: int) -> np.ndarray:
    """Microsecond offsets inside the local business day: night (00-06h) with ``night_share``, else 06-24h."""
    u, night = rng.random(night_share.size), rng.random(night_share.size) < night_share
    frac = np.where(night, u * _NIGHT_END, _NIGHT_END + u * (1 - _NIGHT_END))
    return np.minimum((frac * day_us).astype(np.int64), day_us - 1)


# --- upstream defects ------------------------------------------------------------------------------


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
        report[str(fault)] = _INJECTORS[fault.kind](parts, day, rng, tz)
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
    ).with_columns(amount=_money("_cents"))
    parts["payments"].files[DATA_FILE] = pl.concat([payments, _conform("payments", ghosts)])
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


_INJECTORS = {
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
assert set(_INJECTORS) == set(FAULT_KINDS), "every catalogued fault kind needs an injector"


# --- summary ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratorSummary:
    """What was generated (``DATA_ROOT/generator/summary.json``); ``rows`` count clean rows per dataset."""

    params: dict[str, object]
    faults: list[str]
    accounts: dict[str, int]
    open_accounts: int
    dpd30_accounts: int
    dpd30_rate: float
    shocked_share: float
    in_hardship_share: float
    loans: int
    rows: dict[str, int]
    fault_rows: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def describe(self) -> str:
        p = self.params
        lines = [
            f"generated {p['accounts']:,} accounts x {p['days']} days "
            f"({p['start_date']}..{p['end_date']}, seed {p['seed']})",
            "  accounts at end: " + ", ".join(f"{k} {v:,}" for k, v in self.accounts.items()),
            f"  30+ DPD rate at end: {self.dpd30_rate:.2%} ({self.dpd30_accounts:,} of "
            f"{self.open_accounts:,} open lines); ever shocked: {self.shocked_share:.1%}, "
            f"in hardship now: {self.in_hardship_share:.1%}; loans drawn: {self.loans:,}",
            "  rows: " + ", ".join(f"{k} {v:,}" for k, v in self.rows.items()),
        ]
        for fault, touched in self.fault_rows.items():
            what = ", ".join(f"{ds} {n}" for ds, n in touched.items())
            warn = "  (nothing to corrupt that day!)" if not any(touched.values()) else ""
            lines.append(f"  fault {fault}: rows touched: {what}{warn}")
        return "\n".join(lines)


# --- I/O entry points ------------------------------------------------------------------------------


def write_portfolio(
    root: Path,
    params: GeneratorParams,
    cfg: RisklineConfig,
    faults: Sequence[Fault] = (),
    progress: bool = False,
) -> GeneratorSummary:
    """Write the portfolio into ``root/landing`` (faulted days as asked) plus ``root/generator``.

    Every partition is replaced whole; a day withheld by ``late_partition`` goes to ``root/landing_late``
    and any copy of it in ``landing`` from an earlier run is removed (and vice versa).
    """
    check_fault_dates(faults, params)
    tz = cfg.business.tz
    sim = PROFILES[params.profile](params, cfg.generator, tz)
    rows = dict.fromkeys(DATASETS, 0)
    fault_rows: dict[str, dict[str, int]] = {}
    last: PortfolioDay | None = None
    for i, day in enumerate(sim.run(), 1):
        parts, report = inject_faults(day, faults, params.seed, tz)
        for dataset, part in parts.items():
            _write_landing_partition(root, dataset, day.date, part)
            rows[dataset] += day.frames[dataset].height
        fault_rows.update(report)
        last = day
        if progress:
            _print_progress(i, params.days, day)
    assert last is not None
    truth = sim.truth()
    status = truth["status"].value_counts()
    counts = dict(zip(status["status"].to_list(), status["count"].to_list(), strict=True))
    summary = GeneratorSummary(
        params={
            "accounts": params.accounts,
            "days": params.days,
            "start_date": params.start_date.isoformat(),
            "end_date": params.end_date.isoformat(),
            "seed": params.seed,
            # named only when not the default, so the default profile's summary stays byte-identical
            **({"profile": params.profile} if params.profile != "default" else {}),
        },
        faults=[str(f) for f in faults],
        accounts={"total": truth.height, **{s: int(counts.get(s, 0)) for s in ACCOUNT_STATUSES}},
        open_accounts=last.open_accounts,
        dpd30_accounts=last.dpd30_accounts,
        dpd30_rate=round(last.dpd30_rate, 6),
        shocked_share=round(truth["shocked_on"].is_not_null().mean() or 0.0, 6),
        in_hardship_share=round(last.shocked_accounts / max(last.open_accounts, 1), 6),
        loans=sim.loans_drawn,
        rows=rows,
        fault_rows=fault_rows,
    )
    out = root / "generator"
    buffer = io.BytesIO()
    truth.write_parquet(buffer, **lake.PARQUET_OPTIONS)  # type: ignore[arg-type]
    lake.atomic_write_bytes(out / TRUTH_FILE, buffer.getvalue())
    lake.atomic_write_bytes(out / SUMMARY_FILE, summary.to_json().encode())
    return summary


def release_late(root: Path) -> list[Path]:
    """Move every complete withheld partition from ``landing_late`` into ``landing``; return them.

    Data files move first; ``_SUCCESS`` appears last, with the atomic swap of ``lake.staged_partition``.
    """
    late_root = root / LATE_ZONE
    released: list[Path] = []
    if not late_root.is_dir():
        return released
    for dataset in sorted(p.name for p in late_root.iterdir() if p.is_dir()):
        for date in lake.complete_partition_dates(root, LATE_ZONE, dataset):
            part = lake.partition_dir(root, LATE_ZONE, dataset, date)
            files = lake.parquet_files(part)
            if files:  # none left: an earlier release moved them and died before tidying up
                target = lake.partition_dir(root, "landing", dataset, date)
                with lake.staged_partition(target) as tmp:
                    for file in files:
                        lake.move_file(file, tmp / file.name)
                released.append(target)
            lake.remove_partition(part)
    return released


def _write_landing_partition(root: Path, dataset: str, date: dt.date, part: LandingPartition) -> None:
    landing = lake.partition_dir(root, "landing", dataset, date)
    late = lake.partition_dir(root, LATE_ZONE, dataset, date)
    target, stale = (late, landing) if part.late else (landing, late)
    lake.remove_partition(stale)  # a rerun leaves one copy of the day, where this run put it
    # missing_success publishes the files without the marker
    with lake.staged_partition(target, marker=part.success) as tmp:
        _write_files(tmp, part.files)


def _write_files(folder: Path, files: dict[str, pl.DataFrame | bytes]) -> None:
    for name, content in sorted(files.items()):
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            lake.write_parquet(content, folder / name)


def _print_progress(i: int, total: int, day: PortfolioDay) -> None:
    line = (f"[{i}/{total}] {day.date.isoformat()}: {day.open_accounts:,} open lines, "
            f"30+ DPD {day.dpd30_rate:.2%}")
    if sys.stderr.isatty():
        print(f"\r{line}", end="\n" if i == total else "", file=sys.stderr, flush=True)
    elif i == total or i % max(1, total // 10) == 0:
        print(line, file=sys.stderr, flush=True)
