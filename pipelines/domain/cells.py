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
are read out separately. An account enters the readout once per action: on the first night in the range it
was assigned with it. A control line is held every night while the champion would cut it (the cut's
cooldown only starts with a cut), so counting every night would weigh control accounts many times and
make its intervals too narrow.

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

A window is **matured** for an assignment only when a + w lies on or before the newest data (the newest
published night the ledger reaches); an immature window is never computed from part of its days.

**Intervals** at ``cells.confidence``: Wilson for a rate, Newcombe's hybrid score interval (from the two Wilson
intervals) for a difference of rates, a normal interval for a mean and Welch's (normal) for a difference of
means. A difference is "not yet significant" when its interval covers 0 or either cell has fewer than
``cells.min_accounts`` accounts.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import polars as pl

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
    "tested_action": pl.String(),
    "window_days": pl.Int32(),
    "metric": pl.String(),
    "test_cell": pl.String(),
    "assigned": pl.Int64(),  # accounts assigned in the range (first assignment per action)
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


def mean_interval(n: int, mean: float, variance: float, z: float) -> tuple[Interval, float]:
    """Normal interval of a mean from its count, value and sample variance; also the variance of the mean.

    One observation has no variance: its interval is unbounded (infinite ends)."""
    var_mean = variance / n if n > 1 else math.inf
    half = z * math.sqrt(var_mean)
    return Interval(mean, mean - half, mean + half), var_mean


def welch_difference(a: Interval, var_a: float, b: Interval, var_b: float, z: float) -> Interval:
    """Welch's (unpooled, normal) interval of ``a - b`` from the two means and their variances."""
    d = a.value - b.value
    half = z * math.sqrt(var_a + var_b)
    return Interval(d, d - half, d + half)


# --- population -------------------------------------------------------------------------------------


def cell_assignments(limits: pl.DataFrame, testable_actions: Sequence[str]) -> pl.DataFrame:
    """The tested population of published nights, one row per (account, tested action): its first night.

    Args:
        limits: published ``limits`` rows of any nights (``account_id, as_of_date, test_cell, action,
            reason_codes, previous_limit_cents``).
        testable_actions: ``policy.strategy_test.testable_actions``.

    Returns:
        :data:`ASSIGNMENT_SCHEMA`, sorted by tested_action, account_id.
    """
    codes = pl.col("reason_codes")
    controlled = (pl.col("test_cell") == "control") & codes.list.contains(CONTROL_CODE)
    tested_action = (
        pl.when(controlled)
        .then(pl.when(codes.list.contains(INCREASE_CODE)).then(pl.lit("increase")).otherwise(pl.lit("decrease")))
        .when((pl.col("test_cell") != "control") & pl.col("action").is_in(list(testable_actions)))
        .then(pl.col("action"))
    )
    tested = (
        limits.with_columns(tested_action=tested_action)
        .filter(pl.col("tested_action").is_in(list(testable_actions)))
        .select(pl.col("as_of_date").alias("assigned_on"), "account_id", "test_cell", "tested_action",
                "previous_limit_cents")
    )
    return first_assignments(tested)


def first_assignments(assignments: pl.DataFrame) -> pl.DataFrame:
    """Each (account, tested action) once, on its first night: :func:`cell_assignments` of nights read one by one
    (a night's tested rows are few) are concatenated and narrowed again with this."""
    return (
        assignments.sort("assigned_on", "account_id")
        .unique(["account_id", "tested_action"], keep="first", maintain_order=True)
        .select(pl.col(c).cast(t) for c, t in ASSIGNMENT_SCHEMA.items())
        .sort("tested_action", "account_id")
    )


def matured_windows(assigned: Sequence[dt.date], windows: Sequence[int], newest: dt.date) -> list[tuple[dt.date, int]]:
    """The (assignment night, window) pairs whose every day lies on or before ``newest``."""
    return [(a, w) for a in sorted(set(assigned)) for w in windows if a + dt.timedelta(days=w) <= newest]


# --- outcomes ---------------------------------------------------------------------------------------


