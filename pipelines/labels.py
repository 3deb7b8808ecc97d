"""Default labels for PD training: did an account reach 30+ DPD within H days, starting G days after a snapshot?

For a snapshot date s, horizon H (``labels.horizon_days``, 90 by default) and gap G (``labels.gap_days``,
7 by default) the **outcome window** is (s+G, s+G+H]:

* **Population**: the accounts in the accounts snapshot of s whose status is active or frozen. Accounts
  closed on or before s are excluded (they cannot default on new exposure); an account that closes
  during the window stays in, and is bad if it reached the threshold before or after closing.
* **Already in default at s is excluded**: an account already at ``bad_dpd``+ DPD at the close of s is
  in default, not at risk of entering it; keeping it would teach the model to recognise existing
  defaults (which the ledger already knows) rather than predict new ones. Such accounts get no label.
* **bad = 1** when any of the account's instalments (loans drawn after s included) is at ``bad_dpd``+ DPD
  at the close of any day in (s+G, s+G+H], with DPD as defined in :mod:`pipelines.ledger` (the due date is
  DPD 0, so 30 DPD is reached 30 days after an unpaid due date). Otherwise bad = 0. An account that
  reaches 30+ DPD during the gap and is still there after it is bad; one that cured within the gap is not.
* **Why a gap**: features of s see everything up to the close of s, including repayments made early for
  instalments that fall due in the next days. With the window starting at s+1 the first days of the
  outcome are partly known at s, so the out-of-time snapshot (D - G - H) would be judged on outcomes its
  own features already reflect, flattering the OOT metrics. G days between the features and the window
  keep the out-of-time test honest; ``gap_days: 0`` gives the classic (s, s+H] window.
* **Maturity**: a snapshot is labelled only once its whole window has been observed, s+G+H <= D.
  Labels read only data with ``dt <= s+G+H``; since DPD on a day depends only on payments up to that
  day, labels built from a later ledger are identical (the tests check it).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from pipelines import lake
from pipelines.config import LabelsConfig, RisklineConfig
# training joins features and labels (one population); labels read payments as the nightly ledger does
from pipelines.features import SCORED_STATUSES, scan_pending_payments
from pipelines.ledger import Ledger, account_worst_dpd, build_ledger

LABELS_ZONE = "labels"
LABELS_FILE = "labels.parquet"


class LabelsNotMaturedError(ValueError):
    """The snapshot's outcome window (s+G, s+G+H] is not fully observed yet."""


def horizon_start(snapshot_date: dt.date, cfg: LabelsConfig) -> dt.date:
    """The first day of the outcome window: s + gap + 1."""
    return snapshot_date + dt.timedelta(days=cfg.gap_days + 1)


def horizon_end(snapshot_date: dt.date, cfg: LabelsConfig) -> dt.date:
    """The last day of the outcome window: s + gap + horizon."""
    return snapshot_date + dt.timedelta(days=cfg.gap_days + cfg.horizon_days)


def is_matured(snapshot_date: dt.date, as_of: dt.date, cfg: LabelsConfig) -> bool:
    """True when the snapshot's whole outcome window lies on or before ``as_of``."""
    return horizon_end(snapshot_date, cfg) <= as_of


