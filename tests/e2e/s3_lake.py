"""Put a local lake's landing drops and curated history onto an object store, the way riskline itself writes
them there (one versioned commit per partition, ``lake.staged_partition``), so that a night can run on both
roots from the same inputs and their outputs be compared. Ingest on S3 is tested on its own
(``test_object_store.py``); here it would cost minutes per history that a night test does not need.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from pipelines.config.location import Location
from pipelines.store import lake, zones
from pipelines.vocab import DATASETS


def mirror_partition(source: Path, target: Location) -> None:
    """``source`` (a complete local partition) as a new committed version of ``target``, marker content kept."""
    declared = (source / lake.SUCCESS).read_bytes()
    with lake.staged_partition(target, manifest=declared or None) as tmp:
        for file in lake.parquet_files(source):
            shutil.copyfile(file, tmp / Path(file).name)


def mirror_landing(source: Path, target: Location, dataset: str, day: dt.date) -> None:
    """An upstream drop as upstream writes it on a store: flat files, then its ``_SUCCESS`` (as delivered)."""
    part, dest = zones.landing(source, dataset, day), zones.landing(target, dataset, day)
    if isinstance(dest, Path):
        shutil.copytree(part, dest)
        return
    for file in sorted(part.iterdir()):
        if file.name != lake.SUCCESS:
            dest.fs.put_file(str(file), f"{dest.path}/{file.name}")
    dest.joinpath(lake.SUCCESS).write_bytes((part / lake.SUCCESS).read_bytes())


def mirror_lake(source: Path, target: Location, curated_upto: dt.date, landing_days: list[dt.date]) -> int:
    """Curated (and quarantine) partitions of dates <= ``curated_upto`` and the landing drops of
    ``landing_days``; returns the number of partitions written."""
    count = 0
    for zone in (zones.CURATED_ZONE, zones.QUARANTINE_ZONE):
        for dataset in DATASETS:
            for day, part in lake.complete_partitions(source, zone, dataset).items():
                if day <= curated_upto:
                    mirror_partition(Path(part), lake.partition_dir(target, zone, dataset, day))
                    count += 1
    for day in landing_days:
        for dataset in DATASETS:
            mirror_landing(source, target, dataset, day)
            count += 1
    return count
