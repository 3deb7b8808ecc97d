"""``riskline bench`` / ``make bench``: wall time and peak memory of one nightly run, stage by stage.

For each book size in ``benchmarks/bench.yaml`` (100k and 1M accounts x 180 days):

1. **Book** (cached under ``benchmarks/cache/``, git-ignored): generate the landing feed and ingest every
   day but the last; a later bench reuses it.
2. **Setup** (not timed): the feature snapshots and labels earlier nights would have left behind for
   tonight's training window.
3. **The night of the last day**, each stage in a fresh process (its peak RSS is its own): ingest
   (split into validate = the Great Expectations checks, and ingest = the rest), ledger, features,
   train, score (split into PD/grades and reason codes), decide, publish. Config: riskline.yaml with
   bench.yaml's overrides (a shorter training window, a per-size training sample rate).
4. **Peers** (``benchmarks/peers/``): the behaviour-window features in riskline, DuckDB SQL and pandas,
   each in a fresh process, checked equal value for value, and the scan floors.

Results go to ``benchmarks/results/<today>-<size>.json`` and ``.md``. ``--scale`` adds the 10M run:
scoring and decisions shard by shard on a book synthesized from the 1M book's features (``scale-10m``).
A size under bench.yaml's ``shards:`` (``--size shards-1m``) runs one night of a book per shard count, each
shard in a worker of its own, and times every merge (``tools/bench_shards.py``). What the modes share (the
spec, the cached books, the workers) is in ``tools/bench_base.py``.
Targets are reported, never asserted. The load average is recorded with every stage: on a shared
machine it says how much to trust a number.

This module is a tool, not a pipeline stage: it reads the clock and starts processes freely.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.config.settings import load_config
from pipelines.domain.sharding import shard_expr
from pipelines.store import lake, zones
from pipelines.store.zones import FEATURES_FILE, LEDGER_FILES, feature_partition, ledger_partition, shard_dir
from tools import bench_shards
from tools.bench_base import (
    BENCH_DIR, CACHE, REPO, RESULTS, STAGE_PARTS, book_dates, book_days, book_root, ensure_book, load_average,
    load_spec, peak_rss_mib, run_riskline, run_worker, time_parts, worker_env, write_bench_config,
)

PEERS = BENCH_DIR / "peers" / "run_peers.py"

# (stage run in a worker, the parts it reports); the order is the night's order
NIGHT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ingest", ("ingest", "validate")),
    ("features", ("ledger", "features")),
    ("train", ("train",)),
    ("score", ("score", "reason codes")),
    ("decide", ("decide",)),
    ("publish", ("publish",)),
)
PEER_RUNS = ("scan_behaviour", "scan_inputs", "riskline", "duckdb", "pandas")


def _worker_stage(stage: str, root: Path, as_of: dt.date, config: Path) -> dict[str, Any]:
    """One nightly stage exactly as ``riskline run`` calls it, with its parts timed."""
    from pipelines.stages import night as nightly

    cfg = load_config(config)
    parts: dict[str, float] = {}
    calls: dict[str, Callable[[], Any]] = {
        "ingest": lambda: nightly.stage_ingest(root, as_of, cfg),
        "features": lambda: nightly.stage_features(root, as_of, cfg),
        "train": lambda: nightly.stage_train(root, as_of, cfg),
        "score": lambda: nightly.stage_score(root, as_of, cfg),
        "decide": lambda: nightly.stage_decide(root, as_of, cfg),
        "publish": lambda: nightly.stage_publish(root, as_of, cfg, run_info={"bench": True}),
    }
    time_parts(STAGE_PARTS.get(stage, ()), parts)
    start = time.perf_counter()
    summary = calls[stage]()
    seconds = time.perf_counter() - start
    main_part = {"ingest": "ingest", "features": "features", "score": "score"}.get(stage)
    if main_part:
        parts[main_part] = seconds - sum(parts.values())
    return {"stage": stage, "seconds": round(seconds, 3), "parts": {k: round(v, 3) for k, v in parts.items()},
            "summary": summary}


def _worker_setup(root: Path, as_of: dt.date, config: Path) -> dict[str, Any]:
    """What earlier nights leave behind for tonight's training: its snapshots' features and matured labels."""
    from pipelines.stages import features as features_stage
    from pipelines.stages import train as train_stage
    from pipelines.model import train

    cfg = load_config(config)
    curated = zones.curated_dates(root, "accounts")
    plan = train.plan_snapshots(
        as_of, cfg.labels.horizon_days, cfg.model, curated[0] if curated else None, cfg.labels.gap_days
    )
    built = []
    for snapshot in (*plan.training_dates, plan.oot_date):
        if not lake.is_complete(zones.feature_partition(root, snapshot)):
            features_stage.build_feature_snapshot(root, snapshot, cfg)
            built.append(snapshot.isoformat())
    for snapshot in plan.training_dates:
        if not lake.is_complete(zones.labels_partition(root, snapshot)):
            train_stage.write_labels_for(root, snapshot, cfg)
    # Every bench night starts from the same state: the OOT snapshot matures tonight (its labels are built
    # in train), and no model is registered yet (train registers and gates its first model; a rerun would
    # otherwise find its version registered and skip the judging).
    lake.remove_partition(zones.labels_partition(root, plan.oot_date))
    shutil.rmtree(root / "registry", ignore_errors=True)
    # The night before left its ledger state, as a real previous night does: tonight's ledger then applies
    # one day of drops to it (pipelines/stages/ledger_state.py). Rebuilt whole, so an older state is never used.
    previous = as_of - dt.timedelta(days=1)
    if cfg.run.incremental_ledger:
        features_stage.build_feature_snapshot(root, previous, cfg.model_copy(
            update={"run": cfg.run.model_copy(update={"incremental_ledger": False})}))
        built.append(f"{previous.isoformat()} (ledger state)")
    return {"stage": "setup", "plan": plan.to_dict(), "snapshots_built": built}


def _worker_scale(root: Path, as_of: dt.date, config: Path, shards: int) -> dict[str, Any]:
    """Scoring and decisions of the synthesized big book, ``shards`` shards one after another in this process."""
    from pipelines.stages import night as nightly

    cfg = load_config(config)
    cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"shards": shards, "shard_workers": 1})})
    parts: dict[str, float] = {}
    time_parts(STAGE_PARTS["scale"], parts)
    start = time.perf_counter()
    scored = nightly.stage_score(root, as_of, cfg)
    after_score = time.perf_counter()
    score_rss = peak_rss_mib()
    decided = nightly.stage_decide(root, as_of, cfg)
    end = time.perf_counter()
    return {"stage": "scale", "seconds": round(end - start, 3), "score_seconds": round(after_score - start, 3),
            "decide_seconds": round(end - after_score, 3), "score_peak_rss_mib": score_rss,
            "parts": {k: round(v, 3) for k, v in parts.items()}, "summary": {"score": scored, "decide": decided}}


def _worker_synthesize(source: Path, root: Path, as_of: dt.date, replicas: int, shards: int) -> dict[str, Any]:
    """A ``replicas`` x bigger book for scoring and decisions: the source's features, ledger and accounts of D
    repeated under new account ids (``R<r>-<id>``), written as ``shards`` shard partitions, plus its registry."""
    import polars as pl


    start = time.perf_counter()
    if root.exists():
        shutil.rmtree(root)
    pieces = root / "_pieces"
    sort_keys = {FEATURES_FILE: ("account_id",), "installments.parquet": LEDGER_FILES["installments.parquet"],
                 "accounts.parquet": ("account_id",)}
    inputs = {
        ("features", FEATURES_FILE): feature_partition(source, as_of) / FEATURES_FILE,
        ("ledger", "installments.parquet"): ledger_partition(source, as_of) / "installments.parquet",
        ("ledger", "accounts.parquet"): ledger_partition(source, as_of) / "accounts.parquet",
        ("curated", "accounts"): lake.parquet_files(zones.curated(source, "accounts", as_of))[0],
    }
    for (zone, name), path in inputs.items():
        frame = pl.read_parquet(path)
        for r in range(replicas):
            renamed = frame.with_columns(
                pl.concat_str(pl.lit(f"R{r}-"), pl.col(c)).alias(c)
                for c in ("account_id", "loan_id", "installment_id") if c in frame.columns
            ).with_columns(shard_expr(shards))
            for (k,), part in renamed.partition_by("shard", as_dict=True).items():
                target = pieces / zone / name / f"shard={k}"
                target.mkdir(parents=True, exist_ok=True)
                part.drop("shard").write_parquet(target / f"r{r}.parquet")
        del frame
    for zone, names in (("features", (FEATURES_FILE,)), ("ledger", ("installments.parquet", "accounts.parquet"))):
        for k in range(shards):
            with lake.staged_partition(shard_dir(root, zone, as_of, k, shards)) as tmp:
                for name in names:
                    files = sorted((pieces / zone / name / f"shard={k}").glob("*.parquet"))
                    lake.write_parquet(pl.read_parquet(files).sort(sort_keys[name]), tmp / name)
    accounts_files = sorted((pieces / "curated" / "accounts").rglob("*.parquet"))
    with lake.staged_partition(zones.curated(root, "accounts", as_of)) as tmp:
        pl.scan_parquet(accounts_files).sink_parquet(tmp / "part-0.parquet", **lake.PARQUET_OPTIONS)  # type: ignore[arg-type]
    shutil.copytree(source / "registry", root / "registry")
    shutil.rmtree(pieces)
    accounts = pl.scan_parquet(lake.parquet_files(zones.curated(root, "accounts", as_of))).select(
        pl.len()).collect().item()
    return {"stage": "synthesize", "seconds": round(time.perf_counter() - start, 1), "accounts": int(accounts)}


def _worker_main(argv: list[str]) -> None:
    command, *rest = argv
    # the lake's paths come back resolved (store.paths.ensure_inside): a book reached through a link must too
    rest = [str(Path(a).resolve()) if "/" in a and Path(a).exists() else a for a in rest]
    if command == "stage":
        stage, root, as_of, config = rest
        out = _worker_stage(stage, Path(root), dt.date.fromisoformat(as_of), Path(config))
    elif command == "setup":
        root, as_of, config = rest
        out = _worker_setup(Path(root), dt.date.fromisoformat(as_of), Path(config))
    elif command == "synthesize":
        source, root, as_of, replicas, shards = rest
        out = _worker_synthesize(Path(source), Path(root), dt.date.fromisoformat(as_of), int(replicas), int(shards))
    elif command == "scale":
        root, as_of, config, shards = rest
        out = _worker_scale(Path(root), dt.date.fromisoformat(as_of), Path(config), int(shards))
    else:
        raise SystemExit(f"unknown bench worker command {command!r}")
    out["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(out, default=str))


# --- the benchmark ---------------------------------------------------------------------------------


def bench_night(spec: dict[str, Any], size: str, base_config: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Book, setup, the night's stages and the peers for one size; returns the result record."""
    config = write_bench_config(base_config, spec, size)
    book = ensure_book(spec, size, config, log)
    root = book_root(spec, size)
    _, night = book_dates(spec, size)
    log(f"[{size}] setup: training snapshots and labels of earlier nights")
    setup = run_worker("setup", str(root), night.isoformat(), str(config))
    stages = []
    for stage, part_names in NIGHT:
        log(f"[{size}] {stage} ...")
        out = run_worker("stage", stage, str(root), night.isoformat(), str(config))
        log(f"[{size}] {stage}: {out['seconds']:.1f} s, peak RSS {out['peak_rss_mib']:.0f} MiB, "
            f"load {out['load_avg_before'][0]}")
        stages.append({**out, "parts": {p: out["parts"].get(p, out["seconds"]) for p in part_names}
                       | {k: v for k, v in out["parts"].items() if k not in part_names}})
    peers = bench_peers(root, night, size, log)
    return {"size": size, "accounts": spec["sizes"][size]["accounts"], "as_of": night.isoformat(),
            "book": book, "setup": setup, "stages": stages, "peers": peers}


