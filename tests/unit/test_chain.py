"""The chain rule (pipelines/store/chain.py) on hand-made lakes: decisions partitions and manifests only."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from pipelines.store import chain, lake, publish, zones

D = dt.date(2026, 11, 20)
DAY = dt.timedelta(days=1)


def _night(root: Path, day: dt.date, limit: int = 1000, published: bool = True) -> None:
    """A night's decisions partition (its limit history) and, if published, a manifest recording its link."""
    history = pl.DataFrame({"account_id": ["a1"], "limit": [limit]})
    record = chain.check_chain(root, day, force=True)
    lake.publish_frames(lake.derived_partition(root, "decisions", day), {zones.LIMIT_HISTORY_FILE: history})
    chain.save_chain_record(root, day, record)
    if published:
        lake.atomic_write_bytes(publish.manifest_path(root, day),
                                publish.canonical_json({"inputs": {"chain": record.to_dict()}}))


def test_the_first_night_and_the_next_one_run(tmp_path: Path):
    # no night at all before D: the first night of a lake needs nothing
    assert chain.check_chain(tmp_path, D) == chain.ChainRecord(None, None)
    _night(tmp_path, D)
    record = chain.check_chain(tmp_path, D + DAY)
    assert record.previous_night == D.isoformat() and not record.forced
    assert record.previous_limit_history_sha256 == chain.limit_history_sha256(tmp_path, D)


@pytest.mark.parametrize(
    ("nights", "run", "why"),
    [
        # D+1 never ran: D+2 would read D's history as if D+1 had not happened
        ([D], D + 2 * DAY, f"its previous night {D + DAY} has not run"),
        # a backfill of D-1 after D ran: D decided without D-1's history
        ([D], D - DAY, "later nights already ran"),
        ([D, D + DAY], D - 3 * DAY, "later nights already ran"),
    ],
)
def test_an_out_of_order_night_is_refused_unless_forced(tmp_path: Path, nights, run, why):
    for night in nights:
        _night(tmp_path, night)
    with pytest.raises(chain.ChainError, match=why) as err:
        chain.check_chain(tmp_path, run)
    assert "--force-chain" in str(err.value)
    forced = chain.check_chain(tmp_path, run, force=True)
    assert forced.forced and any(why in w for w in forced.waived)


def test_a_rerun_on_the_same_previous_night_is_allowed_and_marks_nothing(tmp_path: Path):
    for night in (D, D + DAY, D + 2 * DAY):
        _night(tmp_path, night)
    # D+1's manifest names D with the history D holds now: a rerun of D+1 is not out of order in effect
    assert not chain.check_chain(tmp_path, D + DAY).forced
    assert chain.after_publish(tmp_path, D + DAY) == []
    # once D's history changes (a rerun of D with other inputs), D+1 is no longer a rerun in place
    _night(tmp_path, D, limit=500)
    assert chain.after_publish(tmp_path, D) == [D + DAY, D + 2 * DAY]
    assert sorted(chain.stale_nights(tmp_path)) == [D + DAY, D + 2 * DAY]


def test_stale_nights_rebuild_forward_in_order(tmp_path: Path):
    for night in (D, D + DAY, D + 2 * DAY):
        _night(tmp_path, night)
    chain.mark_stale(tmp_path, [D + DAY, D + 2 * DAY], "late data")
    # D+2 reads a stale night: refused; D+1 itself is stale: its rerun is the repair and is allowed
    with pytest.raises(chain.ChainError, match=f"previous night {D + DAY} is stale"):
        chain.check_chain(tmp_path, D + 2 * DAY)
    _night(tmp_path, D + DAY, limit=700)
    chain.after_publish(tmp_path, D + DAY)
    assert list(chain.stale_nights(tmp_path)) == [D + 2 * DAY]
    assert not chain.check_chain(tmp_path, D + 2 * DAY).forced
    _night(tmp_path, D + 2 * DAY, limit=700)
    chain.after_publish(tmp_path, D + 2 * DAY)
    assert chain.stale_nights(tmp_path) == {}


def test_every_rebuild_hint_starts_at_the_earliest_stale_night(tmp_path: Path):
    # Review of stop 28, F8: late data for D+1 leaves D+1 and D+2 stale; _LATEST.json (and `riskline
    # summary`) for D+2 said `rebuild --from D+2`, which stops at once: its previous night D+1 is stale.
    for night in (D, D + DAY, D + 2 * DAY):
        _night(tmp_path, night)
    lake.atomic_write_bytes(tmp_path / "outputs" / "_LATEST", f"{D + 2 * DAY}\n".encode())
    chain.mark_stale(tmp_path, [D + DAY, D + 2 * DAY], "late data")
    status = json.loads((tmp_path / "outputs" / chain.LATEST_STATUS).read_text())
    assert status["as_of_date"] == (D + 2 * DAY).isoformat() and status["stale"]
    assert f"`riskline rebuild --from {D + DAY}`" in status["rebuild"], status["rebuild"]
    assert f"business dates {D + DAY}..{D + 2 * DAY}" in status["rebuild"]
    assert chain.night_status(tmp_path, D + 2 * DAY)["rebuild"] == status["rebuild"]
    # D itself is not stale: the run of stale nights starts at D+1, from whichever of them it is asked
    assert chain.rebuild_start(tmp_path, D + 2 * DAY) == chain.rebuild_start(tmp_path, D + DAY) == D + DAY
    with pytest.raises(chain.ChainError, match=f"rebuild from it first: `riskline rebuild --from {D + DAY}`"):
        chain.check_chain(tmp_path, D + 3 * DAY)  # its previous night D+2 is stale, and so is D+2's


