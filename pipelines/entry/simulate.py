"""``riskline simulate`` and the what-if DAG's task: re-decide a published night with a candidate limit policy.

Both parse the candidate with :func:`pipelines.config.candidate.parse_candidate_policy` (the live policy's own
model) and call :func:`pipelines.stages.whatif.simulate_policy`; docs/policy-whatif.md says what it writes and
what it guarantees. The stage imports polars and the report templates: it is imported inside the functions, so
``riskline --help`` and the DAG's parse stay light.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

from pipelines.config.candidate import CandidateError, candidate_yaml, parse_candidate_policy
from pipelines.config.settings import RisklineConfig, load_config
from pipelines.entry.cli_args import CliError, parse_date

DAG_PARAMS = frozenset({"candidate_policy", "as_of"})  # the what-if DAG's params: any other key is a typo
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DAG_NEXT_STEP = {
    "candidate": "fix the key named above in the candidate_policy param (Trigger DAG w/ config, edit the text "
                 "area) and trigger again; nothing was written",
    "refused": "the night cannot be re-decided as it stands (the reason is above); do what it says, then trigger "
               "again; nothing was written",
    "params": "trigger again with only the params candidate_policy and as_of (the keys of the trigger form; check "
              "the JSON's spelling); nothing was written",
}


class WhatIfFailed(RuntimeError):
    """The what-if DAG's task failed; the message ends with a NEXT STEP line in the Airflow UI's terms."""


def read_candidate_file(path: str, max_bytes: int) -> bytes:
    """The candidate file's bytes, after refusing what must not be read whole: not a regular file (``/dev/zero``,
    a FIFO, a folder), larger than ``max_bytes`` (``simulate.max_candidate_bytes``), or not UTF-8.

    Raises:
        CliError: one line naming the file and the problem.
    """
    try:
        # why: O_NONBLOCK, so a FIFO is refused below instead of waiting for a writer (no effect on a file)
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise CliError(f"the candidate policy {path} is not a regular file: give a YAML file")
            if info.st_size > max_bytes:
                raise CliError(f"the candidate policy {path} is {info.st_size:,} bytes, more than "
                               f"simulate.max_candidate_bytes ({max_bytes:,}): a policy section is a few kB")
            data = fh.read(max_bytes + 1)  # why: a file that grew since fstat still stops at the cap
    except OSError as exc:
        raise CliError(f"cannot read the candidate policy {path}: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise CliError(f"the candidate policy {path} is more than simulate.max_candidate_bytes ({max_bytes:,}) bytes")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(f"the candidate policy {path} is not UTF-8 text (byte offset {exc.start}): save it as UTF-8") from None
    return data


def _product_limits(cfg: RisklineConfig) -> tuple[int, int]:
    return cfg.product.min_limit_cny, cfg.product.max_limit_cny


def _dag_failure(kind: str, message: str) -> WhatIfFailed:
    return WhatIfFailed(f"{message}\nNEXT STEP: {_DAG_NEXT_STEP[kind]}")


def run_whatif_dag(params: dict[str, Any], data_root: str | None = None, config: str | None = None) -> dict[str, Any]:
    """The what-if DAG's task: check the params' keys, then :func:`simulate_candidate`; any refusal becomes one
    :class:`WhatIfFailed` whose last line is the next step (as the nightly DAG's tasks word theirs)."""
    # why: polars and the decide step stay out of the DAG's parse
    from pipelines.stages.whatif import SimulationRefused

    unknown = sorted(set(params) - DAG_PARAMS)
    if unknown:
        raise _dag_failure("params", f"unknown param(s) {unknown}: the what-if takes {sorted(DAG_PARAMS)}") from None
    try:
        return simulate_candidate(params.get("candidate_policy") or "", params.get("as_of"), data_root,
                                  source="candidate_policy", config=config)
    except CandidateError as exc:
        raise _dag_failure("candidate", str(exc)) from None
    except SimulationRefused as exc:
        raise _dag_failure("refused", str(exc)) from None


def simulate_candidate(
    candidate_text: str, as_of: str | dt.date | None, data_root: str | None = None, source: str = "candidate",
    config: str | None = None,
) -> dict[str, Any]:
    """Simulate ``candidate_text`` (YAML) on the published night ``as_of`` (None or "": the newest one); return the
    summary (page path, counts). The DAG's task body; the CLI's too, after it read the file."""
    # why: polars, the decide step and the templates stay out of the DAG's parse and `riskline --help`
    from pipelines.stages.whatif import SimulationRefused, newest_published, simulate_policy

    cfg = load_config(config)
    root = cfg.data_root(data_root)
    data = candidate_text.encode("utf-8")
    if len(data) > cfg.simulate.max_candidate_bytes:
        raise CandidateError(f"{source} is {len(data):,} bytes, more than simulate.max_candidate_bytes "
                             f"({cfg.simulate.max_candidate_bytes:,}): a policy section is a few kB")
    candidate = parse_candidate_policy(candidate_text, source, _product_limits(cfg))
    day: dt.date | None = as_of if isinstance(as_of, dt.date) else None
    if isinstance(as_of, str) and as_of.strip():
        if not _DATE.fullmatch(as_of.strip()):
            raise SimulationRefused(f"as_of {as_of!r} is not a date: want YYYY-MM-DD (or empty: the newest night)")
        try:
            day = dt.date.fromisoformat(as_of.strip())
        except ValueError:
            raise SimulationRefused(f"as_of {as_of!r} is not a date: want YYYY-MM-DD (or empty)") from None
    if day is None:
        day = newest_published(root)
    return simulate_policy(root, day, cfg, candidate, data, source).summary()


def cmd_simulate(args: argparse.Namespace, cfg: RisklineConfig, root: Path) -> int:
    # why: the stage imports polars and the decide step: kept out of `riskline --help`
    from pipelines.stages.whatif import SimulationRefused, newest_published, simulate_policy

    if args.print_live:
        print(candidate_yaml(cfg.policy), end="")
        return 0
    if not args.policy:
        raise CliError("--policy FILE is required (start from `riskline simulate --print-live > candidate.yaml`)")
    data = read_candidate_file(args.policy, cfg.simulate.max_candidate_bytes)
    try:
        candidate = parse_candidate_policy(data.decode("utf-8"), args.policy, _product_limits(cfg))
        as_of = args.as_of or newest_published(root)
        result = simulate_policy(root, as_of, cfg, candidate, data, args.policy)
    except (CandidateError, SimulationRefused) as exc:
        raise CliError(str(exc)) from None
    try:
        print(result.headline())
        print(result.page, flush=True)
    except BrokenPipeError:
        # why: `riskline simulate ... | head -1` closed the pipe; the page is written, so exit quietly and keep
        # Python's own flush at exit from failing on the same pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
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
    p.add_argument("--as-of", type=parse_date,
                   help="published business date D, YYYY-MM-DD (default: the newest published night)")
    p.add_argument("--print-live", action="store_true",
                   help="print the live policy as a candidate file (version <live>-whatif) to start from, and exit")
    p.set_defaults(func=cmd_simulate)
