"""Read what the strategy test readout needs from the lake, and compute it (pipelines/domain/cells.py).

The assignments come from the published ``limits`` of the nights in the range and, to know whether an account was
first assigned before the range, of every earlier night of the same policy version (read back night by night,
only the columns needed and only the tested rows kept, until a night of another version); the policy's line moves
from the published ``limits`` of every night since (the assigned accounts' rows); DPD and balances from a ledger
as of the newest data.

That ledger is rebuilt from the curated instalments and payments (``dt <=`` the newest night, as training builds
its label ledger), for the assigned accounts only, because a balance at a past day needs each payment's day: the
published ledger keeps the instalments' state, not the payments. It is the nightly ledger's allocation on the same
rows, except a quarantined payment that resolved later (the night applies it from its own date; a rare row that
may leave one account looking a few days later than it paid).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipelines.config.settings import RisklineConfig
from pipelines.domain.cells import (
    OUTCOME_SCHEMA, CellsError, cell_assignments, cohorts_in_range, first_assignments, matured_windows,
    readout_cells, unmoved_challenger, unmoved_outside_cells, window_outcomes,
)
from pipelines.domain.ledger import build_ledger
from pipelines.store import lake, zones
from pipelines.store.publish import output_dir, read_latest, read_output

_LIMIT_COLUMNS = ["account_id", "as_of_date", "test_cell", "action", "reason_codes", "policy_version",
                  "previous_limit", "new_limit"]


@dataclass(frozen=True)
class CellReadout:
    """The readout of the cohorts first assigned on the nights ``first .. last`` (published nights ``nights``),
    outcomes up to ``newest``.

    Attributes:
        assignments: the cohorts read out (:func:`pipelines.domain.cells.cohorts_in_range`; one row per policy
            version, account and tested action).
        earlier: accounts first assigned before ``first`` under the same versions, left out (``policy_version,
            tested_action, test_cell, accounts``).
        looked_back_to: the first night read to find first assignments (``nights[0]`` when none was earlier).
        unmoved: :func:`pipelines.domain.cells.unmoved_challenger` first seen in the range (in no cell).
        outcomes: :func:`pipelines.domain.cells.window_outcomes` (one row per matured assignment and window).
        readout: :func:`pipelines.domain.cells.readout_cells` (one row per action, window, metric and cell).
    """

    first: dt.date
    last: dt.date
    nights: list[dt.date]
    newest: dt.date
    confidence: float
    min_accounts: int
    windows_days: tuple[int, ...]
    late_days: int
    looked_back_to: dt.date
    assignments: pl.DataFrame
    earlier: pl.DataFrame
    unmoved: pl.DataFrame
    outcomes: pl.DataFrame
    readout: pl.DataFrame


def published_nights(root: Path) -> list[dt.date]:
    """The nights whose ``limits`` output is published (complete), oldest first."""
    return lake.complete_partition_dates(root, "outputs", "limits", key="as_of_date")


def _read_limits(root: Path, night: dt.date, accounts: pl.DataFrame | None = None) -> pl.DataFrame:
    frame = read_output(root, "limits", night, columns=_LIMIT_COLUMNS).with_columns(
        # decimal(18,2) CNY back to integer cents, exactly
        (pl.col("previous_limit") * 100).cast(pl.Int64).alias("previous_limit_cents"),
        (pl.col("new_limit") * 100).cast(pl.Int64).alias("new_limit_cents"),
    )
    return frame if accounts is None else frame.join(accounts, on="account_id", how="semi")


def _tested(root: Path, night: dt.date, testable: list[str], versions: set[str] | None = None
            ) -> tuple[pl.DataFrame, pl.DataFrame, set[str]]:
    """A night's tested rows and unmoved challenger lines (of ``versions`` only, when given) and its versions.

    Scanned, with the filter pushed into the read: only the champion's tested rows and the challenger and control
    rows (a tenth of the book) are materialized, because the look back reads every earlier night of a version."""
    partition = output_dir(root, "limits", night)
    files = lake.complete_files(partition)
    if not files:
        raise CellsError(f"the published limits of {night} are missing or incomplete ({partition})")
    scan = lake.scan_parquet(files).select(_LIMIT_COLUMNS)
    seen = set(scan.select(pl.col("policy_version").unique()).collect()["policy_version"].to_list())
    if versions is not None:
        scan = scan.filter(pl.col("policy_version").is_in(list(versions)))
        seen &= versions
    limits = scan.filter((pl.col("test_cell") != "champion") | pl.col("action").is_in(testable)).collect()
    limits = limits.with_columns(
        (pl.col("previous_limit") * 100).cast(pl.Int64).alias("previous_limit_cents"),
        (pl.col("new_limit") * 100).cast(pl.Int64).alias("new_limit_cents"),
    )
    return cell_assignments(limits, testable), unmoved_challenger(limits, testable), seen


def read_cell_readout(
    root: Path, first: dt.date, last: dt.date, cfg: RisklineConfig, newest: dt.date | None = None,
    policy_version: str | None = None,
) -> CellReadout:
    """The test cells' readout for the accounts first assigned on the published nights ``first .. last``.

    Args:
        newest: the newest date the outcomes may use (default: the newest published night, ``_LATEST``); the
            report passes its own night so that a page rebuilt later says the same.
        policy_version: read out this version only (the report: its night's own); default every version in the
            range, each in its own block.

    Raises:
        CellsError: nothing is published, no published night lies in the range, or none of it has
            ``policy_version``.
    """
    if first > last:
        raise CellsError(f"--from {first} is after --to {last}")
    newest = newest or read_latest(root)
    if newest is None:
        raise CellsError(f"nothing has been published under {root} yet")
    nights = [n for n in published_nights(root) if n <= newest]
    in_range = [n for n in nights if first <= n <= last]
    if not in_range:
        shown = f"{nights[0]} .. {nights[-1]}" if nights else "none"
        raise CellsError(f"no published night lies in {first} .. {last} (published nights up to {newest}: {shown})")
    windows = cfg.cells.windows_days
    late = cfg.ingest.payment_late_days
    testable = list(cfg.policy.strategy_test.testable_actions)
    only = {policy_version} if policy_version else None
    # night by night: a night's tested rows are a few percent of its book
    parts, unmoved_parts, versions = [], [], set()
    for night in in_range:
        tested, unmoved, seen = _tested(root, night, testable, only)
        parts.append(tested)
        unmoved_parts.append(unmoved)
        versions |= seen
    if not versions:
        raise CellsError(f"no published night in {first} .. {last} has policy version {policy_version}")
    # back before the range while the nights are of a version read out: an account first assigned there belongs
    # to an earlier cohort (pipelines/domain/cells.py: cohorts_in_range)
    looked_back_to = in_range[0]
    for night in reversed([n for n in nights if n < in_range[0]]):
        tested, _, seen = _tested(root, night, testable, versions)
        if not seen:
            break
        parts.append(tested)
        looked_back_to = night
    assignments, earlier = cohorts_in_range(first_assignments(pl.concat(parts)), first, last)
    unmoved = unmoved_outside_cells(pl.concat(unmoved_parts), assignments)
    accounts = assignments.select("account_id").unique()
    if matured_windows(in_range, windows, newest, late) and accounts.height:
        moves = pl.concat([_read_limits(root, n, accounts).select(
            "account_id", "as_of_date", "previous_limit_cents", "new_limit_cents") for n in nights if n >= in_range[0]])
        ledger = build_ledger(
            zones.scan_curated(root, "installments", newest).join(accounts.lazy(), on="account_id", how="semi"),
            zones.scan_curated(root, "payments", newest).join(accounts.lazy(), on="account_id", how="semi"),
            newest, cfg.business.timezone,
        )
        outcomes = window_outcomes(assignments, ledger, moves, windows, newest, cfg.labels.bad_dpd, late)
    else:  # no window has matured yet: no ledger to rebuild
        outcomes = pl.DataFrame(schema=OUTCOME_SCHEMA)
    readout = readout_cells(assignments, outcomes, windows, newest, cfg.cells.confidence, cfg.cells.min_accounts,
                            late)
    return CellReadout(first, last, in_range, newest, cfg.cells.confidence, cfg.cells.min_accounts, windows, late,
                       looked_back_to, assignments, earlier, unmoved, outcomes, readout)



def night_policy_version(root: Path, night: dt.date) -> str | None:
    """The policy version a published night decided with (None when the night is not published or empty)."""
    if night not in published_nights(root):
        return None
    versions = read_output(root, "limits", night, columns=["policy_version"])["policy_version"].unique().sort()
    return versions[-1] if versions.len() else None
