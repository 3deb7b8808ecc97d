"""The ``riskline`` command: thin wrappers over the pipeline functions.

Each subcommand parses its arguments, loads the config once, calls one pipeline entry point and prints
a short summary. Bad input ends in one clear ``error: ...`` line and exit status 2; nothing here holds
business logic.
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipelines.config.settings import ConfigError, RisklineConfig, config_path, load_config
from pipelines.entry import cli_steps
from pipelines.entry.airflow import quiet_third_party_logs
from pipelines.entry.cli_args import CliError, parse_date
from pipelines.entry.cli_cells import add_cells_command
from pipelines.entry.cli_model import add_model_commands, model_next_step
from pipelines.entry.simulate import add_simulate_command
from pipelines.errors import IngestError
from pipelines.quality.data_docs import results_dir
from pipelines.quality.validate import validate_date
from pipelines.stages.features import IncompleteHistoryError
from pipelines.stages.ingest import ingest_date, ranged_days
from pipelines.stages.night import RunLockedError, RunOptions, dry_run_root, run_night
from pipelines.store import chain, zones
from pipelines.store.chain import ChainError
from pipelines.store.publish import PublishIncompleteError, describe_latest, read_latest
from pipelines.vocab import DATASETS


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {value}")
    return value


def _dates(args: argparse.Namespace, single: str = "date", known: str = "") -> list[dt.date]:
    """The one date (``--date``, or the option named by ``single``) or the inclusive range, in order.

    ``known`` follows the error when no date is given: what the lake already says about which date is next.
    """
    one, flag = getattr(args, single), "--" + single.replace("_", "-")
    if one is not None:
        if args.from_date or args.to_date:
            raise CliError(f"give either {flag} or --from-date/--to-date, not both")
        return [one]
    if not (args.from_date and args.to_date):
        raise CliError(f"give {flag} D, or both --from-date and --to-date{known}")
    if args.from_date > args.to_date:
        raise CliError(f"--from-date {args.from_date} is after --to-date {args.to_date}")
    days = (args.to_date - args.from_date).days + 1
    return [args.from_date + dt.timedelta(days=i) for i in range(days)]


def _add_date_range(p: argparse.ArgumentParser) -> None:
    p.add_argument("--date", type=parse_date, help="one business date, YYYY-MM-DD")
    p.add_argument("--from-date", type=parse_date, help="first business date of a range (inclusive)")
    p.add_argument("--to-date", type=parse_date, help="last business date of a range (inclusive)")


# --- subcommands -------------------------------------------------------------------------------


def _dev_tool(name: str) -> Any:
    """tools.<name>: developer tooling, not in the wheel; imported from the source checkout this package is in."""
    repo = Path(__file__).resolve().parents[2]
    if (repo / "tools" / "__init__.py").is_file() and str(repo) not in sys.path:
        sys.path.append(str(repo))  # an installed console script does not have the checkout on sys.path
    try:
        return importlib.import_module(f"tools.{name}")
    except ModuleNotFoundError:
        raise CliError(f"`riskline {name}` is developer tooling (tools/{name}.py): run it from a source checkout") from None


def cmd_generate(args: argparse.Namespace, cfg: RisklineConfig, root: Path) -> int:
    generate, GeneratorParams, parse_faults = _dev_tool("generate"), _dev_tool("simulate").GeneratorParams, _dev_tool("faults").parse_faults
    release_late, write_portfolio = generate.release_late, generate.write_portfolio

    if args.release_late:
        released = release_late(root)
        print(f"released {len(released)} late partition(s) into {root / 'landing'}")
        for path in released:
            print(f"  {path.relative_to(root)}")
        return 0
    if args.end_date is None:
        raise CliError("generate needs --end-date (or --release-late)")
    try:
        params = GeneratorParams(
            accounts=args.accounts, days=args.days, end_date=args.end_date, seed=args.seed,
            profile=args.profile, control_totals=not args.plain_success,
        )
        faults = parse_faults(args.faults, params)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    summary = write_portfolio(root, params, cfg, faults=faults, progress=True)
    print(summary.describe())
    return 0


def cmd_ingest(args: argparse.Namespace, cfg: RisklineConfig, root: Path) -> int:

    dates = _dates(args)
    datasets = args.dataset or None
    failures = 0
    stale: set[dt.date] = set()
    for i, (day, ranged) in enumerate(ranged_days(root, dates, cfg, datasets), 1):
        # (an unknown dataset name is refused by ingest_date, before any path is built from it)
        before = {name: chain.curated_digest(root, name, day) for name in (datasets or DATASETS) if name in DATASETS}
        try:
            # Data Docs render in ~1 s: for a range, only the last date's (`riskline validate` rebuilds any date's).
            # The range's later dates are replaced next: their current rows must not take this date's (the
            # earliest date owns a fact). Those holding copies are marked until re-ingested (zones.REINGEST_MARKER).
            results = ingest_date(root, day, cfg, datasets=datasets, data_docs=(i == len(dates)), in_range=ranged,
                                  reingesting=dates[i:])
        except IngestError as exc:
            failures += 1
            print(f"error: {exc}", file=sys.stderr)
            if not args.keep_going:
                break
            continue
        if before:
            stale.update(chain.after_ingest(root, day, before))
        if len(dates) == 1 or args.verbose:
            for res in results:
                print(res.describe())
        elif sys.stderr.isatty():
            print(f"\r[{i}/{len(dates)}] ingested {day}", end="", file=sys.stderr, flush=True)
        elif i % _progress_step(len(dates)) == 0 or i == len(dates):
            # a log file or a pipe (make, CI, Airflow) gets a line now and then instead of carriage returns
            print(f"[{i}/{len(dates)}] ingested {day}", file=sys.stderr, flush=True)
    if len(dates) > 1 and (args.keep_going or not failures):
        print(f"\ningested {len(dates) - failures}/{len(dates)} dates into {root / 'curated'}")
    if stale:  # late data: the curated content changed under nights already published
        nights = sorted(stale)
        print(f"warning: published nights {', '.join(map(str, nights))} read curated data that this ingest "
              f"changed; they are now stale (outputs/_stale/): {chain.rebuild_hint(root, nights)}", file=sys.stderr)
    owed = zones.owed_reingests(root)
    if owed:  # a range that rebuilt an earlier date stopped before the later ones holding its rows' copies
        print(f"error: curated {', '.join(f'{name} dt={day}' for name, day, _ in owed[:5])} still hold rows now "
              f"curated on an earlier date; nights refuse the history until they are re-ingested: "
              f"{zones.reingest_command(owed)}", file=sys.stderr)
        return 1
    return 1 if failures else 0


def _progress_step(total: int) -> int:
    """Every how many dates a range reports progress when not on a terminal: about ten lines in all."""
    return max(1, -(-total // 10))


def cmd_validate(args: argparse.Namespace, cfg: RisklineConfig, root: Path) -> int:

    failures = 0
    for day in _dates(args):
        try:
            reports = validate_date(root, day, cfg)
        except OSError as exc:  # read-only data root, full disk: validate writes only results and Data Docs
            print(f"error: validate dt={day}: storage failed ({exc}); only this date's validation results "
                  f"and Data Docs may be missing or stale, nothing else is written by validate -> make the "
                  f"data root writable or free space, then rerun `riskline validate --date {day}`",
                  file=sys.stderr)
            return 1
        if not reports:
            print(f"error: {cli_steps.nothing_to_validate(root, day)}", file=sys.stderr)
            failures += 1
            continue
        for report in reports:
            print(report.describe())
        critical = sum(not r.ok for r in reports)
        failures += bool(critical)
        print(f"{day}: {len(reports)} validated, {critical} with critical failures -> {results_dir(root, day)}")
    return 1 if failures else 0


def cmd_run(args: argparse.Namespace, cfg: RisklineConfig, root: Path) -> int:
    if args.rebuild_ledger:
        cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"incremental_ledger": False})})
    options = RunOptions(retrain=not args.no_retrain, model_version=args.model_version, publish=not args.dry_run,
                         force_chain=args.force_chain)
    known = ""
    if args.as_of is None and not (args.from_date and args.to_date):
        # a night is never run implicitly, but the lake knows which one is next
        latest = read_latest(root)
        if latest is not None:
            known = f" (newest published night: {latest}; the next is {latest + dt.timedelta(days=1)})"
    dates = _dates(args, single="as_of", known=known)
    for as_of in dates:  # in order: each night reads the previous night's scores and limit history
        print(f"riskline run {as_of} (data root {root})", flush=True)
        started: list[str] = []

        def progress(stage: str, n: int, total: int) -> None:
            started.append(stage)
            print(f"  [{n}/{total}] {stage} ...", flush=True)

        # --force-chain forces every night of the range, as rebuild does: behind nights that already ran, each
        # of them is out of order, not only the first (each forced night says so in its manifest)
        try:
            result = run_night(root, as_of, cfg, options, progress=progress)
        except (RunLockedError, ChainError) as exc:
            raise CliError(f"run for {as_of}: {exc}" if len(dates) > 1 else str(exc)) from None
        except PublishIncompleteError as exc:  # after the journal: some of D is out, a rerun completes it
            print(f"error: run for {as_of} failed: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:  # the stage's own error says what failed and what to do next
            step = model_next_step(exc)
            if isinstance(exc, IncompleteHistoryError):  # before the first night, a history date left out
                step = f" -> {cli_steps.missing_history_step(exc, 'then rerun this same `riskline run` command')}"
            print(f"error: run for {as_of} failed: {type(exc).__name__}: {exc}{step}", file=sys.stderr)
            if started[-1:] == ["report"]:  # the report runs after publish: the outputs are out
                print(f"the outputs of {as_of} were published; only the report failed: fix it and run "
                      f"`riskline report --as-of {as_of}`", file=sys.stderr)
            elif not options.publish:
                print(f"dry run: nothing outside {dry_run_root(root, as_of)} was written", file=sys.stderr)
            else:
                print(f"nothing was published for {as_of}; {describe_latest(root)}", file=sys.stderr)
            if as_of != dates[-1]:
                print(f"stopped: the nights after {as_of} need its outputs; rerun from --from-date {as_of}",
                      file=sys.stderr)
            return 1
        print(describe_run(result, result.root or root), flush=True)
    return 0


def cmd_rebuild(args: argparse.Namespace, cfg: RisklineConfig, root: Path) -> int:
    """Rerun nights forward, in order, from --from to --to (default: the newest night in the lake)."""

    last = args.to_date or max([*zones.night_dates(root), args.from_date])
    if args.from_date > last:
        raise CliError(f"--from {args.from_date} is after --to {last}")
    days = [args.from_date + dt.timedelta(days=i) for i in range((last - args.from_date).days + 1)]
    # --force-chain forces every night, not only the first: they run in order, each right after the one before
    # it, but a night never run before (a gap before later nights, as in a rebuild from before the first
    # published night) still sees the later nights the rebuild is about to rerun. Each forced night says so
    # in its manifest.
    options = RunOptions(retrain=args.retrain, publish=True, force_chain=args.force_chain)
    for i, day in enumerate(days, 1):
        print(f"[{i}/{len(days)}] night {day} ...", flush=True)
        try:
            result = run_night(root, day, cfg, options)
        except (RunLockedError, ChainError) as exc:
            raise CliError(f"rebuild stopped at {day}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - one line: what stopped it, what to do, where to resume
            if os.environ.get("RISKLINE_TRACEBACK"):
                raise
            print(f"error: rebuild stopped at {day}: "
                  f"{cli_steps.stopped_night(exc, day, last, args.force_chain, args.retrain)}", file=sys.stderr)
            return 1
        print(f"  published {day}: " + ", ".join(f"{k} {v:,}" for k, v in result.stages["decide"]["actions"].items()))
        print("".join(f"  {note}\n" for note in purged_landing_notes(result)), end="")
    left = sorted(d for d in chain.stale_nights(root) if d > last)
    print(f"rebuilt {len(days)} nights {days[0]}..{last}"
          + (f"; still stale after it: {', '.join(map(str, left))}" if left else ""))
    return 0


def cmd_bench(args: argparse.Namespace, cfg: RisklineConfig, root: Path) -> int:

    run_benchmarks = _dev_tool("bench").run_benchmarks

    del cfg, root  # the bench builds its own books and config (benchmarks/bench.yaml) on top of the base config
    base = config_path(args.config)
    try:
        sizes = args.size if args.size else ([] if args.scale or args.load else ["100k", "1m"])
        written = run_benchmarks(sizes, base, scale=args.scale, history_load=args.load,
                                 log=lambda line: print(line, flush=True))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print("\n".join(f"wrote {p}" for p in written))
    return 0


def purged_landing_notes(result) -> list[str]:
    """The line a night's ingest left for drops purged once ingested (read as curated), if any."""
    return sorted({r["landing_purged"] for r in result.stages.get("ingest", {}).values() if r.get("landing_purged")})