def test_reingest_marks_only_published_nights_that_read_the_date(tmp_path: Path):
    for night in (D, D + DAY):
        _night(tmp_path, night)
    part = lake.partition_dir(tmp_path, "curated", "payments", D)
    lake.publish_frames(part, {"part-0.parquet": pl.DataFrame({"payment_id": ["p1"]})})
    before = {"payments": chain.curated_digest(tmp_path, "payments", D)}
    lake.publish_frames(part, {"part-0.parquet": pl.DataFrame({"payment_id": ["p1"]})})
    assert chain.after_ingest(tmp_path, D, before) == []  # same bytes: nothing is stale
    lake.publish_frames(part, {"part-0.parquet": pl.DataFrame({"payment_id": ["p1", "p2"]})})
    assert chain.after_ingest(tmp_path, D, before) == [D, D + DAY]
    reason = json.loads((tmp_path / "outputs" / "_stale" / f"as_of_date={D + DAY}.json").read_text())["reason"]
    assert f"payments dt={D}" in reason


def test_the_chain_leaves_a_night_before_the_books_first_date_to_its_ingest(tmp_path: Path):
    # New-user review: a run before the book's first date was sent to `rebuild --from <that date>
    # --force-chain`, which then said to pick another date and still named the first one. Its ingest says
    # at once that nothing will come for it; the chain stays out of the way.
    first = D - 10 * DAY
    lake.publish_frames(zones.landing(tmp_path, "accounts", first), {"part-0.parquet": pl.DataFrame({"a": [1]})})
    _night(tmp_path, D)
    assert chain.check_chain(tmp_path, first - DAY) == chain.ChainRecord(None, None)
    with pytest.raises(chain.ChainError, match="later nights already ran"):
        chain.check_chain(tmp_path, first)


def test_a_night_whose_drops_were_purged_once_curated_is_no_night_before_the_book(tmp_path: Path):
    # Review 28R, N6: upstream purges drops once ingested (retention). With the drops of D-10..D+1 gone and
    # D+2's still there, the chain took D+2 for the book's first date: a rerun of D+1 read as "before the
    # book", recorded no previous night (its manifest no longer the same bytes), and a backfill of D-1 after
    # D and D+1 ran was let through unchecked.
    first = D - 10 * DAY
    lake.publish_frames(zones.curated(tmp_path, "accounts", first), {"part-0.parquet": pl.DataFrame({"a": [1]})})
    lake.publish_frames(zones.landing(tmp_path, "accounts", D + 2 * DAY), {"part-0.parquet": pl.DataFrame({"a": [1]})})
    for night in (D, D + DAY):
        _night(tmp_path, night)
    rerun = chain.check_chain(tmp_path, D + DAY)
    assert rerun.previous_night == D.isoformat() and not rerun.forced
    assert rerun.previous_limit_history_sha256 == chain.limit_history_sha256(tmp_path, D)
    with pytest.raises(chain.ChainError, match="later nights already ran"):
        chain.check_chain(tmp_path, D - DAY)
    assert chain.check_chain(tmp_path, first - DAY) == chain.ChainRecord(None, None)  # still before the book


def test_a_curated_digest_is_kept_per_partition_version_and_never_outlives_a_republish(tmp_path: Path, monkeypatch):
    day = dt.date(2026, 3, 1)
    part = zones.curated(tmp_path, "payments", day)
    lake.publish_frames(part, {"part-0.parquet": pl.DataFrame({"payment_id": ["P1", "P2"]})})
    first = chain.curated_digest(tmp_path, "payments", day)
    chain.save_digest_cache(tmp_path)
    chain._CACHES.clear()  # as a new process: the digest comes from the cache file, nothing is hashed

    def no_hashing(path):
        raise AssertionError(f"{path} hashed again")

    monkeypatch.setattr(lake, "file_sha256", no_hashing)
    assert chain.curated_digest(tmp_path, "payments", day) == first
    monkeypatch.undo()
    # republished with other content: new files, new stats, a new digest
    lake.publish_frames(part, {"part-0.parquet": pl.DataFrame({"payment_id": ["P1", "P3"]})})
    second = chain.curated_digest(tmp_path, "payments", day)
    chain._CACHES.clear()
    (tmp_path / "_cache" / "curated_digests.json").unlink()
    assert second != first and chain.curated_digest(tmp_path, "payments", day) == second


def test_the_night_compared_with_is_the_newest_published_one(tmp_path: Path):
    # the report and the manifest's score PSI compare D with the newest *published* night before it
    assert chain.compared_night(tmp_path, D) == (None, None)
    _night(tmp_path, D)
    assert chain.compared_night(tmp_path, D + DAY) == (D, D)
    # D+1 decided but never published (publish refused it): D+2 is compared with D, and both are named
    _night(tmp_path, D + DAY, published=False)
    assert chain.compared_night(tmp_path, D + 2 * DAY) == (D + DAY, D)
    # nothing published before: no comparison, but the previous night is still known
    assert chain.compared_night(tmp_path, D) == (None, None)
