"""Publish the four outputs of one night on S3, SIGKILLing this process before its (k+1)-th S3 request.

Usage: ``s3_publish_outputs_child.py ROOT_URL DATE VALUE KILL_AFTER TRACE`` (``KILL_AFTER`` -1: never). As in
``s3_publish_child.py``, botocore's own ``before-send`` event names every real request (operation and key)
in ``TRACE`` and kills
the process before the chosen one (the publish lock's requests are neither counted nor killed before). The publish lock's lease is 2 s here, so that the parent's recovery after
a kill does not wait the production minute for the dead holder's lease to run out.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import polars as pl

from pipelines.config.location import as_location
from pipelines.contracts.outputs import OUTPUTS
from pipelines.store import locks, publish

LEASE_SECONDS = 2.0


def frames(value: int) -> dict[str, pl.DataFrame]:
    """One frame per output whose rows all say ``value``: a reader can tell one night's outputs from a mix."""
    return {name: pl.DataFrame({"output": [name] * (i + 2), "v": [value] * (i + 2)}) for i, name in enumerate(OUTPUTS)}


def main() -> None:
    root, day = as_location(sys.argv[1]), dt.date.fromisoformat(sys.argv[2])
    value, kill_after, trace = int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5])
    locks.LEASE_SECONDS = LEASE_SECONDS
    fs = root.fs
    fs.connect()
    sent = 0

    def before_send(event_name: str, request: Any = None, **_: Any) -> None:
        nonlocal sent
        key = unquote(urlsplit(request.url).path) if request is not None else ""
        if "/_locks/" in key:  # the lease's renewals come from a timer: counting them would move the points
            return
        if 0 <= kill_after <= sent:
            os.kill(os.getpid(), signal.SIGKILL)
        sent += 1
        with trace.open("a") as fh:
            fh.write(f"{event_name.removeprefix('before-send.s3.')} {key}\n")

    fs.s3.meta.events.register("before-send.s3", before_send)
    publish.publish_outputs(root, day, frames(value), {"value": value})


if __name__ == "__main__":
    main()
