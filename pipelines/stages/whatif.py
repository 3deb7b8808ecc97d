"""The policy what-if: ``riskline simulate --policy candidate.yaml --as-of D``.

Re-decides a *published* night D with a candidate limit policy and the same scores (the published scores of D,
never re-scored) on the same inputs (:func:`~pipelines.store.readers.read_decide_inputs`, what the decide stage
read), and compares with the published limits of D, the live decision.

It first re-decides D with the live policy and requires that to reproduce the published limits exactly, every
column of every row (a built-in self-check): that is what proves "same scores, same inputs". If it does not (the
live riskline.yaml changed since D, a later rerun replaced an input, the previous night's limit history is gone),
the what-if refuses, naming what differs, rather than attribute a difference to the candidate that is not its.

Test cells are drawn by a hash of (policy version, account id), so a candidate under a new version would
re-draw them; the candidate is decided with the live version's cells, so the page shows the rules' effect alone,
and the re-draw's own effect is decided too and shown apart (:func:`pipelines.report.whatif.cell_redraw`).

Writes only ``DATA_ROOT/simulations/<candidate version>/as_of_date=D/`` (the page, the candidate's limits in the
published shape, the per-account comparison), published whole like any partition. No stage reads that zone; no
lock, marker, registry entry, manifest or chain record is written, and nothing else in the lake changes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.config.decisions import PolicyConfig
from pipelines.config.model_definition import load_model_definition
from pipelines.config.settings import RisklineConfig
from pipelines.contracts.outputs import OUTPUT_COLUMNS, to_published
from pipelines.report.whatif import (
    STAYS_FROZEN_CUT, WhatIfPage, by_grade, cell_redraw, compare_decisions, frozen_and_cut, harsher_accounts,
    policy_changes, render_whatif, sample_explanations, swap_matrix, wording_samples,
)
from pipelines.store import chain, lake, locks, zones
from pipelines.store.publish import journal_path, read_latest, read_manifest, read_output
from pipelines.store.readers import DecideInputs, read_decide_inputs

log = logging.getLogger(__name__)


class SimulationRefused(RuntimeError):
    """The what-if cannot be trusted on this night (not published, or the live policy does not reproduce it)."""


@dataclass(frozen=True)
class SimulationResult:
    """What ``riskline simulate`` wrote and the headline numbers (small: the Airflow task returns it)."""

    as_of: dt.date
    path: Path  # the simulation's partition
    page: Path
    live_version: str
    candidate_version: str
    accounts: int
    changed: int
    harsher: int
    gentler: int
    relabelled: int
    wording_changed: int
    candidate_sha256: str

    def summary(self) -> dict[str, Any]:
        return {"as_of": self.as_of.isoformat(), "page": str(self.page), "live_version": self.live_version,
                "candidate_version": self.candidate_version, "candidate_sha256": self.candidate_sha256,
                "accounts": self.accounts, "changed": self.changed, "harsher": self.harsher, "gentler": self.gentler,
                "relabelled": self.relabelled, "wording_changed": self.wording_changed}

    def headline(self) -> str:
        """The one line ``riskline simulate`` prints (the page's path follows it)."""
        return (f"what-if of {self.as_of}: candidate {self.candidate_version} (sha256 {self.candidate_sha256[:12]}) "
                f"against live {self.live_version}: {self.changed:,} of {self.accounts:,} lines affected, "
                f"{self.harsher:,} harsher, {self.gentler:,} gentler, {self.relabelled:,} same outcome under "
                f"another label, {self.wording_changed:,} with changed wording")


def newest_published(root: Path) -> dt.date:
    """The newest published night (``outputs/_LATEST``): what a what-if without a date re-decides."""
    latest = read_latest(root)
    if latest is None:
        raise SimulationRefused(f"nothing has been published under {root} yet: a what-if re-decides a published "
                                "night (run one first: `riskline run --as-of D`)")
    return latest


def _decide_limits(inputs: DecideInputs, as_of: dt.date, cfg: RisklineConfig, policy: PolicyConfig,
                   scores: pl.DataFrame) -> pl.DataFrame:
    """The limits of D under ``policy`` (every other section as live), by the nightly decide step itself."""
    limits, *_ = inputs.decide(as_of, cfg.model_copy(update={"policy": policy}), scores)
    return limits


def _night_usable(root: Path, as_of: dt.date) -> None:
    """Refuse, with the right next step, a night a run is publishing now or a rerun of an earlier night made
    stale (the self-check would refuse both too, but with advice that cannot help)."""
    if locks.is_held(zones.run_lock_path(root, as_of)) or lake.read_bytes(journal_path(root, as_of)) is not None:
        raise SimulationRefused(f"a run is publishing {as_of} now; retry when it finishes")
    stale = chain.stale_nights(root)
    if as_of in stale:
        raise SimulationRefused(
            f"{as_of} is stale ({stale[as_of]}): its published limits are not what its inputs decide now; "
            f"rebuild it first with `riskline rebuild --from {chain.rebuild_start(root, as_of)}`, then simulate")


def _self_check(live: pl.DataFrame, published: pl.DataFrame, as_of: dt.date, versions: dict[str, str]) -> None:
    """Refuse unless ``live`` (re-decided with the live policy), in the published shape, is the published frame."""
    mine = to_published("limits", live, as_of, versions)
    if mine.height != published.height or not mine["account_id"].equals(published["account_id"]):
        raise SimulationRefused(
            f"re-deciding {as_of} with the live policy gives {mine.height:,} lines, the published limits hold "
            f"{published.height:,} (other accounts): the night's inputs changed since it was published; rerun it "
            f"(`riskline run --as-of {as_of} --no-retrain`) or simulate another night")
    differs = []
    for column, _ in OUTPUT_COLUMNS["limits"]:
        same = mine[column].eq_missing(published[column]) if column != "reason_codes" else (
            mine[column].list.join(",").eq_missing(published[column].list.join(",")))
        bad = int((~same).sum())
        if bad:
            first = mine.filter(~same)["account_id"][0]
            differs.append(f"{column} on {bad:,} lines (e.g. {first})")
    if differs:
        raise SimulationRefused(
            f"re-deciding {as_of} with the live policy does not reproduce its published limits: {'; '.join(differs)}. "
            "The what-if needs the same scores and inputs as the night (the live riskline.yaml policy, the limit "
            "history of the night before, the curated snapshot); rerun the night or simulate a later one")


def simulate_policy(root: Path, as_of: dt.date, cfg: RisklineConfig, candidate: PolicyConfig,
                    candidate_bytes: bytes = b"", source: str = "candidate") -> SimulationResult:
    """Re-decide the published night ``as_of`` with ``candidate``; write the what-if page and frames.

    ``candidate_bytes`` (the file as read) and ``source`` (its name) are stamped on the page and the summary: the
    folder of a version keeps the last simulation whole, and its sha256 says which file that was.

    Raises:
        SimulationRefused: the candidate carries the live version, its version cannot name a folder, nothing was
            published for ``as_of``, a run is publishing it or it is stale, it was decided under another policy
            version than the live one, or re-deciding it with the live policy does not reproduce its published
            limits.
    """
    if candidate.version == cfg.policy.version:
        # why: the version is stamped on every decision and seeds the test cells; a candidate under the live one
        # (even the live policy itself: its self-check is the what-if's own first step) would be indistinguishable
        raise SimulationRefused(
            f"the candidate carries the live version {candidate.version}: a candidate must carry its own version "
            f"(it stamps every decision and seeds the cells); use e.g. {candidate.version}-whatif or the next release")
    try:
        target = zones.simulation_partition(root, candidate.version, as_of)
    except ValueError as exc:
        raise SimulationRefused(f"candidate {exc}") from None
    try:
        manifest = read_manifest(root, as_of)
    except FileNotFoundError as exc:
        raise SimulationRefused(f"{exc}: a what-if re-decides a published night") from None
    live_policy = cfg.policy
    if manifest.get("policy_version") != live_policy.version:
        raise SimulationRefused(
            f"{as_of} was decided under policy {manifest.get('policy_version')} and the live riskline.yaml holds "
            f"{live_policy.version}: the what-if compares a candidate with the policy that decided the night; "
            "simulate a night the live policy decided (or rerun this one)")
    _night_usable(root, as_of)
    scores = read_output(root, "scores", as_of)  # the published scores: the same PD and grade, never re-scored
    published = read_output(root, "limits", as_of)
    versions = {"model_version": str(manifest["model_version"]), "policy_version": live_policy.version}
    inputs = read_decide_inputs(root, as_of, cfg)

    live = _decide_limits(inputs, as_of, cfg, live_policy, scores)
    _self_check(live, published, as_of, versions)
    # the live version's cells: the rules' effect alone (module docstring); the version stamped is the candidate's
    shown = _decide_limits(inputs, as_of, cfg, candidate.model_copy(update={"version": live_policy.version}), scores)
    shown = shown.with_columns(policy_version=pl.lit(candidate.version, dtype=pl.String))
    redrawn = _decide_limits(inputs, as_of, cfg, candidate, scores)

    comparison = compare_decisions(live, shown)
    harsher = harsher_accounts(comparison)
    changes = policy_changes(live_policy.model_dump(mode="json"), candidate.model_dump(mode="json"))
    notes = []
    cut_frozen, cut_text = frozen_and_cut(comparison)
    if cut_frozen:
        notes.append(STAYS_FROZEN_CUT.format(count=cut_frozen, sample=cut_text))
    sha256 = hashlib.sha256(candidate_bytes).hexdigest()
    page = WhatIfPage(
        as_of=as_of,
        live_version=live_policy.version,
        candidate_version=candidate.version,
        model_version=versions["model_version"],
        accounts=comparison.height,
        changed=int(comparison["changed"].sum()),
        harsher=harsher.height,
        gentler=int(comparison["gentler"].sum()),
        relabelled=int(comparison["relabelled"].sum()),
        wording_changed=int(comparison["wording_changed"].sum()),
        candidate_source=source,
        candidate_sha256=sha256,
        swap=swap_matrix(comparison),
        grades=by_grade(comparison, tuple(load_model_definition(cfg).grades.labels), cfg.collections.lgd,
                        cfg.collections.unscored_pd),
        harsher_rows=harsher.head(cfg.simulate.harsher_rows),
        samples=sample_explanations(comparison, cfg.simulate.sample_explanations),
        cells=cell_redraw(shown, redrawn),
        changes=changes,
        wording=wording_samples(comparison, cfg.simulate.sample_explanations),
        notes=notes,
    )
    with lake.staged_partition(target) as tmp:
        lake.write_parquet(to_published("limits", shown, as_of, {**versions, "policy_version": candidate.version}),
                           tmp / zones.SIMULATION_LIMITS_FILE)
        lake.write_parquet(comparison, tmp / zones.SIMULATION_COMPARISON_FILE)
        (tmp / zones.SIMULATION_PAGE).write_bytes(render_whatif(page).encode("utf-8"))
    log.info("what-if of %s with %s: %d of %d lines affected, %d harsher -> %s", as_of, candidate.version,
             page.changed, page.accounts, page.harsher, target)
    return SimulationResult(as_of, target, target / zones.SIMULATION_PAGE, live_policy.version, candidate.version,
                            page.accounts, page.changed, page.harsher, page.gentler, page.relabelled,
                            page.wording_changed, sha256)