def bench_peers(root: Path, as_of: dt.date, size: str, log: Callable[[str], None]) -> dict[str, Any]:
    """Each implementation (and scan floor) in a fresh process; outputs compared value for value."""
    import polars as pl
    from polars.testing import assert_frame_equal

    out_dir = CACHE / f"peers-{size}"
    out_dir.mkdir(parents=True, exist_ok=True)
    runs: dict[str, Any] = {}
    for name in PEER_RUNS:
        log(f"[{size}] peer {name} ...")
        load = load_average()
        proc = subprocess.run([sys.executable, str(PEERS), name, str(root), as_of.isoformat(),
                               "--out", str(out_dir / f"{name}.parquet")],
                              capture_output=True, text=True, env=worker_env(), cwd=REPO)
        if proc.returncode != 0:
            raise RuntimeError(f"peer {name} failed:\n{proc.stderr[-4000:]}")
        runs[name] = {**json.loads(proc.stdout.strip().splitlines()[-1]), "load_avg_before": load}
        log(f"[{size}] peer {name}: {runs[name]['seconds']:.1f} s")
    reference = pl.read_parquet(out_dir / "riskline.parquet")
    equal = {}
    for name in ("duckdb", "pandas"):
        try:
            assert_frame_equal(pl.read_parquet(out_dir / f"{name}.parquet"), reference)
            equal[name] = True
        except AssertionError as exc:
            equal[name] = f"differs: {str(exc)[:300]}"
    return {"runs": runs, "equal_to_riskline": equal}


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("nan")