def describe_run(result, root: Path) -> str:
    """The short morning summary printed after a run."""
    st = result.stages
    lines = [f"run for {result.as_of} finished in {sum(t['seconds'] for t in result.timings.values()):.1f} s"]
    lines += [f"  {note}" for note in purged_landing_notes(result)]
    lines.append(f"  accounts scored: {st['score']['accounts']:,} with model {st['score']['model_version']}")
    if "train" in st:
        t = st["train"]
        lines.append(f"  model: OOT AUC {t['oot_auc']:.4f}, KS {t['oot_ks']:.4f} (OOT {t['oot_date']}); "
                     f"gate: {t['gate']}; champion {t['champion']}")
    lines.append("  limit actions: " + ", ".join(f"{k} {v:,}" for k, v in st["decide"]["actions"].items()))
    lines.append("  collection queue: " + (", ".join(f"{k} {v:,}" for k, v in st["decide"]["treatments"].items())
                                           or "empty"))
    lines.append(f"  hardship offers: {st['decide']['hardship_offers']:,}")
    if st["decide"].get("held_for_pending_payments"):  # see pipelines/domain/pending_payments.py
        lines.append(f"  held for payments waiting in quarantine: {st['decide']['held_for_pending_payments']:,} "
                     "accounts (no freeze, cut or collections contact until applied)")
    if st["decide"].get("held_missing_from_snapshot"):  # see pipelines/domain/decide.py
        lines.append(f"  held, open lately but missing from tonight's snapshot: "
                     f"{st['decide']['held_missing_from_snapshot']:,} accounts (no collections contact or offer)")
    if st["decide"].get("held_closed_while_overdue"):  # see pipelines/domain/coverage.py: accounts_held_out
        lines.append(f"  held, open lately but closed tonight while overdue: "
                     f"{st['decide']['held_closed_while_overdue']:,} accounts (no collections contact or offer)")
    pub = st["publish"]
    where = "published" if pub["published"] else "DRY RUN, staged (not published)"
    lines.append(f"  outputs {where}: manifest {root / pub['manifest']}")

    stale = sorted(chain.stale_nights(root))
    if stale:  # late data or a rerun changed what these published nights read
        lines.append(f"  stale published nights (outputs/_stale/): {', '.join(map(str, stale))}; "
                     f"{chain.rebuild_hint(root, stale)}")
    if "report" in st:
        lines.append(f"  report: {st['report']['path']}")
    return "\n".join(lines)


