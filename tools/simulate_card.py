"""The ``card`` profile of the synthetic book (``riskline generate --profile card``): monthly statements,
minimum payments, revolving balances, sparse behaviour, no income or region."""

from __future__ import annotations

import calendar
import datetime as dt
from zoneinfo import ZoneInfo
from tools.simulate import (
    ACTIVE, CASH_DRAW, CLOSED, DPD_BUCKET_30, GeneratorParams, LOGIN, PURCHASE, PortfolioDay,
    PortfolioSimulation, conform_delivered, conform_landing, event_times, money_expr,
)

import numpy as np
import polars as pl

from pipelines.contracts.landing import ACCOUNT_STATUSES, DATASETS
from tools.generator_config import GeneratorConfig


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

        live = (self.open_day <= t) & (self.status != CLOSED)
        self._advance_latent_state(t, rng, live)
        payments = self._pay_minimums(t, rng, start_us, day_us)
        self._refresh_arrears(t)
        behaviour = self._spend(t, rng, live, start_us, day_us)
        installments = self._cut_statements(t, date, live)
        self._update_status(t, rng, live)

        n_t = int(np.searchsorted(self.open_day, t, side="right"))
        accounts = self._static_accounts.head(n_t).with_columns(
            status=pl.Series(ACCOUNT_STATUSES).gather(self.status[:n_t]))
        frames = {"accounts": conform_delivered("accounts", accounts),
                  "behaviour": conform_landing("behaviour", behaviour),
                  "installments": conform_landing("installments", installments),
                  "payments": conform_landing("payments", payments)}
        open_now = (self.open_day <= t) & (self.status != CLOSED)
        dpd30 = open_now & (self.oldest_due <= t - DPD_BUCKET_30)
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
        active = live & (self.status == ACTIVE)
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
        kind = np.repeat(np.array([LOGIN, PURCHASE, CASH_DRAW], dtype=np.int64),
                         [login_acct.size, buy_acct.size, adv_acct.size])
        time = start_us + event_times(rng, np.full(acct.size, cfg.night_login_share), day_us)
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
            principal_due=money_expr("_principal"),
            interest_due=money_expr("_interest"),
        )