def build_labels(
    accounts: pl.LazyFrame, ledger: Ledger, snapshot_date: dt.date, cfg: LabelsConfig
) -> pl.DataFrame:
    """Labels of the snapshot ``s``, one row per account in the population, sorted by ``account_id``.

    Args:
        accounts: curated account snapshots with ``dt`` (the snapshot of s is used).
        ledger: a ledger as of s+G+H or later.

    Returns:
        ``account_id``, ``snapshot_date``, ``bad`` (Int8 0/1), ``worst_dpd_in_horizon`` (Int32),
        ``horizon_days``, ``gap_days`` (the window the label was built with, so a cached label of another
        window is recognised).

    Raises:
        LabelsNotMaturedError: when the ledger does not reach s+G+H.
    """
    end = horizon_end(snapshot_date, cfg)
    if ledger.as_of < end:
        raise LabelsNotMaturedError(
            f"snapshot {snapshot_date} needs data up to {end} (gap {cfg.gap_days} + horizon "
            f"{cfg.horizon_days} days); the ledger is as of {ledger.as_of}"
        )
    book = (
        accounts.filter((pl.col("dt") == snapshot_date) & pl.col("status").is_in(SCORED_STATUSES))
        .select("account_id")
        .unique()
        .collect()
    )
    at_snapshot = account_worst_dpd(ledger.installments, snapshot_date, snapshot_date).rename(
        {"worst_dpd": "dpd_at_snapshot"}
    )
    in_horizon = account_worst_dpd(
        ledger.installments, horizon_start(snapshot_date, cfg), end
    ).rename({"worst_dpd": "worst_dpd_in_horizon"})
    return (
        book.join(at_snapshot, on="account_id", how="left")
        .join(in_horizon, on="account_id", how="left")
        .with_columns(pl.col("dpd_at_snapshot", "worst_dpd_in_horizon").fill_null(0).cast(pl.Int32))
        .filter(pl.col("dpd_at_snapshot") < cfg.bad_dpd)
        .select(
            "account_id",
            pl.lit(snapshot_date, dtype=pl.Date()).alias("snapshot_date"),
            (pl.col("worst_dpd_in_horizon") >= cfg.bad_dpd).cast(pl.Int8).alias("bad"),
            "worst_dpd_in_horizon",
            pl.lit(cfg.horizon_days, dtype=pl.Int32).alias("horizon_days"),
            pl.lit(cfg.gap_days, dtype=pl.Int32).alias("gap_days"),
        )
        .sort("account_id")
    )


# --- I/O entry points -------------------------------------------------------------------------------


def build_labels_for(
    root: Path, snapshot_date: dt.date, cfg: RisklineConfig, as_of: dt.date | None = None
) -> pl.DataFrame:
    """Labels of a matured snapshot, read from the curated zone (only ``dt <= s+G+H``).

    ``as_of`` (the run's date), when given, must lie on or after s+G+H. The snapshot of s and the
    instalments and payments partitions of s+G+H must be complete.
    """
    end = horizon_end(snapshot_date, cfg.labels)
    if as_of is not None and not is_matured(snapshot_date, as_of, cfg.labels):
        raise LabelsNotMaturedError(f"snapshot {snapshot_date} matures on {end}, after the run date {as_of}")
    problems = []
    if not lake.is_complete(lake.partition_dir(root, "curated", "accounts", snapshot_date)):
        problems.append(f"no complete accounts snapshot for {snapshot_date}")
    for dataset in ("installments", "payments"):
        if not lake.is_complete(lake.partition_dir(root, "curated", dataset, end)):
            problems.append(f"no complete {dataset} partition for {end}")
    if problems:
        raise LabelsNotMaturedError(f"cannot label snapshot {snapshot_date}: " + "; ".join(problems))
    # the payments the nightly ledger of s+H applied: curated plus quarantined ones resolved by then
    payments = pl.concat(
        [lake.scan_curated(root, "payments", end), scan_pending_payments(root, end).resolved.lazy()], how="vertical"
    )
    ledger = build_ledger(lake.scan_curated(root, "installments", end), payments, end, cfg.business.timezone)
    accounts = lake.scan_curated(root, "accounts", snapshot_date, dates=[snapshot_date])
    return build_labels(accounts, ledger, snapshot_date, cfg.labels)


def labels_partition(root: Path, snapshot_date: dt.date) -> Path:
    return lake.derived_partition(root, LABELS_ZONE, snapshot_date, key="snapshot_date")


def write_labels_for(root: Path, snapshot_date: dt.date, cfg: RisklineConfig) -> Path:
    """Build and publish ``DATA_ROOT/labels/snapshot_date=s/labels.parquet``; return the partition."""
    labels = build_labels_for(root, snapshot_date, cfg)
    return lake.publish_frames(labels_partition(root, snapshot_date), {LABELS_FILE: labels})
