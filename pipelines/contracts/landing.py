"""The landing data contract: what upstream drops every day, and what the curated zone holds.

This module is the single source of truth for dataset columns and types. Ingest enforces it, the
validation suites are checked against it, the generator writes it and docs/contracts.md describes it.

Landing: ``DATA_ROOT/landing/<dataset>/dt=YYYY-MM-DD/*.parquet`` plus a ``_SUCCESS`` written last: empty,
or ``{"rows": N}`` declaring the drop's row count (``{"rows": 0}``: an explicit empty drop; docs/contracts.md).
``dt`` is the business date (Asia/Shanghai). Money arrives as decimal(18,2) CNY (float64 is accepted and
rounded half-away-from-zero to cents); an integer column is ambiguous (yuan or cents?) and is refused unless
its name declares the unit: ``<name>_cents`` holds integer cents. Timestamps are UTC. Identifiers (``*_id``)
are non-empty, unpadded strings of :data:`IDENTIFIER_CHARSET`, at most :data:`IDENTIFIER_MAX_LENGTH` long.

Curated: the same columns with exact types. Money becomes integer cents in a column named
``<name>_cents`` (Int64), so no later stage ever adds floats of yuan. Timestamps are
``Datetime("us", "UTC")``. Extra landing columns are carried through untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import polars as pl

from pipelines.vocab import DATASETS

Kind = Literal["string", "date", "timestamp", "money", "int"]

ACCOUNT_STATUSES: tuple[str, ...] = ("active", "frozen", "closed")
EVENT_TYPES: tuple[str, ...] = ("login", "purchase", "refund", "cash_draw")

MONEY_LANDING_DTYPE = pl.Decimal(18, 2)
CENTS_SUFFIX = "_cents"  # a landing column <money>_cents declares integer cents (docs/contracts.md: money units)

# What an identifier may look like. A key that is empty, padded or carries odd characters is not the same
# id as its clean twin downstream (joins, de-duplication): such rows are quarantined, never de-duplicated.
IDENTIFIER_CHARSET = "0-9A-Za-z_.:-"
IDENTIFIER_MAX_LENGTH = 64
IDENTIFIER_PATTERN = f"^[{IDENTIFIER_CHARSET}]{{1,{IDENTIFIER_MAX_LENGTH}}}$"  # Rust regex: $ is the very end


@dataclass(frozen=True)
class Column:
    """One contract column.

    ``required`` columns must be present in every file (absence fails the ingest); optional ones may be
    absent or all null (``absent_means`` says what the night does without them); ``nullable=False``
    means a null is a row-level defect (the row is quarantined). ``values`` restricts a string column to
    a value set (others are quarantined). ``protected`` marks attributes that are carried but may never
    become model features.
    """

    name: str
    kind: Kind
    description: str
    required: bool = True
    nullable: bool = False
    values: tuple[str, ...] | None = None
    protected: bool = False
    min_value: float | None = None  # in the column's landing unit (CNY for money)
    min_exclusive: bool = False
    identifier: bool = False  # an id: IDENTIFIER_PATTERN or the row is quarantined (rule invalid_<name>)
    # Optional columns: what the night does without them (absent, or null in every row of a drop). Such a
    # drop is valid; validation notes this consequence instead of failing on the null share.
    absent_means: str = ""

    @property
    def curated_name(self) -> str:
        return f"{self.name}{CENTS_SUFFIX}" if self.kind == "money" else self.name

    @property
    def valid_flag(self) -> str:
        """The flag column validation pre-computes for an identifier (True: valid or null)."""
        return f"{self.name}_is_valid"

    @property
    def curated_dtype(self) -> pl.DataType:
        return {
            "string": pl.String(),
            "date": pl.Date(),
            "timestamp": pl.Datetime("us", "UTC"),
            "money": pl.Int64(),
            "int": pl.Int32(),
        }[self.kind]

    @property
    def landing_dtype(self) -> pl.DataType:
        """The type the generator writes (what a well-behaved upstream sends)."""
        return MONEY_LANDING_DTYPE if self.kind == "money" else self.curated_dtype


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    # accounts is a full end-of-day snapshot; the others hold only that day's new rows
    snapshot: bool = False
    # The key names one fact for the lake's whole life, not only within a drop: a key already curated on
    # another date is an identical redelivery (dropped) or a conflicting correction (critical at ingest).
    unique_over_time: bool = False
    # Rows sharing these columns are one unit, curated whole or held (quarantined) whole, and delivered
    # once: a unit already curated on another date takes no new rows later.
    unit: tuple[str, ...] = ()
    # The curated columns that tell one fact from another without its (single-column) key. Rows of one drop
    # equal in all of them (times to the millisecond, null equal to null) under different keys are one fact the
    # extract minted twice: the smallest key is curated, the others quarantined as :attr:`copy_rule`
    # (:func:`is_first_copy`).
    facts: tuple[str, ...] = ()

    def is_first_copy(self, landing: bool = False) -> pl.Expr:
        """True on a row no other row of the frame repeats, in every fact, under a smaller key; null-keyed rows
        are no copies (their own not-null rule reports them). Needs :attr:`facts` set (``landing``: on a
        landing frame, money under its landing name).

        Times match to the millisecond, or when one of the two is a whole second and the other falls in it: a
        copy re-extracted with its time cut to the millisecond or the second is still a copy (review 28, N3;
        review 30, Q1: such copies doubled an account's spend and cut its line), while two genuine events in
        one second, each with its own sub-second time, stay two (a generated year of the demo book has such
        pairs). Two genuine payments or events of one account, amount and channel in one millisecond are not
        told apart: the later waits in quarantine, held and reported."""
        (ident,) = self.key
        facts = self.fact_exprs(landing)  # times to the millisecond
        times = {c.curated_name for c in self.columns if c.kind == "timestamp"}
        named = {c.curated_name: c.name for c in self.columns} if landing else {}
        stamps = [pl.col(named.get(f, f)) for f in self.facts if f in times]
        if not stamps:
            return (pl.col(ident) == pl.col(ident).min().over(facts)).fill_null(True)
        (stamp,) = stamps
        in_second = [stamp.dt.truncate("1s") if f in times else e for f, e in zip(self.facts, facts, strict=True)]
        whole = stamp == stamp.dt.truncate("1s")
        key = pl.col(ident)
        copy = ((key.min().over(facts) < key)                                  # the same millisecond
                | (whole & (key.min().over(in_second) < key))                  # a whole second, cut from another
                | (pl.when(whole).then(key).min().over(in_second) < key))      # another cut to this one's second
        return (~copy).fill_null(True)

    def fact_exprs(self, landing: bool = False) -> list[pl.Expr]:
        """The :attr:`facts` as compared, under their own names: times cut to the millisecond (see
        :meth:`is_first_copy`); join or group on these to find a fact sent again."""
        times = {c.curated_name for c in self.columns if c.kind == "timestamp"}
        named = {c.curated_name: c.name for c in self.columns} if landing else {}
        return [pl.col(named.get(f, f)).dt.truncate("1ms").alias(named.get(f, f)) if f in times
                else pl.col(named.get(f, f)) for f in self.facts]

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name} has no contract column {name!r}")

    @property
    def noun(self) -> str:
        """One row in words, from its key: ``payment`` (``payment_id``), ``event`` (``event_id``)."""
        return self.key[0].removesuffix("_id")

    @property
    def first_copy_flag(self) -> str:
        """The flag column validation pre-computes where :attr:`facts` are set (True: no other row of the
        drop has the same facts under a smaller key)."""
        return f"{self.noun}_is_first_copy"

    @property
    def copy_rule(self) -> str:
        """The quarantine reason of a row repeating another row's :attr:`facts` under a larger key."""
        return f"same_as_another_{self.noun}"

    @property
    def required(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.required)

    def landing_schema(self) -> pl.Schema:
        return pl.Schema({c.name: c.landing_dtype for c in self.columns})

    def curated_schema(self) -> pl.Schema:
        return pl.Schema({c.curated_name: c.curated_dtype for c in self.columns})


CONTRACT: dict[str, Dataset] = {
    "accounts": Dataset(
        name="accounts",
        description="Full end-of-day snapshot of every account.",
        key=("account_id",),
        snapshot=True,
        columns=(
            Column("account_id", "string", "Account identifier, unique in the snapshot.", identifier=True),
            Column("opened_on", "date", "Business date the line was opened."),
            Column("credit_limit", "money", "Current credit line in CNY.", min_value=0, min_exclusive=True),
            Column("status", "string", "Line status.", values=ACCOUNT_STATUSES),
            Column("annual_income", "money", "Self-declared annual income in CNY.", required=False,
                   nullable=True, min_value=0,
                   absent_means="no affordability cap: limit increases are capped by policy limits only (0 counts as absent)"),
            Column("region", "string", "Region code.", required=False, nullable=True,
                   absent_means="no regional split (region is never a model feature)"),
            Column("gender", "string", "Protected attribute: carried, never a model feature.",
                   required=False, nullable=True, protected=True, absent_means="nothing (never used)"),
            Column("marital_status", "string", "Protected attribute: carried, never a model feature.",
                   required=False, nullable=True, protected=True, absent_means="nothing (never used)"),
        ),
    ),
    "behaviour": Dataset(
        name="behaviour",
        description="Behaviour events of the business day.",
        key=("event_id",),
        # An event happens once: a purchase resent on a later day (re-stamped into that day) would count
        # twice in spend and cash-draw features. Ids grow with the date, so the lookup prunes by min/max.
        unique_over_time=True,
        # Everything but the id: a day's events re-extracted under new ids would double the account's spend
        # and cash draws (a PD rise, a limit cut on nothing). Two logins at one microsecond are one login.
        facts=("account_id", "event_time", "event_type", "amount_cents", "channel"),
        columns=(
            Column("event_id", "string", "Event identifier, unique.", identifier=True),
            Column("account_id", "string", "Account the event belongs to.", identifier=True),
            Column("event_time", "timestamp", "When it happened (UTC); inside the partition's business day."),
            Column("event_type", "string", "What happened.", values=EVENT_TYPES),
            Column("amount", "money", "Amount in CNY; null for login, >= 0 otherwise.", nullable=True,
                   min_value=0),
            Column("channel", "string", "app, web, mini_program, ...", nullable=True),
        ),
    ),
    "installments": Dataset(
        name="installments",
        description="Repayment schedule rows, created on the business day a loan is drawn.",
        key=("installment_id",),
        # A schedule is created once, on the day its loan is drawn: a loan's principal is its instalments,
        # so one left out would misstate it (held whole), and a redelivered one would be counted twice.
        unique_over_time=True,
        unit=("loan_id",),
        columns=(
            Column("installment_id", "string", "Instalment identifier, unique.", identifier=True),
            Column("loan_id", "string", "Loan (one cash draw) the instalment belongs to.", identifier=True),
            Column("account_id", "string", "Account the loan belongs to.", identifier=True),
            Column("installment_no", "int", "1-based position in the loan's schedule.", min_value=1),
            Column("due_date", "date", "Business date the instalment falls due; after the draw date."),
            Column("principal_due", "money", "Principal due in CNY.", min_value=0),
            Column("interest_due", "money", "Interest due in CNY.", min_value=0),
        ),
    ),
    "payments": Dataset(
        name="payments",
        description="Payments received on the business day.",
        key=("payment_id",),
        # A payment is received once: the same id on a later day would be allocated twice. (accounts is a
        # snapshot, its key repeats every day by design.)
        unique_over_time=True,
        # Crediting a copy would credit money never received.
        facts=("account_id", "loan_id", "paid_at", "amount_cents"),
        columns=(
            Column("payment_id", "string", "Payment identifier, unique.", identifier=True),
            Column("account_id", "string", "Paying account.", identifier=True),
            Column("loan_id", "string", "Loan the payment is for.", identifier=True),
            Column("paid_at", "timestamp", "When it was received (UTC)."),
            Column("amount", "money", "Amount received in CNY, > 0.", min_value=0, min_exclusive=True),
        ),
    ),
}

IDENTIFIERS: frozenset[str] = frozenset(c.name for ds in CONTRACT.values() for c in ds.columns if c.identifier)
KEY_IS_VALID = "key_is_valid"  # flag column: every key column of the row is a valid identifier


def valid_identifier(name: str) -> pl.Expr:
    """True where column ``name`` is a valid identifier; null stays null (its own not-null rule reports it)."""
    return pl.col(name).str.contains(IDENTIFIER_PATTERN)


def valid_key(key: Sequence[str]) -> pl.Expr:
    """True where every column of ``key`` is non-null and, for identifiers, valid: only such rows may be
    de-duplicated (two payments with an empty id are two payments, not a redelivery)."""
    checks = [valid_identifier(k) if k in IDENTIFIERS else pl.col(k).is_not_null() for k in key]
    return pl.all_horizontal(checks).fill_null(False)


PROTECTED_ATTRIBUTES: frozenset[str] = frozenset(
    c.name for ds in CONTRACT.values() for c in ds.columns if c.protected
) | {"age", "ethnicity", "religion", "nationality", "disability"}
