"""Load generator for the registry concurrency test: one writer flipping the champion, many readers.

    python registry_load.py write DATA_ROOT GO_FILE WRITES VERSION_A VERSION_B EFFECTIVE_FROM
    python registry_load.py read DATA_ROOT GO_FILE

Once imported, touches ``GO_FILE.<pid>.ready`` and waits for ``GO_FILE`` (so that every process starts
together however slow its imports). The writer changes the champion WRITES times, then touches
``GO_FILE.done``; readers read until then. Each prints a JSON summary on stdout.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

from pipelines.model.registry import ModelRegistry


def write(registry: ModelRegistry, done: Path, writes: int, a: str, b: str, effective: dt.date) -> dict:
    for i in range(writes):
        registry.set_champion((a, b)[i % 2], effective, "manual_promote", "concurrency test flip")
    done.touch()
    return {"writes": writes}


def read(registry: ModelRegistry, done: Path) -> dict:
    reads, during_writes, errors, champions = 0, 0, [], set()
    while not done.exists() or reads == 0:
        during_writes += not done.exists()
        try:
            champion = registry.champion()
            registry.load_booster(champion)  # the pointer always names a whole, loadable model
            registry.record(champion)
            history = registry.history()
            assert history and registry.champion_on(history[-1].effective_from) is not None
            champions.add(champion)
        except Exception as exc:  # every failure is a finding: report them all
            errors.append(f"{type(exc).__name__}: {exc}")
        reads += 1
    return {"reads": reads, "during_writes": during_writes, "errors": errors[:10], "champions": sorted(champions)}


def main(argv: list[str]) -> int:
    mode, root, go, *rest = argv
    registry = ModelRegistry(Path(root))
    Path(f"{go}.{os.getpid()}.ready").touch()
    while not Path(go).exists():
        time.sleep(0.02)
    done = Path(f"{go}.done")
    if mode == "write":
        summary = write(registry, done, int(rest[0]), rest[1], rest[2], dt.date.fromisoformat(rest[3]))
    else:
        summary = read(registry, done)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
