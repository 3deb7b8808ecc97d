"""Bad upstream input: every case ends in its documented outcome and nothing published is lost.

Each case tampers with the landing drop of NEXT (the day after the published night), runs the real
nightly run for NEXT (``run_night``, as ``riskline run`` does) and checks:

1. the outcome: ``quarantined`` (the bad rows, with their reasons, and the night goes on), ``warning``
   (reported, the night goes on), ``deduplicated`` (latest delivery wins), ``passed``, or ``critical``
   (the run stops before anything of NEXT is written, naming dataset and cause);
2. the night before stays byte-identical (its four outputs and its manifest), and ``_LATEST`` moves to
   NEXT only when the night succeeded.

:data:`CASES` is the table docs/guarantees.md shows under "Bad input"; a test keeps them equal.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl
import pytest
from reliability_support import PublishedLake, deliver, landing, published_digests, write_fault

from pipelines.store import lake
from pipelines.stages import night as nightly
from pipelines.store import publish
from pipelines.config.settings import RisklineConfig
from tools.faults import DATA_FILE, FAULT_KINDS, REDELIVERY_FILE
from pipelines.errors import IngestError
from pipelines.quality.data_docs import results_dir
from pipelines.quality.results import ValidationError

Outcome = Literal["passed", "deduplicated", "quarantined", "warning", "critical"]
Deliver = Callable[[Path, PublishedLake, RisklineConfig], None]
GUARANTEES = Path(__file__).resolve().parents[2] / "docs" / "guarantees.md"


@dataclass(frozen=True)
class Case:
    """One kind of bad input and what must come of it.

    ``evidence`` is ``dataset: what`` (several joined by ``; ``): the quarantine reasons, the warning rule,
    ``duplicates dropped``, or for a critical outcome a phrase the error message must contain.
    """

    name: str
    sent: str  # what upstream did, in words (the second column of docs/guarantees.md's table)
    outcome: Outcome
    evidence: str
    deliver: Deliver


# --- deliveries ------------------------------------------------------------------------------------


def _fault(kind: str) -> Deliver:
    return lambda root, book, cfg: write_fault(root, book, kind, cfg)


def _rewrite(dataset: str, change: Callable[[pl.DataFrame, dt.date], pl.DataFrame]) -> Deliver:
    """Redeliver NEXT's ``dataset`` drop with ``change`` applied to its rows."""

    def run(root: Path, book: PublishedLake, cfg: RisklineConfig) -> None:
        frame = landing(root, dataset, book.next_day)
        deliver(root, dataset, book.next_day, {DATA_FILE: change(frame, book.next_day)})

    return run


def _few(frame: pl.DataFrame, n: int = 3, where: pl.Expr | None = None) -> pl.Expr:
    """A row mask picking the first ``n`` rows (by key order) among ``where``: deterministic."""
    candidates = frame.with_row_index("_i").filter(where if where is not None else pl.lit(True))["_i"].head(n)
    return pl.int_range(pl.len()).is_in(candidates.implode())


def _empty(dataset: str) -> Deliver:
    return lambda root, book, cfg: deliver(root, dataset, book.next_day, {})


def _extra_file(dataset: str, name: str, content: bytes) -> Deliver:
    def run(root: Path, book: PublishedLake, cfg: RisklineConfig) -> None:
        files: dict[str, pl.DataFrame | bytes] = {DATA_FILE: landing(root, dataset, book.next_day), name: content}
        deliver(root, dataset, book.next_day, files)

    return run


def _as_csv(dataset: str) -> Deliver:
    def run(root: Path, book: PublishedLake, cfg: RisklineConfig) -> None:
        csv = landing(root, dataset, book.next_day).write_csv().encode()
        deliver(root, dataset, book.next_day, {"part-00000.csv": csv})

    return run


def _twice(dataset: str) -> Deliver:
    def run(root: Path, book: PublishedLake, cfg: RisklineConfig) -> None:
        frame = landing(root, dataset, book.next_day)
        deliver(root, dataset, book.next_day, {DATA_FILE: frame, REDELIVERY_FILE: frame})

    return run


def _event_times_local(zone_aware: bool) -> Callable[[pl.DataFrame, dt.date], pl.DataFrame]:
    """Upstream sends event_time as Shanghai wall time: zone-aware, or naive (the zone dropped)."""

    def change(frame: pl.DataFrame, day: dt.date) -> pl.DataFrame:
        local = pl.col("event_time").dt.convert_time_zone("Asia/Shanghai")
        return frame.with_columns(local if zone_aware else local.dt.replace_time_zone(None))

    return change