def summarize(record: dict[str, Any], targets: dict[str, Any]) -> dict[str, Any]:
    stages = {s["stage"]: s for s in record["stages"]}
    nightly = sum(s["seconds"] for name, s in stages.items() if name != "train")
    peers = record["peers"]["runs"]
    peak = max(s["peak_rss_mib"] for s in record["stages"])
    out = {
        "nightly_no_retrain_seconds": round(nightly, 1),
        "nightly_with_retrain_seconds": round(nightly + stages["train"]["seconds"], 1),
        "retrain_seconds": stages["train"]["seconds"],
        "max_stage_peak_rss_mib": peak,
        "targets_met": {
            "nightly_no_retrain": nightly <= targets["nightly_no_retrain_seconds"],
            "retrain": stages["train"]["seconds"] <= targets["retrain_seconds"],
            "peak_rss": peak <= targets["peak_rss_gib"] * 1024,
        },
        "peer_ratios": {
            "duckdb_over_riskline": _ratio(peers["duckdb"]["seconds"], peers["riskline"]["seconds"]),
            "pandas_over_riskline": _ratio(peers["pandas"]["seconds"], peers["riskline"]["seconds"]),
        },
        "scan_floor_ratios": {
            "behaviour_subset_over_its_scan": _ratio(peers["riskline"]["seconds"], peers["scan_behaviour"]["seconds"]),
            "ledger_and_features_stage_over_scan_of_inputs": _ratio(
                stages["features"]["seconds"], peers["scan_inputs"]["seconds"]),
            "night_over_scan_of_inputs": _ratio(nightly, peers["scan_inputs"]["seconds"]),
        },
    }
    if record["accounts"] == 1_000_000 and "night_1m_seconds" in targets:  # issue 19's targets at 1M
        reasons = stages["score"]["parts"].get("reason codes", 0.0)
        over_scan = out["scan_floor_ratios"]["night_over_scan_of_inputs"]
        out["targets_1m"] = {
            "night_seconds": [round(nightly, 1), targets["night_1m_seconds"], nightly <= targets["night_1m_seconds"]],
            "reason_codes_seconds": [round(reasons, 1), targets["reason_codes_1m_seconds"],
                                     reasons <= targets["reason_codes_1m_seconds"]],
            "night_over_scan_of_inputs": [over_scan, targets["night_over_input_scan_max"],
                                          over_scan <= targets["night_over_input_scan_max"]],
        }
    return out


