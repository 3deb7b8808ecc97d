"""The ``riskline`` command: thin wrappers over the pipeline functions.

Each subcommand parses its arguments, loads the config once, calls one pipeline entry point and prints
a short summary. Bad input ends in one clear ``error: ...`` line and exit status 2; nothing here holds
business logic.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pipelines.config import ConfigError, RisklineConfig, load_config


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (want YYYY-MM-DD): {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {value}")
    return value


def _dates(args: argparse.Namespace) -> list[dt.date]:
    if args.date is not None:
        if args.from_date or args.to_date:
            raise CliError("give either --date or --from-date/--to-date, not both")
        return [args.date]
    if not (args.from_date and args.to_date):
        raise CliError("give --date D, or both --from-date and --to-date")
    if args.from_date > args.to_date:
        raise CliError(f"--from-date {args.from_date} is after --to-date {args.to_date}")
    days = (args.to_date - args.from_date).days + 1
    return [args.from_date + dt.timedelta(days=i) for i in range(days)]


def _add_date_range(p: argparse.ArgumentParser) -> None:
    p.add_argument("--date", type=_date, help="one business date, YYYY-MM-DD")
    p.add_argument("--from-date", type=_date, help="first business date of a range (inclusive)")
    p.add_argument("--to-date", type=_date, help="last business date of a range (inclusive)")


# --- subcommands -------------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace, cfg: RisklineConfig, root: Path) -> int:
    from pipelines.generate import GeneratorParams, parse_faults, write_portfolio

    params = GeneratorParams(
        accounts=args.accounts, days=args.days, end_date=args.end_date, seed=args.seed
    )
    summary = write_portfolio(root, params, cfg, faults=parse_faults(args.faults), progress=True)
    print(summary.describe())
    return 0


def cmd_ingest(args: argparse.Namespace, cfg: RisklineConfig, root: Path) -> int:
    from pipelines.ingest import IngestError, ingest_date

    dates = _dates(args)
    datasets = args.dataset or None
    failures = 0
    for i, day in enumerate(dates, 1):
        try:
            results = ingest_date(root, day, cfg, datasets=datasets)
        except IngestError as exc:
            failures += 1
            print(f"error: {exc}", file=sys.stderr)
            if not args.keep_going:
                return 1
            continue
        if len(dates) == 1 or args.verbose:
            for res in results:
                print(res.describe())
        elif sys.stderr.isatty():
            print(f"\r[{i}/{len(dates)}] ingested {day}", end="", file=sys.stderr, flush=True)
    if len(dates) > 1:
        print(f"\ningested {len(dates) - failures}/{len(dates)} dates into {root / 'curated'}")
    return 1 if failures else 0


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
    p.add_argument("--end-date", type=_date, required=True, help="last business date, YYYY-MM-DD")
    p.add_argument("--seed", type=int, default=7, help="random seed (same args -> same bytes)")
    p.add_argument("--faults", default="", help="defects to inject: KIND@DATE,...")
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

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    raise SystemExit(main())
