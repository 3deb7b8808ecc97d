"""The strategy test readout: how the accounts assigned to champion, challenger and control fared afterwards.

The limit policy (:mod:`pipelines.domain.policy`) puts every line in a cell by a stable hash of (policy
version, account id), whatever its state; only lines whose champion action is testable
(``policy.strategy_test.testable_actions``: decrease, increase) are treated differently. So a cell's
``test_cell`` alone says nothing: a champion-cell hold was never in the test. The **tested population** of a
published night is read from its ``limits`` output:

* champion and challenger: ``action`` is a testable action (the action is the treatment);
* control: the line was held because of the test (reason code ``TEST_CONTROL``). The would-be action is not
  published, but the reason codes name the path the champion took: an increase carries
  ``GOOD_PAYMENT_HISTORY`` (the increase rule fired) and a decrease never does (a cut outranks an increase),
  so that code tells the two apart.

Decreases and increases are different populations (DPD 1-29 or a risk rise against clean, used lines) and
are read out separately, and so is each ``policy_version`` (a new version re-randomizes the cells and may change
the challenger's factors: pooling versions would mix two experiments). An account's **assignment** is its
first testable night under the policy version, per action (:func:`first_assignments`), however far before
the range that was; a range reads out the **cohorts** first assigned in it (:func:`cohorts_in_range`) and
leaves out, and counts, the accounts first assigned before it. Counting an account once on its first night
*in the range* instead would bias the cells by construction: a control line is held every night the champion
would act (a cut's cooldown only starts with a cut), so a range starting mid-test would fill control with
accounts held for weeks, while their champion twins, cut once and then in cooldown, would be missing.

**Outcomes** over a window of w days after the assignment night a (the window (a, a + w]):

* ``bad``: 30+ DPD (``labels.bad_dpd``) on any day of the window, by the ledger's DPD definition
  (:func:`pipelines.domain.ledger.worst_dpd_between`; tested accounts are below the freeze DPD at a, so none
  starts in default);
* ``exposure_change_cents``: the line the policy last set by the window end minus the line in force when
  assigned (the ``previous_limit`` of night a, before the decision: the cut or raise itself is the treatment).
  The line last set is the ``new_limit`` of the last published night in a .. a + w that moved the account's
  line (a later cut or raise counts too), or the line in force at a when none did. Where upstream applies
  every decision that is the line at the window end. Not upstream's own copy (the snapshot's ``credit_limit``,
  or a later night's ``new_limit`` that starts from it): a book that lags a decision, or (a generated one)
  never applies it, would hide the very difference tested; and upstream's own line changes (a closure, a manual
  change) are no effect of the cell. Summing the nights' moves instead would count a cut twice on such a book
  (each cut starts from the line upstream still shows);
* ``utilization_change``: outstanding principal at a + w / the line last set by then, minus outstanding principal
  at a / the line in force at a (null where a line is 0);
* ``cured``: of the accounts at 1+ DPD at the close of a, those at DPD 0 at the close of a + w (null for the
  others).

A window is **matured** for an assignment only when a + w + ``ingest.payment_late_days`` lies on or before the
newest data (the newest published night the ledger reaches): a payment may arrive that many days late and is
applied on its own paid day, so a window's DPD and cures are final only then. An immature window is never
computed from part of its days.

**Intervals** at ``cells.confidence``: Wilson for a rate, Newcombe's hybrid score interval (from the two Wilson
intervals) for a difference of rates, Student's t for a mean and Welch's t (Welch-Satterthwaite degrees of
freedom) for a difference of means; the shown intervals are each at ``cells.confidence`` alone.

**Verdicts** adjust for the many comparisons one readout makes (2 actions x windows x 4 metrics x 2 cells vs
champion, per policy version): a difference is called higher or lower only when its interval at the
Bonferroni level 1 - (1 - confidence) / m excludes 0, m the comparisons the readout block shows (family-wise
error <= 1 - confidence). Bonferroni rather than Holm because the Newcombe interval has no p-value to order by,
and the verdict stays "the (adjusted) interval excludes 0". Control's line change is 0 by construction (its
lines are held) and is no comparison. A difference is also "not yet significant" while either cell has fewer
than ``cells.min_accounts`` matured accounts (accounts whose window has matured, whatever the metric measures).
The readout is read again every night: the adjustment does not cover repeated looks (peeking).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import polars as pl
from scipy.stats import t as student_t

from pipelines.domain.ledger import Ledger, account_worst_dpd, outstanding_principal_at

CELLS: tuple[str, ...] = ("champion", "challenger", "control")
REFERENCE_CELL = "champion"
CONTROL_CODE = "TEST_CONTROL"
INCREASE_CODE = "GOOD_PAYMENT_HISTORY"  # fires exactly when the increase rule does (policy._reason_codes)

# metric -> (kind, what it is); rates are proportions of accounts, means are per account
METRICS: dict[str, tuple[str, str]] = {
    "bad_rate": ("rate", "30+ DPD within the window"),
    "exposure_change": ("mean_cents", "line change, window end vs assignment (CNY per account)"),
    "utilization_change": ("mean", "utilization change, window end vs assignment (points)"),
    "cure_rate": ("rate", "overdue at assignment, current at window end"),
}

ASSIGNMENT_SCHEMA: dict[str, pl.DataType] = {
    "policy_version": pl.String(),
    "account_id": pl.String(),
    "assigned_on": pl.Date(),
    "test_cell": pl.String(),
    "tested_action": pl.String(),
    "previous_limit_cents": pl.Int64(),
}

OUTCOME_SCHEMA: dict[str, pl.DataType] = {
    **ASSIGNMENT_SCHEMA,
    "window_days": pl.Int32(),
    "window_end": pl.Date(),
    "bad": pl.Boolean(),
    "exposure_change_cents": pl.Int64(),
    "utilization_change": pl.Float64(),  # points of utilization (0.10: ten percentage points)
    "overdue_at_assignment": pl.Boolean(),
    "cured": pl.Boolean(),  # null unless overdue at assignment
}

READOUT_SCHEMA: dict[str, pl.DataType] = {
    "policy_version": pl.String(),
    "tested_action": pl.String(),
    "window_days": pl.Int32(),
    "metric": pl.String(),
    "test_cell": pl.String(),
    "assigned": pl.Int64(),  # accounts first assigned in the range (per action and policy version)
    "matured": pl.Int64(),  # ... whose window has matured
    "matures_on": pl.Date(),  # the next date one more assignment's window matures (null: all matured)
    "n": pl.Int64(),  # observations of the metric (the cure rate counts overdue accounts only)
    "events": pl.Int64(),  # a rate's numerator (null for a mean)
    "total_cents": pl.Int64(),  # exposure change summed, exact (null for other metrics)
    "value": pl.Float64(),  # rate (0..1), mean in cents, or mean utilization change
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "diff": pl.Float64(),  # value - champion's value (null for the champion)
    "diff_low": pl.Float64(),
    "diff_high": pl.Float64(),
    "comparisons": pl.Int64(),  # m: the comparisons of the block (policy version) the verdict is adjusted for
    "verdict": pl.String(),
}


class CellsError(ValueError):
    """The readout's inputs are inconsistent (a range without nights, a window that is not positive)."""


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


