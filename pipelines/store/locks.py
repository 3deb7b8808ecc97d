"""The one lock: held for a block (a night's date, publishing, the registry, preparing a dry run's copy).

On a local data root it is an exclusive ``flock`` (the kernel frees it when the holder dies). On an object
store there is no ``flock`` and no shared disk between the machines of a night, so the lock is an object
created with a conditional PUT (``If-None-Match: *``: exactly one of two racing writers succeeds). Such an
object outlives a holder that dies, so it is a *lease*: it names its owner and when it expires, the holder
renews it every ``LEASE_SECONDS / 4`` from a thread (a conditional PUT on its own ETag; a failed request is
retried until three quarters of the lease are gone), and a waiter takes over an expired lease with a
conditional PUT on the ETag it read (again, one of two racing waiters wins). A holder whose lease could not be
renewed raises :class:`LockLost` when its block ends, so the run fails rather than pass as if it had been
alone. Leases compare wall clocks across machines: keep them synchronised (NTP) to well under a minute.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipelines.config.location import Location, is_remote
from pipelines.store.lake import make_dirs

# How long a lock object outlives a holder that stopped renewing it (killed, partitioned away). Long enough
# that a stalled renewal (a slow S3 request, a GC pause) never lets two holders in; short enough that a night
# after a crash waits at most this long. A protocol constant, like the commit format, not a tunable.
LEASE_SECONDS = 60.0
_POLL_SECONDS = 0.5


class LockHeld(RuntimeError):
    """A non-blocking :func:`file_lock` found the lock taken."""


class LockLost(RuntimeError):
    """An object-store lease could not be renewed in time (or was taken over); the block it guarded failed."""


@contextmanager
def file_lock(path: Location, blocking: bool = True) -> Iterator[None]:
    """Hold the lock ``path`` for the block: a ``flock`` on a local file, a leased object on an object store.

    With ``blocking=False`` a lock held elsewhere raises :class:`LockHeld` at once instead of waiting.
    """
    if is_remote(path):
        with _object_lock(path, blocking):
            yield
        return
    assert isinstance(path, Path)
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


def is_held(path: Location) -> bool:
    """Whether someone holds the lock ``path`` now, found without taking it (a probe that took it, even for a
    moment, could make a run starting at that instant refuse as "already in progress").

    Local: the kernel's table of ``flock`` locks (``/proc/locks``) names the lock file's inode; where that table
    is not readable (not Linux) it answers False. Object store: an unexpired lease object exists. A reader that
    only words an error message uses it; nothing may rely on it for exclusion (the answer can change at once).
    """
    if is_remote(path):
        got = _S3Object(path).read()
        return got is not None and not _expired(got[0])
    assert isinstance(path, Path)
    try:
        st = path.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return False
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return any(line.split()[1:2] == ["FLOCK"] and device in line.split() for line in table.splitlines())


# --- the object-store lease ------------------------------------------------------------------------


def _lease_body(owner: str) -> bytes:
    now = dt.datetime.now(dt.UTC)
    return json.dumps({
        "owner": owner, "host": socket.gethostname(), "pid": os.getpid(),
        "renewed_at": now.isoformat(), "expires_at": (now + dt.timedelta(seconds=LEASE_SECONDS)).isoformat(),
    }, sort_keys=True).encode()


class _S3Object:
    """Conditional writes on one S3 key (``If-None-Match`` / ``If-Match``, supported by S3 since 2024)."""

    def __init__(self, path: Any) -> None:
        if path.protocol not in ("s3", "s3a"):
            raise NotImplementedError(
                f"locks on {path.protocol}:// need conditional writes riskline does not drive yet; use an s3:// "
                "data root, or a local one"
            )
        self.fs = path.fs
        self.bucket, _, self.key = path.path.partition("/")

    def create(self, body: bytes) -> str | None:
        """Put ``body`` if no object is there; its ETag, or None when one is."""
        try:
            return self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.key, Body=body, IfNoneMatch="*")["ETag"]
        except FileExistsError:
            return None

    def replace(self, body: bytes, etag: str) -> str | None:
        """Put ``body`` if the object is still ``etag``; the new ETag, or None when it changed (or is gone).

        Any other failure (a timeout, a 503) raises: it says nothing about who holds the lock.
        """
        try:
            return self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.key, Body=body, IfMatch=etag)["ETag"]
        except FileNotFoundError:
            return None
        except OSError as exc:
            if "pre-condition" in str(exc).lower() or "precondition" in str(exc).lower():
                return None
            raise

    def read(self) -> tuple[dict[str, Any], str] | None:
        try:
            got = self.fs.call_s3("get_object", Bucket=self.bucket, Key=self.key)
        except FileNotFoundError:
            return None
        data = _read_stream(self.fs, got["Body"])  # an aiobotocore stream: read on s3fs's event loop
        try:
            return json.loads(data), got["ETag"]
        except ValueError:
            return {}, got["ETag"]  # not a lease riskline wrote: treated as expired (below)

    def delete(self, etag: str) -> None:
        try:
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.key, IfMatch=etag)
        except (FileNotFoundError, OSError):
            pass  # taken over after it expired, or already gone: not ours to delete


def _read_stream(fs: Any, stream: Any) -> bytes:
    from fsspec.asyn import sync

    async def read() -> bytes:
        async with stream:
            return await stream.read()

    return sync(fs.loop, read)


def _expired(lease: dict[str, Any]) -> bool:
    try:
        return dt.datetime.fromisoformat(lease["expires_at"]) < dt.datetime.now(dt.UTC)
    except (KeyError, TypeError, ValueError):
        return True


@contextmanager
def _object_lock(path: Any, blocking: bool) -> Iterator[None]:
    obj, owner = _S3Object(path), uuid.uuid4().hex
    etag = None
    while etag is None:
        etag = obj.create(_lease_body(owner))
        if etag is not None:
            break
        found = obj.read()
        if found is not None and _expired(found[0]):
            etag = obj.replace(_lease_body(owner), found[1])  # the holder died; one waiter takes its place
            if etag is not None:
                break
        if not blocking:
            raise LockHeld(str(path))
        time.sleep(_POLL_SECONDS)
    held: dict[str, Any] = {"etag": etag, "lost": None}
    stop = threading.Event()

    def renew() -> None:
        renewed = time.monotonic()
        while not stop.wait(LEASE_SECONDS / 4 if time.monotonic() - renewed < LEASE_SECONDS / 4 else _POLL_SECONDS):
            try:
                new = obj.replace(_lease_body(owner), held["etag"])
            except OSError as exc:  # transient: try again until the lease would run out
                if time.monotonic() - renewed < LEASE_SECONDS * 0.75:
                    continue
                held["lost"] = f"its renewals failed for {LEASE_SECONDS * 0.75:.0f} s ({exc})"
                return
            if new is None:
                held["lost"] = "another holder took it over after it expired"
                return
            held["etag"], renewed = new, time.monotonic()

    renewer = threading.Thread(target=renew, name=f"lease:{path}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        if not held["lost"]:
            obj.delete(held["etag"])
    if held["lost"]:  # never silent: what ran under the lock may have overlapped another holder
        raise LockLost(f"the lock {path} was lost while held: {held['lost']}. What ran under it may have "
                       "overlapped another run: check that no other run is in progress, then rerun the same command")
