"""A range ingest validates in one GX pass per dataset and still gives every date what it gets alone.

``riskline ingest --from --to`` judges the row rules of a chunk of dates in one GX run per dataset
(``range_pass.RangeValidation``) and builds a clean date's results from a GX-made template instead of
running GX per date. The proof that this changes nothing: the same range, with every generator fault on
its own date (quarantined rows, schema drift, critical failures, undelivered drops) and clean dates
before them, ingested as one range and date by date in separate commands, gives the same validation JSON
and the same curated and quarantine files, byte for byte, and the same dates fail.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import polars as pl

from pipelines.entry import cli
from pipelines.store import lake
from pipelines.quality import range_pass
from pipelines.contracts.landing import DATASETS

CLEAN_BEFORE = 6  # dates ingested before the fault dates (their seeded curated history is removed)
CRITICAL, QUARANTINED = 1, 2  # of those, the dates (days after the first) given bad behaviour rows
LATE_PAID = CLEAN_BEFORE - 1  # a clean-looking date whose first payment was made before the late window


def _digests(root: Path, *zones: str) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for zone in zones for p in sorted((root / zone).rglob("*")) if p.is_file()}


def _lake(seeded: Path, target: Path, first: dt.date, late_days: int) -> Path:
    shutil.copytree(seeded, target)
    for name in DATASETS:  # these dates are ingested by the test, not seeded
        for day in lake.complete_partition_dates(target, "curated", name):
            if day >= first:
                lake.remove_partition(lake.partition_dir(target, "curated", name, day))
    for offset, rows in ((CRITICAL, 50), (QUARANTINED, 2)):  # more than quarantine tolerates; a few
        part = lake.partition_dir(target, "landing", "behaviour", first + dt.timedelta(days=offset))
        frame = pl.read_parquet(lake.parquet_files(part))
        lake.publish_frames(part, {"part-00000.parquet": frame.with_columns(
            pl.when(pl.int_range(pl.len()) < rows).then(None).otherwise(pl.col("account_id")).alias("account_id"))})
    # A rule bound to a date-dependent parameter other than the business day's (late_window_start_utc):
    # judged on the range's first date's bounds, this payment (2 days before its own date's late window,
    # inside the first date's) would look clean.
    part = lake.partition_dir(target, "landing", "payments", first + dt.timedelta(days=LATE_PAID))
    frame = pl.read_parquet(lake.parquet_files(part))
    assert frame.height > 1
    lake.publish_frames(part, {"part-00000.parquet": frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.col("paid_at") - dt.timedelta(days=late_days + 2))
        .otherwise(pl.col("paid_at")).alias("paid_at"))})
    return target


def test_a_range_gives_each_date_the_bytes_and_verdict_it_gets_alone(
    seeded_lake, calendar, quiet_cfg, tmp_path, monkeypatch
):
    monkeypatch.setattr(cli, "load_config", lambda path=None: quiet_cfg)
    # the clean dates, then the faults that quarantine rows (the later ones fail before validation)
    first, last = calendar.clean_day - dt.timedelta(days=CLEAN_BEFORE), calendar.fault_days["unknown_loans"]
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    zones = ("validation", "curated", "quarantine")
    taken: list[tuple[str, dt.date]] = []
    built = range_pass.RangeValidation.report_for

    def counted(self, dataset, day, *args):
        report = built(self, dataset, day, *args)
        if report is not None:
            taken.append((dataset, day))
        return report

    monkeypatch.setattr(range_pass.RangeValidation, "report_for", counted)
    alone = _lake(seeded_lake, tmp_path / "alone", first, quiet_cfg.ingest.payment_late_days)
    failed_alone = [d for d in days
                    if cli.main(["--data-root", str(alone), "ingest", "--date", d.isoformat()]) != 0]
    assert not taken  # a single date never goes through the range pass
    ranged = _lake(seeded_lake, tmp_path / "range", first, quiet_cfg.ingest.payment_late_days)
    assert cli.main(["--data-root", str(ranged), "ingest", "--from-date", first.isoformat(),
                     "--to-date", last.isoformat(), "--keep-going"]) == 1
    assert _digests(ranged, *zones) == _digests(alone, *zones)
    failed_range = [d for d in days if (ranged / "validation" / f"dt={d}").exists()
                    and not lake.is_complete(lake.partition_dir(ranged, "curated", "accounts", d))]
    assert failed_range == failed_alone == [first + dt.timedelta(days=CRITICAL)]
    # The range pass did the work for clean dataset-dates, and the faulty ones went through GX alone.
    assert len(taken) >= 8
    assert {d for d in DATASETS if any(name == d for name, _ in taken)} == set(DATASETS)  # payments too
    for dataset, day in taken:  # only a dataset-date where every rule passed is built, never a faulty one
        result = json.loads((ranged / "validation" / f"dt={day}" / f"{dataset}.json").read_text())
        assert result["ok"] and not result["quarantined_rows"]
        assert {o["outcome"] for o in result["outcomes"]} <= {"passed", "skipped"}
    quarantined = first + dt.timedelta(days=QUARANTINED)
    assert any(name.startswith(f"quarantine/behaviour/dt={quarantined}") for name in _digests(ranged, "quarantine"))
    late = json.loads((ranged / "validation" / f"dt={first + dt.timedelta(days=LATE_PAID)}" / "payments.json").read_text())
    assert [o["unexpected_count"] for o in late["outcomes"] if o["rule"] == "paid_at_before_late_window"] == [1]