def z_value(confidence: float) -> float:
    """The two-sided normal quantile of ``confidence`` (1.959964 at 0.95)."""
    return NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)


def wilson_interval(events: int, n: int, z: float) -> Interval:
    """Wilson score interval of a proportion ``events / n`` (n > 0)."""
    p = events / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # at 0 or n events an end is exactly 0 or 1 (the formula's float rounding would leave 1e-17)
    low = 0.0 if events == 0 else max(0.0, centre - half)
    high = 1.0 if events == n else min(1.0, centre + half)
    return Interval(p, low, high)


def newcombe_difference(a: Interval, b: Interval) -> Interval:
    """Newcombe's hybrid score interval of ``a - b`` from the two Wilson intervals (Newcombe 1998, method 10)."""
    d = a.value - b.value
    low = d - math.sqrt((a.value - a.low) ** 2 + (b.high - b.value) ** 2)
    high = d + math.sqrt((a.high - a.value) ** 2 + (b.value - b.low) ** 2)
    return Interval(d, low, high)


def t_value(confidence: float, df: float) -> float:
    """The two-sided Student t quantile of ``confidence`` with ``df`` degrees of freedom (2.262 at 0.95, df 9)."""
    return float(student_t.ppf(1.0 - (1.0 - confidence) / 2.0, df))


def mean_interval(n: int, mean: float, variance: float, confidence: float) -> tuple[Interval, float]:
    """Student t interval of a mean from its count, value and sample variance; also the variance of the mean.

    t, not the normal, because a cell may hold a handful of accounts (z is ~13% too narrow at n = 10). One
    observation has no variance: its interval is unbounded (infinite ends)."""
    if n < 2:
        return Interval(mean, -math.inf, math.inf), math.inf
    var_mean = variance / n
    half = t_value(confidence, n - 1) * math.sqrt(var_mean)
    return Interval(mean, mean - half, mean + half), var_mean