def history_ratios(long: dict[str, Any], short: dict[str, Any], targets: dict[str, Any]) -> dict[str, Any]:
    """The long-history book's night against the same accounts with the usual history (issue 19's target: a
    night costs what happened today, so within ``history_ratio_max`` of it), overall and per stage."""
    night = _ratio(long["summary"]["nightly_no_retrain_seconds"], short["summary"]["nightly_no_retrain_seconds"])
    per_stage = {s["stage"]: _ratio(s["seconds"], t["seconds"]) for s, t in zip(long["stages"], short["stages"],
                                                                                 strict=True)}
    return {"compared_with": f"{short['date']} {short['size']} ({short['days']} days)", "night": night,
            "stages": per_stage, "target": targets["history_ratio_max"],
            "target_met": night <= targets["history_ratio_max"]}


def to_markdown(record: dict[str, Any], targets: dict[str, Any]) -> str:
    s = record["summary"]
    lines = [
        f"# riskline bench {record['date']}: {record['accounts']:,} accounts x {record['days']} days, night of "
        f"{record['as_of']}",
        "",
        f"Machine: {record['machine']['cpus']} CPUs, {record['machine']['memory_gib']} GiB RAM, shared; load average "
        "(1 min) before each stage is shown: above the CPU count, times are inflated by other work.",
        "",
        "| stage | part | seconds | peak RSS (MiB) | load avg |",
        "|---|---|---:|---:|---:|",
    ]
    for stage in record["stages"]:
        for i, (part, seconds) in enumerate(stage["parts"].items()):
            rss = f"{stage['peak_rss_mib']:,.0f}" if i == 0 else ""
            load = f"{stage['load_avg_before'][0]:.1f}" if i == 0 else ""
            lines.append(f"| {stage['stage'] if i == 0 else ''} | {part} | {seconds:.1f} | {rss} | {load} |")
    met = s["targets_met"]
    lines += [
        "",
        f"- Nightly run without retrain: **{s['nightly_no_retrain_seconds']:.1f} s** "
        f"(target {targets['nightly_no_retrain_seconds']} s at 1M: {'met' if met['nightly_no_retrain'] else 'NOT met'})",
        f"- Retrain: **{s['retrain_seconds']:.1f} s** (target {targets['retrain_seconds']} s: "
        f"{'met' if met['retrain'] else 'NOT met'}); whole night with retrain {s['nightly_with_retrain_seconds']:.1f} s",
        f"- Largest stage peak RSS: **{s['max_stage_peak_rss_mib'] / 1024:.2f} GiB** (target "
        f"{targets['peak_rss_gib']} GiB: {'met' if met['peak_rss'] else 'NOT met'})",
        *(f"- Ledger: {stage['summary']['ledger']}" for stage in record["stages"]
          if stage["stage"] == "features" and isinstance(stage.get("summary"), dict) and stage["summary"].get("ledger")),
        "",
        "Behaviour-window features (24 columns, see benchmarks/peers/run_peers.py), same data, fresh process each:",
        "",
        "| implementation | seconds | peak RSS (MiB) | equal to riskline |",
        "|---|---:|---:|---|",
    ]
    peers = record["peers"]
    for name in PEER_RUNS:
        run = peers["runs"][name]
        eq = {"riskline": "-", "scan_behaviour": "(floor)", "scan_inputs": "(floor, all feature inputs)"}.get(
            name, str(peers["equal_to_riskline"].get(name)))
        lines.append(f"| {name} | {run['seconds']:.2f} | {run['peak_rss_mib']:,.0f} | {eq} |")
    r, f = s["peer_ratios"], s["scan_floor_ratios"]
    if "history" in s:
        h = s["history"]
        stages = ", ".join(f"{k} {v}x" for k, v in h["stages"].items())
        lines += ["", f"- History: the night without retrain is **{h['night']}x** that of {h['compared_with']} "
                      f"(target {h['target']}x: {'met' if h['target_met'] else 'NOT met'}); per stage: {stages}"]
    for name, (value, target, ok) in s.get("targets_1m", {}).items():
        lines.append(f"- At 1M, {name.replace('_', ' ')}: **{value}** (target {target}: {'met' if ok else 'NOT met'})")
    lines += [
        "",
        f"- DuckDB / riskline: **{r['duckdb_over_riskline']}x**; pandas / riskline: **{r['pandas_over_riskline']}x** "
        "(goal: >= 1x and >= 5x)",
        f"- Scan floor: behaviour features / scanning their columns = {f['behaviour_subset_over_its_scan']}x; "
        f"ledger + features stage / scanning all its input columns = "
        f"{f['ledger_and_features_stage_over_scan_of_inputs']}x",
    ]
    return "\n".join(lines) + "\n"