def _future_events(frame: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    later = pl.col("event_time") + pl.duration(days=30)
    return frame.with_columns(pl.when(_few(frame)).then(later).otherwise(pl.col("event_time")).alias("event_time"))


def _tenfold(frame: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    # Distinct events, each i seconds from its model towards noon UTC (inside the Shanghai day): equal in every
    # fact (times to the millisecond) under a new id they would be copies (same_as_another_event), not a busy day.
    noon = pl.lit(dt.datetime(day.year, day.month, day.day, 4, tzinfo=dt.UTC)).dt.cast_time_unit("us")
    towards_noon = pl.when(pl.col("event_time") < noon).then(1).otherwise(-1)
    copies = [frame.with_columns(pl.col("event_id") + f"-x{i}",
                                 pl.col("event_time") + pl.duration(seconds=towards_noon * i))
              for i in range(1, 10)]
    return pl.concat([frame, *copies])


def _ghost_payer(frame: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    ghost = pl.when(_few(frame, 2)).then(pl.lit("A-NOT-IN-ACCOUNTS")).otherwise(pl.col("account_id"))
    return frame.with_columns(ghost.alias("account_id"))


def _zero_limit(frame: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    zero = pl.lit(0, dtype=frame.schema["credit_limit"])
    return frame.with_columns(
        pl.when(_few(frame, 2)).then(zero).otherwise(pl.col("credit_limit")).alias("credit_limit")
    )


def _due_before_draw(frame: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    first_loan = frame.sort("loan_id")["loan_id"][0]
    early = pl.lit(day - dt.timedelta(days=5))
    return frame.with_columns(
        pl.when(pl.col("loan_id") == first_loan).then(early).otherwise(pl.col("due_date")).alias("due_date")
    )


# --- the table -------------------------------------------------------------------------------------

GENERATOR_FAULTS: dict[str, tuple[Outcome, str]] = {
    "duplicate_events": ("deduplicated", "behaviour: duplicates dropped"),
    "null_keys": ("quarantined", "behaviour: null_account_id; payments: null_payment_id"),
    "negative_amounts": ("quarantined", "behaviour: negative_amount"),
    "unknown_event_types": ("quarantined", "behaviour: unknown_event_type"),
    "unknown_loans": ("quarantined", "payments: unknown_loan"),
    "corrupt_file": ("critical", "behaviour: file is not readable Parquet"),
    "dropped_column": ("critical", "payments: required column(s) missing: amount"),
    "wrong_type": ("critical", "installments: cannot be cast losslessly"),
    "late_partition": ("critical", "accounts: landing partition not delivered"),
    "missing_success": ("critical", "payments: drop is incomplete"),
}

CASES: tuple[Case, ...] = (
    *(Case(kind, "`riskline generate --faults` kind (docs/contracts.md)", outcome, evidence, _fault(kind))
      for kind, (outcome, evidence) in GENERATOR_FAULTS.items()),
    Case("empty_partition", "behaviour drop complete but holding no file", "critical",
         "behaviour: volume_low", _empty("behaviour")),
    Case("empty_snapshot", "accounts snapshot complete but holding no file", "critical",
         "accounts: not_empty", _empty("accounts")),
    Case("zero_byte_file", "an extra 0-byte `part-00001.parquet` in payments", "critical",
         "payments: file is not readable Parquet", _extra_file("payments", REDELIVERY_FILE, b"")),
    Case("not_parquet", "behaviour delivered as CSV (`part-00000.csv`)", "critical",
         "behaviour: file is not readable Parquet", _as_csv("behaviour")),
    Case("timestamps_shanghai_zone", "event_time as Asia/Shanghai zone-aware timestamps", "passed", "",
         _rewrite("behaviour", _event_times_local(zone_aware=True))),
    Case("timestamps_naive_local", "event_time as Shanghai wall time without a zone (read as UTC: +8 h)",
         "critical", "behaviour: event_time_outside_business_day",
         _rewrite("behaviour", _event_times_local(zone_aware=False))),
    Case("future_events", "3 behaviour events dated 30 days ahead", "quarantined",
         "behaviour: event_time_outside_business_day", _rewrite("behaviour", _future_events)),
    Case("tenfold_partition", "behaviour drop 10x the usual size (distinct events)", "warning",
         "behaviour: volume_high", _rewrite("behaviour", _tenfold)),
    Case("delivered_twice", "the payments file delivered twice in one drop", "deduplicated",
         "payments: duplicates dropped", _twice("payments")),
    Case("payer_not_in_accounts", "2 payments from an account absent from the accounts snapshot",
         "quarantined", "payments: loan_of_other_account; unknown_account", _rewrite("payments", _ghost_payer)),
    Case("zero_limit", "2 accounts with a credit limit of 0", "quarantined",
         "accounts: credit_limit_outside_product_bounds; non_positive_credit_limit; behaviour: unknown_account",
         _rewrite("accounts", _zero_limit)),
    Case("due_before_draw", "one loan's instalments due 5 days before the draw date", "quarantined",
         "installments: due_date_not_after_draw_date", _rewrite("installments", _due_before_draw)),
)


# --- what happened ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_run_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the report stage (4 s a night): it only reads what publish wrote, and the report has its own tests."""
    monkeypatch.setattr(nightly, "stage_report", lambda root, as_of, cfg: {})


def _observe(root: Path, day: dt.date, result: nightly.RunResult) -> tuple[Outcome, str]:
    """Classify a finished night from what it wrote: quarantine, validation warnings, duplicates."""
    quarantined: dict[str, set[str]] = {}
    for part in sorted((root / "quarantine").glob(f"*/dt={day.isoformat()}")):
        reasons = lake.read_partition(part)["quarantine_reason"].str.split(";").explode()
        quarantined[part.parent.name] = set(reasons.to_list())
    warnings: dict[str, set[str]] = {}
    for path in sorted(results_dir(root, day).glob("*.json")):
        found = {o["rule"] for o in json.loads(path.read_text())["outcomes"] if o["outcome"] == "warning"}
        if found:
            warnings[path.stem] = found
    duplicates = {ds: r["duplicates"] for ds, r in result.stages["ingest"].items() if r["duplicates"]}
    if quarantined:
        return "quarantined", "; ".join(f"{ds}: {'; '.join(sorted(r))}" for ds, r in sorted(quarantined.items()))
    if warnings:
        return "warning", "; ".join(f"{ds}: {'; '.join(sorted(r))}" for ds, r in sorted(warnings.items()))
    if duplicates:
        return "deduplicated", "; ".join(f"{ds}: duplicates dropped" for ds in sorted(duplicates))
    return "passed", ""


def test_every_generator_fault_kind_has_a_case():
    assert sorted(GENERATOR_FAULTS) == sorted(FAULT_KINDS)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_has_its_documented_outcome_and_loses_nothing_published(
    case: Case, published_lake: PublishedLake, lake_root: Path, quiet_cfg: RisklineConfig
):
    book = published_lake
    before = published_digests(lake_root, book.published)
    assert before and publish.read_latest(lake_root) == book.published
    case.deliver(lake_root, book, quiet_cfg)

    try:
        result = nightly.run_night(lake_root, book.next_day, quiet_cfg, nightly.RunOptions(retrain=False))
    except IngestError as exc:
        dataset, phrase = case.evidence.split(": ", 1)
        assert case.outcome == "critical", f"{case.name} failed the night: {exc}"
        assert exc.dataset == dataset and f"dt={book.next_day.isoformat()}" in str(exc)
        if isinstance(exc, ValidationError):  # a critical expectation: the rule is named in its report
            assert phrase in {o.rule for r in exc.reports for o in r.critical}, str(exc)
        else:
            assert phrase in str(exc)
        # all-or-nothing ingest: no dataset of NEXT reached the curated zone, no output of NEXT exists
        assert not list((lake_root / "curated").glob(f"*/dt={book.next_day.isoformat()}"))
        assert not published_digests(lake_root, book.next_day)
        assert publish.read_latest(lake_root) == book.published
    else:
        assert (case.outcome, case.evidence) == _observe(lake_root, book.next_day, result)
        assert publish.read_latest(lake_root) == book.next_day
        for name in publish.OUTPUTS:  # the night went on: NEXT's outputs are complete and readable
            publish.read_output(lake_root, name, book.next_day)
    assert published_digests(lake_root, book.published) == before


def test_quarantined_rows_never_reach_published_outputs(
    published_lake: PublishedLake, lake_root: Path, quiet_cfg: RisklineConfig
):
    # An account whose snapshot row is quarantined (limit 0) must not be decided on from a stale limit:
    # it is absent from NEXT's curated snapshot, so it gets no limit decision that night.
    book = published_lake
    _rewrite("accounts", _zero_limit)(lake_root, book, quiet_cfg)
    zeroed = set(landing(lake_root, "accounts", book.next_day).filter(pl.col("credit_limit") == 0)["account_id"])
    assert len(zeroed) == 2
    nightly.run_night(lake_root, book.next_day, quiet_cfg, nightly.RunOptions(retrain=False))
    limits = publish.read_output(lake_root, "limits", book.next_day)
    assert not zeroed & set(limits["account_id"])


def _readme_rows() -> dict[str, tuple[str, str]]:
    bad_input = GUARANTEES.read_text().split("\n## Bad input", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \|([^\n]*)$", bad_input, flags=re.M)
    cells = {name: [c.strip() for c in rest.split("|")] for name, rest in rows}
    return {name: (c[1], c[2]) for name, c in cells.items()}


def test_readme_table_matches_the_cases():
    # outcome and evidence columns, exactly as the test checks them (backticks stripped)
    expected = {c.name: (c.outcome, c.evidence) for c in CASES}
    observed = {k: (o, e.replace("`", "")) for k, (o, e) in _readme_rows().items()}
    assert observed == expected