def welch_difference(a: Interval, var_a: float, n_a: int, b: Interval, var_b: float, n_b: int,
                     confidence: float) -> Interval:
    """Welch's t interval of ``a - b`` from the two means, the variances of the means and the counts.

    Degrees of freedom by Welch-Satterthwaite; where both variances are 0 the difference is exact."""
    d = a.value - b.value
    total = var_a + var_b
    if not math.isfinite(total):
        return Interval(d, -math.inf, math.inf)
    if total == 0.0:
        return Interval(d, d, d)
    df = total ** 2 / ((var_a ** 2 / (n_a - 1) if var_a else 0.0) + (var_b ** 2 / (n_b - 1) if var_b else 0.0))
    half = t_value(confidence, df) * math.sqrt(total)
    return Interval(d, d - half, d + half)


# --- population -------------------------------------------------------------------------------------


def _tested_rows(limits: pl.DataFrame, testable_actions: Sequence[str]) -> pl.DataFrame:
    codes = pl.col("reason_codes")
    controlled = (pl.col("test_cell") == "control") & codes.list.contains(CONTROL_CODE)
    tested_action = (
        pl.when(controlled)
        .then(pl.when(codes.list.contains(INCREASE_CODE)).then(pl.lit("increase")).otherwise(pl.lit("decrease")))
        .when((pl.col("test_cell") != "control") & pl.col("action").is_in(list(testable_actions)))
        .then(pl.col("action"))
    )
    return (
        limits.with_columns(tested_action=tested_action)
        .filter(pl.col("tested_action").is_in(list(testable_actions)))
        .select("policy_version", pl.col("as_of_date").alias("assigned_on"), "account_id", "test_cell",
                "tested_action", "previous_limit_cents")
    )


def cell_assignments(limits: pl.DataFrame, testable_actions: Sequence[str]) -> pl.DataFrame:
    """The tested population of published nights, one row per (policy version, account, tested action): its
    first night among ``limits``.

    Args:
        limits: published ``limits`` rows of any nights (``account_id, as_of_date, test_cell, action,
            reason_codes, policy_version, previous_limit_cents``).
        testable_actions: ``policy.strategy_test.testable_actions``.

    Returns:
        :data:`ASSIGNMENT_SCHEMA`, sorted by policy_version, tested_action, account_id.
    """
    return first_assignments(_tested_rows(limits, testable_actions))


def first_assignments(assignments: pl.DataFrame) -> pl.DataFrame:
    """Each (policy version, account, tested action) once, on its first night: :func:`cell_assignments` of nights
    read one by one (a night's tested rows are few) are concatenated and narrowed again with this."""
    return (
        assignments.sort("assigned_on", "account_id")
        .unique(["policy_version", "account_id", "tested_action"], keep="first", maintain_order=True)
        .select(pl.col(c).cast(t) for c, t in ASSIGNMENT_SCHEMA.items())
        .sort("policy_version", "tested_action", "account_id")
    )


