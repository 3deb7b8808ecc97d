"""The synthetic book, day by day: accounts, cash draws and their instalments, repayments and behaviour.

:class:`PortfolioSimulation` is the default profile (the demo's credit lines); ``simulate_card.py`` the card
profile. Pure: the output depends only on the params, the generator's settings and the time zone.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from pipelines.contracts.landing import ACCOUNT_STATUSES, CONTRACT, DATASETS, EVENT_TYPES
from tools.generator_config import GeneratorConfig


PROFILE_NAMES = ("default", "card")  # the classes: PROFILES, below the simulations


@dataclass(frozen=True)
class GeneratorParams:
    """What to generate: ``accounts`` lines existing at ``end_date``, ``days`` business days ending there."""

    accounts: int
    days: int
    end_date: dt.date
    seed: int = 7
    profile: str = "default"  # the book's shape: "default" (the demo's credit lines) or "card"
    # _SUCCESS declares each drop's rows and money sums (docs/contracts.md), as `riskline generate` does by
    # default; False (the library's default, the fixtures' plain upstream) writes empty markers
    control_totals: bool = False

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


ACTIVE = ACCOUNT_STATUSES.index("active")
_FROZEN = ACCOUNT_STATUSES.index("frozen")
CLOSED = ACCOUNT_STATUSES.index("closed")
LOGIN = EVENT_TYPES.index("login")
PURCHASE = EVENT_TYPES.index("purchase")
_REFUND = EVENT_TYPES.index("refund")
CASH_DRAW = EVENT_TYPES.index("cash_draw")

# Province-level region codes (ISO 3166-2:CN), drawn uniformly and independently of risk.
_REGIONS = (
    "CN-AH", "CN-BJ", "CN-CQ", "CN-FJ", "CN-GD", "CN-GS", "CN-GX", "CN-GZ", "CN-HA", "CN-HB", "CN-HE",
    "CN-HI", "CN-HL", "CN-HN", "CN-JL", "CN-JS", "CN-JX", "CN-LN", "CN-NM", "CN-NX", "CN-QH", "CN-SC",
    "CN-SD", "CN-SH", "CN-SN", "CN-SX", "CN-TJ", "CN-XJ", "CN-XZ", "CN-YN", "CN-ZJ",
)  # fmt: skip
_GENDERS = ("F", "M")
_MARITAL = ("single", "married", "divorced", "widowed")
_MARITAL_WEIGHTS = (0.42, 0.50, 0.06, 0.02)

DPD_BUCKET_30 = 30
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


def money_expr(col: str) -> pl.Expr:
    """Integer cents -> the landing Decimal(18, 2) of CNY, exactly."""
    return (pl.col(col).cast(pl.Decimal(18, 2)) / 100).cast(pl.Decimal(18, 2))


def _ids(prefix: str | pl.Expr, seq: pl.Expr, width: int) -> pl.Expr:
    return pl.concat_str([prefix if isinstance(prefix, pl.Expr) else pl.lit(prefix),
                          seq.cast(pl.String).str.zfill(width)])


def conform_landing(dataset: str, frame: pl.DataFrame) -> pl.DataFrame:
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
        self.status = np.where(rng.random(n) < p_closed, CLOSED, ACTIVE).astype(np.int8)

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
        ).with_columns(credit_limit=money_expr("_limit"), annual_income=money_expr("_income"))

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

        live = (self.open_day <= t) & (self.status != CLOSED)
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
            "accounts": conform_landing("accounts", accounts),
            "behaviour": conform_landing("behaviour", behaviour),
            "installments": conform_landing("installments", installments),
            "payments": conform_landing("payments", payments),
        }
        open_now = (self.open_day <= t) & (self.status != CLOSED)
        dpd30 = open_now & (self.oldest_due <= t - DPD_BUCKET_30)
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
            amount=money_expr("_amount"),
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
        dpd30 = self.oldest_due <= t - DPD_BUCKET_30
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
        eligible = live & (self.status == ACTIVE) & (self.oldest_due > t) & (available >= min_draw)
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
            principal_due=money_expr("_principal"),
            interest_due=money_expr("_interest"),
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
        login_time = event_times(rng, night_share[login_acct], day_us)

        purchase_acct = np.repeat(np.arange(n), n_purchase)
        size = cfg.purchase_median_cny * 100 * np.exp(0.9 * rng.standard_normal(purchase_acct.size))
        size *= np.where(shocked[purchase_acct], cfg.purchase_amount_shock_multiplier, 1.0)
        purchase_amount = np.maximum(np.rint(size).astype(np.int64), 100)
        purchase_time = event_times(rng, np.full(purchase_acct.size, cfg.night_login_share), day_us)

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
        refund_time = event_times(rng, np.zeros(refund_acct.size), day_us)

        draw_acct = loans["acct"]
        draw_time = event_times(rng, np.zeros(draw_acct.size), day_us)

        acct = np.concatenate([login_acct, purchase_acct, refund_acct, draw_acct]).astype(np.int64)
        kind = np.repeat(
            np.array([LOGIN, PURCHASE, _REFUND, CASH_DRAW], dtype=np.int64),
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
            amount=pl.when(pl.col("_kind") != LOGIN).then(money_expr("_amount")),
            channel=pl.col("channel"),
        )

    def _update_status(self, t: int, rng: np.random.Generator, live: np.ndarray) -> None:
        """The source system's end-of-day line status: freeze 30+ DPD, unfreeze when current, closures."""
        u_close = rng.random(self.params.accounts)
        status = self.status
        freeze = (status == ACTIVE) & (self.oldest_due <= t - DPD_BUCKET_30)
        unfreeze = (status == _FROZEN) & (self.oldest_due > t)
        close = (
            live & (status == ACTIVE) & ~freeze & (self.outstanding == 0) & (self.open_day < t)
            & (u_close < self.cfg.close_rate)
        )
        status[freeze] = _FROZEN
        status[unfreeze] = ACTIVE
        status[close] = CLOSED

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


def conform_delivered(dataset: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Like :func:`conform_landing`, but only the contract columns the frame has: optional ones stay absent."""
    return frame.select(
        pl.col(c.name).cast(c.landing_dtype, strict=True) for c in CONTRACT[dataset].columns if c.name in frame.columns
    )

def event_times(rng: np.random.Generator, night_share: np.ndarray, day_us: int) -> np.ndarray:
    """Microsecond offsets inside the local business day: night (00-06h) with ``night_share``, else 06-24h."""
    u, night = rng.random(night_share.size), rng.random(night_share.size) < night_share
    frac = np.where(night, u * _NIGHT_END, _NIGHT_END + u * (1 - _NIGHT_END))
    return np.minimum((frac * day_us).astype(np.int64), day_us - 1)
