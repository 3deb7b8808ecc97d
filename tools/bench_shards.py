"""``riskline bench --size shards-1m``: what sharding costs, measured: one night of a cached book (the 1M book)
with each shard count of its entry under ``shards:`` in ``benchmarks/bench.yaml`` (1, 4 and 16).

Every shard of every per-account stage (ledger + features, score + reason codes, decide) runs in a worker
process of its own, one shard at a time, as a mapped Airflow task per shard runs on an executor's worker; every
merge and every step that runs once a night (ingest with its validation, training, publish with its output
validation, the report) runs in a worker of its own too. The calls are those of
``pipelines.entry.airflow.run_shard`` and ``merge_shard_outputs``: with one shard they are the ordinary unsharded
stages and nothing is merged, so the 1-shard configuration's per-shard rows are the cost of one shard of the
book's size.

Recorded per configuration: each shard's wall time (inside the worker, and of the worker process) and peak RSS,
summarized as max and median over the shards; each once-a-night step's wall time, peak RSS and timed parts
(the collections capacity cut, the range merges, the output validation, ...); the load average before every
worker. Training runs once, in the first configuration (after its features): it reads the merged snapshots,
whatever the shard count. Results: ``benchmarks/results/<today>-<size>.json`` and ``.md``.

A tool, not a pipeline stage: it reads the clock and starts processes freely.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.config.settings import RisklineConfig, load_config
from pipelines.stages import features as features_stage
from pipelines.stages import night as nightly
from pipelines.stages import shards as shard_stages
from tools.bench_base import (
    REPO, RESULTS, STAGE_PARTS, book_dates, book_days, book_root, ensure_book, peak_rss_mib, run_worker, time_parts,
    write_bench_config,
)

PER_SHARD = ("features", "score", "decide")  # the night's order; train runs after features, publish after decide
CAPACITY_CUT = "collections capacity cut"
_NIGHT, _SCORE, _SHARDS = "pipelines.stages.night", "pipelines.stages.score", "pipelines.stages.shards"

# The parts of each step timed apart: (module, function, part), wrapped where the step looks the function up
# (bench_base.time_parts). An unsharded stage (night, score) and its shard function (shards) bind the same
# helper under names of their own, so both are listed: a run takes one path. Nothing listed calls another
# listed function (its time would count twice). tests/unit/test_bench.py checks that every one exists.
SHARD_PARTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "ingest": (*STAGE_PARTS["ingest"],
               *(("pipelines.stages.lake_checks", name, "checks against earlier partitions") for name in (
                   "refuse_unit_drift", "refuse_curated_rows_removed", "last_known_accounts",
                   "refuse_open_accounts_lost", "refuse_stale_snapshot", "refuse_loans_over_their_lines",
                   "refuse_loans_without_a_draw", "refuse_amounts_in_another_unit", "refuse_payments_in_another_unit",
                   "refuse_payments_resent_under_new_ids"))),
    "features": (*STAGE_PARTS["features"],
                 ("pipelines.stages.features", "scan_pending_payments", "pending payments")),
    "merge features": (("pipelines.stages.ledger_state", "merge_state", "ledger state"),),
    "train": STAGE_PARTS["train"],
    "score": (*STAGE_PARTS["score"],
              *((module, "reason_reference", "reason reference (whole book)") for module in (_SCORE, _SHARDS)),
              *((module, "acted_on_tonight", "decide first (who is acted on)") for module in (_SCORE, _SHARDS))),
    "merge score": ((_SHARDS, "_sink_merged", "range merge"),),
    "decide": (*((module, "read_decide_inputs", "read inputs") for module in (_NIGHT, _SHARDS)),
               (_NIGHT, "check_night_chain", "chain check"),
               (_NIGHT, "assign_treatments", CAPACITY_CUT)),
    "merge decide": ((_NIGHT, "check_night_chain", "chain check"),
                     (_SHARDS, "assign_treatments", CAPACITY_CUT),
                     (_SHARDS, "_sink_merged", "range merge (limits)")),
    "publish": ((_NIGHT, "published_frames", "read outputs"),
                (_NIGHT, "validate_output", "output validation"),
                ("pipelines.store.chain", "input_fingerprints", "input fingerprints"),
                (_NIGHT, "publish_outputs", "write + manifest")),
    "report": (("pipelines.report.report", "collect_report_data", "read + compute"),),
}


# --- workers: one shard, one merge or one once-a-night step in a fresh process -------------------------------


def _step(kind: str, stage: str, root: Path, as_of: dt.date, cfg: RisklineConfig, shard: int) -> Callable[[], Any]:
    """The call an executor makes for a step (pipelines.entry.airflow's run_stage, run_shard, merge_shard_outputs)."""
    n = cfg.run.shards
    if kind == "once":
        return {
            "ingest": lambda: nightly.stage_ingest(root, as_of, cfg),
            "train": lambda: nightly.stage_train(root, as_of, cfg),
            "publish": lambda: nightly.stage_publish(root, as_of, cfg, run_info={"bench": True}),
            "report": lambda: nightly.stage_report(root, as_of, cfg),
        }[stage]
    if kind == "shard" and n == 1:  # run_shard: the one shard is the ordinary stage
        return {
            "features": lambda: nightly.stage_features(root, as_of, cfg),
            "score": lambda: nightly.stage_score(root, as_of, cfg),
            "decide": lambda: nightly.stage_decide(root, as_of, cfg),
        }[stage]
    if kind == "shard":
        fn = {"features": features_stage.build_feature_snapshot, "score": shard_stages.score_shard,
              "decide": shard_stages.decide_shard}[stage]
        return lambda: fn(root, as_of, cfg, shard=shard, n_shards=n)
    if kind == "merge":

        def merge_decisions() -> Path:  # merge_shard_outputs checks the chain first, as stage_decide does
            nightly.check_night_chain(root, as_of)
            return shard_stages.merge_decisions(root, as_of, cfg, n)

        return {
            "features": lambda: features_stage.merge_shards(root, as_of, n),
            "score": lambda: shard_stages.merge_scores(root, as_of, n),
            "decide": merge_decisions,
        }[stage]
    raise ValueError(f"unknown step kind {kind!r}")


def parts_key(kind: str, stage: str) -> str:
    """The SHARD_PARTS entry of a step: a merge has its own, a shard shares its stage's."""
    return f"merge {stage}" if kind == "merge" else stage


def _worker_step(kind: str, stage: str, root: Path, as_of: dt.date, config: Path, shard: int) -> dict[str, Any]:
    cfg = load_config(config)
    parts: dict[str, float] = {}
    time_parts(SHARD_PARTS.get(parts_key(kind, stage), ()), parts)
    start, cpu_start = time.perf_counter(), time.process_time()
    summary = _step(kind, stage, root, as_of, cfg, shard)()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    parts["rest"] = seconds - sum(parts.values())
    # CPU seconds (every thread) say what a step costs when other work shares the cores, as it does here
    return {"kind": kind, "stage": stage, "shard": shard, "n_shards": cfg.run.shards, "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu, 3),
            "parts": {k: round(v, 3) for k, v in parts.items()},
            "summary": str(summary.relative_to(root)) if isinstance(summary, Path) else summary}


def _worker_main(argv: list[str]) -> None:
    command, kind, stage, root, as_of, config, shard = argv
    if command != "step":
        raise SystemExit(f"unknown bench_shards worker command {command!r}")
    # the lake's paths come back resolved (store.paths.ensure_inside): a book reached through a link must too
    out = _worker_step(kind, stage, Path(root).resolve(), dt.date.fromisoformat(as_of), Path(config).resolve(),
                       int(shard))
    out["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(out, default=str))


# --- the benchmark -------------------------------------------------------------------------------------------


def write_shard_config(base_config: Path, spec: dict[str, Any], size: str, n_shards: int) -> Path:
    """The book's bench config with ``run.shards: n_shards``, a shard at a time in a process (``shard_workers: 1``)."""
    book = spec["shards"][size]["book"]
    own = dict(spec["sizes"][book])
    overrides = dict(own.get("overrides") or {})
    overrides["run"] = {**(overrides.get("run") or {}), "shards": n_shards, "shard_workers": 1}
    name = f"{size}-{n_shards}"
    return write_bench_config(base_config, {**spec, "sizes": {**spec["sizes"], name: {**own, "overrides": overrides}}},
                              name)


def night_plan(n_shards: int, train: bool) -> list[tuple[str, str, int]]:
    """The night's steps as an executor runs them one at a time: (kind, stage, shard)."""
    plan = [("once", "ingest", 0)]
    for stage in PER_SHARD:
        plan += [("shard", stage, k) for k in range(n_shards)]
        if n_shards > 1:
            plan.append(("merge", stage, 0))
        if stage == "features" and train:
            plan.append(("once", "train", 0))
    return [*plan, ("once", "publish", 0), ("once", "report", 0)]


def bench_shard_counts(
    spec: dict[str, Any], size: str, base_config: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """One night of the entry's book per shard count; returns the result record (without its summary)."""
    entry = spec["shards"][size]
    book, counts = entry["book"], [int(n) for n in entry["counts"]]
    root = book_root(spec, book)
    _, night = book_dates(spec, book)
    first = write_shard_config(base_config, spec, size, counts[0])
    made = ensure_book(spec, book, first, log)
    log(f"[{size}] setup: training snapshots and labels of earlier nights, the ledger state of the night before")
    setup = run_worker("setup", str(root), night.isoformat(), str(first))  # tools/bench.py's worker
    runs = []
    for i, n in enumerate(counts):
        config = write_shard_config(base_config, spec, size, n)
        steps = []
        for kind, stage, shard in night_plan(n, train=i == 0):
            out = run_worker("step", kind, stage, str(root), night.isoformat(), str(config), str(shard),
                             module="tools.bench_shards")
            label = f"{stage} shard {shard}/{n}" if kind == "shard" else parts_key(kind, stage)
            log(f"[{size}] {n} shard(s): {label}: {out['seconds']:.1f} s, peak RSS {out['peak_rss_mib']:.0f} MiB, "
                f"load {out['load_avg_before'][0]}")
            steps.append(out)
        runs.append({"shards": n, "config": str(config.relative_to(REPO)), "steps": steps})
    return {"size": size, "book_size": book, "accounts": spec["sizes"][book]["accounts"], "as_of": night.isoformat(),
            "book": made, "setup": setup, "runs": runs}


def _stats(values: list[float]) -> tuple[float, float]:
    return round(max(values), 2), round(statistics.median(values), 2)


def summarize_run(run: dict[str, Any]) -> dict[str, Any]:
    """One configuration's table rows: per-shard stages (max, median), once-a-night steps, the night's totals.

    ``night_one_worker_seconds``: every step one after another (this bench's own wall time, worker start-up
    excluded); ``night_parallel_seconds``: the once-a-night steps plus the slowest shard of each stage (one
    worker per shard); ``shard_work_seconds``: the sum over every shard of every stage, what a cluster pays for.
    Training is left out of the totals (a night without retrain), reported apart.
    """
    steps = run["steps"]
    per_shard = {}
    for stage in PER_SHARD:
        shard_steps = [s for s in steps if s["kind"] == "shard" and s["stage"] == stage]
        secs, rss = [s["seconds"] for s in shard_steps], [s["peak_rss_mib"] for s in shard_steps]
        cpu = [s["cpu_seconds"] for s in shard_steps]
        (s_max, s_med), (r_max, r_med), (c_max, c_med) = _stats(secs), _stats(rss), _stats(cpu)
        per_shard[stage] = {
            "shards": len(shard_steps), "seconds_max": s_max, "seconds_median": s_med,
            "seconds_sum": round(sum(secs), 2), "cpu_seconds_max": c_max, "cpu_seconds_median": c_med,
            "cpu_seconds_sum": round(sum(cpu), 2),
            "process_seconds_sum": round(sum(s["process_seconds"] for s in shard_steps), 2),
            "peak_rss_mib_max": r_max, "peak_rss_mib_median": r_med,
            "parts_max": {p: round(max(s["parts"].get(p, 0.0) for s in shard_steps), 2)
                          for p in dict.fromkeys(p for s in shard_steps for p in s["parts"])},
        }
    once = {parts_key(s["kind"], s["stage"]): {"seconds": s["seconds"], "cpu_seconds": s["cpu_seconds"],
                                               "peak_rss_mib": s["peak_rss_mib"], "parts": s["parts"]}
            for s in steps if s["kind"] != "shard"}
    # the one step that ranks the whole book: in the decisions merge, or inside the one shard's decide
    cut_in = once["merge decide"]["parts"] if "merge decide" in once else per_shard["decide"]["parts_max"]
    nightly = {k: v for k, v in once.items() if k != "train"}
    return {
        "shards": run["shards"],
        "per_shard": per_shard,
        "once": once,
        "capacity_cut_seconds": round(cut_in.get(CAPACITY_CUT, 0.0), 3),
        "night_one_worker_seconds": round(sum(v["seconds"] for v in nightly.values())
                                          + sum(v["seconds_sum"] for v in per_shard.values()), 1),
        "night_parallel_seconds": round(sum(v["seconds"] for v in nightly.values())
                                        + sum(v["seconds_max"] for v in per_shard.values()), 1),
        "shard_work_seconds": round(sum(v["seconds_sum"] for v in per_shard.values()), 1),
        "night_cpu_seconds": round(sum(v["cpu_seconds"] for v in nightly.values())
                                   + sum(v["cpu_seconds_sum"] for v in per_shard.values()), 1),
        "max_peak_rss_mib": max(s["peak_rss_mib"] for s in steps if s["stage"] != "train"),
        "load_avg_1min": {"min": min(s["load_avg_before"][0] for s in steps),
                          "max": max(s["load_avg_before"][0] for s in steps)},
    }


def to_markdown(record: dict[str, Any]) -> str:
    """The result page: per-shard stages and once-a-night steps side by side for every shard count."""
    summaries = record["summary"]["runs"]
    counts = [s["shards"] for s in summaries]
    head = " | ".join(f"{n} shard{'s' if n > 1 else ''}" for n in counts)
    rule = "|---|" + "---:|" * len(counts)
    lines = [
        f"# riskline bench {record['date']}: one night of {record['accounts']:,} accounts x {record['days']} days "
        f"(night of {record['as_of']}) with {', '.join(map(str, counts))} shards",
        "",
        f"Machine: {record['machine']['cpus']} CPUs, {record['machine']['memory_gib']} GiB RAM, shared; "
        "every shard, merge and once-a-night step in a fresh worker process, one at a time "
        "(`riskline bench --size " + record["size"] + "`, tools/bench_shards.py). 1-minute load average before "
        "the workers: " + "; ".join(f"{s['shards']} shard(s) {s['load_avg_1min']['min']}-{s['load_avg_1min']['max']}"
                                    for s in summaries) + ".",
        "",
        "**Per shard** (wall and CPU seconds inside the worker, peak RSS; max / median over the shards). With "
        "one shard the stage is the ordinary unsharded stage: the cost of one shard of this size. CPU seconds "
        "(every thread) move less with the load than wall time.",
        "",
        f"| stage | {head} |",
        rule,
    ]
    for stage in PER_SHARD:
        cells = [s["per_shard"][stage] for s in summaries]
        for what, key, unit in (("seconds", "seconds", ".1f"), ("CPU seconds", "cpu_seconds", ".1f"),
                                ("peak RSS (MiB)", "peak_rss_mib", ",.0f")):
            lines.append(f"| {stage}: {what} | " + " | ".join(
                f"{c[key + '_max']:{unit}}" if c["shards"] == 1
                else f"{c[key + '_max']:{unit}} / {c[key + '_median']:{unit}}" for c in cells) + " |")
        lines.append(f"| {stage}: sum over shards (s, CPU s) | " + " | ".join(
            f"{c['seconds_sum']:.1f}, {c['cpu_seconds_sum']:.1f}" for c in cells) + " |")
    lines += ["", "**Once a night** (seconds, CPU seconds, peak RSS; its timed parts in seconds below; - : not run).",
              "", f"| step | {head} |", rule]
    names = list(dict.fromkeys(parts_key(kind, stage) for kind, stage, _ in night_plan(max(counts), train=True)
                               if kind != "shard"))
    for name in names:
        cells = [s["once"].get(name) for s in summaries]
        lines.append(f"| **{name}** | " + " | ".join(
            "-" if c is None else f"{c['seconds']:.1f} s, {c['cpu_seconds']:.1f} CPU s, {c['peak_rss_mib']:,.0f} MiB"
            for c in cells) + " |")
        for part in dict.fromkeys(p for c in cells if c for p in c["parts"]):
            lines.append(f"| &nbsp; {part} | " + " | ".join(
                "-" if c is None or part not in c["parts"] else f"{c['parts'][part]:.1f}" for c in cells) + " |")
    lines += ["", "**The night** (without training; seconds).", "", f"| | {head} |", rule]
    for key, label in (("night_one_worker_seconds", "one worker, every step in turn"),
                       ("night_parallel_seconds", "a worker per shard (once-a-night steps + slowest shard per stage)"),
                       ("shard_work_seconds", "work in the shards (sum)"),
                       ("night_cpu_seconds", "CPU seconds, every step"),
                       ("capacity_cut_seconds", CAPACITY_CUT)):
        digits = 2 if key == "capacity_cut_seconds" else 1
        lines.append(f"| {label} | " + " | ".join(f"{s[key]:.{digits}f}" for s in summaries) + " |")
    lines.append("| largest peak RSS (MiB) | " + " | ".join(f"{s['max_peak_rss_mib']:,.0f}" for s in summaries) + " |")
    return "\n".join(lines) + "\n"


def bench_and_write(
    spec: dict[str, Any], size: str, base_config: Path, machine: dict[str, Any], today: str,
    log: Callable[[str], None],
) -> list[Path]:
    """Run :func:`bench_shard_counts` and write ``benchmarks/results/<today>-<size>.json`` and ``.md``."""
    record: dict[str, Any] = {"date": today, "days": book_days(spec, spec["shards"][size]["book"]),
                              "machine": machine, **bench_shard_counts(spec, size, base_config, log)}
    record["summary"] = {"runs": [summarize_run(run) for run in record["runs"]]}
    stem = RESULTS / f"{today}-{size}"
    stem.with_suffix(".json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    stem.with_suffix(".md").write_text(to_markdown(record))
    log(f"[{size}] results: {stem}.md")
    return [stem.with_suffix(".json"), stem.with_suffix(".md")]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        _worker_main(sys.argv[2:])
    else:
        raise SystemExit("use `riskline bench --size shards-1m` (this module's entry point for workers is internal)")
