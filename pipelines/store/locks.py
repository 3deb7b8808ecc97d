"""The one file lock: an exclusive ``flock`` held for a block (a night's date, publishing, the registry,
preparing a dry run's copy of the lake). Local data roots only, like every lock here."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.store.lake import make_dirs


class LockHeld(RuntimeError):
    """A non-blocking :func:`file_lock` found the lock taken."""


@contextmanager
def file_lock(path: Path, blocking: bool = True) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created, with its folder) for the block: the one file lock.

    With ``blocking=False`` a lock held elsewhere raises :class:`LockHeld` at once instead of waiting.
    """
    make_dirs(path.parent)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockHeld(str(path)) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
