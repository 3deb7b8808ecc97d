"""The expectation suites against good and deliberately broken partitions (tools/generate.py faults).

Each fault's outcome must be the one documented in docs/contracts.md ("Generator faults"), so the table
cannot drift from the behaviour.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import polars as pl
import pytest

from pipelines.entry import cli
from pipelines.stages import ingest
from pipelines import errors
from pipelines.domain import conform
from pipelines.store import lake
from pipelines.quality import data_docs, results
from tools.faults import FAULT_KINDS

DOC = Path(__file__).resolve().parents[2] / "docs" / "contracts.md"


def _documented_outcomes() -> dict[str, str]:
    section = DOC.read_text().split("## Generator faults", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \|(.*)$", section, flags=re.M)
    return {kind: [c.strip() for c in rest.split("|")][1] for kind, rest in rows}


def _digests(root: Path, *zones: str) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for zone in zones for p in sorted((root / zone).rglob("*")) if p.is_file()
    }


def _with(cfg, **changes):
    return cfg.model_copy(update={"validation": cfg.validation.model_copy(update=changes)})


def _landing(root: Path, dataset: str, day: dt.date) -> pl.DataFrame:
    return pl.read_parquet(lake.parquet_files(lake.partition_dir(root, "landing", dataset, day)))


def _prepare_day(calendar, root: Path, day: dt.date, cfg) -> None:
    """Publish the days between the seeded history and ``day`` as earlier nights would have."""
    d = calendar.clean_day
    while d < day:
        if lake.is_complete(lake.partition_dir(root, "landing", "accounts", d)):
            try:
                calendar.seed(root, d, cfg)
            except errors.IngestError:
                pass  # a broken day (corrupt file, late...) never reached curated
        d += dt.timedelta(days=1)


def test_every_fault_kind_is_documented():
    assert sorted(_documented_outcomes()) == sorted(FAULT_KINDS)


def test_good_partition_passes(calendar, lake_root: Path, quiet_cfg):
    results = ingest.ingest_date(lake_root, calendar.clean_day, quiet_cfg)
    assert [r.quarantined for r in results] == [0, 0, 0, 0]
    assert all(r.expectations_failed == 0 for r in results)
    stored = {p.stem: json.loads(p.read_text()) for p in data_docs.results_dir(lake_root, calendar.clean_day).glob("*.json")}
    assert sorted(stored) == ["accounts", "behaviour", "installments", "payments"]
    # 7 seeded nights precede the clean day: the accounts (~1000 rows) volume band is really checked;
    # payments (~10 a day) are below validation.volume.min_median_rows and skipped with a note.
    outcomes = {o["rule"]: o["outcome"] for o in stored["accounts"]["outcomes"]}
    assert outcomes["volume_low"] == outcomes["volume_high"] == "passed"
    assert any("volume check skipped" in n for n in stored["payments"]["notes"])


@pytest.mark.parametrize("kind", list(FAULT_KINDS))
def test_fault_is_caught_with_its_documented_outcome(calendar, lake_root: Path, quiet_cfg, kind: str):
    day = calendar.fault_days[kind]
    _prepare_day(calendar, lake_root, day, quiet_cfg)
    documented = _documented_outcomes()[kind]
    try:
        results = {r.dataset: r for r in ingest.ingest_date(lake_root, day, quiet_cfg)}
    except errors.IngestError as exc:
        assert documented == "critical", f"{kind}: {exc}"
        assert str(exc).startswith(("accounts", "behaviour", "installments", "payments"))
        assert f"dt={day.isoformat()}" in str(exc) and "->" in str(exc)
        assert not any(lake.partition_dir(lake_root, "curated", n, day).exists() for n in results_names())
        return
    quarantined = {n: r.quarantine_reasons for n, r in results.items() if r.quarantined}
    observed = "quarantined" if quarantined else "deduplicated" if any(
        r.duplicates_dropped for r in results.values()) else "passed"
    assert observed == documented, f"{kind}: {quarantined}"
    expected_reasons = {
        "null_keys": {"behaviour": {"null_account_id": 3}, "payments": {"null_payment_id": 3}},
        "negative_amounts": {"behaviour": {"negative_amount": 3}},
        "unknown_event_types": {"behaviour": {"unknown_event_type": 3}},
        "unknown_loans": {"payments": {"unknown_loan": 3}},
        "duplicate_events": {},
    }
    assert quarantined == expected_reasons[kind]


def results_names() -> tuple[str, ...]:
    return ("accounts", "behaviour", "installments", "payments")


def test_duplicate_redelivery_keeps_the_latest_and_says_so(calendar, lake_root: Path, quiet_cfg):
    day = calendar.fault_days["duplicate_events"]
    _prepare_day(calendar, lake_root, day, quiet_cfg)
    res = {r.dataset: r for r in ingest.ingest_date(lake_root, day, quiet_cfg)}["behaviour"]
    redelivered = pl.read_parquet(lake.partition_dir(lake_root, "landing", "behaviour", day) / "part-00001.parquet")
    assert res.duplicates_dropped == redelivered.height > 0
    curated = lake.read_partition(lake.partition_dir(lake_root, "curated", "behaviour", day))
    # latest delivery wins: the redelivered channel, not the original one
    assert curated.join(redelivered.select("event_id", "channel"), on="event_id")["channel"].to_list() == \
        redelivered.sort("event_id")["channel"].to_list()
    report = json.loads((data_docs.results_dir(lake_root, day) / "behaviour.json").read_text())
    assert any("redelivered rows dropped" in n for n in report["notes"])


def test_warning_quarantines_exactly_the_bad_rows_with_reasons(calendar, lake_root: Path, quiet_cfg):
    day = calendar.fault_days["negative_amounts"]
    _prepare_day(calendar, lake_root, day, quiet_cfg)
    ingest.ingest_date(lake_root, day, quiet_cfg)
    landed = _landing(lake_root, "behaviour", day)
    negated = sorted(landed.filter(pl.col("amount") < 0)["event_id"].to_list())
    q = lake.read_partition(lake.partition_dir(lake_root, "quarantine", "behaviour", day))
    assert sorted(q["event_id"].to_list()) == negated and len(negated) == 3
    assert set(q[conform.QUARANTINE_REASON]) == {"negative_amount"}
    curated = lake.read_partition(lake.partition_dir(lake_root, "curated", "behaviour", day))
    assert curated.height == landed.height - 3 and not set(negated) & set(curated["event_id"])


def test_critical_failure_leaves_published_partitions_byte_identical(calendar, lake_root: Path, quiet_cfg):
    day = calendar.fault_days["null_keys"]
    _prepare_day(calendar, lake_root, day, quiet_cfg)
    ingest.ingest_date(lake_root, day, quiet_cfg)  # tolerant: 3 null keys are quarantined, D is published
    before = _digests(lake_root, "curated", "quarantine")
    assert any(f"dt={day.isoformat()}" in k for k in before)
    # A stricter config sees the same 3 rows as a broken extract (no free rows, 0.1% of ~300 < 1).
    strict = _with(quiet_cfg, warning_min_rows=0)
    with pytest.raises(results.ValidationError) as err:
        ingest.ingest_date(lake_root, day, strict)
    assert _digests(lake_root, "curated", "quarantine") == before
    text = str(err.value)
    assert "behaviour dt=" in text and "expect_column_values_to_not_be_null(account_id)" in text
    assert "sample: event_id=" in text and "-> " in text
    stored = json.loads((data_docs.results_dir(lake_root, day) / "behaviour.json").read_text())
    assert stored["ok"] is False  # the evidence is written even though nothing was published


def test_volume_drop_is_critical(calendar, lake_root: Path, quiet_cfg):
    behaviour = _landing(lake_root, "behaviour", calendar.clean_day)
    lake.publish_frames(lake.partition_dir(lake_root, "landing", "behaviour", calendar.clean_day),
                        {"part-00000.parquet": behaviour.head(behaviour.height // 3)})
    with pytest.raises(results.ValidationError) as err:
        ingest.ingest_date(lake_root, calendar.clean_day, quiet_cfg)
    assert [o.rule for r in err.value.reports for o in r.critical] == ["volume_low"]
    assert not lake.partition_dir(lake_root, "curated", "accounts", calendar.clean_day).exists()


def test_data_docs_render_that_date_only(calendar, lake_root: Path, cfg):
    ingest.ingest_date(lake_root, calendar.clean_day, cfg)
    docs = lake_root / "reports" / "data_docs"
    assert [p.name for p in docs.iterdir()] == [f"dt={calendar.clean_day.isoformat()}"]
    index = (docs / f"dt={calendar.clean_day.isoformat()}" / "index.html").read_text()
    for name in results_names():
        assert name in index
    pages = list((docs / f"dt={calendar.clean_day.isoformat()}" / "validations").rglob("*.html"))
    assert len(pages) == 4


def test_cli_validate_audits_curated_and_fails_on_tampering(
    calendar, lake_root: Path, quiet_cfg, capsys, monkeypatch
):
    monkeypatch.setattr(cli, "load_config", lambda path=None: quiet_cfg)
    ingest.ingest_date(lake_root, calendar.clean_day, quiet_cfg)
    assert cli.main(["--data-root", str(lake_root), "validate", "--date", calendar.clean_day.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "payments" in out and "curated" in out and "0 with critical failures" in out
    # Someone appends rows to a published partition by hand: the audit must catch the repeated keys.
    part = lake.partition_dir(lake_root, "curated", "payments", calendar.clean_day)
    frame = lake.read_partition(part)
    lake.publish_frames(part, {ingest.CURATED_FILE: pl.concat([frame, frame.head(2)])})
    assert cli.main(["--data-root", str(lake_root), "validate", "--date", calendar.clean_day.isoformat()]) == 1
    assert "CRITICAL [duplicate keys]" in capsys.readouterr().out
