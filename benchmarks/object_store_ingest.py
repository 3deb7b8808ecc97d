"""Time generate + ingest of one book on a local folder and on S3 (moto's server on 127.0.0.1).

Usage: ``.venv/bin/python benchmarks/object_store_ingest.py [ACCOUNTS] [WORKDIR]`` (default 100000,
a fresh temporary folder). Generates 8 days ending 2026-06-30 into each root, ingests the first 7 (the
validation history), then times the ingest of the 8th: one night's ingest and validation. The S3 server
runs in this process, so its own CPU competes with riskline's on a small machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

STEPS = (
    ["generate", "--days", "8", "--end-date", "2026-06-30"],
    ["ingest", "--from-date", "2026-06-23", "--to-date", "2026-06-29"],
    ["ingest", "--date", "2026-06-30"],
)


def main() -> None:
    accounts = sys.argv[1] if len(sys.argv) > 1 else "100000"
    made = len(sys.argv) <= 2
    work = Path(tempfile.mkdtemp(prefix="riskline-s3bench-")) if made else Path(sys.argv[2])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    key_id, key = "bench", uuid.uuid4().hex
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": key_id,
           "AWS_SECRET_ACCESS_KEY": key, "AWS_DEFAULT_REGION": "us-east-1"}
    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                 aws_access_key_id=key_id, aws_secret_access_key=key).create_bucket(Bucket="bench-lake")
    cli = Path(sys.executable).with_name("riskline")
    try:
        for root in (str(work / "local"), "s3://bench-lake/riskline"):
            for step in STEPS:
                cmd = [step[0], "--accounts", accounts, *step[1:]] if step[0] == "generate" else step
                start = time.perf_counter()
                proc = subprocess.run(["/usr/bin/time", "-f", "%M", str(cli), "--data-root", root, *cmd],
                                      env=env, capture_output=True, text=True)
                seconds = time.perf_counter() - start
                if proc.returncode != 0:
                    raise SystemExit(f"{root} {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
                rss_mib = int(proc.stderr.strip().splitlines()[-1]) / 1024
                print(f"{root:28s} {' '.join(cmd[:3]):36s} {seconds:6.1f} s  peak RSS {rss_mib:5.0f} MiB", flush=True)
    finally:
        server.stop()
        if made:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
