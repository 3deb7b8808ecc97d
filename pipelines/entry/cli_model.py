"""The model subcommands of ``riskline``: train, score and the registry (list, show, promote, rollback).

Like every subcommand, each parses its arguments, calls one pipeline entry point and prints a short summary.
The registry and training import xgboost: they are imported inside the commands, so ``riskline --help`` and
the data commands stay light.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.config.settings import RisklineConfig
from pipelines.entry.cli_args import CliError, parse_date
from pipelines.model.metrics import LeakageSuspectedError
from pipelines.stages.features import IncompleteHistoryError
from pipelines.store import chain, lake
from pipelines.store.publish import read_latest

if TYPE_CHECKING:  # the registry imports xgboost: kept out of `riskline --help`
    from pipelines.model.registry import ModelRecord, ModelRegistry


def model_next_step(exc: BaseException) -> str:
    """The next step of a model or registry error, in this tool's words (the DAG's are in orchestration)."""
    # why: keeps xgboost out of `riskline --help` and the light commands
    from pipelines.model.registry import NoChampionError

    if isinstance(exc, NoChampionError):
        return (" -> train one for a date on or before it (`riskline train --as-of D`), promote a reviewed version "
                "(`riskline model promote V --reason ...`; `riskline model list` shows them), or pass "
                "--model-version V")
    return ""


def cmd_train(args: argparse.Namespace, cfg: RisklineConfig, root: Path) -> int:
    # why: keeps xgboost out of `riskline --help` and the light commands
    from pipelines.model.registry import NoChampionError
    # why: keeps xgboost out of `riskline --help` and the light commands
    from pipelines.model.fit import InsufficientHistoryError
    # why: keeps xgboost out of `riskline --help` and the light commands
    from pipelines.stages.train import run_training

    try:
        result = run_training(root, args.as_of, cfg)
    except (LeakageSuspectedError, NoChampionError, InsufficientHistoryError) as exc:
        print(f"error: {exc}{model_next_step(exc)}", file=sys.stderr)
        return 1
    print(result.describe())
    return 0


def cmd_score(args: argparse.Namespace, cfg: RisklineConfig, root: Path) -> int:
    # why: keeps xgboost out of `riskline --help` and the light commands
    from pipelines.model.registry import RegistryError
    # why: keeps xgboost out of `riskline --help` and the light commands
    from pipelines.stages.score import run_scoring


    try:
        path = run_scoring(root, args.as_of, cfg, model_version=args.model_version)
    except RegistryError as exc:
        raise CliError(f"{exc}{model_next_step(exc)}") from None
    except IncompleteHistoryError as exc:  # no features of D, and the curated data to build them is missing
        raise CliError(f"no features for {args.as_of} and none can be built: {exc} -> ingest the date first "
                       f"(`riskline ingest --date {args.as_of}`), or run the whole night: "
                       f"`riskline run --as-of {args.as_of}`") from None
    scores = lake.read_partition(path)
    grades = scores.group_by("grade").len().sort("grade")
    mix = "  ".join(f"{g}:{n}" for g, n in grades.iter_rows())
    version = scores["model_version"][0] if scores.height else args.model_version
    exact = int((scores["reason_method"] == "exact").sum())
    print(f"scored {scores.height} accounts on {args.as_of} with {version} -> {path}")
    print(f"grades {mix}; mean PD {scores['pd'].mean() or 0:.4f}; exact reason codes for {exact} accounts")
    return 0


def cmd_model(args: argparse.Namespace, cfg: RisklineConfig, root: Path) -> int:

    # why: keeps xgboost out of `riskline --help` and the light commands
    from pipelines.model.registry import ModelRegistry, RegistryError

    registry = ModelRegistry(root)
    # Wall-clock time is read here, at the edge, only to stamp manual actions.
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    today = now.astimezone(cfg.business.tz).date()
    try:
        if args.model_command == "list":
            champion = registry.champion()
            for version in registry.versions():
                rec = registry.record(version)
                oot = rec.metrics["oot"]
                flag = "*" if version == champion else " "
                verdict = "passed" if rec.gate["promote"] else "rejected"
                print(f"{flag} {version}  OOT AUC {oot['auc']:.4f}  KS {oot['ks']:.4f}  "
                      f"cal.err {oot['calibration_error']:.4f}  gate {verdict}")
            for event in registry.history():
                print(f"  history #{event.seq}: {event.version} from {event.effective_from} "
                      f"({event.action}: {event.reason})")
        elif args.model_command == "show":
            rec = registry.record(args.version)
            if args.json:
                shown = {
                    "version": rec.version,
                    "champion_now": registry.champion() == rec.version,
                    "manifest": {k: v for k, v in rec.manifest.items() if k not in ("inputs", "definition")},
                    "oot": {k: v for k, v in rec.metrics["oot"].items() if k != "score_reference"},
                    "stability": rec.metrics["stability"],
                    "gate": rec.gate,
                }
                print(json.dumps(shown, indent=1, default=str))
            else:
                print(describe_model(rec, registry))
        elif args.model_command == "promote":
            event = registry.set_champion(args.version, args.effective_from or today, "manual_promote",
                                          args.reason, recorded_at=now.isoformat())
            print(f"champion from {event.effective_from}: {event.version} (history #{event.seq})")
        else:
            event = registry.rollback(_rollback_date(args, root), args.reason, recorded_at=now.isoformat())
            print(f"rolled back: champion from {event.effective_from} is {event.version} (history #{event.seq})")
            _say_rollback_reruns(root, event.effective_from)
        if args.model_command in ("promote", "rollback") and registry.champion() != event.version:
            # effective dates order the history, not the order of typing: say who serves latest
            print(f"note: a later-dated history entry keeps {registry.champion()} serving from its date on")
    except RegistryError as exc:
        raise CliError(str(exc)) from None
    return 0


def _rollback_date(args: argparse.Namespace, root: Path) -> dt.date:
    """A rollback serves from ``--effective-from``, else from the latest published business date: the
    night published with the model being rolled back is itself rerun with the reinstated one."""

    if args.effective_from is not None:
        return args.effective_from
    latest = read_latest(root)
    if latest is None:
        raise CliError("nothing is published yet, so there is no night to roll back from: "
                       "give --effective-from YYYY-MM-DD (the first business date the previous champion serves)")
    return latest


def _say_rollback_reruns(root: Path, since: dt.date) -> None:

    nights = [n for n in chain.published_nights(root) if n >= since]
    if nights:
        print(f"published nights {nights[0]}..{nights[-1]} were decided with the rolled-back model: rerun them "
              f"in order to republish them with the reinstated one: "
              f"`riskline rebuild --from {chain.rebuild_start(root, nights[0])}`")


def describe_model(rec: ModelRecord, registry: ModelRegistry) -> str:
    """``riskline model show``: one screen about a registered version (``--json`` has every field)."""
    man, oot, gate = rec.manifest, rec.metrics.get("oot", {}), rec.gate
    window = man.get("training_window", {})
    rows = man.get("rows", {})

    def metrics(m: dict) -> str:
        shown = [f"{label} {m[k]:.4f}" for k, label in (("auc", "AUC"), ("ks", "KS"),
                 ("calibration_error", "calibration error")) if isinstance(m.get(k), int | float)]
        return ", ".join(shown) or "none recorded"

    lines = [f"model {rec.version}" + ("  (champion now)" if registry.champion() == rec.version else "")]
    lines.append(f"  trained on the night of {man.get('as_of', '?')}: {man.get('trees', '?')} trees (best "
                 f"iteration {man.get('best_iteration', '?')}), sample rate {man.get('training_sample_rate', '?')}")
    if window:
        fit = window.get("fit_dates") or []
        lines.append(f"  snapshots: fit {len(fit)} ({fit[0]} .. {fit[-1]}), early stopping "
                     f"{len(window.get('early_stopping_dates') or [])}, out-of-time {window.get('oot_date')}"
                     if fit else f"  out-of-time snapshot {window.get('oot_date')}")
    if rows:
        lines.append("  rows: " + ", ".join(f"{name} {r['rows']:,} ({r['bads']:,} bad)" for name, r in rows.items()))
    lines.append(f"  OOT: {metrics(oot)}")
    champion = rec.metrics.get("champion_on_same_oot")
    if champion:
        lines.append(f"  champion on the same OOT: {metrics(champion)}")
    lines.append(f"  gate: {gate.get('summary') or ('passed' if gate.get('promote') else 'rejected')}")
    for event in registry.history():
        if event.version == rec.version:
            lines.append(f"  champion from {event.effective_from} ({event.action}: {event.reason})")
    lines.append(f"  code {man.get('code_version', '?')}, xgboost {man.get('xgboost_version', '?')}; "
                 f"every field: riskline model show {rec.version} --json")
    return "\n".join(lines)


def add_model_commands(sub: argparse._SubParsersAction) -> None:
    """Declare ``train``, ``score`` and ``model`` on the ``riskline`` parser's subcommands."""
    p = sub.add_parser(
        "train",
        help="nightly PD retrain: train a challenger, evaluate it, register it, promote it if it passes",
        description="Train on the matured weekly snapshots before D - labels.gap_days - labels.horizon_days, "
        "recalibrate on the newest of them, judge on that "
        "out-of-time snapshot, register the model in DATA_ROOT/registry and make it champion from D if it "
        "passes the promotion gate (models/pd_model.yaml). Exit 1 on a leakage suspicion or when no model "
        "could serve.",
    )
    p.add_argument("--as-of", type=parse_date, required=True, help="run date D, YYYY-MM-DD")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "score",
        help="PD, score, grade and reason codes for every active/frozen account on D",
        description="Score with the champion serving on D (or --model-version) and replace "
        "DATA_ROOT/scores/as_of_date=D atomically.",
    )
    p.add_argument("--as-of", type=parse_date, required=True, help="business date D, YYYY-MM-DD")
    p.add_argument("--model-version", help="pin a registered version instead of the champion on D")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("model", help="inspect the model registry; promote or roll back by hand")
    msub = p.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    msub.add_parser("list", help="registered versions (* = champion) and the champion history")
    q = msub.add_parser("show", help="one version's OOT metrics, gate decision and champion history")
    q.add_argument("version")
    q.add_argument("--json", action="store_true", help="every field: manifest, OOT metrics, stability, gate")
    q = msub.add_parser("promote", help="make a version champion (recorded with time and reason)")
    q.add_argument("version")
    q.add_argument("--reason", required=True, help="why (kept in the champion history)")
    q.add_argument("--effective-from", type=parse_date, help="business date it serves from (default: today)")
    q = msub.add_parser("rollback", help="reinstate the previous champion (recorded with time and reason)")
    q.add_argument("--reason", required=True, help="why (kept in the champion history)")
    q.add_argument("--effective-from", type=parse_date,
                   help="business date it serves from (default: the latest published business date, so a rerun of "
                   "that night uses the reinstated champion)")
    p.set_defaults(func=cmd_model)
