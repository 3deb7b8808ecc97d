"""The lock on an object store (``locks.file_lock`` on an ``s3://`` path): a lease object created with a
conditional PUT, renewed while held, taken over only once its holder stopped renewing it. Against moto's S3
server (fixture ``s3_root``), with real conditional requests."""

from __future__ import annotations

import json
import threading
import time

import pytest

from pipelines.config.location import as_location
from pipelines.store import lake, locks


@pytest.fixture()
def short_lease(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(locks, "LEASE_SECONDS", 1.0)
    return 1.0


def test_one_holder_at_a_time_and_a_live_holder_keeps_its_lease(s3_root: str, short_lease: float):
    path = as_location(f"{s3_root}/_locks/publish.lock")
    with locks.file_lock(path):
        lease = json.loads(lake.read_bytes(path))
        assert {"owner", "host", "pid", "expires_at"} <= set(lease)
        with pytest.raises(locks.LockHeld):
            with locks.file_lock(path, blocking=False):
                pass
        time.sleep(3 * short_lease)  # three leases long: renewed all along, so still held
        with pytest.raises(locks.LockHeld):
            with locks.file_lock(path, blocking=False):
                pass
    assert lake.read_bytes(path) is None  # released
    with locks.file_lock(path, blocking=False):
        pass


def test_racing_writers_never_hold_it_together(s3_root: str, short_lease: float):
    path = as_location(f"{s3_root}/_locks/run-2026-01-01.lock")
    inside, most, errors = [0], [0], []
    guard = threading.Lock()

    def worker() -> None:
        try:
            for _ in range(3):
                with locks.file_lock(path):
                    with guard:
                        inside[0] += 1
                        most[0] = max(most[0], inside[0])
                    time.sleep(0.05)
                    with guard:
                        inside[0] -= 1
        except Exception as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and most[0] == 1


def test_a_dead_holders_lease_is_taken_over_once_it_expires(s3_root: str, short_lease: float):
    path = as_location(f"{s3_root}/_locks/registry.lock")
    # what a killed holder leaves: its lease, no longer renewed
    lake.atomic_write_bytes(path, json.dumps({"owner": "dead", "expires_at": "2026-01-01T00:00:00+00:00"}).encode())
    with locks.file_lock(path, blocking=False):
        assert json.loads(lake.read_bytes(path))["owner"] != "dead"
    # a live one (expiring in the future) is not taken over
    future = json.dumps({"owner": "alive", "expires_at": "2999-01-01T00:00:00+00:00"}).encode()
    lake.atomic_write_bytes(path, future)
    with pytest.raises(locks.LockHeld):
        with locks.file_lock(path, blocking=False):
            pass
    assert lake.read_bytes(path) == future  # and the waiter never deleted it


def test_stores_without_conditional_writes_are_refused_clearly():
    with pytest.raises(NotImplementedError, match="use an s3:// data root, or a local one"):
        with locks.file_lock(as_location("memory://locks/_locks/x.lock")):
            pass


def test_a_failed_renewal_is_retried_and_a_lost_lease_fails_the_holder(s3_root: str, short_lease: float, monkeypatch):
    path = as_location(f"{s3_root}/_locks/publish.lock")
    real = locks._S3Object.replace
    failures = [1]

    def flaky(self, body, etag):  # one renewal meets a 503, as S3 answers now and then
        if failures[0]:
            failures[0] -= 1
            raise OSError("503 SlowDown")
        return real(self, body, etag)

    monkeypatch.setattr(locks._S3Object, "replace", flaky)
    with locks.file_lock(path):
        time.sleep(3 * short_lease)
        assert failures == [0]
        with pytest.raises(locks.LockHeld):  # retried: still ours, nobody else got in
            with locks.file_lock(path, blocking=False):
                pass
    # a holder whose lease was taken over (renewals failing for the whole lease) learns it when its block ends
    monkeypatch.setattr(locks._S3Object, "replace", lambda self, body, etag: (_ for _ in ()).throw(OSError("down")))
    with pytest.raises(locks.LockLost, match="was lost while held"):
        with locks.file_lock(path):
            time.sleep(2 * short_lease)
