"""Glue between schedulers (Airflow, the CLI) and the pipeline: small functions taking and returning
plain values (dates as ISO strings, paths, small dicts), because Airflow 3 tasks pass only
JSON-serialisable XComs, never frames.

Every stage call goes through :func:`run_stage`, which turns any failure into a message an on-call
engineer can act on in the Airflow task log: the business date, the stage, what failed, and the next step
that can work from the UI (fix upstream and clear, trigger a new run with other params, or clear to rerun).
These messages are read in a task log, so they name DAG params and UI actions, never CLI flags.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any, Literal

from pipelines.config.location import Location
from pipelines.config.settings import RisklineConfig, load_config
from pipelines.errors import IngestError
from pipelines.model.metrics import LeakageSuspectedError
from pipelines.stages import features as features_stage, night as nightly
from pipelines.stages.features import IncompleteHistoryError
from pipelines.stages.ingest import describe_purged, ingest_night
from pipelines.stages.night import DRY_RUN_MARKER, check_night_chain, prepare_dry_run_root, refresh_dry_run_landing
from pipelines.store import chain, drops, lake, zones
from pipelines.store.chain import ChainError
from pipelines.store.publish import PublishError, PublishIncompleteError, output_dir, read_latest
from pipelines.vocab import DATASETS

# What to do when a stage fails, by the kind of failure (data problems are not retried).
_DATA_PROBLEM = (
    "DATA PROBLEM upstream: do not just rerun. Fix or redeliver the landing partition named above "
    "(or agree a contract change), then clear this task and its downstream tasks in the Airflow UI."
)
_CODE_OR_INFRA = (
    "Not a data problem: check the traceback above (disk, memory, a bug). Once fixed, clear this task to "
    "rerun it; every stage replaces its partitions whole, so a rerun is safe. Published outputs of other "
    "dates are untouched."
)
# A model or registry failure repeats on every clear: the run's params (model_version, retrain) are fixed
# when it is triggered, so the way out is a new run with other params.
_MODEL_PROBLEM = (
    "MODEL/REGISTRY PROBLEM, not upstream data: clearing this task fails the same way (a run's params cannot "
    "change). Trigger a new run of riskline_nightly (Trigger DAG, with params) with business_date={day} and "
    "{fix}. Registered versions: {versions}."
)
_EARLIER_DATES_MISSING = (
    "EARLIER DATES MISSING: the ledger and features need every business date before this one. Run the "
    "missing dates first (a backfill over them), then clear this task and its downstream tasks."
)
# Third-party libraries whose INFO lines bury ours in task logs and on the console (Great Expectations
# logs hundreds per validation). Their warnings and errors still show.
_NOISY_LOGGERS = ("great_expectations", "py.warnings", "numexpr", "matplotlib", "fsspec", "s3fs", "botocore",
                  "urllib3", "distributed", "dask")


class StageFailed(RuntimeError):
    """A stage failed; the message says what to do next."""


def quiet_third_party_logs(level: int = logging.WARNING) -> None:
    """Raise the noisy third-party loggers to ``level``; riskline's own lines and every warning stay."""
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(level)


def business_date_of(interval_start: dt.datetime, cfg: RisklineConfig) -> dt.date:
    """The business date a scheduled run covers: the local (business-timezone) date its interval starts on.

    The nightly run fires at 02:00 Asia/Shanghai with a one-day interval [D 02:00, D+1 02:00), so the
    interval's start date in the business timezone is D, the day whose data it processes.
    """
    if interval_start.tzinfo is None:
        raise ValueError("interval_start must be timezone-aware")
    return interval_start.astimezone(cfg.business.tz).date()


def _root(cfg: RisklineConfig, data_root: str | None) -> Location:
    return cfg.data_root(data_root)


# --- which business date a run processes, and whether its landing drops can still arrive -------------


