"""What a landing frame is judged against: its references, expected volume, suite parameters and flags.

Pure (frames and config in, values out): :func:`pipelines.quality.read_references.load_references` reads a
:class:`References` from the lake; :func:`landing_parameters` turns it into the suite's parameters (and the
expectations that cannot run, with why); :func:`add_reference_flags` and :func:`add_key_flags` pre-join in
polars what GX cannot.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import polars as pl

from pipelines.config.settings import RisklineConfig, VolumeBand
from pipelines.contracts.landing import (
    CONTRACT, KEY_IS_VALID, valid_identifier, valid_key,
)
from pipelines.quality.results import ACCOUNT_KNOWN, LOAN_KNOWN, LOAN_OWNED, Outcome
from pipelines.store import lake


@dataclass(frozen=True)
class References:
    """What a landing dataset is checked against; GX does not join, so flags are pre-joined in polars.

    ``None`` means the reference could not be read (the note says why): a dataset with rows then fails
    its referential check critically rather than pass unchecked.
    """

    accounts: pl.Series | None = None  # account_id of the accounts snapshot of the same dt
    loans: pl.Series | None = None  # loan_id known on the date (installments of any dt <= D)
    loan_owners: pl.DataFrame | None = None  # loan_id, account_id of those loans (not of held ones)
    held_loans: pl.Series | None = None  # loan_id whose schedule is in quarantine (dt <= D), not curated
    row_counts: tuple[int, ...] = ()  # curated row counts of the trailing partitions (spike warning)
    notes: Mapping[str, str] = field(default_factory=dict)  # "accounts"/"loans"/"volume" -> where from / why not
    volume: VolumeHistory | None = None  # what the expected row count is built from (None: not judged)
    declared_rows: int | None = None  # rows expected after de-duplication, as upstream declared them


# What each dataset's row count follows: known before (or independently of) the drop itself.
VOLUME_DRIVERS: dict[str, str] = {
    "accounts": "open accounts in the previous snapshot",
    "installments": "cash draws in the day's behaviour",  # counted in loans (gx_suites.VOLUME_UNITS)
    "payments": "loans with an instalment falling due on the day",
    "behaviour": "open accounts in the day's snapshot",
}


@dataclass(frozen=True)
class VolumeHistory:
    """A dataset's volume driver today and, per trailing curated partition, (dt, rows, driver)."""

    driver: str
    today: int | None  # None: unknown (``note`` says why)
    days: tuple[tuple[dt.date, int, int], ...] = ()
    note: str = ""
    # Each counted unit comes from one driver unit (a loan from a cash draw): a trailing day with more units
    # than drivers shows the driver does not govern this upstream (a card book's statements): check off.
    exclusive: bool = False
    # Counts of independent events of many accounts (behaviour): a quiet day varies by about sqrt(expected),
    # which on a small or sparse book is more than the trailing minimum shows.
    events: bool = False