def cohorts_in_range(assignments: pl.DataFrame, first: dt.date, last: dt.date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the assignments whose first night lies in ``first .. last``, the number first assigned before ``first``
    per ``policy_version, tested_action, test_cell`` as ``accounts``).

    ``assignments`` must be :func:`first_assignments` of every night of the policy version up to ``last``: an
    account first assigned before the range belongs to an earlier cohort, and letting it in on its first night
    in the range is the left truncation the module docstring describes."""
    inside = assignments.filter(pl.col("assigned_on").is_between(first, last))
    before = (assignments.filter(pl.col("assigned_on") < first)
              .group_by("policy_version", "tested_action", "test_cell").agg(accounts=pl.len())
              .sort("policy_version", "tested_action", "test_cell"))
    return inside, before


def unmoved_challenger(limits: pl.DataFrame, testable_actions: Sequence[str]) -> pl.DataFrame:
    """Challenger lines the test rule path reached but the challenger's size left as they were, first night per
    (policy version, account, action); ``account_id, assigned_on, tested_action, policy_version``.

    An increase: ``GOOD_PAYMENT_HISTORY`` fired with no cap code (``PRODUCT_MAX``, ``AFFORDABILITY_CAP``) and the
    line was held; a decrease: ``AT_FLOOR`` (the cut rounded to the line itself). They are in no cell, because the
    published codes cannot tell "the champion would have moved it" (a challenger line by the test) from "the
    champion would not have either" (its own step rounds to the line too; then it was never tested); the grade
    that would decide it is not in ``limits``. So they are counted and shown, never guessed into a cell."""
    codes = pl.col("reason_codes")
    on_increase = (codes.list.contains(INCREASE_CODE) & ~codes.list.contains("PRODUCT_MAX")
                   & ~codes.list.contains("AFFORDABILITY_CAP"))
    tested_action = (pl.when(on_increase).then(pl.lit("increase"))
                     .when(codes.list.contains("AT_FLOOR")).then(pl.lit("decrease")))
    return (
        limits.filter((pl.col("test_cell") == "challenger") & (pl.col("action") == "hold")
                      & ~codes.list.contains(CONTROL_CODE))
        .with_columns(tested_action=tested_action)
        .filter(pl.col("tested_action").is_in(list(testable_actions)))
        .sort("as_of_date", "account_id")
        .unique(["policy_version", "account_id", "tested_action"], keep="first", maintain_order=True)
        .select("account_id", pl.col("as_of_date").alias("assigned_on"), "tested_action", "policy_version")
    )


def unmoved_outside_cells(unmoved: pl.DataFrame, assignments: pl.DataFrame) -> pl.DataFrame:
    """Unmoved challenger lines counted once (first night per version, account, action), none that is in a cell."""
    return (unmoved.sort("assigned_on", "account_id")
            .unique(["policy_version", "account_id", "tested_action"], keep="first", maintain_order=True)
            .join(assignments, on=["policy_version", "account_id", "tested_action"], how="anti"))


def matures_on(assigned_on: dt.date, window_days: int, late_days: int) -> dt.date:
    """The first newest-data date on which the window (a, a + w] is final: its last day plus the days a payment
    may arrive late (``ingest.payment_late_days``; it is applied on its own paid day)."""
    return assigned_on + dt.timedelta(days=window_days + late_days)


def matured_windows(assigned: Sequence[dt.date], windows: Sequence[int], newest: dt.date,
                    late_days: int) -> list[tuple[dt.date, int]]:
    """The (assignment night, window) pairs whose every day, and every late payment for it, is in by ``newest``."""
    return [(a, w) for a in sorted(set(assigned)) for w in windows if matures_on(a, w, late_days) <= newest]


# --- outcomes ---------------------------------------------------------------------------------------


def window_outcomes(
    assignments: pl.DataFrame,
    ledger: Ledger,
    moves: pl.DataFrame,
    windows: Sequence[int],
    newest: dt.date,
    bad_dpd: int,
    late_days: int,
) -> pl.DataFrame:
    """Per assignment and matured window: the outcomes (module docstring).

    Args:
        assignments: :func:`cell_assignments`.
        ledger: a ledger as of ``newest`` or later holding the assigned accounts' loans and payments.
        moves: ``account_id, as_of_date, previous_limit_cents, new_limit_cents`` of the assigned accounts on every
            published night from the first assignment to ``newest`` (only the rows that moved a line are used).
        newest: the newest date the data reaches; windows that mature after it (:func:`matures_on`) are left out.
        late_days: ``ingest.payment_late_days``.

    Returns:
        :data:`OUTCOME_SCHEMA`, one row per matured (assignment, window), sorted by action, window, night, account.
    """
    if any(w <= 0 for w in windows):
        raise CellsError(f"windows must be positive days, got {list(windows)}")
    if ledger.as_of < newest:
        raise CellsError(f"the ledger is as of {ledger.as_of}, before the newest data {newest}")
    moved_lines = moves.filter(pl.col("new_limit_cents") != pl.col("previous_limit_cents")).select(
        "account_id", "as_of_date", "new_limit_cents")
    frames = []
    for a, w in matured_windows(assignments["assigned_on"].to_list(), windows, newest, late_days):
        end = a + dt.timedelta(days=w)
        group = assignments.filter(pl.col("assigned_on") == a)
        last_set = (moved_lines.filter(pl.col("as_of_date").is_between(a, end))
                    .group_by("account_id")
                    .agg(pl.col("new_limit_cents").sort_by("as_of_date").last().alias("_line_end")))
        dpd_start = account_worst_dpd(ledger.installments, a, a).rename({"worst_dpd": "_dpd_start"})
        dpd_end = account_worst_dpd(ledger.installments, end, end).rename({"worst_dpd": "_dpd_end"})
        worst = account_worst_dpd(ledger.installments, a + dt.timedelta(days=1), end).rename({"worst_dpd": "_worst"})
        start_bal = outstanding_principal_at(ledger, a).rename({"outstanding_principal_cents": "_bal_start"})
        end_bal = outstanding_principal_at(ledger, end).rename({"outstanding_principal_cents": "_bal_end"})
        frame = group
        for other in (last_set, dpd_start, dpd_end, worst, start_bal, end_bal):
            frame = frame.join(other, on="account_id", how="left")
        frames.append(frame.with_columns(
            pl.col("_dpd_start", "_dpd_end", "_worst", "_bal_start", "_bal_end").fill_null(0),
            pl.col("_line_end").fill_null(pl.col("previous_limit_cents")),
            window_days=pl.lit(w, dtype=pl.Int32),
            window_end=pl.lit(end, dtype=pl.Date()),
        ))
    if not frames:
        return pl.DataFrame(schema=OUTCOME_SCHEMA)

    def utilization(balance: str, line: pl.Expr) -> pl.Expr:
        return pl.when(line > 0).then(pl.col(balance) / line)

    overdue = pl.col("_dpd_start") >= 1
    line_end = pl.col("_line_end")
    return (
        pl.concat(frames)
        .with_columns(
            bad=pl.col("_worst") >= bad_dpd,
            exposure_change_cents=line_end - pl.col("previous_limit_cents"),
            utilization_change=utilization("_bal_end", line_end)
            - utilization("_bal_start", pl.col("previous_limit_cents")),
            overdue_at_assignment=overdue,
            cured=pl.when(overdue).then(pl.col("_dpd_end") == 0),
        )
        .select(pl.col(c).cast(t) for c, t in OUTCOME_SCHEMA.items())
        .sort("policy_version", "tested_action", "window_days", "assigned_on", "account_id")
    )


# --- readout ----------------------------------------------------------------------------------------


METRIC_COLUMNS: dict[str, str] = {
    "bad_rate": "bad", "exposure_change": "exposure_change_cents", "utilization_change": "utilization_change",
    "cure_rate": "cured",
}


def _estimate(values: pl.Series, kind: str, confidence: float) -> tuple[Interval, float, int, int | None, int | None]:
    """(interval, variance of the estimate, n, events, exact total cents) of one cell's metric values."""
    values = values.drop_nulls()
    n = values.len()
    if kind == "rate":
        events = int(values.cast(pl.Int64).sum())
        return wilson_interval(events, n, z_value(confidence)), 0.0, n, events, None
    total_cents = int(values.sum()) if kind == "mean_cents" else None
    # money: the mean from the exact integer sum of cents
    mean = total_cents / n if total_cents is not None else float(values.mean())  # type: ignore[arg-type]
    variance = float(values.cast(pl.Float64).var(ddof=1)) if n > 1 else 0.0  # type: ignore[arg-type]
    interval, var_mean = mean_interval(n, mean, variance, confidence)
    return interval, var_mean, n, None, total_cents


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _by_construction(cell: str, metric: str) -> bool:
    """Control's line change is 0 because its lines are held: a difference from it tests nothing."""
    return cell == "control" and metric == "exposure_change"


