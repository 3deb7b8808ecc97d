"""What every ``riskline bench`` mode shares: the spec (``benchmarks/bench.yaml``) and its cached books, the
bench config, and the worker processes each stage is timed in (wall time, timed parts, peak RSS).

``tools/bench.py`` (one night per book size, the 10M scale-out, the history load) and ``tools/bench_shards.py``
(one night per shard count) build on it. A tool, not a pipeline stage: it reads the clock and starts processes.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from pipelines.store import zones

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / "benchmarks"
CACHE = BENCH_DIR / "cache"
RESULTS = BENCH_DIR / "results"
SPEC = BENCH_DIR / "bench.yaml"


# --- the spec and the cached books -----------------------------------------------------------------


def load_spec(path: Path = SPEC) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def write_bench_config(base_config: Path, spec: dict[str, Any], size: str) -> Path:
    """riskline.yaml + the common and per-size overrides, as a file the workers load with --config."""
    raw = yaml.safe_load(base_config.read_text())
    raw = _merge(_merge(raw, spec.get("overrides") or {}), spec["sizes"][size].get("overrides") or {})
    model = raw.setdefault("model", {})
    definition = Path(model.get("definition", "models/pd_model.yaml"))
    if not definition.is_absolute():  # relative paths resolve against the config file's folder
        model["definition"] = str((base_config.parent / definition).resolve())
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"config-{size}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return path


def book_days(spec: dict[str, Any], size: str) -> int:
    """Days of history of a size's book: its own ``days`` (a long-history row), else the book's."""
    return int(spec["sizes"][size].get("days", spec["book"]["days"]))


def book_root(spec: dict[str, Any], size: str) -> Path:
    book = spec["book"]
    return CACHE / f"accounts-{spec['sizes'][size]['accounts']}-days-{book_days(spec, size)}-seed-{book['seed']}"


def book_dates(spec: dict[str, Any], size: str) -> tuple[dt.date, dt.date]:
    """(first business date, the night benchmarked = the last one) of a size's book."""
    end = dt.date.fromisoformat(str(spec["book"]["end_date"]))
    return end - dt.timedelta(days=book_days(spec, size) - 1), end


def run_riskline(config: Path, root: Path, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipelines.entry.cli", "--config", str(config), "--data-root", str(root), *args],
                   check=True, env=worker_env())
    return round(time.perf_counter() - start, 1)


def ensure_book(spec: dict[str, Any], size: str, config: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Generate and ingest the book unless the cache holds it; return what was done and how long it took."""

    root = book_root(spec, size)
    first, night = book_dates(spec, size)
    done: dict[str, Any] = {"root": str(root.relative_to(REPO))}
    if not (root / "generator" / "summary.json").is_file():
        log(f"[{size}] generating {spec['sizes'][size]['accounts']:,} accounts x {book_days(spec, size)} days")
        done["generate_seconds"] = run_riskline(
            config, root, "generate", "--accounts", str(spec["sizes"][size]["accounts"]),
            "--days", str(book_days(spec, size)), "--end-date", night.isoformat(), "--seed", str(spec["book"]["seed"]),
        )
    have = set(zones.curated_dates(root, "accounts"))
    missing = [first + dt.timedelta(days=i) for i in range((night - first).days) if first + dt.timedelta(days=i) not in have]
    if missing:
        log(f"[{size}] ingesting {len(missing)} days ({missing[0]} .. {missing[-1]})")
        done["ingest_seconds"] = run_riskline(config, root, "ingest", "--from-date", missing[0].isoformat(),
                                           "--to-date", missing[-1].isoformat())
    return done


# --- workers: one stage in a fresh process ---------------------------------------------------------


def worker_env() -> dict[str, str]:
    # spinning OpenMP threads starve a 2-core machine; the run sets it too
    return {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "GX_ANALYTICS_ENABLED": "False"}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_worker(command: str, *args: str, module: str = "tools.bench") -> dict[str, Any]:
    """Run ``python -m MODULE _worker COMMAND ARGS`` and return the JSON it prints last."""
    load_before = load_average()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", module, "_worker", command, *args],
                          capture_output=True, text=True, env=worker_env())
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"bench worker {command} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**result, "process_seconds": round(wall, 2), "load_avg_before": load_before,
            "load_avg_after": load_average()}


def time_function(module: Any, name: str, parts: dict[str, float], part: str) -> None:
    """Wrap ``module.name`` so the time spent in it adds up under ``parts[part]``."""
    original = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            parts[part] = parts.get(part, 0.0) + time.perf_counter() - start

    setattr(module, name, wrapper)


# The parts of a stage timed apart: (module, function, part). Each function is wrapped where the stage
# looks it up (the module that calls it), not where it is defined: `from m import f` binds a name of its own.
# tests/unit/test_bench.py checks that every one exists.
STAGE_PARTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "ingest": (("pipelines.stages.ingest", "validate_landing_frames", "validate"),),
    "features": (*(("pipelines.stages.features", name, "ledger")
                   for name in ("working_ledger", "reconcile_ledger", "_publish_ledger")),
                 *(("pipelines.stages.ledger_state", name, "ledger") for name in ("ledger_inputs", "write_state"))),
    "train": (("pipelines.stages.train", "write_labels_for", "of which: OOT labels built"),
              ("pipelines.stages.features", "build_feature_snapshot", "of which: snapshots built")),
    "score": (("pipelines.model.score", "reason_codes", "reason codes"),),
    "scale": (*(("pipelines.stages.shards", name, name)
                for name in ("score_shard", "merge_scores", "decide_shard", "merge_decisions")),
              ("pipelines.model.score", "reason_codes", "reason codes (in score_shard)")),
}


def time_parts(specs: Iterable[tuple[str, str, str]], parts: dict[str, float]) -> None:
    """Wrap every ``(module, function, part)`` of ``specs`` (:func:`time_function`).

    Every module is imported before any function is wrapped: one imported after would bind the wrapper with
    its ``from m import f`` and, wrapped again in its own namespace, count the time twice.
    """
    specs = list(specs)
    modules = {name: importlib.import_module(name) for name, _, _ in specs}
    for module, name, part in specs:
        time_function(modules[module], name, parts, part)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
