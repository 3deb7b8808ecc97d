"""Exact reason codes where a decision is read (issue 19, item 2), decided first, checked before publishing.

The score stage decides once from PD and grade, then computes exact TreeSHAP reasons for every account the
decisions act on (decrease, freeze, a collections case, a hardship offer), whatever the model definition
expected; the decide stage refuses scores whose acted-on accounts carry approximate reasons.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml
from reliability_support import PublishedLake, published_outputs, run_night_without_report

from pipelines.config.model_definition import definition_path
from pipelines.config.settings import RisklineConfig
from pipelines.domain.decide import ADVERSE_ACTIONS, InexactReasonsError
from pipelines.stages import night as nightly
from pipelines.store import lake
from pipelines.store.zones import SCORES_FILE, scores_dir


def _without_expectation(cfg: RisklineConfig, folder: Path) -> RisklineConfig:
    """The same model definition, but expecting no action anywhere: only deciding first finds them."""
    raw = yaml.safe_load(definition_path(cfg).read_text())
    raw["reason_codes"].update({"exact_for_grades": [], "exact_when_positive": [], "exact_on_pd_rise_above": None})
    path = folder / "pd_model.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"definition": str(path)})})


def _acted_on(root: Path, day) -> set[str]:
    out = published_outputs(root, day)
    adverse = out["limits"].filter(pl.col("action").is_in(ADVERSE_ACTIONS))["account_id"]
    return set(adverse) | set(out["collection_queue"]["account_id"]) | set(out["hardship_offers"]["account_id"])


def test_every_account_acted_on_gets_exact_reasons_and_only_those(
    published_lake: PublishedLake, lake_root: Path, quiet_cfg: RisklineConfig, tmp_path: Path
):
    cfg = _without_expectation(quiet_cfg, tmp_path)
    run_night_without_report(lake_root, published_lake.next_day, cfg)

    acted = _acted_on(lake_root, published_lake.next_day)
    scores = lake.read_partition(scores_dir(lake_root, published_lake.next_day))
    exact = set(scores.filter(pl.col("reason_method") == "exact")["account_id"])
    assert len(acted) >= 20, "the night must act on accounts for the check to mean anything"
    # exact where read, approximate elsewhere: the definition expected nothing, so the guess covered none
    assert exact == acted
    assert scores.filter(pl.col("reason_method") == "approx").height == scores.height - len(acted)


def test_decide_refuses_scores_whose_acted_on_accounts_have_approximate_reasons(
    published_lake: PublishedLake, lake_root: Path, quiet_cfg: RisklineConfig
):
    day = published_lake.next_day
    run_night_without_report(lake_root, day, quiet_cfg)
    before = published_outputs(lake_root, day)
    # scores of this date as another run left them: every reason approximate
    stale = lake.read_partition(scores_dir(lake_root, day)).with_columns(reason_method=pl.lit("approx"))
    lake.publish_frames(scores_dir(lake_root, day), {SCORES_FILE: stale})
    with pytest.raises(InexactReasonsError, match="NEXT STEP: rerun the score stage"):
        nightly.stage_decide(lake_root, day, quiet_cfg)
    # what was published stays as it was
    after = published_outputs(lake_root, day)
    assert all(after[name].equals(before[name]) for name in before)