def readout_cells(
    assignments: pl.DataFrame,
    outcomes: pl.DataFrame,
    windows: Sequence[int],
    newest: dt.date,
    confidence: float,
    min_accounts: int,
    late_days: int,
) -> pl.DataFrame:
    """Per policy version, tested action, window, metric and cell: the estimate, its interval and the difference
    vs champion, with the verdict adjusted for the comparisons of its policy version (module docstring).

    Args:
        assignments: the cohorts read out (:func:`cohorts_in_range` of :func:`first_assignments`).
        outcomes: :func:`window_outcomes` of those assignments.
        newest: the newest date the data reaches (when a pending window matures is said from it).
        confidence: e.g. 0.95; min_accounts: fewer matured accounts in a cell never make a difference significant.
        late_days: ``ingest.payment_late_days`` (:func:`matures_on`).

    Returns:
        :data:`READOUT_SCHEMA`, in the order policy version, action (decrease, increase), window, metric, cell.
    """
    rows: list[dict] = []
    for version in sorted(assignments["policy_version"].unique().to_list()):
        block: list[dict] = []
        estimates: dict[tuple, _Estimate] = {}
        in_version = assignments.filter(pl.col("policy_version") == version)
        for action in sorted(in_version["tested_action"].unique().to_list()):
            assigned = in_version.filter(pl.col("tested_action") == action)
            for w in windows:
                done = outcomes.filter((pl.col("policy_version") == version) & (pl.col("tested_action") == action)
                                       & (pl.col("window_days") == w))
                for metric, (kind, _) in METRICS.items():
                    for cell in CELLS:
                        mine = assigned.filter(pl.col("test_cell") == cell)
                        if mine.is_empty():
                            continue
                        pending = mine.filter(
                            pl.col("assigned_on") + dt.timedelta(days=w + late_days) > newest)["assigned_on"]
                        row = {"policy_version": version, "tested_action": action, "window_days": w,
                               "metric": metric, "test_cell": cell, "assigned": mine.height,
                               "matured": mine.height - pending.len(),
                               "matures_on": matures_on(pending.min(), w, late_days) if pending.len() else None}
                        block.append(row)
                        values = done.filter(pl.col("test_cell") == cell)[METRIC_COLUMNS[metric]]
                        if values.drop_nulls().len() == 0:
                            row["verdict"] = (f"not yet matured (matures on {row['matures_on']})"
                                              if row["matured"] == 0 else "no account to measure")
                            continue
                        interval, var, n, events, total = _estimate(values, kind, confidence)
                        estimates[(action, w, metric, cell)] = _Estimate(interval, var, n, row["matured"], events)
                        row.update(n=n, events=events, total_cents=total, value=interval.value,
                                   ci_low=_finite(interval.low), ci_high=_finite(interval.high))
        _compare(block, estimates, confidence, min_accounts)
        rows.extend(block)
    return pl.DataFrame(rows, schema=READOUT_SCHEMA) if rows else pl.DataFrame(schema=READOUT_SCHEMA)