def choose_business_date(
    requested: str | None,
    interval_start: dt.datetime | None,
    run_type: object,
    now: dt.datetime,
    cfg: RisklineConfig,
    fully_landed: list[dt.date],
    latest_published: dt.date | None,
) -> tuple[dt.date, str]:
    """The business date a run processes, and why (the ``business_date`` task logs it and returns the date).

    ``requested`` (the ``business_date`` param) wins. Otherwise D is the run's data interval start in the
    business timezone (a manual run triggered without a logical date: yesterday). A *manual* run whose D has
    no landing near it (the newest date with all drops landed is more than ``schedule.stale_landing_days``
    older: a demo lake, a stopped feed) reruns the newest published night instead, else the newest fully
    landed date, so Trigger with the defaults does something useful; scheduled runs never move.
    """
    if requested:
        try:
            return dt.date.fromisoformat(requested), "param business_date"
        except ValueError:
            raise ValueError(f"param business_date={requested!r} is not a date; use YYYY-MM-DD") from None
    tz = cfg.business.tz
    if interval_start is None:
        day = (now.astimezone(tz) - dt.timedelta(days=1)).date()
        why = "the run has no data interval: yesterday in " + cfg.business.timezone
    else:
        day = business_date_of(interval_start, cfg)
        why = f"its data interval starts on {day} in {cfg.business.timezone}"
    run_type = str(getattr(run_type, "value", run_type))
    newest = fully_landed[-1] if fully_landed else None
    stale = newest is None or (day - newest).days > cfg.schedule.stale_landing_days
    if run_type != "manual" or not stale or (latest_published is None and newest is None):
        return day, why
    target, what = (latest_published, "newest published night") if latest_published else (newest, "newest landed date")
    return target, (
        f"manual run without business_date: its own date {day} has no landing drops and the newest fully landed "
        f"date is {newest}, so it reruns the {what}, {target} (set the business_date param to run another date)"
    )


def business_date_for_run(
    params: dict[str, Any], interval_start: dt.datetime | None, run_type: object, data_root: str | None = None
) -> tuple[str, str]:
    """:func:`choose_business_date` against the lake: ``(ISO date, why)``."""

    cfg = load_config()
    root = _root(cfg, data_root)
    landed = [set(zones.landing_dates(root, name)) for name in DATASETS]
    fully_landed = sorted(set.intersection(*landed)) if landed else []
    latest = read_latest(root)
    day, why = choose_business_date(params.get("business_date"), interval_start, run_type,
                                    dt.datetime.now(dt.UTC), cfg, fully_landed, latest)
    return day.isoformat(), why


@dataclasses.dataclass(frozen=True)
class LandingWait:
    """What a landing sensor does for one dataset and date: ``ready``, ``wait``, ``missed`` (fail now:
    its deadline passed) or ``stale`` (skip: the lake is not fed for that date), and the line it logs."""

    state: Literal["ready", "wait", "missed", "stale"]
    message: str