def expected_min_rows(history: VolumeHistory | None, band: VolumeBand) -> tuple[int | None, str]:
    """The fewest rows a complete drop can hold, from its driver and the trailing history; and why.

    Expected rows E = today's driver x the lowest rows-per-driver ratio among the trailing partitions whose
    driver was non-zero (the quietest weekday and month-end of the window are in that minimum). The drop must
    hold ``band.min_ratio`` of E, loosened where that ratio is within a small count's day-to-day noise: never
    below the mean day (driver x the window's mean ratio) less ``band.noise_sigmas`` of its square root (a
    Poisson count's spread), and, for counts that follow their driver (everything but behaviour's events),
    never below ``band.never_below`` x E rounded up, so that a drop of half of E or less is always caught
    (from E = 3 rows; below that min_ratio x E rounds down to half of it). A driver of 0 today
    expects nothing: a legitimately empty day (no instalment falls due) passes. None: cannot be judged.
    """
    if history is None:
        return None, "volume check skipped: no volume driver"
    if history.today is None:
        return None, f"volume check skipped: {history.driver} unknown ({history.note})"
    if history.today == 0:
        return 0, f"volume: no rows expected ({history.driver}: 0)"
    unexplained = [d for d, rows, driver in history.days if rows > driver]
    if history.exclusive and unexplained:
        return None, (f"volume check skipped: {max(unexplained)} had more than one per {history.driver}, so "
                      f"the count does not follow them here")
    usable = [(rows, driver) for _, rows, driver in history.days if driver > 0]
    if len(usable) < band.history_days:
        return None, (f"volume check skipped: only {len(usable)} of {band.history_days} earlier curated "
                      f"partitions with {history.driver} within {band.lookback_days} days")
    highest = max(driver for _, driver in usable)
    if history.today > band.max_ratio * highest:  # e.g. phantom cash draws in today's behaviour drop
        return None, (f"volume check skipped: {history.driver} today ({history.today:,}) is above "
                      f"{band.max_ratio:g} x the most in the window ({highest:,}): a spike, judged where it is")
    lowest = min(Fraction(rows, driver) for rows, driver in usable)  # exact: the bound is a whole row count
    expected = lowest * history.today
    by_ratio = math.floor(Fraction(str(band.min_ratio)) * expected)
    base = (f"the expected {float(expected):.1f} ({history.today:,} {history.driver} x {float(lowest):.4g} per "
            f"driver, the lowest ratio of the last {len(usable)} curated partitions)")
    # A day's count scatters around the mean day by about its square root, so on a small count min_ratio of
    # the quietest day lies within that scatter: at 70 events a day (a 1,500-account card book) it stopped
    # twice in 1,716 legitimate nights of twelve such books, a false stop per book every ~2.4 years. A complete
    # day below mean - noise_sigmas x sqrt(mean) is improbable (riskline.yaml says how improbable).
    mean = Fraction(sum(r for r, _ in usable), sum(d for _, d in usable)) * history.today
    noise = math.floor(float(mean) - band.noise_sigmas * math.sqrt(mean))
    # Independent events of many accounts (behaviour) get the noise bound alone: a sparse book's quiet day may
    # hold half its mean, so half a drop cannot be told from it by count (declare the count in _SUCCESS). A
    # count that follows its driver (snapshots, schedules, payments due) keeps never_below x E rounded up,
    # above E / 2: a drop of half the expected rows or fewer is critical whatever the noise allowance.
    keep = 0 if history.events else math.ceil(Fraction(str(band.never_below)) * expected)
    min_rows = min(by_ratio, max(noise, keep, 0))
    noisy = (f"the mean day {float(mean):.1f} ({history.driver} x the mean ratio of the last {len(usable)} "
             f"curated partitions) less {band.noise_sigmas:g} x its square root")
    if min_rows == by_ratio:
        said = f"{band.min_ratio:g} x {base}"
    elif history.events or min_rows > keep:
        said = (f"{noisy} (a small count's day-to-day noise), not {by_ratio:,} = {band.min_ratio:g} x {base}, "
                f"which a quiet day of a small count can fall under")
    else:
        said = (f"{band.never_below:g} x {base}, rounded up (never less: half a drop stays critical), not "
                f"{by_ratio:,} = {band.min_ratio:g} x it, which a quiet day of a small count can fall under "
                f"({noisy} is lower still)")
    return min_rows, f"volume: at least {min_rows:,} = {said}"


def allowed_nulls(rows: int, max_share: float, alpha: float) -> int:
    """The most nulls ``rows`` rows may hold for a column whose null share is limited to ``max_share``.

    A fixed share judged on a small drop trips on sampling noise (7 null channels of 69 events, 10.1%, from a
    column 2% null on average), so the count is tested instead: critical only when at least that many nulls
    would have probability ``alpha`` or less were the column's true null share exactly ``max_share`` (the
    one-sided exact binomial test). Returns the smallest k with P(nulls > k) <= alpha: never fewer than
    ``max_share`` x rows allows, and within 3.1 standard deviations of it at alpha 0.001 (10,000 rows at a
    10% limit: 10.9%; a million rows: 10.09%).
    """
    if rows <= 0 or max_share <= 0:
        return 0
    if max_share >= 1:
        return rows
    # P(X = k) for X ~ Binomial(rows, max_share), from the mode upwards (the quantile of a small alpha lies
    # above the median); terms past ~40 standard deviations are below any alpha and are not summed.
    p, q = max_share, 1.0 - max_share
    mode = math.floor((rows + 1) * p) if (rows + 1) * p < rows else rows
    log_pmf = (math.lgamma(rows + 1) - math.lgamma(mode + 1) - math.lgamma(rows - mode + 1)
               + mode * math.log(p) + (rows - mode) * math.log(q))
    pmf = [math.exp(log_pmf)]
    k = mode
    while k < rows and (pmf[-1] > 1e-300 and (k - mode) ** 2 < 1600 * (rows * p * q + 1)):
        pmf.append(pmf[-1] * (rows - k) / (k + 1) * p / q)
        k += 1
    tail = 0.0  # P(X > k), k counting down from the last term
    for offset in range(len(pmf) - 1, -1, -1):
        if tail + pmf[offset] > alpha * (1 + 1e-9):  # a tie within float rounding is not above alpha
            return mode + offset
        tail += pmf[offset]
    return mode  # unreachable for alpha < 0.1 (validation.null_share_alpha): P(X >= mode) is about a half


