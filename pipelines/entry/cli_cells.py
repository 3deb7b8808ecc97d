"""``riskline cells --from D1 --to D2``: the strategy test readout as a table (or JSON).

Like every subcommand it parses its arguments, calls one entry point (:func:`pipelines.store.cell_outcomes.
read_cell_readout`) and prints; the numbers are the domain's (pipelines/domain/cells.py), only formatted here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.config.settings import RisklineConfig
from pipelines.domain.cells import CELLS, CellsError
from pipelines.entry.cli_args import CliError, parse_date
from pipelines.report.cells import (
    cohort_note, earlier_note, format_interval, format_metric, json_row, method_note, unmoved_note,
)
from pipelines.store.cell_outcomes import CellReadout, read_cell_readout

_LABELS = {"bad_rate": "30+ DPD", "exposure_change": "line change", "utilization_change": "utilization chg",
           "cure_rate": "cured"}


def _table(block: pl.DataFrame, level: str) -> list[str]:
    """One window's rows as fixed columns, each at least as wide as its widest text plus two spaces."""
    texts = []
    for row in block.iter_rows(named=True):
        metric = row["metric"]
        texts.append([
            _LABELS[metric], row["test_cell"], f"{row['matured']:,}/{row['assigned']:,}",
            "" if row["n"] is None else f"{row['n']:,}", format_metric(metric, row["value"]),
            format_interval(metric, row["ci_low"], row["ci_high"]), format_metric(metric, row["diff"], signed=True),
            format_interval(metric, row["diff_low"], row["diff_high"], signed=True), row["verdict"] or "",
        ])
    header = ["outcome", "cell", "matured", "n", "value", f"[{level} CI]", "vs champion", f"[{level} CI]", "verdict"]
    right = {2, 3, 4, 6}
    widths = [max(len(r[i]) for r in [header, *texts]) for i in range(len(header))]

    def line(cols: list[str]) -> str:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cols, widths))]
        return ("    " + "  ".join(cells)).rstrip()

    return [line(header), *(line(t) for t in texts)]


def format_readout(result: CellReadout) -> str:
    """The readout as a plain-text table per policy version, tested action and window."""
    level = f"{100 * result.confidence:g}%"
    lines = [cohort_note(result), method_note(result, level)]
    readout = result.readout
    if readout.is_empty():
        lines.append("No account was first assigned a testable action on these nights.")
    for version in readout["policy_version"].unique(maintain_order=True).to_list():
        in_version = readout.filter(pl.col("policy_version") == version)
        m = in_version["comparisons"].max() or 0
        lines += ["", f"#### policy version {version}: " + (
            f"{m} comparisons vs champion (the verdicts are adjusted for them; the intervals shown are not)" if m
            else "no comparison vs champion yet")]
        for note in (earlier_note(result, version), unmoved_note(result, version)):
            if note:
                lines.append(note)
        for action in in_version["tested_action"].unique(maintain_order=True).to_list():
            per_cell = dict(result.assignments.filter((pl.col("policy_version") == version)
                                                      & (pl.col("tested_action") == action))
                            .group_by("test_cell").len().iter_rows())
            lines.append("")
            lines.append(f"== {action}: " + ", ".join(f"{c} {per_cell.get(c, 0):,}" for c in CELLS) + " accounts")
            for w in result.windows_days:
                block = in_version.filter((pl.col("tested_action") == action) & (pl.col("window_days") == w))
                if block["matured"].sum() == 0:  # one line, not a table of empty rows
                    lines.append(f"  -- {w}-day window: not yet matured (matures on {block['matures_on'].min()}: "
                                 f"{w} days + {result.late_days} days for late payments)")
                    continue
                lines.append(f"  -- {w}-day window")
                lines += _table(block, level)
    return "\n".join(lines)


def readout_json(result: CellReadout) -> str:
    """The readout rows as JSON (dates as ISO strings, money as exact decimal CNY strings), with the range and
    settings it was read with."""
    payload: dict[str, Any] = {
        "from": str(result.first), "to": str(result.last), "nights": [str(n) for n in result.nights],
        "looked_back_to": str(result.looked_back_to),
        "newest": str(result.newest), "confidence": result.confidence, "min_accounts": result.min_accounts,
        "windows_days": list(result.windows_days), "payment_late_days": result.late_days,
        "first_assigned_before_range": result.earlier.to_dicts(),
        "unmoved_challenger": result.unmoved.group_by("policy_version", "tested_action").len("accounts")
        .sort("policy_version", "tested_action").to_dicts(),
        "rows": [json_row(r) for r in json.loads(result.readout.write_json())],
    }
    return json.dumps(payload, indent=2, ensure_ascii=False)


def cmd_cells(args: argparse.Namespace, cfg: RisklineConfig, root: Path) -> int:
    try:
        result = read_cell_readout(root, args.from_date, args.to_date, cfg)
    except CellsError as exc:
        raise CliError(str(exc)) from None
    print(readout_json(result) if args.json else format_readout(result))
    return 0


def add_cells_command(sub: Any) -> None:
    p = sub.add_parser(
        "cells",
        help="strategy test readout: outcomes of the champion, challenger and control cells",
        description="For the accounts the limit policy first assigned to a test cell with a testable action "
        "(decrease, increase) on the published nights D1 .. D2 (first under their policy version: accounts first "
        "assigned earlier are left out and counted): 30+ DPD, line and utilization change and cures over each "
        "matured window (riskline.yaml cells.windows_days; matured once its last day plus "
        "ingest.payment_late_days is in), per policy version and cell with confidence intervals and the "
        "difference vs champion (verdicts Bonferroni-adjusted). A window not yet matured says when it matures.",
    )
    p.add_argument("--from", dest="from_date", type=parse_date, required=True, help="first night, YYYY-MM-DD")
    p.add_argument("--to", dest="to_date", type=parse_date, required=True, help="last night, YYYY-MM-DD")
    p.add_argument("--json", action="store_true", help="print the readout rows as JSON instead of a table")
    p.set_defaults(func=cmd_cells)
