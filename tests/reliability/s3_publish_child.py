"""Publish one curated partition on S3, SIGKILLing this process before its (k+1)-th S3 request.

Usage: ``s3_publish_child.py ROOT_URL VALUE KILL_AFTER TRACE`` (``KILL_AFTER`` -1: never). Every request
riskline makes (through s3fs and botocore) is named in ``TRACE`` as it is sent, so a run with -1 lists the
kill points. The hook is botocore's own ``before-send`` event: the requests themselves are real.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.config.location import as_location
from pipelines.store import lake

DAY = dt.date(2026, 1, 31)


def frames(value: int) -> dict[str, pl.DataFrame]:
    """Three files whose rows all say ``value``: a reader can tell one version from a mix."""
    return {f"part-{i}.parquet": pl.DataFrame({"x": [value] * (i + 1)}) for i in range(3)}


def main() -> None:
    root, value, kill_after, trace = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    location = as_location(root)
    fs = location.fs
    fs.connect()
    sent = 0

    def before_send(event_name: str, **_: Any) -> None:
        nonlocal sent
        if 0 <= kill_after <= sent:
            os.kill(os.getpid(), signal.SIGKILL)
        sent += 1
        with trace.open("a") as fh:
            fh.write(event_name.removeprefix("before-send.s3.") + "\n")

    fs.s3.meta.events.register("before-send.s3", before_send)
    lake.publish_frames(lake.partition_dir(location, "curated", "payments", DAY), frames(value))


if __name__ == "__main__":
    main()