def bench_scale(spec: dict[str, Any], base_config: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """10M accounts: scoring and decisions shard by shard on a book synthesized from the 1M book."""
    from pipelines.stages import features as features_stage

    source = book_root(spec, "1m")
    _, night = book_dates(spec, "1m")
    if not lake.is_complete(zones.feature_partition(source, night)):
        raise ValueError(f"the scale run starts from the 1M book's night of {night}: run `riskline bench --size 1m` first")
    replicas, shards = int(spec["scale"]["replicas"]), int(spec["scale"]["shards"])
    config = write_bench_config(base_config, spec, "1m")
    root = CACHE / f"scale-{replicas}x-1m"
    made = root / "_synthesized.json"  # a synthesized book is reused: it only depends on the 1M night
    if made.is_file() and json.loads(made.read_text())["source_features_mtime"] == _mtime(source, night):
        synth = json.loads(made.read_text())
    else:
        log(f"[scale] synthesizing {replicas} x the 1M book into {shards} shards")
        synth = run_worker("synthesize", str(source), str(root), night.isoformat(), str(replicas), str(shards))
        made.write_text(json.dumps({**synth, "source_features_mtime": _mtime(source, night)}))
    log(f"[scale] {synth['accounts']:,} accounts in {synth['seconds']:.0f} s; scoring and deciding ...")
    out = run_worker("scale", str(root), night.isoformat(), str(config), str(shards))
    log(f"[scale] {out['seconds']:.0f} s, peak RSS {out['peak_rss_mib'] / 1024:.1f} GiB")
    return {"accounts": synth["accounts"], "shards": shards, "synthesize": synth, "run": out}


def bench_load(spec: dict[str, Any], base_config: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """A history load as a new lender's first night has it: a generated book of ``load.accounts`` x
    ``load.days`` (its landing drops cached), every day before its last ingested and validated by
    `riskline ingest --from-date --to-date` into an empty lake (the drops linked in, as delivered)."""
    accounts, days = int(spec["load"]["accounts"]), int(spec["load"]["days"])
    size = f"load-{accounts // 1000}k-{days}d"
    night = dt.date.fromisoformat(str(spec["book"]["end_date"]))
    first, last = night - dt.timedelta(days=days - 1), night - dt.timedelta(days=1)
    config = write_bench_config(base_config, {**spec, "sizes": {**spec["sizes"], size: {"accounts": accounts}}},
                                size)
    source = CACHE / f"accounts-{accounts}-days-{days}-seed-{spec['book']['seed']}-landing"
    if not (source / "generator" / "summary.json").is_file():
        log(f"[load] generating {accounts:,} accounts x {days} days")
        run_riskline(config, source, "generate", "--accounts", str(accounts), "--days", str(days),
                  "--end-date", night.isoformat(), "--seed", str(spec["book"]["seed"]))
    root = CACHE / size
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(source / "landing", root / "landing", copy_function=os.link)  # hard links: the drops as sent
    log(f"[load] ingesting {days - 1} days ({first} .. {last}) into an empty lake")
    load = load_average()
    seconds = run_riskline(config, root, "ingest", "--from-date", first.isoformat(), "--to-date", last.isoformat())
    log(f"[load] {seconds:.0f} s")
    target = spec["targets"]["history_load_seconds"]
    return {"size": size, "accounts": accounts, "days": days - 1, "from": first.isoformat(), "to": last.isoformat(),
            "seconds": seconds, "load_avg_before": load, "load_avg_after": load_average(),
            "target_seconds": target, "target_met": seconds <= target}


def _mtime(root: Path, night: dt.date) -> float:
    from pipelines.stages import features as features_stage

    return (zones.feature_partition(root, night) / zones.FEATURES_FILE).stat().st_mtime


def run_benchmarks(
    sizes: list[str], base_config: Path, scale: bool = False, log: Callable[[str], None] = print,
    history_load: bool = False,
) -> list[Path]:
    """Benchmark each size (and the 10M scale-out); write and return the result files."""
    import platform

    spec = load_spec()
    shard_sizes = spec.get("shards") or {}  # one night per shard count: tools/bench_shards.py
    unknown = [s for s in sizes if s not in spec["sizes"] and s not in shard_sizes]
    if unknown:
        raise ValueError(f"unknown bench size(s) {unknown}; bench.yaml has {sorted([*spec['sizes'], *shard_sizes])}")
    today = dt.date.today().isoformat()
    machine = {"cpus": os.cpu_count(), "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                                             / 2**30, 1), "python": platform.python_version()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    written = []
    for size in sizes:
        if size in shard_sizes:
            written += bench_shards.bench_and_write(spec, size, base_config, machine, today, log)
            continue
        record = {"date": today, "days": book_days(spec, size), "machine": machine,
                  **bench_night(spec, size, base_config, log)}
        record["summary"] = summarize(record, spec["targets"])
        base = spec["sizes"][size].get("compare_with")  # the same accounts with the book's usual history
        if base and (RESULTS / f"{today}-{base}.json").is_file():
            short = json.loads((RESULTS / f"{today}-{base}.json").read_text())
            record["summary"]["history"] = history_ratios(record, short, spec["targets"])
        stem = RESULTS / f"{today}-{size}"
        stem.with_suffix(".json").write_text(json.dumps(record, indent=1, default=str) + "\n")
        stem.with_suffix(".md").write_text(to_markdown(record, spec["targets"]))
        written += [stem.with_suffix(".json"), stem.with_suffix(".md")]
        log(f"[{size}] results: {stem}.md")
    if scale:
        record = {"date": today, "machine": machine, **bench_scale(spec, base_config, log)}
        target = spec["targets"]["scale_peak_rss_gib"]
        record["summary"] = {"seconds": record["run"]["seconds"], "peak_rss_gib": round(
            record["run"]["peak_rss_mib"] / 1024, 2), "target_peak_rss_gib": target,
            "target_met": record["run"]["peak_rss_mib"] <= target * 1024}
        path = RESULTS / f"{today}-scale-{record['accounts'] // 1_000_000}m.json"
        path.write_text(json.dumps(record, indent=1, default=str) + "\n")
        written.append(path)
    if history_load:
        record = {"date": today, "machine": machine, **bench_load(spec, base_config, log)}
        path = RESULTS / f"{today}-{record['size']}.json"
        path.write_text(json.dumps(record, indent=1, default=str) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        _worker_main(sys.argv[2:])
    else:
        raise SystemExit("use `riskline bench` (this module's entry point for workers is internal)")