def min_non_null_share(rows: int, max_share: float, alpha: float) -> float:
    """The GX bound of ``null_share_<column>`` on a drop of ``rows`` rows: passes with ``allowed_nulls`` nulls
    and fails with one more (halfway between the two proportions, so no float rounding decides)."""
    if max_share >= 1:
        return 0.0  # no limit configured: observed only
    if rows <= 0:
        return 1.0 - max_share  # an empty drop is not measured (the rule is skipped)
    return max(0.0, 1.0 - (allowed_nulls(rows, max_share, alpha) + 0.5) / rows)


def landing_parameters(dataset: str, day: dt.date, cfg: RisklineConfig, refs: References, rows: int,
                       undelivered: Iterable[str] = ()) -> tuple[dict[str, Any], dict[str, tuple[Outcome, str]],
                                                                 list[str]]:
    """Suite parameters of a landing dataset on ``day``; what could not be computed; notes.

    ``undelivered``: optional columns the drop does not carry (absent or null in every row).
    """
    tz = cfg.business.tz
    start = dt.datetime.combine(day, dt.time(0), tz).astimezone(dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tz).astimezone(dt.UTC)
    late = dt.datetime.combine(day - dt.timedelta(days=cfg.ingest.payment_late_days), dt.time(0), tz)
    params: dict[str, Any] = {
        "business_date": day, "business_day_start_utc": start, "business_day_end_utc": end,
        "late_window_start_utc": late.astimezone(dt.UTC),
        "min_credit_limit_cents": cfg.product.min_limit_cny * 100,
        "max_credit_limit_cents": cfg.product.max_limit_cny * 100,
    }
    from pipelines.quality.gx_suites import non_null_share_parameter  # why: imports GX: keep it out of module import

    limits = cfg.validation.max_null_share.get(dataset, {})
    alpha = cfg.validation.null_share_alpha
    notes = [f"{k}: {v}" for k, v in sorted(refs.notes.items())]
    for col in CONTRACT[dataset].columns:
        if col.nullable:
            limit = limits.get(col.name, 1.0)
            params[non_null_share_parameter(col.curated_name)] = min_non_null_share(rows, limit, alpha)
            if limit < 1 and rows > 0:
                notes.append(f"null share: {col.name} at most {allowed_nulls(rows, limit, alpha):,} nulls of "
                             f"{rows:,} rows (validation.max_null_share {limit:g}, unless improbable at "
                             f"validation.null_share_alpha {alpha:g})")
    missing: dict[str, tuple[Outcome, str]] = {}
    if rows == 0:  # nothing to measure: whether empty is right is the volume rules' question alone
        for col in CONTRACT[dataset].columns:
            if col.nullable:
                missing[non_null_share_parameter(col.curated_name)] = ("skipped", "empty drop: no rows to measure")
    for name in undelivered:
        col = CONTRACT[dataset].column(name)
        missing[non_null_share_parameter(col.curated_name)] = ("skipped", f"not delivered: {col.absent_means}")
        notes.append(f"optional column {name} not delivered (absent or all null): {col.absent_means}")
    band = cfg.validation.volume
    # A declared count proves the files hold what the extract wrote, not that the extract was whole: an
    # export that died midway (or found nothing to export) and still wrote {"rows": N} declares what it
    # has. So the driver's floor (volume_low) stands beside the exact count; only the spike warning,
    # which a declared count explains, is skipped.
    declared = refs.declared_rows is not None
    if declared:
        params["declared_rows"] = refs.declared_rows
        notes.append(f"volume: {refs.declared_rows:,} rows declared by upstream (after de-duplication)")
    else:
        missing["declared_rows"] = ("skipped", f"plain {lake.SUCCESS}: no declared row count")
    min_rows, note = expected_min_rows(refs.volume, band)
    notes.append(note)
    if min_rows is None:
        missing["min_rows"] = ("skipped", note)
    else:
        params["min_rows"] = min_rows
    median = statistics.median(refs.row_counts[: band.history_days]) if refs.row_counts else 0
    if declared:
        missing["max_rows"] = ("skipped", f"upstream declared the row count in {lake.SUCCESS} (checked exactly "
                                          f"by volume_declared)")
    elif len(refs.row_counts) < band.history_days or median < band.min_median_rows:
        missing["max_rows"] = ("skipped", f"spike warning needs {band.history_days} earlier partitions with a "
                                          f"median of at least {band.min_median_rows} rows")
    else:
        params["max_rows"] = math.floor(median * band.max_ratio)
        notes.append(f"volume: spike warning above {params['max_rows']:,} rows ({band.max_ratio:g} x the median "
                     f"{median:g} of the last {band.history_days} curated partitions)")
    for flag, series, what in ((ACCOUNT_KNOWN, refs.accounts, "accounts"), (LOAN_KNOWN, refs.loans, "loans"),
                               (LOAN_OWNED, refs.loan_owners, "loans")):
        if series is None:
            why = refs.notes.get(what, f"{what} reference unavailable")
            missing[flag] = ("skipped", why) if rows == 0 else ("critical", why)
    return params, missing, notes


