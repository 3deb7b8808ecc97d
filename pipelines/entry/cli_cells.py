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
from pipelines.report.cells import format_interval, format_metric
from pipelines.store.cell_outcomes import CellReadout, read_cell_readout

_LABELS = {"bad_rate": "30+ DPD", "exposure_change": "line change", "utilization_change": "utilization chg",
           "cure_rate": "cured"}


def format_readout(result: CellReadout) -> str:
    """The readout as a plain-text table per tested action and window."""
    level = f"{100 * result.confidence:g}%"
    shown = (", ".join(str(n) for n in result.nights) if len(result.nights) <= 5
             else f"{result.nights[0]} .. {result.nights[-1]}")
    lines = [
        f"Test cells: accounts assigned on {len(result.nights)} published night(s) in {result.first} .. {result.last} "
        f"({shown}); outcomes up to {result.newest}; {level} intervals; a difference needs {result.min_accounts}+ "
        "matured accounts per cell to count.",
        "Tested: decrease/increase decisions (control: held by the test); each account once per action, on its "
        "first night.",
    ]
    readout = result.readout
    if readout.is_empty():
        lines.append("No account was assigned a testable action on these nights.")
        return "\n".join(lines)
    for action in readout["tested_action"].unique(maintain_order=True).to_list():
        counts = result.assignments.filter(pl.col("tested_action") == action).group_by("test_cell").len()
        per_cell = dict(counts.iter_rows())
        lines.append("")
        lines.append(f"== {action}: " + ", ".join(f"{c} {per_cell.get(c, 0):,}" for c in CELLS) + " accounts")
        for w in result.windows_days:
            block = readout.filter((pl.col("tested_action") == action) & (pl.col("window_days") == w))
            if block["matured"].sum() == 0:  # one line, not a table of empty rows
                lines.append(f"  -- {w}-day window: not yet matured (matures on {block['matures_on'].min()})")
                continue
            lines.append(f"  -- {w}-day window")
            header = (f"    {'outcome':<16}{'cell':<11}{'matured':>9}{'n':>7}  {'value':>12} {f'[{level} CI]':<26}"
                      f"{'vs champion':>14} {f'[{level} CI]':<28}verdict")
            lines.append(header)
            for row in block.iter_rows(named=True):
                metric = row["metric"]
                lines.append(
                    f"    {_LABELS[metric]:<16}{row['test_cell']:<11}{row['matured']:>5}/{row['assigned']:<3}"
                    f"{'' if row['n'] is None else row['n']:>7}  {format_metric(metric, row['value']):>12} "
                    f"{format_interval(metric, row['ci_low'], row['ci_high']):<26}"
                    f"{format_metric(metric, row['diff'], signed=True):>14} "
                    f"{format_interval(metric, row['diff_low'], row['diff_high'], signed=True):<28}{row['verdict']}"
                )
    return "\n".join(lines)


def readout_json(result: CellReadout) -> str:
    """The readout rows as JSON (dates as ISO strings), with the range and settings it was read with."""
    payload: dict[str, Any] = {
        "from": str(result.first), "to": str(result.last), "nights": [str(n) for n in result.nights],
        "newest": str(result.newest), "confidence": result.confidence, "min_accounts": result.min_accounts,
        "windows_days": list(result.windows_days),
        "rows": json.loads(result.readout.write_json()),
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
        description="For the accounts the limit policy assigned to a test cell with a testable action (decrease, "
        "increase) on the published nights D1 .. D2: 30+ DPD, line and utilization change and cures over each "
        "matured window (riskline.yaml cells.windows_days), per cell with confidence intervals and the difference "
        "vs champion. A window not yet matured says when it matures; nothing is computed from part of it.",
    )
    p.add_argument("--from", dest="from_date", type=parse_date, required=True, help="first night, YYYY-MM-DD")
    p.add_argument("--to", dest="to_date", type=parse_date, required=True, help="last night, YYYY-MM-DD")
    p.add_argument("--json", action="store_true", help="print the readout rows as JSON instead of a table")
    p.set_defaults(func=cmd_cells)
