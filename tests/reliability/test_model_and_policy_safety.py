"""A sabotaged challenger never replaces the serving champion; a dangerous policy never loads.

Shuffled labels with a champion serving, and a leaking feature with no champion, are covered in
``tests/model/test_gate.py``; here a leaking feature meets a lake whose champion is serving, and the
policy mistakes are made in a copy of the real ``riskline.yaml`` and loaded the way every entry point does.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml
from reliability_support import PublishedLake, fixture_training_book

from pipelines.entry import cli
from pipelines.stages import night as nightly
from pipelines.config.settings import ConfigError, RisklineConfig, load_config
from pipelines.model.metrics import LeakageSuspectedError
from pipelines.model.registry import ModelRegistry
from pipelines.model.train import train_evaluate_register

REPO = Path(__file__).resolve().parents[2]


def test_a_challenger_with_a_label_leaking_feature_is_refused_and_the_champion_keeps_serving(
    published_lake: PublishedLake, lake_root: Path, quiet_cfg: RisklineConfig
):
    book = published_lake
    registry = ModelRegistry(lake_root)
    versions, history = registry.versions(), registry.history()
    plan, fit, early_stopping, oot, definition = fixture_training_book(lake_root, book.published, quiet_cfg)
    leaky = definition.feature_names[0]  # an unconstrained feature (spend in cents), now carrying the outcome

    def leak(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns((pl.col("bad") * 1e12 + pl.col(leaky)).alias(leaky))

    with pytest.raises(LeakageSuspectedError, match=f"Strongest single features: {leaky} "):
        train_evaluate_register(registry, plan, leak(fit), leak(early_stopping), leak(oot), definition,
                                quiet_cfg.model)
    # nothing registered, nothing promoted: the night's scores still come from the champion
    assert registry.versions() == versions and registry.history() == history
    assert registry.champion() == registry.champion_on(book.next_day) == book.model_version
    scored = nightly.stage_score(lake_root, book.published, quiet_cfg)
    assert scored["model_version"] == book.model_version


def _policy_edit(path: list[str], value: object):
    def edit(raw: dict) -> None:
        node = raw["policy"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


BAD_POLICIES = {
    # a line may at most double in one step: 1.5 is +150%
    "increase_step_above_100pct": (_policy_edit(["increase", "step_by_grade", "A"], 1.5),
                                   r"policy.*step_by_grade.*values must be in \(0, 1\]"),
    "negative_floor": (lambda raw: raw["product"].update(min_limit_cny=-50), r"product\.min_limit_cny"),
    # increase.max_grade (B) must not be worse than unfreeze.max_grade: D after C is out of order
    "grade_cutoffs_out_of_order": (_policy_edit(["unfreeze", "max_grade"], "D"), "grade cut-offs are out of order"),
    "unknown_action": (_policy_edit(["strategy_test", "testable_actions"], ["decrease", "incraese"]),
                       "unknown action 'incraese'"),
}


@pytest.mark.parametrize("case", list(BAD_POLICIES))
def test_a_dangerous_policy_is_rejected_at_load_with_a_clear_error(case: str, tmp_path: Path, capsys):
    edit, message = BAD_POLICIES[case]
    raw = yaml.safe_load((REPO / "riskline.yaml").read_text())
    edit(raw)
    bad = tmp_path / "riskline.yaml"
    bad.write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(ConfigError, match=message) as err:
        load_config(bad)
    assert str(bad) in str(err.value)  # names the file ...
    # ... and every command refuses to start with it: one line, exit status 2, before touching data
    assert cli.main(["--config", str(bad), "--data-root", str(tmp_path / "data"), "model", "list"]) == 2
    assert capsys.readouterr().err.startswith("error: config file ")
    assert not (tmp_path / "data").exists()
