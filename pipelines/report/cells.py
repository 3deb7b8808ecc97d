"""The report's "Test cells: outcomes" section: the strategy test readout of the trailing nights.

:func:`collect_cells` reads the readout (:func:`pipelines.store.cell_outcomes.read_cell_readout`) of the cohorts
first assigned on the nights of the last ``cells.report_days`` days up to the report's night, under that night's
own policy version only, with outcomes up to that night only (a page rebuilt later says the same);
``templates/cells.html.j2`` shows it. The numbers are the domain's; here they are only put in the page's order and
given their text (:func:`format_metric` and the notes, which ``riskline cells`` prints too).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.config.settings import RisklineConfig
from pipelines.domain.cells import CELLS, METRICS, CellsError
from pipelines.store.cell_outcomes import CellReadout, night_policy_version, read_cell_readout

METRIC_LABELS: dict[str, str] = {
    "bad_rate": "30+ DPD in the window", "exposure_change": "Line change / account",
    "utilization_change": "Utilization change", "cure_rate": "Cured (of the overdue)",
}


def format_metric(metric: str, value: float | None, signed: bool = False) -> str:
    """A rate as a percentage (a difference of rates in points), a money mean (cents) as CNY with fen, a
    utilization change in points; "" for None."""
    if value is None:
        return ""
    kind = METRICS[metric][0]
    if kind == "rate":
        return f"{100 * value:+.1f} pts" if signed else f"{100 * value:.1f}%"
    if kind == "mean_cents":
        return f"{value / 100:+,.2f} CNY" if signed or value < 0 else f"{value / 100:,.2f} CNY"
    return f"{100 * value:+.1f} pts"


def format_interval(metric: str, low: float | None, high: float | None, signed: bool = False) -> str:
    if low is None or high is None:
        return ""
    return f"{format_metric(metric, low, signed)} .. {format_metric(metric, high, signed)}"


_MONEY_FIELDS = ("value", "ci_low", "ci_high", "diff", "diff_low", "diff_high")
UNITS = {"rate": "share (0..1)", "mean_cents": "CNY per account", "mean": "utilization (0..1) per account"}


def cny_text(cents: float | None) -> str | None:
    """A money mean in cents as an exact decimal CNY string, to the fen (half to even): "-665.96"."""
    if cents is None:
        return None
    fen = Decimal(repr(cents)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return str((fen / 100).quantize(Decimal("0.01")))


def json_row(row: dict[str, Any]) -> dict[str, Any]:
    """A readout row for JSON and the page's data-raw: a money metric's estimates as ``<field>_cny`` decimal
    strings instead of float cents (``total_cents`` stays the exact integer), every row with its ``unit``."""
    kind = METRICS[row["metric"]][0]
    out = {**row, "unit": UNITS[kind]}
    if kind == "mean_cents":
        for field in _MONEY_FIELDS:
            out[f"{field}_cny"] = cny_text(out.pop(field))
    return out


def cohort_note(result: CellReadout) -> str:
    """Which cohorts are read out: the nights actually read, and how far back first assignments were looked up."""
    nights = result.nights
    shown = ", ".join(str(n) for n in nights) if len(nights) <= 5 else f"{nights[0]} .. {nights[-1]}"
    return (f"Test cells: the accounts first assigned a testable action on {len(nights)} published night(s) in "
            f"{result.first} .. {result.last} ({shown}), first under their policy version (looked up back to "
            f"{result.looked_back_to}); outcomes up to {result.newest}.")


def method_note(result: CellReadout, level: str) -> str:
    return (f"A window counts once its last day plus {result.late_days} days (ingest.payment_late_days: a payment "
            f"may arrive that late and counts on its paid day) is in the data. {level} intervals: Wilson (rate), "
            "Newcombe hybrid score (difference of rates), Student t (mean), Welch t (difference of means). A "
            f"verdict is Bonferroni-adjusted over the comparisons shown (unadjusted, about 1 row in 20 would be "
            f"'significant' at {level} by chance) and needs {result.min_accounts}+ matured accounts in both cells; "
            "it is not adjusted for reading the cells again every night.")


def earlier_note(result: CellReadout, version: str) -> str:
    """"N accounts first assigned before D1 excluded", per action and cell ("" when none)."""
    earlier = result.earlier.filter(pl.col("policy_version") == version)
    if earlier.is_empty():
        return ""
    parts = []
    for action in earlier["tested_action"].unique(maintain_order=True).to_list():
        mine = dict(earlier.filter(pl.col("tested_action") == action).select("test_cell", "accounts").iter_rows())
        parts.append(f"{action}: " + ", ".join(f"{c} {mine.get(c, 0):,}" for c in CELLS))
    return (f"{int(earlier['accounts'].sum()):,} accounts first assigned before {result.first} excluded (an earlier "
            f"cohort; {'; '.join(parts)}).")


def unmoved_note(result: CellReadout, version: str) -> str:
    """The challenger lines the rule path reached but the challenger's size did not move ("" when none)."""
    mine = result.unmoved.filter(pl.col("policy_version") == version)
    if mine.is_empty():
        return ""
    per = dict(mine.group_by("tested_action").len().sort("tested_action").iter_rows())
    shown = ", ".join(f"{action} {n:,}" for action, n in per.items())
    return (f"{mine.height:,} challenger line(s) ({shown}) reached the test's rule but were held because the resized "
            "line equalled the old one (or the champion's would have too: the published codes cannot tell). They "
            "are in no cell, so the challenger cells hold only the lines the challenger moved, which may bias them "
            "against champion and control.")


