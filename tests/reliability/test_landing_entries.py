"""Every entry of a landing partition is read, ignored on purpose, or stops the ingest (issue 14, class 3).

A file in a subfolder, a dangling link, a hidden or unknown marker file used to be skipped silently: the drop
validated with the rows it happened to read (0 when everything sat in a subfolder). Now each is a critical
one-line error naming the entry, and nothing of the date is curated. What Spark/Hadoop writers leave beside
their data (``_committed_*``, ``.crc`` checksums) is ignored on purpose and counted.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from small_drops import DAY, behaviour, dangling_link, land, land_all, lenient
from upath import UPath

from pipelines import errors
from pipelines.config.location import as_location
from pipelines.stages import ingest
from pipelines.store import lake

Tamper = Callable[[Path], None]


def _behaviour_part(root: Path) -> Path:
    return root / "landing" / "behaviour" / f"dt={DAY.isoformat()}"


def _nested(part: Path) -> None:
    (part / "batch=1").mkdir()
    behaviour().write_parquet(part / "batch=1" / "part-00000.parquet")


def _temporary(part: Path) -> None:
    (part / "_temporary" / "0").mkdir(parents=True)
    behaviour().write_parquet(part / "_temporary" / "0" / "part-00001.parquet")


CASES: dict[str, tuple[str, Tamper]] = {
    "subfolder": ("batch=1", _nested),
    "dangling_link": ("part-00001.parquet", lambda part: dangling_link(part, "part-00001.parquet")),
    "hidden_data_file": (".part-00001.parquet", lambda part: behaviour().write_parquet(part / ".part-00001.parquet")),
    "unknown_marker": ("_manifest.json", lambda part: (part / "_manifest.json").write_text("{}")),
    "spark_temporary": ("_temporary", _temporary),
    "fifo": ("pipe", lambda part: __import__("os").mkfifo(part / "pipe")),
}


@pytest.mark.parametrize("only_entry", [False, True], ids=["beside_data", "instead_of_data"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_an_entry_that_is_not_read_stops_the_ingest_naming_it(tmp_path: Path, cfg, case: str, only_entry: bool):
    entry, tamper = CASES[case]
    land_all(tmp_path, behaviour={} if only_entry else {"part-00000.parquet": behaviour()})
    tamper(_behaviour_part(tmp_path))
    with pytest.raises(errors.IngestError) as err:
        ingest.ingest_date(tmp_path, DAY, lenient(cfg))
    text = str(err.value)
    assert err.value.dataset == "behaviour" and err.value.file == entry, text
    assert f"behaviour dt={DAY.isoformat()} file={entry}:" in text and " -> " in text and "\n" not in text
    assert not (tmp_path / "curated").exists()  # all or nothing: no dataset of the date was curated


def test_what_a_spark_writer_leaves_is_read_or_ignored_on_purpose(tmp_path: Path, cfg):
    data = f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
    part = land(tmp_path, "behaviour", {data: behaviour(), f".{data}.crc": b"crc", "._SUCCESS.crc": b"crc",
                                        "_committed_6781": b'{"added":[]}', "_started_6781": b""})
    land_all(tmp_path, behaviour={})
    (part / lake.SUCCESS).touch()
    results = {r.dataset: r for r in ingest.ingest_date(tmp_path, DAY, lenient(cfg))}
    got = results["behaviour"]
    assert (got.files, got.rows_in, got.rows_curated) == (1, 3, 3)
    assert sorted(got.side_files) == sorted([f".{data}.crc", "._SUCCESS.crc", "_committed_6781", "_started_6781"])
    assert "side_files_ignored=4" in got.describe()


@pytest.fixture()
def memory_root() -> Iterator[UPath]:
    root = as_location(f"memory://riskline-{uuid.uuid4().hex}/lake")
    assert isinstance(root, UPath)
    yield root
    if root.exists():
        root.fs.rm(root.path, recursive=True)


@pytest.mark.parametrize("commit", ["plain_success", "riskline_commit"])
def test_on_an_object_store_a_nested_file_stops_the_ingest(memory_root: UPath, tmp_path: Path, cfg, commit: str):
    part = lake.partition_dir(memory_root, "landing", "behaviour", DAY)
    local = tmp_path / "b.parquet"
    behaviour().write_parquet(local)
    if commit == "plain_success":  # upstream wrote keys itself: a "folder" is a common prefix
        memory_root.fs.put_file(str(local), f"{part.path}/part-00000.parquet")
        memory_root.fs.put_file(str(local), f"{part.path}/batch=1/part-00000.parquet")
        part.joinpath(lake.SUCCESS).write_bytes(b"")
        entry = "batch=1"
    else:  # a riskline commit naming a nested file
        memory_root.fs.put_file(str(local), f"{part.path}/_v=1/part-00000.parquet")
        memory_root.fs.put_file(str(local), f"{part.path}/_v=1/batch=1/part-00000.parquet")
        marker = {"format": "riskline-partition/1", "version": "1", "prefix": "_v=1",
                  "files": ["batch=1/part-00000.parquet", "part-00000.parquet"]}
        part.joinpath(lake.SUCCESS).write_bytes(json.dumps(marker).encode())
        entry = "batch=1/part-00000.parquet"
    with pytest.raises(errors.IngestError) as err:
        ingest.ingest_date(memory_root, DAY, lenient(cfg), datasets=["behaviour"])
    assert err.value.file == entry and "flat files" in str(err.value), str(err.value)
