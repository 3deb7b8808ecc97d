"""Synthetic portfolio: a deterministic upstream feed of a small-ticket credit-line book.

``riskline generate`` writes, for every business day of the window, one landing partition per contract
dataset (``landing/<dataset>/dt=D/part-00000.parquet`` + ``_SUCCESS``), exactly as a well-behaved upstream
would, optionally with injected defects (:data:`FAULT_KINDS`) for the ingest and validation tests.

What is true in the data (so a model has something to learn and a policy something to act on):

* every account has a latent risk (fixed part + slow drift). The lender's underwriting sees it only
  through a noisy score, which sets the credit line (250 to 50,000 CNY, skewed small) and the price.
* hardship shocks (income loss) hit some accounts. Behaviour shifts at once (fewer and smaller purchases,
  more cash draws, more and later-at-night logins) while savings still cover a few weeks of instalments;
  only then do repayments fail. Some shocked accounts recover and cure their arrears.
* a cash draw is a loan of 3, 6 or 12 monthly instalments (equal principal, interest on the balance at a
  monthly rate), never above the available credit. Purchases are spending on the platform paid from the
  customer's own funds; they do not use the line but say a lot about the customer's cash flow.
* the lender freezes lines 30+ days past due and unfreezes them once fully current; paid-off lines close.
* gender, marital status and region are drawn independently of everything else: a fair model has
  nothing to learn from them.

That is the ``default`` profile (the demo's). ``GeneratorParams.profile="card"`` (``riskline generate
--profile card``) writes a credit-card book instead, through the same contract: :class:`CardSimulation`
says how statements, minimum payments and revolving balances map onto it.

:class:`PortfolioSimulation` and :func:`land_day` are pure (no disk, no clock, no environment); the I/O
entry points :func:`write_portfolio` and :func:`release_late` are at the bottom.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

from pipelines.config.settings import RisklineConfig
from tools.faults import FAULT_KINDS, Fault, INJECTORS, LandingPartition, check_fault_dates, inject_faults
from tools.simulate import GeneratorParams, PortfolioDay, PortfolioSimulation
from tools.simulate_card import CardSimulation
from pipelines.contracts import control_totals
from pipelines.contracts.landing import ACCOUNT_STATUSES, CONTRACT, DATASETS
from pipelines.domain.deliveries import delivery_sequence
from pipelines.store import lake, zones
from tools.generator_config import GeneratorConfig, load_generator_config

# --- fault catalogue -------------------------------------------------------------------------------

LATE_ZONE = "landing_late"
SUMMARY_FILE = "summary.json"
TRUTH_FILE = "truth.parquet"


# --- simulation ------------------------------------------------------------------------------------

PROFILES: dict[str, type[PortfolioSimulation]] = {"default": PortfolioSimulation, "card": CardSimulation}


# --- upstream defects ------------------------------------------------------------------------------


assert set(INJECTORS) == set(FAULT_KINDS), "every catalogued fault kind needs an injector"


# --- summary ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratorSummary:
    """What was generated (``DATA_ROOT/generator/summary.json``); ``rows`` count clean rows per dataset."""

    params: dict[str, object]
    faults: list[str]
    accounts: dict[str, int]
    open_accounts: int
    dpd30_accounts: int
    dpd30_rate: float
    shocked_share: float
    in_hardship_share: float
    loans: int
    rows: dict[str, int]
    fault_rows: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def describe(self) -> str:
        p = self.params
        lines = [
            f"generated {p['accounts']:,} accounts x {p['days']} days "
            f"({p['start_date']}..{p['end_date']}, seed {p['seed']})",
            "  accounts at end: " + ", ".join(f"{k} {v:,}" for k, v in self.accounts.items()),
            f"  30+ DPD rate at end: {self.dpd30_rate:.2%} ({self.dpd30_accounts:,} of "
            f"{self.open_accounts:,} open lines); ever shocked: {self.shocked_share:.1%}, "
            f"in hardship now: {self.in_hardship_share:.1%}; loans drawn: {self.loans:,}",
            "  rows: " + ", ".join(f"{k} {v:,}" for k, v in self.rows.items()),
        ]
        if p.get("control_totals"):
            lines.append("  each _SUCCESS declares its drop's rows and money sums (control totals, checked by ingest)")
        for fault, touched in self.fault_rows.items():
            what = ", ".join(f"{ds} {n}" for ds, n in touched.items())
            warn = "  (nothing to corrupt that day!)" if not any(touched.values()) else ""
            lines.append(f"  fault {fault}: rows touched: {what}{warn}")
        return "\n".join(lines)


# --- I/O entry points ------------------------------------------------------------------------------


def write_portfolio(
    root: Path,
    params: GeneratorParams,
    cfg: RisklineConfig,
    faults: Sequence[Fault] = (),
    progress: bool = False,
    generator: GeneratorConfig | None = None,
) -> GeneratorSummary:
    """Write the portfolio into ``root/landing`` (faulted days as asked) plus ``root/generator``.

    Every partition is replaced whole; a day withheld by ``late_partition`` goes to ``root/landing_late``
    and any copy of it in ``landing`` from an earlier run is removed (and vice versa). ``generator`` is the
    book's calibration (default: ``tools/generator.yaml``, :func:`~tools.generator_config.load_generator_config`).
    """
    check_fault_dates(faults, params)
    tz = cfg.business.tz
    sim = PROFILES[params.profile](params, generator or load_generator_config(), tz)
    rows = dict.fromkeys(DATASETS, 0)
    fault_rows: dict[str, dict[str, int]] = {}
    last: PortfolioDay | None = None
    for i, day in enumerate(sim.run(), 1):
        parts, report = inject_faults(day, faults, params.seed, tz)
        for dataset, part in parts.items():
            _write_landing_partition(root, dataset, day.date, part, params.control_totals)
            rows[dataset] += day.frames[dataset].height
        fault_rows.update(report)
        last = day
        if progress:
            _print_progress(i, params.days, day)
    assert last is not None
    truth = sim.truth()
    status = truth["status"].value_counts()
    counts = dict(zip(status["status"].to_list(), status["count"].to_list(), strict=True))
    summary = GeneratorSummary(
        params={
            "accounts": params.accounts,
            "days": params.days,
            "start_date": params.start_date.isoformat(),
            "end_date": params.end_date.isoformat(),
            "seed": params.seed,
            # named only when not the default, so the default profile's summary stays byte-identical
            **({"profile": params.profile} if params.profile != "default" else {}),
            **({"control_totals": True} if params.control_totals else {}),
        },
        faults=[str(f) for f in faults],
        accounts={"total": truth.height, **{s: int(counts.get(s, 0)) for s in ACCOUNT_STATUSES}},
        open_accounts=last.open_accounts,
        dpd30_accounts=last.dpd30_accounts,
        dpd30_rate=round(last.dpd30_rate, 6),
        shocked_share=round(truth["shocked_on"].is_not_null().mean() or 0.0, 6),
        in_hardship_share=round(last.shocked_accounts / max(last.open_accounts, 1), 6),
        loans=sim.loans_drawn,
        rows=rows,
        fault_rows=fault_rows,
    )
    out = root / "generator"
    buffer = io.BytesIO()
    truth.write_parquet(buffer, **lake.PARQUET_OPTIONS)  # type: ignore[arg-type]
    lake.atomic_write_bytes(out / TRUTH_FILE, buffer.getvalue())
    lake.atomic_write_bytes(out / SUMMARY_FILE, summary.to_json().encode())
    return summary


def release_late(root: Path) -> list[Path]:
    """Move every complete withheld partition from ``landing_late`` into ``landing``; return them.

    Data files move first; ``_SUCCESS`` appears last, with the atomic swap of ``lake.staged_partition``.
    """
    late_root = root / LATE_ZONE
    released: list[Path] = []
    if not late_root.is_dir():
        return released
    for dataset in sorted(p.name for p in late_root.iterdir() if p.is_dir()):
        for date in lake.complete_partition_dates(root, LATE_ZONE, dataset):
            part = lake.partition_dir(root, LATE_ZONE, dataset, date)
            files = lake.parquet_files(part)
            if files:  # none left: an earlier release moved them and died before tidying up
                target = zones.landing(root, dataset, date)
                declared = lake.declared_manifest(part)  # the drop's own totals come with it
                manifest = json.dumps(declared, sort_keys=True, default=str).encode() if declared else None
                with lake.staged_partition(target, manifest=manifest) as tmp:
                    for file in files:
                        lake.move_file(file, tmp / file.name)
                released.append(target)
            lake.remove_partition(part)
    return released


def declared_manifest(dataset: str, files: dict[str, pl.DataFrame | bytes]) -> bytes:
    """The ``_SUCCESS`` manifest of a drop of ``files``: its records (one per key, the file that sorts last
    winning, as ingest de-duplicates; a row with a null key counts as one; a copy of another record's facts
    under a larger id counts none) and their money sums, as a well-run upstream declares them. A file of raw
    bytes (a corrupt-file fault) counts nothing."""
    order = sorted(files, key=lambda name: (delivery_sequence(name) or 0, name))  # as ingest reads them
    frames = [files[n] for n in order if isinstance(files[n], pl.DataFrame)]
    contract = CONTRACT[dataset]
    if not frames:
        return control_totals.manifest_bytes(control_totals.ControlTotals(0, {}))
    rows = pl.concat(frames, how="diagonal_relaxed")
    key = [k for k in contract.key if k in rows.columns]
    if key:
        has_key = pl.all_horizontal(pl.col(k).is_not_null() for k in key)
        rows = pl.concat([rows.filter(has_key).unique(subset=key, keep="last", maintain_order=True),
                          rows.filter(~has_key)], how="diagonal_relaxed")
    facts = [e.meta.output_name() for e in contract.fact_exprs(landing=True)] if contract.facts else []
    if facts and set(facts) <= set(rows.columns):  # a copy of another record's facts is no record
        rows = rows.filter(contract.is_first_copy(landing=True))
    return control_totals.manifest_bytes(control_totals.totals_of(rows, contract))


def _write_landing_partition(root: Path, dataset: str, date: dt.date, part: LandingPartition,
                             declare: bool = False) -> None:
    landing = zones.landing(root, dataset, date)
    late = lake.partition_dir(root, LATE_ZONE, dataset, date)
    target, stale = (late, landing) if part.late else (landing, late)
    lake.remove_partition(stale)  # a rerun leaves one copy of the day, where this run put it
    # missing_success publishes the files without the marker
    manifest = declared_manifest(dataset, part.files) if declare else None
    with lake.staged_partition(target, marker=part.success, manifest=manifest) as tmp:
        _write_files(tmp, part.files)


def _write_files(folder: Path, files: dict[str, pl.DataFrame | bytes]) -> None:
    for name, content in sorted(files.items()):
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            lake.write_parquet(content, folder / name)


def _print_progress(i: int, total: int, day: PortfolioDay) -> None:
    line = (f"[{i}/{total}] {day.date.isoformat()}: {day.open_accounts:,} open lines, "
            f"30+ DPD {day.dpd30_rate:.2%}")
    if sys.stderr.isatty():
        print(f"\r{line}", end="\n" if i == total else "", file=sys.stderr, flush=True)
    elif i == total or i % max(1, total // 10) == 0:
        print(line, file=sys.stderr, flush=True)
