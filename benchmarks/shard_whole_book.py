"""What one shard pays for the whole book: the reads a shard task makes over every account, measured alone.

Usage: ``.venv/bin/python benchmarks/shard_whole_book.py BOOK [N_SHARDS]`` (a bench book root, e.g.
``benchmarks/cache/accounts-1000000-days-180-seed-7`` after ``riskline bench --size 1m``; default 16 shards).
Each measurement runs in a fresh process (its peak RSS is its own) on the book's last night and prints one
JSON line (with the 1-minute load average after it; ``benchmarks/results/2026-12-01-shard-whole-book.jsonl``):

* ``behaviour``: shard 0's behaviour-window aggregation as the features stage runs it (the shard filter inside
  the lazy plan, the streaming engine), and ``behaviour-shard-first`` with the shard's rows collected first;
* ``reason-reference``: the whole book's reason reference that every score shard computes
  (``pipelines.stages.shards.score_shard``).

Run it on two book sizes (100k and 1M) to see which costs grow with the whole book rather than the shard
(docs/scaling.md, "Plan for 100M accounts").
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

NIGHT = dt.date(2026, 11, 25)  # benchmarks/bench.yaml book.end_date
WHAT = ("behaviour", "behaviour-shard-first", "reason-reference")


def _measure(what: str, root: Path, n_shards: int) -> dict[str, object]:
    import polars as pl

    from pipelines.domain.features import aggregate_behaviour
    from pipelines.model.pd import model_features
    from pipelines.model.registry import ModelRegistry
    from pipelines.model.score import reason_reference
    from pipelines.stages.features import scan_inputs
    from pipelines.stages.score import trained_reference
    from pipelines.store import zones

    start = time.perf_counter()
    if what == "reason-reference":
        registry = ModelRegistry(root)
        version = registry.require_champion_on(NIGHT)
        booster = registry.load_booster(version)
        book = pl.scan_parquet(zones.feature_partition(root, NIGHT) / zones.FEATURES_FILE)
        reason_reference(book, model_features(booster), trained_reference(registry, version))
        rows = book.select(pl.len()).collect().item()
    else:
        behaviour = scan_inputs(root, NIGHT, 0, n_shards)["behaviour"]
        if what == "behaviour-shard-first":
            behaviour = behaviour.collect().lazy()
        rows = aggregate_behaviour(behaviour, NIGHT).collect(engine="streaming").height
    return {"what": what, "book": root.name, "n_shards": n_shards, "rows": rows,
            "seconds": round(time.perf_counter() - start, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    if sys.argv[1] == "_one":
        what, root, n_shards = sys.argv[2], Path(sys.argv[3]).resolve(), int(sys.argv[4])
        print(json.dumps(_measure(what, root, n_shards)))
        return
    root, n_shards = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "16"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    for what in WHAT:
        proc = subprocess.run([sys.executable, __file__, "_one", what, root, n_shards], capture_output=True,
                              text=True, env=env, check=True)
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps({**out, "load_avg_1min": round(os.getloadavg()[0], 2)}), flush=True)


if __name__ == "__main__":
    main()