def assess_landing(
    dataset: str, day: dt.date, landed: list[dt.date], now: dt.datetime, cfg: RisklineConfig,
    purged: str | None = None,
) -> LandingWait:
    """Whether ``dataset``'s drop for ``day`` is in, can still arrive, or cannot (``landed``: its complete dates;
    ``purged``: the line saying that the drop was purged once ingested and its curated partition is read,
    ``stages.ingest.describe_purged``, when it was).

    A drop may arrive until D+1 00:00 + ``schedule.landing_deadline_hours`` in business time, a deadline
    fixed by the business date, not by when the sensor started, so a backfill of an old date upstream never
    delivered fails at once. A dataset whose newest drop is more than ``schedule.stale_landing_days`` before
    D is not being fed for D: waiting would only hold the DAG's one active run slot.
    """
    where = f"landing/{dataset}/dt={day}"
    if day in landed:
        return LandingWait("ready", f"{where}: drop complete (_SUCCESS present)")
    if purged:  # a rerun or backfill of a night ingested before: no drop will come again, none is needed
        return LandingWait("ready", f"{where}: {purged}")
    newest = landed[-1] if landed else None
    if newest is None or (day - newest).days > cfg.schedule.stale_landing_days:
        seen = f"the newest {dataset} drop is dt={newest}" if newest else f"the lake holds no {dataset} drop at all"
        return LandingWait("stale", (
            f"{where}: no drop, and {seen}: this lake is not fed for {day} (a demo lake or a feed stopped "
            f"for more than {cfg.schedule.stale_landing_days} days). Skipping this run, which processes nothing. "
            "To process a landed date, trigger riskline_nightly with the business_date param."
        ))
    tz = cfg.business.tz
    deadline = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tz) + dt.timedelta(
        hours=cfg.schedule.landing_deadline_hours)
    stamp = f"{deadline:%Y-%m-%d %H:%M} {cfg.business.timezone}"
    if now >= deadline:
        return LandingWait("missed", (
            f"{where}: drop not delivered by its deadline {stamp} (newest {dataset} drop: dt={newest}). "
            f"NEXT STEP: ask upstream to deliver {where}/ (data files, then _SUCCESS), then clear this task "
            "and its downstream tasks."
        ))
    return LandingWait("wait", (
        f"waiting for {where}/_SUCCESS (newest {dataset} drop: dt={newest}); checking again every few minutes "
        f"until the deadline {stamp}, when this task fails"
    ))


def poke_landing(dataset: str, business_date: str, data_root: str | None = None) -> bool:
    """The landing sensor's poke: True when the drop is in; logs why it waits; skips or fails when it cannot come.

    Raises Airflow's skip (stale lake) or fail (deadline passed; no retry) exception, with the reason.
    """
    # why: Airflow loads only inside a task; the CLI and tests share this module without it
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException


    cfg = load_config()
    day = dt.date.fromisoformat(business_date)
    root = _root(cfg, data_root)
    landed = zones.landing_dates(root, dataset)
    kept = drops.purged_drops(root, day, [dataset]) if dataset in DATASETS else {}
    verdict = assess_landing(dataset, day, landed, dt.datetime.now(dt.UTC), cfg,
                             purged=describe_purged(day, kept) if kept else None)
    print(verdict.message, flush=True)
    if verdict.state == "stale":
        raise AirflowSkipException(verdict.message)
    if verdict.state == "missed":
        raise AirflowFailException(verdict.message)
    return verdict.state == "ready"


def require_merged_features(merged: dict[str, Any] | None, business_date: str) -> None:
    """Skip ``score`` when ``merge_features`` published nothing (the landing sensors skipped the run).

    ``score`` runs on ``none_failed`` so that a retrain skipped by ``should_train`` does not skip it; that
    rule alone would also run it after a skipped landing, on a date with no features, and fail the run.
    """
    if merged is None:
        from airflow.sdk.exceptions import AirflowSkipException  # why: only inside an Airflow task

        raise AirflowSkipException(
            f"no features were built for {business_date}: the landing sensors skipped this run (their logs say "
            "why), so there is nothing to score")


def _airflow_context() -> Any:
    """The running Airflow task's context; None outside a task (the CLI, tests)."""
    try:  # why: Airflow loads only inside a task (the CLI and tests call this without it)
        from airflow.sdk import get_current_context

        return get_current_context()
    except Exception:  # not inside an Airflow task
        return None


def _airflow_run() -> tuple[dict[str, Any], str | None]:
    """The running Airflow task's params and run id; ``({}, None)`` outside a task (the CLI, tests)."""
    context = _airflow_context()
    if context is None:
        return {}, None
    return dict(context.get("params") or {}), context.get("run_id")


def _run_info() -> dict[str, Any]:
    """What the manifest records of how this run was asked for, as ``riskline run`` records it: whether it
    retrained (the DAG's own decision) and the pinned model version. Empty outside a task."""
    context = _airflow_context()
    if context is None:
        return {}
    params = dict(context.get("params") or {})
    run_type = getattr(context.get("dag_run"), "run_type", None)
    return {"retrain": retrain_decision(params, run_type)[0], "pinned_model_version": params.get("model_version")}


