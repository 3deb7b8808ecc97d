"""The report's "Test cells: outcomes" section: the strategy test readout of the trailing nights.

:func:`collect_cells` reads the readout (:func:`pipelines.store.cell_outcomes.read_cell_readout`) of the nights of
the last ``cells.report_days`` days up to the report's night, with outcomes up to that night only (a page rebuilt
later says the same); ``templates/cells.html.j2`` shows it. The numbers are the domain's; here they are only put
in the page's order and given their text (:func:`format_metric`, which ``riskline cells`` prints too).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.config.settings import RisklineConfig
from pipelines.domain.cells import CELLS, METRICS, CellsError
from pipelines.store.cell_outcomes import CellReadout, read_cell_readout

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
    accounts: list[tuple[str, int]]  # (cell, accounts assigned)
    windows: list[CellsWindow]


@dataclass(frozen=True)
class CellsSection:
    """What the section shows; ``message`` says why there is nothing to read out yet ("" when there is)."""

    first: dt.date
    last: dt.date
    newest: dt.date | None
    nights: list[dt.date]
    confidence: float
    min_accounts: int
    report_days: int
    actions: list[CellsAction]
    readout: pl.DataFrame  # pipelines.domain.cells.READOUT_SCHEMA
    message: str


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
                    **row, "label": METRIC_LABELS[metric],
                    "value_text": format_metric(metric, row["value"]),
                    "ci_text": format_interval(metric, row["ci_low"], row["ci_high"]),
                    "diff_text": format_metric(metric, row["diff"], signed=True),
                    "diff_ci_text": format_interval(metric, row["diff_low"], row["diff_high"], signed=True),
                })
            windows.append(CellsWindow(w, bool(block["matured"].sum()), block["matures_on"].min(), rows))
        actions.append(CellsAction(action, [(c, int(counts.get(c, 0))) for c in CELLS], windows))
    return actions


def collect_cells(root: Path, as_of: dt.date, cfg: RisklineConfig) -> CellsSection:
    """The section of the report of ``as_of``: nights ``as_of - cells.report_days + 1 .. as_of``."""
    first = as_of - dt.timedelta(days=cfg.cells.report_days - 1)
    common = dict(first=first, last=as_of, confidence=cfg.cells.confidence, min_accounts=cfg.cells.min_accounts,
                  report_days=cfg.cells.report_days)
    try:
        result = read_cell_readout(root, first, as_of, cfg, newest=as_of)
    except CellsError as exc:
        return CellsSection(newest=None, nights=[], actions=[], readout=pl.DataFrame(), message=f"{exc}.",
                            **common)  # type: ignore[arg-type]
    message = ""
    if result.readout.is_empty():
        message = "No account was assigned a testable action (decrease, increase) on these nights."
    elif result.outcomes.is_empty():
        first_due = result.readout["matures_on"].min()
        message = (f"No outcome window has matured yet: the first ({min(result.windows_days)} days after "
                   f"{result.nights[0]}) matures on {first_due}. Outcomes are never read from part of a window.")
    return CellsSection(newest=result.newest, nights=result.nights, actions=_actions(result), readout=result.readout,
                        message=message, **common)  # type: ignore[arg-type]