def cmd_summary(args: argparse.Namespace, cfg: RisklineConfig, root: Path) -> int:
    # why: keeps xgboost out of `riskline --help` and the light commands
    from pipelines.report.summary import describe_published

    as_of = args.as_of
    if as_of is None:  # the newest published night, the one readers follow (outputs/_LATEST)
        as_of = read_latest(root)
        if as_of is None:
            raise CliError(f"nothing has been published under {root} yet, so there is no night to summarise -> "
                           f"{cli_steps.first_night_step(root)}")
        print(f"the newest published night, {as_of} (--as-of D for another):")
    try:
        print(describe_published(root, as_of))
    except FileNotFoundError as exc:
        raise CliError(f"{exc} -> {cli_steps.publish_step(root, as_of)}; {describe_latest(root)}") from None
    return 0


def cmd_report(args: argparse.Namespace, cfg: RisklineConfig, root: Path) -> int:
    # why: keeps xgboost and matplotlib out of `riskline --help` and the light commands
    from pipelines.report.report import write_report
    # why: keeps xgboost out of `riskline --help` and the light commands
    from pipelines.report.sections import ReportError

    try:
        path = write_report(root, args.as_of, cfg)
    except ReportError as exc:
        raise CliError(str(exc)) from None
    print(path)
    return 0


