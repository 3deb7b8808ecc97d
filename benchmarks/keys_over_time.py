"""Time ingest's lookup of keys already curated on other dates (issue 14, class 2) on a year of history.

Usage: ``.venv/bin/python benchmarks/keys_over_time.py [DAYS] [WORKDIR]`` (default 365, a fresh temporary
folder). Writes DAYS curated partitions of installments (68,000 rows a day: a 1M-account book draws
about 5,700 loans a day, 12 instalments each) and payments (10,600 a day), the volumes the 1M-account
generator lands (docs/contracts.md, Performance), with ids either carrying their date as the generator's
do (``L20261120-0000001-01``) or random (the worst case: no partition can be skipped by its min/max).
Then times, for the next day's drop, ``pipelines.stages.ingest._earlier_rows`` (the lazy lookup) and
``split_redeliveries``: once for a drop of new ids, once for a drop that redelivers an earlier day whole.
Prints one line per case with wall time and the process's peak RSS. A WORKDIR is reused when given again.
"""

from __future__ import annotations

import datetime as dt
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.store import lake
from pipelines.contracts.landing import CONTRACT
from pipelines.stages.ingest import CURATED_FILE, _earlier_rows
from pipelines.domain.conform import split_redeliveries

END = dt.date(2026, 11, 20)
INSTALMENTS_A_DAY = 68_000
PAYMENTS_A_DAY = 10_600


def _ids(prefix: str, day: dt.date, n: int, dated: bool, rng: np.random.Generator) -> pl.Series:
    if dated:
        seq = pl.int_range(n, eager=True).cast(pl.String).str.zfill(7)
        return (f"{prefix}{day:%Y%m%d}-" + seq).alias("id")
    return (prefix + pl.Series(rng.integers(0, 2**62, n)).cast(pl.String).str.zfill(19)).alias("id")


def _installments(day: dt.date, dated: bool, rng: np.random.Generator) -> pl.DataFrame:
    loans = _ids("L", day, INSTALMENTS_A_DAY // 12, dated, rng)
    return pl.DataFrame({"loan_id": loans}).with_columns(
        pl.lit(list(range(1, 13)), dtype=pl.List(pl.Int32)).alias("installment_no"),
    ).explode("installment_no").with_columns(
        pl.format("{}-{}", "loan_id", pl.col("installment_no").cast(pl.String).str.zfill(2)).alias("installment_id"),
        pl.format("A{}", (pl.int_range(pl.len()) // 12 * 7919 % 1_000_000)).alias("account_id"),
        (pl.lit(day) + pl.duration(days=30 * pl.col("installment_no"))).alias("due_date"),
        pl.lit(10_000, dtype=pl.Int64).alias("principal_due_cents"),
        pl.lit(500, dtype=pl.Int64).alias("interest_due_cents"),
    ).select(CONTRACT["installments"].curated_schema().names()).sort("installment_id")


def _payments(day: dt.date, dated: bool, rng: np.random.Generator) -> pl.DataFrame:
    n = PAYMENTS_A_DAY
    return pl.DataFrame({
        "payment_id": _ids("P", day, n, dated, rng),
        "account_id": "A" + pl.int_range(n, eager=True).cast(pl.String),
        "loan_id": "L" + pl.int_range(n, eager=True).cast(pl.String),
        "paid_at": [dt.datetime.combine(day, dt.time(3), dt.UTC)] * n,
        "amount_cents": rng.integers(100, 100_000, n),
    }).sort("payment_id")


def _time(label: str, root: Path, dataset: str, frame: pl.DataFrame, day: dt.date) -> None:
    ds = CONTRACT[dataset]
    start = time.perf_counter()
    earlier = _earlier_rows(root, ds, day, frame, list(ds.key))
    found = split_redeliveries(frame, earlier, ds.key, ds.unit)
    took = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{label:<44} rows={frame.height:>7,} matched={earlier.height:>6,} dropped={found.dropped:>6,} "
          f"conflicts={found.conflicts.height} {took:6.2f} s  peak RSS {rss:,.0f} MiB", flush=True)


def main() -> None:
    days = int(sys.argv[1]) if len(sys.argv) > 1 else 365
    work = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp(prefix="riskline-keys-"))
    rng = np.random.default_rng(7)
    for dated in (True, False):
        root = work / ("dated" if dated else "random")
        history = [END - dt.timedelta(days=days - i) for i in range(days)]
        start = time.perf_counter()
        kept = {}
        for day in history:
            for name, make in (("installments", _installments), ("payments", _payments)):
                part = lake.partition_dir(root, "curated", name, day)
                if lake.is_complete(part):  # a WORKDIR from an earlier run is reused
                    frame = lake.read_partition(part)
                else:
                    frame = make(day, dated, rng)
                    lake.publish_frames(part, {CURATED_FILE: frame})
                if day == history[len(history) // 2]:
                    kept[name] = frame
        print(f"{'dated' if dated else 'random'} ids: wrote {days} days in {time.perf_counter() - start:.0f} s",
              flush=True)
        kind = "dated ids" if dated else "random ids"
        for name, make in (("installments", _installments), ("payments", _payments)):
            _time(f"{name}, {kind}, new drop", root, name, make(END, dated, rng), END)
            _time(f"{name}, {kind}, a day {days // 2} days back redelivered", root, name, kept[name], END)


if __name__ == "__main__":
    main()