@dataclass(frozen=True)
class _Estimate:
    interval: Interval  # at cells.confidence
    var_mean: float  # a mean's variance (0 for a rate)
    n: int
    matured: int
    events: int | None  # a rate's numerator


def _difference(kind: str, mine: _Estimate, ref: _Estimate, confidence: float) -> Interval:
    """The difference ``mine - ref`` at ``confidence``: Newcombe for rates, Welch's t for means."""
    if kind == "rate":
        z = z_value(confidence)
        return newcombe_difference(wilson_interval(mine.events or 0, mine.n, z),
                                   wilson_interval(ref.events or 0, ref.n, z))
    return welch_difference(mine.interval, mine.var_mean, mine.n, ref.interval, ref.var_mean, ref.n, confidence)


def _compare(block: list[dict], estimates: dict[tuple, _Estimate], confidence: float,
             min_accounts: int) -> None:
    """Fill each measured cell's difference vs the champion (at ``confidence``) and its verdict (at the
    Bonferroni level over the block's comparisons), in place."""
    level = f"{100 * confidence:g}%"
    compared = [row for row in block if row["test_cell"] != REFERENCE_CELL
                and (row["tested_action"], row["window_days"], row["metric"], row["test_cell"]) in estimates
                and (row["tested_action"], row["window_days"], row["metric"], REFERENCE_CELL) in estimates
                and not _by_construction(row["test_cell"], row["metric"])]
    m = len(compared)
    adjusted = 1.0 - (1.0 - confidence) / max(m, 1)
    for row in block:
        key = (row["tested_action"], row["window_days"], row["metric"])
        cell = row["test_cell"]
        if (*key, cell) not in estimates:
            continue
        if cell == REFERENCE_CELL:
            row["verdict"] = "reference"
            continue
        reference = estimates.get((*key, REFERENCE_CELL))
        if reference is None:
            row["verdict"] = "no champion accounts to compare with"
            continue
        kind = METRICS[row["metric"]][0]
        mine = estimates[(*key, cell)]
        diff = _difference(kind, mine, reference, confidence)
        row.update(diff=diff.value, diff_low=_finite(diff.low), diff_high=_finite(diff.high))
        if _by_construction(cell, row["metric"]):
            row["verdict"] = "no comparison: control lines are held (0 by construction)"
            continue
        row["comparisons"] = m
        strict = _difference(kind, mine, reference, adjusted)
        if min(mine.matured, reference.matured) < min_accounts:
            row["verdict"] = f"not yet significant (fewer than {min_accounts} matured accounts)"
        elif strict.low <= 0.0 <= strict.high:
            row["verdict"] = f"not yet significant at {level} adjusted for {m} comparisons"
        else:
            row["verdict"] = (f"{'higher' if diff.value > 0 else 'lower'} than champion at {level} adjusted for "
                              f"{m} comparisons")
