"""The incremental ledger gives the bytes of a full rebuild (issue 19, item 1).

Two copies of one generated year of curated history: one builds each night's ledger and features from the
last night's state (the default), the other from the whole history (``run.incremental_ledger: false``).
Every published ledger and feature file, and the state itself, must be byte-identical, night after night,
through the cases an incremental design gets wrong: a payment delivered late (paid days before its drop), a
retired loan paid again (an overpayment) and by a late settlement, a payment that arrives before its loan,
a missed night (the state of D-2 carried over a gap), a redelivery of an old date re-curated, and shards.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines.config.settings import RisklineConfig
from pipelines.contracts.landing import DATASETS
from pipelines.domain.features import build_features
from pipelines.domain.ledger import build_ledger
from pipelines.domain.reconcile import LedgerReconciliationError
from pipelines.domain.working_set import RETAIN_DAYS, ever_past_due
from pipelines.stages import features as features_stage, ingest
from pipelines.stages.ledger_state import built_how
from pipelines.store import drops, lake, zones
from tests.reliability.reliability_support import write_landing
from tools.simulate import GeneratorParams

END = dt.date(2026, 11, 25)
DAYS = RETAIN_DAYS + 220  # loans settled more than RETAIN_DAYS before the nights retire
FIRST_NIGHT = END - dt.timedelta(days=7)
TZ = "Asia/Shanghai"


def _cfg(cfg: RisklineConfig, incremental: bool, shards: int = 1) -> RisklineConfig:
    return cfg.model_copy(update={"run": cfg.run.model_copy(update={"incremental_ledger": incremental,
                                                                      "shards": shards})})


@pytest.fixture(scope="module")
def curated_year(tmp_path_factory: pytest.TempPathFactory, quiet_cfg: RisklineConfig) -> Path:
    """A generated year curated as ingest would (GX left out: the ledger reads curated rows only)."""
    root = tmp_path_factory.mktemp("year")
    params = GeneratorParams(accounts=400, days=DAYS, end_date=END, seed=5)
    write_landing(root, params, quiet_cfg)
    for day in params.dates:
        for name in DATASETS:
            frame = drops.read_landing(root, name, day, quiet_cfg)
            lake.publish_frames(zones.curated(root, name, day), {ingest.CURATED_FILE: frame})
    shutil.rmtree(root / "landing")
    return root


def _curated(root: Path, dataset: str, day: dt.date) -> pl.DataFrame:
    return lake.read_partition(zones.curated(root, dataset, day))


def _recurate(roots: list[Path], dataset: str, day: dt.date, frame: pl.DataFrame) -> None:
    for root in roots:
        lake.publish_frames(zones.curated(root, dataset, day), {ingest.CURATED_FILE: frame})


def _payment(like: pl.DataFrame, payment_id: str, account_id: str, loan_id: str, paid_on: dt.date,
             cents: int) -> pl.DataFrame:
    paid_at = dt.datetime.combine(paid_on, dt.time(10, 30), tzinfo=dt.UTC)
    return like.head(1).with_columns(
        payment_id=pl.lit(payment_id), account_id=pl.lit(account_id), loan_id=pl.lit(loan_id),
        paid_at=pl.lit(paid_at).cast(like.schema["paid_at"]), amount_cents=pl.lit(cents, dtype=pl.Int64),
    )


def _digests(root: Path, day: dt.date) -> dict[str, str]:
    out = {}
    for zone in (zones.ledger_partition(root, day), zones.feature_partition(root, day)):
        for path in sorted(zone.rglob("*")):
            if path.is_file() and path.name not in ("_SUCCESS", "state.json"):
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _night(roots: tuple[Path, Path], day: dt.date, cfg: RisklineConfig, shards: int = 1) -> None:
    incremental, full = roots
    for root, on in ((incremental, True), (full, False)):
        c = _cfg(cfg, on, shards)
        if shards == 1:
            features_stage.build_feature_snapshot(root, day, c)
        else:
            for k in range(shards):
                features_stage.build_feature_snapshot(root, day, c, k, shards)
            features_stage.merge_shards(root, day, shards)
    assert _digests(incremental, day) == _digests(full, day), f"incremental != full on {day}"


def test_the_incremental_ledger_gives_the_bytes_of_a_full_rebuild(
    curated_year: Path, tmp_path: Path, quiet_cfg: RisklineConfig
) -> None:
    incremental, full = tmp_path / "incremental", tmp_path / "full"
    shutil.copytree(curated_year, incremental)
    shutil.copytree(curated_year, full)
    roots = (incremental, full)

    day = FIRST_NIGHT
    _night(roots, day, quiet_cfg)  # no state yet: both read the history
    assert built_how(incremental, day) == "no earlier ledger state".join(("full: ", ""))
    retired = pl.read_parquet(zones.ledger_partition(incremental, day) / "_state" / "retired_loans.parquet")
    assert retired.height > 50, "the year must retire loans for the test to mean anything"
    state_loans = pl.read_parquet(zones.ledger_partition(incremental, day) / "loans.parquet")
    assert state_loans.height < pl.concat(
        [_curated(incremental, "installments", d) for d in zones.curated_dates(incremental, "installments")]
    ).select("loan_id").n_unique(), "retired loans leave the published working set"

    # Night 2: a payment delivered 3 days late on an open loan, an overpayment on a retired loan, and a
    # payment naming a loan whose schedule arrives only the next night.
    day += dt.timedelta(days=1)
    pays = _curated(incremental, "payments", day)
    open_loan = state_loans.filter(pl.col("is_open")).row(0, named=True)
    gone = retired.row(0, named=True)
    extra = pl.concat([
        pays,
        _payment(pays, "P-LATE-1", open_loan["account_id"], open_loan["loan_id"], day - dt.timedelta(days=3), 1_000),
        _payment(pays, "P-OVER-1", gone["account_id"], gone["loan_id"], day, 777),
        _payment(pays, "P-EARLY-1", open_loan["account_id"], "L-NEXT-NIGHT", day, 5_000),
    ])
    _recurate(list(roots), "payments", day, extra)
    _night(roots, day, quiet_cfg)
    assert "1 retired loan(s) taken back" in (built_how(incremental, day) or "")
    unallocated = pl.read_parquet(zones.ledger_partition(incremental, day) / "unallocated.parquet")
    assert {"P-OVER-1", "P-EARLY-1"} <= set(unallocated.get_column("payment_id"))

    # Night 3: the loan the early payment named is drawn; a second retired loan is settled late (paid
    # before the last state's date), the order allocation must respect.
    day += dt.timedelta(days=1)
    inst = _curated(incremental, "installments", day)
    template = pl.concat([_curated(incremental, "installments", d) for d in (day, day - dt.timedelta(days=1))])
    new_loan = template.head(1).with_columns(
        account_id=pl.lit(open_loan["account_id"]), loan_id=pl.lit("L-NEXT-NIGHT"),
        installment_id=pl.lit("I-NEXT-NIGHT-1"), installment_no=pl.lit(1, dtype=template.schema["installment_no"]),
        due_date=pl.lit(day + dt.timedelta(days=30)))
    _recurate(list(roots), "installments", day, pl.concat([inst, new_loan.select(inst.columns)]))
    gone2 = retired.row(1, named=True)
    pays = _curated(incremental, "payments", day)
    _recurate(list(roots), "payments", day, pl.concat(
        [pays, _payment(pays, "P-SETTLE-1", gone2["account_id"], gone2["loan_id"], day - dt.timedelta(days=2), 300)]))
    _night(roots, day, quiet_cfg)
    assert (built_how(incremental, day) or "").startswith("incremental from")
    unallocated = pl.read_parquet(zones.ledger_partition(incremental, day) / "unallocated.parquet")
    assert "P-EARLY-1" not in set(unallocated.get_column("payment_id")), "the early payment found its loan"

    # A missed night: night 5 starts from the state of night 3.
    day += dt.timedelta(days=2)
    _night(roots, day, quiet_cfg)
    assert built_how(incremental, day) == f"incremental from {day - dt.timedelta(days=2)}"

    # A redelivery of an old date re-curated (one more payment found): the state is stale, the night rebuilds.
    old = FIRST_NIGHT - dt.timedelta(days=40)
    pays = _curated(incremental, "payments", old)
    _recurate(list(roots), "payments", old, pl.concat(
        [pays, _payment(pays, "P-FOUND-1", open_loan["account_id"], open_loan["loan_id"], old, 2_500)]))
    day += dt.timedelta(days=1)
    _night(roots, day, quiet_cfg)
    assert built_how(incremental, day) == f"full: curated payments of {old} changed since the state of {day - dt.timedelta(days=1)} was built"
    reconciliation = json.loads((zones.ledger_partition(incremental, day) / "_reconciliation.json").read_text())
    assert reconciliation["received_cents"] == reconciliation["allocated_cents"] + reconciliation["unallocated_cents"]

    # The next night is incremental again, and so is one run in shards.
    day += dt.timedelta(days=1)
    _night(roots, day, quiet_cfg, shards=3)
    assert built_how(incremental, day) == f"incremental from {day - dt.timedelta(days=1)}"


def test_retired_loans_change_no_feature_and_no_account_total(curated_year: Path, tmp_path: Path,
                                                                quiet_cfg: RisklineConfig) -> None:
    """The working set is only an optimisation: features and the account rollup equal those of the ledger
    of every loan ever drawn (pipelines.domain.ledger.build_ledger), which proves RETAIN_DAYS long enough."""
    root = tmp_path / "lake"
    shutil.copytree(curated_year, root)
    features_stage.build_feature_snapshot(root, END, _cfg(quiet_cfg, True))
    scans = features_stage.scan_inputs(root, END)
    whole = build_ledger(zones.scan_curated(root, "installments", END), zones.scan_curated(root, "payments", END), END,
                         quiet_cfg.business.timezone)
    published = zones.ledger_partition(root, END)
    assert pl.read_parquet(zones.ledger_partition(root, END) / "_state" / "retired_loans.parquet").height > 50
    assert_frame_equal(pl.read_parquet(published / "accounts.parquet"), whole.accounts)
    expected = build_features(scans["accounts"], scans["behaviour"], whole, END)
    assert_frame_equal(pl.read_parquet(zones.feature_partition(root, END) / "features.parquet"), expected)
    # every instalment ever past due stays published (days since DPD, hardship, vintages read them)
    late = whole.installments.filter(ever_past_due()).select("installment_id").sort("installment_id")
    assert_frame_equal(pl.read_parquet(published / "installments.parquet").filter(ever_past_due())
                       .select("installment_id").sort("installment_id"), late)
    # and the reconciliation counts every payment since the lake began
    recon = json.loads((published / "_reconciliation.json").read_text())
    assert recon["payments"] == whole.payments.height
    assert recon["received_cents"] == int(whole.payments.get_column("amount_cents").sum())


def _two_lakes(curated_year: Path, tmp_path: Path, quiet_cfg: RisklineConfig) -> tuple[Path, Path]:
    roots = (tmp_path / "incremental", tmp_path / "full")
    for root in roots:
        shutil.copytree(curated_year, root)
    _night(roots, FIRST_NIGHT, quiet_cfg)
    return roots


def test_a_republish_between_the_shards_of_one_night_is_not_carried_into_later_nights(
    curated_year: Path, tmp_path: Path, quiet_cfg: RisklineConfig
) -> None:
    """Shards run apart (Airflow tasks, a retry): an old date re-curated after shards 1 and 2 read it and before
    shard 0 did leaves shards that read different histories. Their merged state is marked unusable, so the
    next night reads the whole history, as a full rebuild does, instead of keeping the old rows for good."""
    incremental, full = roots = _two_lakes(curated_year, tmp_path, quiet_cfg)
    day = FIRST_NIGHT + dt.timedelta(days=1)
    sharded = _cfg(quiet_cfg, True, 3)
    for k in (1, 2):
        features_stage.build_feature_snapshot(incremental, day, sharded, k, 3)
    old = FIRST_NIGHT - dt.timedelta(days=40)
    pays = _curated(incremental, "payments", old)
    loan = pl.read_parquet(zones.ledger_partition(incremental, FIRST_NIGHT) / "loans.parquet").filter(
        pl.col("is_open")).row(0, named=True)
    _recurate(list(roots), "payments", old, pl.concat(
        [pays, _payment(pays, "P-FOUND-2", loan["account_id"], loan["loan_id"], old, 250_000)]))
    features_stage.build_feature_snapshot(incremental, day, sharded, 0, 3)
    features_stage.merge_shards(incremental, day, 3)
    state = json.loads((zones.ledger_partition(incremental, day) / "_state" / "state.json").read_text())
    assert "different versions" in state["unusable"]
    features_stage.build_feature_snapshot(full, day, _cfg(quiet_cfg, False))
    day += dt.timedelta(days=1)
    _night(roots, day, quiet_cfg)  # byte-identical again
    assert "is not used" in (built_how(incremental, day) or "")


def test_a_payment_id_of_a_retired_loan_curated_again_stops_the_night_as_a_full_rebuild_does(
    curated_year: Path, tmp_path: Path, quiet_cfg: RisklineConfig
) -> None:
    """The reconciliation refuses a payment_id curated on two dates (ingest's net let one through). Its copy
    on a retired loan is not in the working set: the night must still see it, not publish it as new money."""
    incremental, full = roots = _two_lakes(curated_year, tmp_path, quiet_cfg)
    retired = pl.read_parquet(zones.ledger_partition(incremental, FIRST_NIGHT) / "_state" / "retired_loans.parquet")
    gone = retired.filter(pl.col("payments") > 0).row(0, named=True)
    history = zones.scan_curated(incremental, "payments", FIRST_NIGHT).filter(
        (pl.col("account_id") == gone["account_id"]) & (pl.col("loan_id") == gone["loan_id"])).collect()
    loan = pl.read_parquet(zones.ledger_partition(incremental, FIRST_NIGHT) / "loans.parquet").filter(
        pl.col("is_open")).row(0, named=True)
    day = FIRST_NIGHT + dt.timedelta(days=1)
    pays = _curated(incremental, "payments", day)
    _recurate(list(roots), "payments", day, pl.concat([pays, _payment(
        pays, history.get_column("payment_id")[0], loan["account_id"], loan["loan_id"], day, 4_321)]))
    for root, on in ((incremental, True), (full, False)):
        with pytest.raises(LedgerReconciliationError, match="payment_id curated on more than one date"):
            features_stage.build_feature_snapshot(root, day, _cfg(quiet_cfg, on))


def test_hard_links_to_the_history_and_a_damaged_state_cost_speed_never_bytes(
    curated_year: Path, tmp_path: Path, quiet_cfg: RisklineConfig
) -> None:
    """A dry run's private copy hard-links the curated files (their ctime changes, nothing else): the next
    night stays incremental. A state file lost or damaged is not trusted and does not stop the night."""
    incremental, _ = roots = _two_lakes(curated_year, tmp_path, quiet_cfg)
    links = tmp_path / "links"
    links.mkdir()
    for i, file in enumerate(sorted((incremental / "curated").rglob("*.parquet"))):
        os.link(file, links / f"{i}.parquet")
    day = FIRST_NIGHT + dt.timedelta(days=1)
    _night(roots, day, quiet_cfg)
    assert built_how(incremental, day) == f"incremental from {FIRST_NIGHT}"
    (zones.ledger_partition(incremental, day) / "_state" / "retired_loans.parquet").write_bytes(b"not parquet")
    day += dt.timedelta(days=1)
    _night(roots, day, quiet_cfg)
    assert (built_how(incremental, day) or "").startswith(f"full: the state of {day - dt.timedelta(days=1)} is unreadable")