def _night_root(cfg: RisklineConfig, data_root: str | None, day: dt.date) -> Location:
    """Where this task of night ``day`` reads and writes: the data root, or, in a dry run (DAG param
    ``publish`` false), that run's private copy of the lake (made by its first task, shared by the rest)."""

    params, run_id = _airflow_run()
    if params.get("publish", True) is False and run_id:
        return prepare_dry_run_root(_root(cfg, data_root), day, run_id)
    return _root(cfg, data_root)


def landing_ready(dataset: str, business_date: str, data_root: str | None = None) -> bool:
    """True once upstream has written the landing ``_SUCCESS`` for the dataset and date."""

    cfg = load_config()
    part = zones.landing(_root(cfg, data_root), dataset, dt.date.fromisoformat(business_date))
    return lake.is_complete(part)


def retrain_decision(params: dict[str, Any], run_type: object) -> tuple[bool, str]:
    """Whether tonight's run retrains, and why (shown in the task log).

    ``run_type`` is Airflow's DagRunType or its value ("backfill", "scheduled", "manual", ...).
    """
    run_type = str(getattr(run_type, "value", run_type))
    if params.get("model_version"):
        return False, f"model_version pinned to {params['model_version']!r}"
    if run_type == "backfill" and not params.get("retrain_on_backfill", False):
        return False, "backfill: past dates score with the model that was champion on that date"
    if not params.get("retrain", True):
        return False, "param retrain=false"
    return True, "nightly retrain"