def add_reference_flags(frame: pl.DataFrame, refs: References) -> pl.DataFrame:
    """Pre-join the references GX cannot: ``account_is_known`` / ``loan_is_known`` (True for a null id,
    which its own not-null rule reports)."""
    flags = []
    if "account_id" in frame.columns and refs.accounts is not None:
        flags.append((pl.col("account_id").is_in(refs.accounts.implode()) | pl.col("account_id").is_null())
                     .alias(ACCOUNT_KNOWN))
    if "loan_id" in frame.columns and refs.loans is not None:
        flags.append((pl.col("loan_id").is_in(refs.loans.implode()) | pl.col("loan_id").is_null())
                     .alias(LOAN_KNOWN))
    if {"loan_id", "account_id"} <= set(frame.columns) and refs.loan_owners is not None:
        # The pair, not the loan alone: a payment naming another customer's loan would otherwise be
        # curated and left unallocated on the payer while the loan's owner goes past due. An unknown or
        # held loan is judged by its own rule, a null id by its not-null rule.
        pair = pl.struct(pl.col("loan_id"), pl.col("account_id"))
        owners = refs.loan_owners.select(pl.struct("loan_id", "account_id")).to_series()
        flags.append((pair.is_in(owners.implode()) | ~pl.col("loan_id").is_in(refs.loan_owners["loan_id"].implode())
                      | pl.col("loan_id").is_null() | pl.col("account_id").is_null()).alias(LOAN_OWNED))
    return frame.with_columns(flags) if flags else frame


def add_key_flags(frame: pl.DataFrame, dataset: str) -> pl.DataFrame:
    """Pre-compute identifier validity with the very expressions de-duplication uses (contract.py), so the
    rows ingest refused to de-duplicate are exactly the rows quarantined as ``invalid_<column>``."""
    flags = [valid_identifier(c.name).fill_null(True).alias(c.valid_flag)
             for c in CONTRACT[dataset].columns if c.identifier and c.name in frame.columns]
    key = list(CONTRACT[dataset].key)
    if set(key) <= set(frame.columns):
        flags.append(valid_key(key).alias(KEY_IS_VALID))
    facts = list(CONTRACT[dataset].facts)
    if facts and set(key + facts) <= set(frame.columns):
        # Two rows equal in every fact under two ids are one payment or event minted twice by the extract:
        # counting both would credit money never received, or double an account's spend and cash draws. The
        # smallest id is the fact; the others wait in quarantine until upstream says which is real. Nulls
        # group together (two logins, no amount, in one second are one login).
        flags.append(CONTRACT[dataset].is_first_copy().alias(CONTRACT[dataset].first_copy_flag))
    return frame.with_columns(flags)
