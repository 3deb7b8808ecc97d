"""Child process of the crash tests: do one publish or registry write, SIGKILL-ing itself mid-way.

    python crash_child.py publish|registry|night SPEC DATA_ROOT KILL_AFTER TRACE_FILE [PAUSE_BEFORE GO_FILE]

Every file-system step the write makes (mkdir, a Parquet file written, rename, the atomic exchange,
unlink, rmdir, chmod) is an *event*. Before event ``KILL_AFTER + 1`` the process sends itself SIGKILL:
no ``finally``, no ``atexit``, no flush, exactly like the OOM killer or a pulled plug. ``KILL_AFTER = -1``
runs to the end. The names of the events seen are appended to ``TRACE_FILE`` as they happen, so the
parent learns how many kill points there are and what each one interrupted.

With ``PAUSE_BEFORE`` (a prefix of an event's name) the process stops before the first such event,
writes ``GO_FILE.paused`` and waits until ``GO_FILE`` exists: the concurrency tests hold a writer mid-way.
``night`` runs the whole night for the date ``SPEC`` (``run_night``, no retrain, the repo's config).

The code under test is untouched: the hooks wrap ``os`` functions and two ``pipelines.store.lake`` helpers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
import time
from pathlib import Path


def _install_hooks(trace: Path, kill_after: int, pause_before: str = "", go: Path | None = None) -> None:
    from pipelines.store import lake

    seen = [0]
    log = open(trace, "a", buffering=1)

    def event(name: str) -> None:
        if seen[0] == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        if pause_before and go is not None and name.startswith(pause_before) and not go.exists():
            Path(f"{go}.paused").write_text(name)
            while not go.exists():
                time.sleep(0.05)
        seen[0] += 1
        log.write(name + "\n")

    def wrap(owner: object, attr: str, label: str, path_arg: int = 0) -> None:
        real = getattr(owner, attr)

        def hooked(*args, **kwargs):  # type: ignore[no-untyped-def]
            path = Path(os.fsdecode(args[path_arg]))
            # mkdir of a folder that exists changes nothing: killing before it equals killing before the next
            if not (label == "mkdir" and "dir_fd" not in kwargs and path.is_dir()):
                event(f"{label} {path.parent.name}/{path.name}")
            return real(*args, **kwargs)

        setattr(owner, attr, hooked)

    for name in ("mkdir", "replace", "rename", "unlink", "rmdir", "chmod"):
        wrap(os, name, name)
    wrap(lake, "_rename_exchange", "exchange", path_arg=1)
    wrap(lake, "write_parquet", "write_parquet", path_arg=1)  # polars writes in Rust: hook its helper


def _publish(spec: Path, root: Path) -> None:
    import polars as pl

    from pipelines.store import publish

    meta = json.loads((spec / "spec.json").read_text())
    frames = {name: pl.read_parquet(spec / f"{name}.parquet") for name in meta["outputs"]}
    publish.publish_outputs(root, dt.date.fromisoformat(meta["as_of"]), frames, meta["manifest"])


def _registry(spec: Path, root: Path) -> None:
    from pipelines.model.registry import ModelRegistry

    meta = json.loads((spec / "spec.json").read_text())
    registry = ModelRegistry(root)
    registry.register(meta["version"], (spec / "model.ubj").read_bytes(), meta["records"])
    registry.set_champion(meta["version"], dt.date.fromisoformat(meta["effective_from"]), "promote", meta["reason"])


def _night(spec: Path, root: Path) -> None:
    from pipelines.stages import night as nightly
    from pipelines.config.settings import load_config

    config = load_config(Path(__file__).resolve().parents[2] / "riskline.yaml")
    nightly.run_night(root, dt.date.fromisoformat(str(spec)), config, nightly.RunOptions(retrain=False))


def main(argv: list[str]) -> int:
    mode, spec, root, kill_after, trace, *pause = argv
    # import before hooking, so that only the write itself is traced (and xgboost only when needed)
    if mode == "publish":
        import pipelines.store.publish  # noqa: F401
    elif mode == "registry":
        import pipelines.model.registry  # noqa: F401
    else:
        import pipelines.stages.night  # noqa: F401
    _install_hooks(Path(trace), int(kill_after), *(pause[0], Path(pause[1])) if pause else ())
    Path(f"{trace}.started").touch()  # imports done: from here on the child works on the lake
    {"publish": _publish, "registry": _registry, "night": _night}[mode](Path(spec), Path(root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