@dataclass(frozen=True)
class CellsWindow:
    """One tested action's window: its rows (the readout's, with their text) and whether any has matured."""

    window_days: int
    matured: bool
    matures_on: dt.date | None  # when the first assignment's window matures (null: every one has)
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class CellsAction:
    tested_action: str
    accounts: list[tuple[str, int]]  # (cell, accounts first assigned in the range)
    windows: list[CellsWindow]


@dataclass(frozen=True)
class CellsSection:
    """What the section shows; ``message`` says why there is nothing to read out yet ("" when there is)."""

    first: dt.date
    last: dt.date
    newest: dt.date | None
    nights: list[dt.date]
    policy_version: str | None
    confidence: float
    min_accounts: int
    report_days: int
    late_days: int  # ingest.payment_late_days: a window matures this many days after its last day
    actions: list[CellsAction]
    readout: pl.DataFrame  # pipelines.domain.cells.READOUT_SCHEMA
    message: str
    notes: list[str]  # cohort, method, excluded earlier cohorts, unmoved challenger lines
    comparisons: int  # the comparisons the verdicts are adjusted for


def _actions(result: CellReadout) -> list[CellsAction]:
    actions = []
    readout = result.readout
    for action in readout["tested_action"].unique(maintain_order=True).to_list():
        counts = dict(result.assignments.filter(pl.col("tested_action") == action)
                      .group_by("test_cell").len().iter_rows())
        windows = []
        for w in result.windows_days:
            block = readout.filter((pl.col("tested_action") == action) & (pl.col("window_days") == w))
            rows = []
            for row in block.iter_rows(named=True):
                metric = row["metric"]
                rows.append({
                    **json_row(row), "label": METRIC_LABELS[metric],
                    "value_text": format_metric(metric, row["value"]),
                    "ci_text": format_interval(metric, row["ci_low"], row["ci_high"]),
                    "diff_text": format_metric(metric, row["diff"], signed=True),
                    "diff_ci_text": format_interval(metric, row["diff_low"], row["diff_high"], signed=True),
                })
            windows.append(CellsWindow(w, bool(block["matured"].sum()), block["matures_on"].min(), rows))
        actions.append(CellsAction(action, [(c, int(counts.get(c, 0))) for c in CELLS], windows))
    return actions


def collect_cells(root: Path, as_of: dt.date, cfg: RisklineConfig) -> CellsSection:
    """The section of the report of ``as_of``: the cohorts first assigned on the nights ``as_of -
    cells.report_days + 1 .. as_of`` under ``as_of``'s own policy version."""
    first = as_of - dt.timedelta(days=cfg.cells.report_days - 1)
    common = dict(first=first, last=as_of, confidence=cfg.cells.confidence, min_accounts=cfg.cells.min_accounts,
                  report_days=cfg.cells.report_days, late_days=cfg.ingest.payment_late_days)
    version = night_policy_version(root, as_of)
    try:
        result = read_cell_readout(root, first, as_of, cfg, newest=as_of, policy_version=version)
    except CellsError as exc:
        return CellsSection(newest=None, nights=[], policy_version=version, actions=[], readout=pl.DataFrame(),
                            message=f"{exc}.", notes=[], comparisons=0, **common)  # type: ignore[arg-type]
    message = ""
    if result.readout.is_empty():
        message = "No account was first assigned a testable action (decrease, increase) on these nights."
    elif result.outcomes.is_empty():
        first_due = result.readout["matures_on"].min()
        message = (f"No outcome window has matured yet: the first ({min(result.windows_days)} days after "
                   f"{result.assignments['assigned_on'].min()}, plus {result.late_days} days for late payments) "
                   f"matures on {first_due}. Outcomes are never read from part of a window.")
    level = f"{100 * cfg.cells.confidence:g}%"
    notes = [n for n in (cohort_note(result), method_note(result, level), earlier_note(result, version or ""),
                         unmoved_note(result, version or "")) if n]
    comparisons = int(result.readout["comparisons"].max() or 0) if result.readout.height else 0
    return CellsSection(newest=result.newest, nights=result.nights, policy_version=version, actions=_actions(result),
                        readout=result.readout, message=message, notes=notes, comparisons=comparisons,
                        **common)  # type: ignore[arg-type]