Command = Callable[[argparse.Namespace, RisklineConfig, Path], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riskline",
        description="Nightly credit-risk pipeline for a consumer credit-line book.",
    )
    parser.add_argument("--config", help="config file (default: $RISKLINE_CONFIG or riskline.yaml)")
    parser.add_argument("--data-root", help="data root (default: $RISKLINE_DATA_ROOT or the config's)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "generate",
        help="write a synthetic portfolio as landing data",
        description="Write a deterministic synthetic portfolio into DATA_ROOT/landing, one partition per "
        "business day with _SUCCESS, following the landing contract. --faults injects upstream defects "
        "for tests: KIND@YYYY-MM-DD[,KIND@YYYY-MM-DD...] (see docs/contracts.md for the kinds).",
    )
    p.add_argument("--accounts", type=_positive_int, default=20_000, help="accounts at the end (default 20000)")
    p.add_argument("--days", type=_positive_int, default=365, help="days of history (default 365)")
    p.add_argument("--end-date", type=parse_date, help="last business date, YYYY-MM-DD (required)")
    p.add_argument("--seed", type=int, default=7, help="random seed (same args -> same bytes)")
    p.add_argument("--faults", default="", help="defects to inject: KIND@DATE,...")
    p.add_argument("--profile", choices=("default", "card"), default="default",
                   help="the book's shape: default (the demo's credit lines) or card (monthly statements, "
                        "minimum payments, revolving balances, sparse behaviour, no income/region)")
    p.add_argument("--plain-success", action="store_true",
                   help="write empty _SUCCESS markers, as an upstream that declares no control totals (default: "
                        "each _SUCCESS declares its drop's rows and money sums, checked by ingest)")
    p.add_argument(
        "--release-late",
        action="store_true",
        help="only move partitions withheld by a late_partition fault into landing (data, then _SUCCESS)",
    )
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "ingest",
        help="landing -> curated for one date or a range",
        description="Read the landing partition of each dataset for the date, enforce the contract, "
        "de-duplicate on the business key (latest delivery wins), quarantine bad rows with a reason, and "
        "replace DATA_ROOT/curated/<dataset>/dt=D atomically.",
    )
    _add_date_range(p)
    p.add_argument("--dataset", action="append", help="only this dataset (repeatable)")
    p.add_argument("--keep-going", action="store_true", help="in a range, go on after a failing date")
    p.add_argument("-v", "--verbose", action="store_true", help="print every dataset's summary in a range")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser(
        "validate",
        help="re-validate the curated partitions and published outputs of a date (writes results only)",
        description="Run the Great Expectations suites (expectations/) on what the lake holds for the date: "
        "each curated landing dataset (references read from the curated zone, quarantined rows counted from "
        "the quarantine zone) and each published output. Nothing is published or moved; results replace "
        "DATA_ROOT/validation/dt=D/<name>.json and the date's Data Docs (DATA_ROOT/reports/data_docs/dt=D/). "
        "Exit 1 when an expectation fails critically or nothing exists for the date. Ingest validates "
        "landing drops by itself before publishing; use this after a suite change or to audit a date.",
    )
    _add_date_range(p)
    p.set_defaults(func=cmd_validate)

    add_model_commands(sub)

    p = sub.add_parser(
        "run",
        help="the whole night for one business date (or several, in order), without Airflow",
        description="Ingest and validate the date's landing drop, build ledger and features, retrain (unless "
        "--no-retrain or --model-version), score, decide limits, collections and hardship offers, and publish "
        "the four outputs with a run manifest to DATA_ROOT/outputs (all-or-nothing). With --from-date/--to-date, "
        "every night of the range in order, stopping at the first that fails. A rerun of a date already "
        "published retrains too: its challenger may be promoted champion from D and the date republished with "
        "other decisions. To rerun a published night with the model it used, pass --no-retrain (it scores with "
        "the champion serving on D in the champion history: that model, unless a promotion or rollback "
        "effective on or before D was recorded since), or pin the version its manifest names (`riskline "
        "summary --as-of D`) with --model-version.",
    )
    p.add_argument("--as-of", type=parse_date, help="business date D, YYYY-MM-DD")
    p.add_argument("--from-date", type=parse_date, help="first business date of a range of nights (inclusive)")
    p.add_argument("--to-date", type=parse_date, help="last business date of a range of nights (inclusive)")
    p.add_argument("--no-retrain", action="store_true",
                   help="score with the champion serving on D in the champion history (no training, no promotion); "
                   "on a published date this reproduces the night with the model it used, unless a promotion or "
                   "rollback effective on or before D was recorded since")
    p.add_argument("--model-version", help="pin a registered model version (implies no retrain)")
    p.add_argument("--dry-run", action="store_true",
                   help="run on a private copy of the lake under DATA_ROOT/staging/as_of_date=D; nothing else changes")
    p.add_argument("--force-chain", action="store_true",
                   help="run even if the night is out of order (previous night missing or stale, later nights "
                   "exist), every night of a range; recorded in each manifest, later nights are marked stale")
    p.add_argument("--rebuild-ledger", action="store_true",
                   help="build the ledger from the whole curated history instead of the last night's state "
                   "(run.incremental_ledger: false for this run; the published bytes are the same)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "rebuild",
        help="rerun nights forward in order from a date (after a backfill, late data or a rollback)",
        description="Run the nights --from D through --to E (default: the newest night in the lake) one after "
        "another, each reading the limit history the one before it just left; stale marks clear as each "
        "night is republished. Scores with the champion serving on each date unless --retrain.",
    )
    p.add_argument("--from", dest="from_date", type=parse_date, required=True, help="first night to rerun, YYYY-MM-DD")
    p.add_argument("--to", dest="to_date", type=parse_date, help="last night (default: the newest night in the lake)")
    p.add_argument("--retrain", action="store_true", help="retrain on each night (default: no, like a backfill)")
    p.add_argument("--force-chain", action="store_true",
                   help="allow the first night to start out of order, and the nights after it to run while later "
                   "nights exist (a gap of nights never run before them); recorded in each night's manifest")
    p.set_defaults(func=cmd_rebuild)

    p = sub.add_parser(
        "bench",
        help="benchmark one nightly run per stage (time, peak memory) on generated 100k/1M books",
        description="Generate (cached under benchmarks/cache/) and ingest 180-day books, run the last night "
        "stage by stage in fresh processes, run the feature peers (DuckDB SQL, pandas), and write "
        "benchmarks/results/<date>-<size>.json and .md. Takes minutes (the 1M book's first generation and "
        "ingest about 15). Not part of the test suite.",
    )
    p.add_argument("--size", action="append",
                   help="100k, 1m or 100k-3y (three years of history, compared with the day's 100k result; "
                        "repeatable; default 100k and 1m unless --scale)")
    p.add_argument("--scale", action="store_true",
                   help="score and decide a 10M book shard by shard, built from the 1M book's night (run that first)")
    p.add_argument("--load", action="store_true",
                   help="time a history load: ingest + validate 365 days of a generated 100k book into an empty lake "
                        "(benchmarks/bench.yaml `load:`)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("summary", help="the short summary of a published night (from its manifest and outputs)")
    p.add_argument("--as-of", type=parse_date,
                   help="business date D, YYYY-MM-DD (default: the newest published night, outputs/_LATEST)")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser(
        "report",
        help="(re)build the run report of a published night and print its path",
        description="Write DATA_ROOT/reports/as_of_date=D/report.html: one self-contained page (data, model, "
        "portfolio, decisions, collections) built from the night's manifest, outputs, registry and ledger.",
    )
    p.add_argument("--as-of", type=parse_date, required=True, help="business date D, YYYY-MM-DD")
    p.set_defaults(func=cmd_report)

    add_simulate_command(sub)
    add_cells_command(sub)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    quiet_third_party_logs()  # Great Expectations alone logs about 50 INFO lines per dataset validated
    try:
        cfg = load_config(args.config)
        root = cfg.data_root(args.data_root)
        return int(args.func(args, cfg, root))
    except (CliError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # Every stage error is one line with the next step; the traceback only on request.
        if os.environ.get("RISKLINE_TRACEBACK"):
            raise
        command = args.func.__name__.removeprefix("cmd_")
        print(f"error: riskline {command} failed: {type(exc).__name__}: {' '.join(str(exc).split())} -> "
              f"{_next_step(exc)} (set RISKLINE_TRACEBACK=1 to see the traceback)", file=sys.stderr)
        return 1


def _next_step(exc: Exception) -> str:
    """What to do about an error no stage turned into its own message, by its kind."""

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free space on the data root's file system, then rerun the same command (every write is atomic)"
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "make the data root writable for this user (or pass another --data-root), then rerun"
    if isinstance(exc, FileNotFoundError):
        return "an input partition is missing: run the earlier stages for this date first (`riskline run --as-of D`)"
    return "not a data problem: fix the cause named here, then rerun the same command (reruns are safe)"


if __name__ == "__main__":
    raise SystemExit(main())