def window_outcomes(
    assignments: pl.DataFrame,
    ledger: Ledger,
    moves: pl.DataFrame,
    windows: Sequence[int],
    newest: dt.date,
    bad_dpd: int,
) -> pl.DataFrame:
    """Per assignment and matured window: the outcomes (module docstring).

    Args:
        assignments: :func:`cell_assignments`.
        ledger: a ledger as of ``newest`` or later holding the assigned accounts' loans and payments.
        moves: ``account_id, as_of_date, previous_limit_cents, new_limit_cents`` of the assigned accounts on every
            published night from the first assignment to ``newest`` (only the rows that moved a line are used).
        newest: the newest date the data reaches; windows ending after it are not matured.

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
    for a, w in matured_windows(assignments["assigned_on"].to_list(), windows, newest):
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
        .sort("tested_action", "window_days", "assigned_on", "account_id")
    )


# --- readout ----------------------------------------------------------------------------------------


METRIC_COLUMNS: dict[str, str] = {
    "bad_rate": "bad", "exposure_change": "exposure_change_cents", "utilization_change": "utilization_change",
    "cure_rate": "cured",
}


def _estimate(values: pl.Series, kind: str, z: float) -> tuple[Interval, float, int, int | None, int | None]:
    """(interval, variance of the estimate, n, events, exact total cents) of one cell's metric values."""
    values = values.drop_nulls()
    n = values.len()
    if kind == "rate":
        events = int(values.cast(pl.Int64).sum())
        return wilson_interval(events, n, z), 0.0, n, events, None
    total_cents = int(values.sum()) if kind == "mean_cents" else None
    # money: the mean from the exact integer sum of cents
    mean = total_cents / n if total_cents is not None else float(values.mean())  # type: ignore[arg-type]
    variance = float(values.cast(pl.Float64).var(ddof=1)) if n > 1 else 0.0  # type: ignore[arg-type]
    interval, var_mean = mean_interval(n, mean, variance, z)
    return interval, var_mean, n, None, total_cents


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def readout_cells(
    assignments: pl.DataFrame,
    outcomes: pl.DataFrame,
    windows: Sequence[int],
    newest: dt.date,
    confidence: float,
    min_accounts: int,
) -> pl.DataFrame:
    """Per tested action, window, metric and cell: the estimate, its interval and the difference vs champion.

    Args:
        assignments: :func:`cell_assignments`.
        outcomes: :func:`window_outcomes` of those assignments.
        newest: the newest date the data reaches (when a pending window matures is said from it).
        confidence: e.g. 0.95; min_accounts: fewer matured accounts in a cell never make a difference significant.

    Returns:
        :data:`READOUT_SCHEMA`, in the order action (decrease, increase), window, metric, cell.
    """
    z = z_value(confidence)
    level = f"{100 * confidence:g}%"
    rows = []
    actions = sorted(assignments["tested_action"].unique().to_list())
    for action in actions:
        assigned = assignments.filter(pl.col("tested_action") == action)
        for w in windows:
            done = outcomes.filter((pl.col("tested_action") == action) & (pl.col("window_days") == w))
            for metric, (kind, _) in METRICS.items():
                column = METRIC_COLUMNS[metric]
                estimates: dict[str, tuple[Interval, float, int]] = {}
                for cell in CELLS:
                    mine = assigned.filter(pl.col("test_cell") == cell)
                    if mine.is_empty():
                        continue
                    pending = mine.filter(pl.col("assigned_on") + dt.timedelta(days=w) > newest)
                    matures_on = (pending["assigned_on"].min() + dt.timedelta(days=w)) if pending.height else None
                    values = done.filter(pl.col("test_cell") == cell)[column]
                    row = {"tested_action": action, "window_days": w, "metric": metric, "test_cell": cell,
                           "assigned": mine.height, "matured": mine.height - pending.height,
                           "matures_on": matures_on}
                    if values.drop_nulls().len() == 0:
                        row["verdict"] = (f"not yet matured (matures on {matures_on})" if row["matured"] == 0
                                          else "no account to measure")
                        rows.append(row)
                        continue
                    interval, var, n, events, total = _estimate(values, kind, z)
                    estimates[cell] = (interval, var, n)
                    row.update(n=n, events=events, total_cents=total, value=interval.value,
                               ci_low=_finite(interval.low), ci_high=_finite(interval.high))
                    rows.append(row)
                _compare(rows, estimates, action, w, metric, kind, z, level, min_accounts)
    return pl.DataFrame(rows, schema=READOUT_SCHEMA) if rows else pl.DataFrame(schema=READOUT_SCHEMA)


def _compare(rows: list[dict], estimates: dict[str, tuple[Interval, float, int]], action: str, w: int,
             metric: str, kind: str, z: float, level: str, min_accounts: int) -> None:
    """Fill each measured cell's difference vs the champion and its verdict, in place."""
    reference = estimates.get(REFERENCE_CELL)
    for row in rows:
        if (row["tested_action"], row["window_days"], row["metric"]) != (action, w, metric):
            continue
        cell = row["test_cell"]
        if cell not in estimates:
            continue
        if cell == REFERENCE_CELL:
            row["verdict"] = "reference"
            continue
        if reference is None:
            row["verdict"] = "no champion accounts to compare with"
            continue
        mine, var, n = estimates[cell]
        ref, ref_var, ref_n = reference
        if kind == "rate":
            diff = newcombe_difference(mine, ref)
        else:
            diff = welch_difference(mine, var, ref, ref_var, z)
        row.update(diff=diff.value, diff_low=_finite(diff.low), diff_high=_finite(diff.high))
        if min(n, ref_n) < min_accounts:
            row["verdict"] = f"not yet significant at {level} (fewer than {min_accounts} accounts)"
        elif diff.low <= 0.0 <= diff.high:
            row["verdict"] = f"not yet significant at {level}"
        else:
            row["verdict"] = f"{'higher' if diff.value > 0 else 'lower'} than champion at {level}"