def run_stage(stage: str, business_date: str, data_root: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run one stage of :mod:`pipelines.stages.night` for a business date; return its small result dict."""

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    quiet_third_party_logs()
    cfg = load_config()
    day = dt.date.fromisoformat(business_date)
    root = _night_root(cfg, data_root, day)
    if stage == "decide":  # the DAG param force_chain overrides the chain check (recorded in the manifest)
        kwargs.setdefault("force_chain", bool(_airflow_run()[0].get("force_chain", False)))
    if stage == "publish":
        kwargs.setdefault("run_info", _run_info())
    functions = {
        "features": nightly.stage_features,
        "train": nightly.stage_train,
        "score": nightly.stage_score,
        "decide": nightly.stage_decide,
        "publish": nightly.stage_publish,
        "report": nightly.stage_report,
    }
    return _guarded(stage, business_date, lambda: functions[stage](root, day, cfg, **kwargs))


def ingest_one(dataset: str, business_date: str, data_root: str | None = None) -> dict[str, Any]:
    """Ingest and validate one dataset for one business date; return its result as a small dict."""

    quiet_third_party_logs()
    cfg = load_config()
    day = dt.date.fromisoformat(business_date)


    root = _night_root(cfg, data_root, day)
    # an unknown dataset name is refused by ingest_night below, in one line, before any path is built from it
    local = dataset in DATASETS
    if local and lake.is_file(root / DRY_RUN_MARKER):  # a dry run's copy: take the drop its sensor just saw
        refresh_dry_run_landing(_root(cfg, data_root), root, dataset, day)
    before = {dataset: chain.curated_digest(root, dataset, day)} if local else {}
    results, kept = _guarded(f"ingest {dataset}", business_date, lambda: ingest_night(root, day, cfg, [dataset]))
    if kept:  # purged once ingested: the night reads the curated partition; nothing changed, nothing is stale
        note = describe_purged(day, kept)
        print(note, flush=True)
        return {"dataset": dataset, "date": business_date, "landing_purged": note,
                "ingested_at": kept[dataset].isoformat() if kept[dataset] else None}
    (result,) = results
    out = dataclasses.asdict(result)
    out["date"] = result.date.isoformat()
    stale = chain.after_ingest(root, day, before) if before else []
    if stale:  # late data: published nights read what this ingest replaced
        print(f"WARNING: {dataset} dt={day} changed after published nights {', '.join(map(str, stale))} read it; "
              f"they are now stale: {chain.rebuild_hint(root, stale)}")
        out["stale_nights"] = [d.isoformat() for d in stale]
    return out


def asset_extra(publish_result: dict[str, Any], output: str, data_root: str | None = None) -> dict[str, Any]:
    """What an output's Airflow asset event carries: the partition path, row count and manifest."""

    cfg = load_config()
    manifest_rel = Path(publish_result["manifest"])
    day = dt.date.fromisoformat(manifest_rel.parent.name.split("=", 1)[1])
    root = _night_root(cfg, data_root, day)
    manifest = root / manifest_rel
    as_of = dt.date.fromisoformat(manifest.parent.name.split("=", 1)[1])
    return {
        "as_of_date": as_of.isoformat(),
        "path": str(output_dir(root, output, as_of)),
        "rows": int(publish_result["rows"][output]),
        "manifest": str(manifest),
        "published": bool(publish_result["published"]),
    }


# --- per-account stages fanned out by shard (Airflow dynamic task mapping) ------------------------------
# The DAG maps one task per shard (``.expand(shard=shard_list())``) for features, score and decide, each
# followed by one merge task; see pipelines/stages/shards.py. With ``run.shards: 1`` the single mapped task
# runs the ordinary stage and the merge has nothing to do.

SHARDED_STAGES = ("features", "score", "decide")


def shard_list() -> list[int]:
    """The shard numbers tonight's per-account stages run on (``run.shards`` in riskline.yaml)."""
    return list(range(load_config().run.shards))


def _model_next_step(exc: Exception, business_date: str) -> str:
    """The task-log next step of a model or registry failure: which new run to trigger, and the versions."""
    # why: keeps xgboost out of the sensors' pokes and the light tasks
    from pipelines.model.registry import ModelRegistry, NoChampionError, RegistryError

    if isinstance(exc, NoChampionError):
        fix = "model_version=<a registered version, once reviewed>"
    elif isinstance(exc, RegistryError):
        fix = "model_version empty (the champion serving on that date) or one of the registered versions"
    else:  # training refused (leakage guard, too little history): tonight can still score with the champion
        fix = "retrain=false (the champion serving on that date scores it)"
    try:
        root = _root(load_config(), None)
        known = ModelRegistry(root).versions()
        versions = ", ".join(known[-5:]) + " (newest last)" if known else "none yet"
        # The new run of a date behind later nights would stop again at decide (the chain): say so now.
        later = [n for n in zones.night_dates(root) if n > dt.date.fromisoformat(business_date)]
        if later:
            fix += (f" and force_chain=true (nights {later[0]}..{later[-1]} already ran: they are then marked "
                    "stale; rebuild them after with a backfill)")
    except Exception:  # the registry itself may be what broke; the advice must still come out
        versions = "unreadable (see the error above)"
    return _MODEL_PROBLEM.format(day=business_date, fix=fix, versions=versions)


def _guarded(label: str, business_date: str, fn: Any) -> Any:
    """Run ``fn``; turn any failure into a :class:`StageFailed` that says what to do next, from the UI."""
    # why: keeps xgboost out of the sensors' pokes and the light tasks
    from pipelines.model.registry import RegistryError
    # why: keeps xgboost out of the sensors' pokes and the light tasks
    from pipelines.model.fit import InsufficientHistoryError

    try:
        return fn()
    except ChainError as exc:
        raise StageFailed(
            f"[{label}] business date {business_date}: {exc}\nNEXT STEP: nights must run in order. Run the "
            "missing or stale nights first (a backfill of those dates with --max-active-runs 1), or trigger this "
            "date with param force_chain=true if running it out of order is intended (later nights are then "
            "marked stale)."
        ) from exc
    except PublishIncompleteError as exc:
        raise StageFailed(f"[{label}] business date {business_date}: {exc}\nNEXT STEP: fix the cause, then clear "
                          "this task: it completes the publish from its journal.") from exc
    except IngestError as exc:
        raise StageFailed(f"[{label}] business date {business_date}: {exc}\nNEXT STEP: {_DATA_PROBLEM}") from exc
    except (RegistryError, LeakageSuspectedError, InsufficientHistoryError) as exc:
        raise StageFailed(
            f"[{label}] business date {business_date}: {type(exc).__name__}: {exc}\n"
            f"NEXT STEP: {_model_next_step(exc, business_date)}"
        ) from exc
    except IncompleteHistoryError as exc:
        command = exc.ingest_command()  # the dates themselves, all of them (the message names a few)
        dates = f" Missing: {exc.missing[0]}..{exc.missing[-1]} (from a shell: `{command}`)." if command else ""
        raise StageFailed(
            f"[{label}] business date {business_date}: {exc}\nNEXT STEP: {_EARLIER_DATES_MISSING}{dates}"
        ) from exc
    except PublishError as exc:
        raise StageFailed(
            f"[{label}] business date {business_date}: {exc}\nNEXT STEP: our own outputs broke their contract "
            "(a bug in riskline, not upstream data). Nothing was published. Escalate to the riskline owners; "
            "do not clear until fixed."
        ) from exc
    except Exception as exc:
        raise StageFailed(
            f"[{label}] business date {business_date} failed: {type(exc).__name__}: {exc}\nNEXT STEP: {_CODE_OR_INFRA}"
        ) from exc


def run_shard(stage: str, business_date: str, shard: int, data_root: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """One shard of a per-account stage (``features``, ``score`` or ``decide``); returns a small dict."""
    # why: keeps xgboost out of the sensors' pokes and the light tasks
    from pipelines.stages import shards as shard_stages

    if stage not in SHARDED_STAGES:
        raise ValueError(f"stage {stage!r} does not run per shard; per-shard stages are {SHARDED_STAGES}")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    quiet_third_party_logs()
    cfg = load_config()
    n_shards = cfg.run.shards
    if n_shards == 1:
        return {**run_stage(stage, business_date, data_root, **kwargs), "shard": 0, "n_shards": 1}
    day = dt.date.fromisoformat(business_date)
    root = _night_root(cfg, data_root, day)
    functions = {
        "features": features_stage.build_feature_snapshot,
        "score": shard_stages.score_shard,
        "decide": shard_stages.decide_shard,
    }
    path = _guarded(f"{stage} shard {shard}/{n_shards}", business_date,
                    lambda: functions[stage](root, day, cfg, shard=shard, n_shards=n_shards, **kwargs))
    return {"stage": stage, "shard": shard, "n_shards": n_shards, "path": str(path.relative_to(root))}


def merge_shard_outputs(stage: str, business_date: str, data_root: str | None = None) -> dict[str, Any]:
    """Publish the date's partition of a per-account stage once every shard is done (no-op with one shard)."""
    # why: keeps xgboost out of the sensors' pokes and the light tasks
    from pipelines.stages import shards as shard_stages

    cfg = load_config()
    n_shards = cfg.run.shards
    if n_shards == 1:
        return {"stage": stage, "merged": False, "n_shards": 1}
    day = dt.date.fromisoformat(business_date)
    root = _night_root(cfg, data_root, day)

    def merge_decisions() -> Path:

        check_night_chain(root, day, bool(_airflow_run()[0].get("force_chain", False)))
        return shard_stages.merge_decisions(root, day, cfg, n_shards)

    merges = {
        "features": lambda: features_stage.merge_shards(root, day, n_shards),
        "score": lambda: shard_stages.merge_scores(root, day, n_shards),
        "decide": merge_decisions,
    }
    path = _guarded(f"merge {stage}", business_date, merges[stage])
    return {"stage": stage, "merged": True, "n_shards": n_shards, "path": str(path.relative_to(root))}
