"""``riskline simulate`` and the what-if DAG's task: re-decide a published night with a candidate limit policy.

Both parse the candidate with :func:`pipelines.config.candidate.parse_candidate_policy` (the live policy's own
model) and call :func:`pipelines.stages.whatif.simulate_policy`; docs/policy-whatif.md says what it writes and
what it guarantees. The stage imports polars and the report templates: it is imported inside the functions, so
``riskline --help`` and the DAG's parse stay light.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from pipelines.config.candidate import CandidateError, candidate_yaml, parse_candidate_policy
from pipelines.config.settings import RisklineConfig, load_config
from pipelines.entry.cli_args import CliError, parse_date


def simulate_candidate(
    candidate_text: str, as_of: str | dt.date | None, data_root: str | None = None, source: str = "candidate",
    config: str | None = None,
) -> dict[str, Any]:
    """Simulate ``candidate_text`` (YAML) on the published night ``as_of`` (None or "": the newest one); return the
    summary (page path, counts). The DAG's task body; the CLI's too, after it read the file."""
    # why: polars, the decide step and the templates stay out of the DAG's parse and `riskline --help`
    from pipelines.stages.whatif import newest_published, simulate_policy

    cfg = load_config(config)
    root = cfg.data_root(data_root)
    candidate = parse_candidate_policy(candidate_text, source)
    day = dt.date.fromisoformat(as_of) if isinstance(as_of, str) and as_of.strip() else as_of
    if not isinstance(day, dt.date):
        day = newest_published(root)
    return simulate_policy(root, day, cfg, candidate).summary()


def cmd_simulate(args: argparse.Namespace, cfg: RisklineConfig, root: Path) -> int:
    # why: the stage imports polars and the decide step: kept out of `riskline --help`
    from pipelines.stages.whatif import SimulationRefused, newest_published, simulate_policy

    if args.print_live:
        print(candidate_yaml(cfg.policy), end="")
        return 0
    if not args.policy:
        raise CliError("--policy FILE is required (start from `riskline simulate --print-live > candidate.yaml`)")
    try:
        text = Path(args.policy).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read the candidate policy {args.policy}: {exc.strerror}") from None
    try:
        candidate = parse_candidate_policy(text, args.policy)
        as_of = args.as_of or newest_published(root)
        result = simulate_policy(root, as_of, cfg, candidate)
    except (CandidateError, SimulationRefused) as exc:
        raise CliError(str(exc)) from None
    print(f"what-if of {result.as_of}: candidate {result.candidate_version} against live {result.live_version}: "
          f"{result.changed:,} of {result.accounts:,} lines affected, {result.harsher:,} harsher, "
          f"{result.gentler:,} gentler")
    print(result.page)
    return 0


def add_simulate_command(sub: argparse._SubParsersAction) -> None:
    """Declare ``simulate`` on the ``riskline`` parser's subcommands."""
    p = sub.add_parser(
        "simulate",
        help="policy what-if: re-decide a published night with a candidate limit policy (writes only a page)",
        description="Re-decide the published night D with the candidate limit policy in FILE (YAML: a `policy:` "
        "section as in riskline.yaml, or its keys; validated like the live one) and the night's published scores, "
        "and compare with the published limits. Checks first that the live policy reproduces the published limits "
        "exactly. Writes DATA_ROOT/simulations/<candidate version>/as_of_date=D/ (whatif.html, limits.parquet, "
        "comparison.parquet) and nothing else. See docs/policy-whatif.md.",
    )
    p.add_argument("--policy", metavar="FILE", help="the candidate policy (YAML)")
    p.add_argument("--as-of", type=parse_date, help="published business date D (default: the newest published night)")
    p.add_argument("--print-live", action="store_true",
                   help="print the live policy as a candidate file (version <live>-whatif) to start from, and exit")
    p.set_defaults(func=cmd_simulate)
