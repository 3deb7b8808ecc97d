"""Listing a local lake: partitions of a zone, files of a partition, and the read phase that lists once.

A read phase (an ingest reads and validates every dataset of a date before it writes any) asks for the
same listings again and again: the history's partitions, once per lookup, about 25 times a date at 12 ms
each on a year of dates (measured). Within :func:`read_phase` each listing is taken once and reused: the
lake does not change under a read phase, since its own writes come after it and another writer of the
same dates is kept out by the date locks. Outside one, every call looks afresh.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pipelines.config.location import Location
from pipelines.store.paths import ensure_inside

T = TypeVar("T")

_READ_PHASE: contextvars.ContextVar[dict[tuple[Any, ...], Any] | None] = contextvars.ContextVar(
    "riskline_read_phase", default=None)


@contextmanager
def read_phase() -> Iterator[None]:
    """Reuse listings of the lake until the block ends (see above); nothing may be written inside it."""
    token = _READ_PHASE.set({})
    try:
        yield
    finally:
        _READ_PHASE.reset(token)


def remembered(key: tuple[Any, ...], compute: Callable[[], T]) -> T:
    """``compute()``, taken once per ``key`` inside a :func:`read_phase` (every time outside one)."""
    memo = _READ_PHASE.get()
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def local_partitions(root: Location, base: Path, prefix: str, marker: str) -> dict[dt.date, Location]:
    """``<prefix>YYYY-MM-DD`` folders of ``base`` (resolved, inside ``root``) holding ``marker``, oldest
    first, each with its path, from one scandir."""
    if not base.is_dir():
        return {}
    found: dict[dt.date, Location] = {}
    with os.scandir(base) as entries:
        for entry in entries:
            if not entry.name.startswith(prefix) or not entry.is_dir():
                continue  # .tmp-/.old- siblings of an in-flight publish are not partitions
            day = parse_date(entry.name[len(prefix):])
            # (is_complete's repair of an interrupted swap acts only on a missing partition: none listed is)
            if day is None or not os.path.isfile(os.path.join(entry.path, marker)):
                continue
            # base is resolved and inside the root; a plain folder in it is too, a link is checked
            found[day] = ensure_inside(root, Path(entry.path)) if entry.is_symlink() else base / entry.name
    return dict(sorted(found.items()))


def local_files(partition: Path) -> list[Path]:
    """Data files of a local partition by name, hidden and marker files (``.``, ``_``) left out.

    One scandir (is_file from the entry, links followed as Path.is_file does): the history's partitions
    are listed for every lookup of a range ingest, and pathlib's stat per file cost more than the reads.
    """
    with os.scandir(partition) as entries:
        names = sorted(e.name for e in entries if not e.name.startswith((".", "_")) and e.is_file())
    return [partition / name for name in names]


def parse_date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None
