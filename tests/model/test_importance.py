"""Training stores the mean |SHAP| the report shows; the report reads it back and never runs TreeSHAP."""

from __future__ import annotations

import json

import polars as pl

from pipelines.config.model_definition import ModelDefinition
from pipelines.config.settings import RisklineConfig
from pipelines.model.importance import mean_abs_shap, shap_sample
from pipelines.model.metrics import shap_from_record
from pipelines.model.registry import MODEL_FILE, ModelRegistry
from pipelines.model.train import train_evaluate_register
from pipelines.report import report
from pipelines.store import lake, zones

SAMPLE = 300  # fewer than the book's 2,000 OOT accounts, so the sample is a real subset


def test_shap_sample_is_stable_and_order_free() -> None:
    ids = pl.Series("account_id", [f"A{i:07d}" for i in range(500)])
    first = shap_sample(ids, 20)
    assert first.len() == 20 and first.is_sorted()
    assert shap_sample(ids.shuffle(seed=1), 20).to_list() == first.to_list()
    # a bigger sample contains the smaller one: the accounts do not depend on the sample size
    assert set(first.to_list()) <= set(shap_sample(ids, 40).to_list())
    assert shap_sample(ids, 1000).len() == 500


def test_training_stores_mean_abs_shap_on_a_stable_oot_sample(
    book, definition: ModelDefinition, cfg: RisklineConfig, tmp_path
):
    result = train_evaluate_register(ModelRegistry(tmp_path), book.plan, book.fit, book.early_stopping, book.oot,
                                     definition, cfg.model, shap_accounts=SAMPLE)
    registry = ModelRegistry(tmp_path)  # a fresh reader: what metrics.json holds, not what training returned
    stored = registry.record(result.version).metrics["importance_shap"]
    assert stored["accounts"] == SAMPLE
    assert list(stored["mean_abs"]) == sorted(definition.feature_names)  # every model feature, by name
    assert all(type(v) is float and v >= 0.0 for v in stored["mean_abs"].values())
    # the same numbers TreeSHAP gives the registered model on the hash sample of the OOT rows, exactly:
    # JSON keeps a float64's shortest repr, which parses back to the same float
    sample = book.oot.filter(pl.col("account_id").is_in(shap_sample(book.oot["account_id"], SAMPLE).implode()))
    direct = mean_abs_shap(registry.load_booster(result.version), sample.sort("account_id"), 1)
    frame, accounts = shap_from_record(stored)
    assert accounts == SAMPLE
    assert frame.to_dicts() == direct.to_dicts()
    assert frame["mean_abs_shap"].sum() > 0.0  # the features drive the synthetic risk: not all zero


def _collect(root, version: str, cfg: RisklineConfig, as_of):
    return report._collect_model(root, as_of, cfg, {"model_version": version},
                                 pl.DataFrame({"score": [600, 650]}), None)


def test_report_reads_the_stored_shap_and_says_so_when_a_model_has_none(
    book, definition: ModelDefinition, cfg: RisklineConfig, tmp_path
):
    version = train_evaluate_register(ModelRegistry(tmp_path), book.plan, book.fit, book.early_stopping, book.oot,
                                       definition, cfg.model, shap_accounts=SAMPLE).version
    as_of = book.plan.as_of
    lake.publish_frames(zones.feature_partition(tmp_path, as_of), {zones.FEATURES_FILE: book.oot.drop("bad")})
    version_dir = ModelRegistry(tmp_path).record(version).path
    # without the model file, any TreeSHAP (or other booster use) in the model section would fail
    (version_dir / MODEL_FILE).unlink()

    section = _collect(tmp_path, version, cfg, as_of)
    stored, accounts = shap_from_record(json.loads((version_dir / "metrics.json").read_text())["importance_shap"])
    assert section.shap.to_dicts() == stored.head(cfg.report.top_features).to_dicts()
    assert section.shap_accounts == accounts == SAMPLE and section.shap_note == ""

    # a model registered before training stored the summary: a note, no chart data, nothing recomputed
    metrics = json.loads((version_dir / "metrics.json").read_text())
    del metrics["importance_shap"]
    (version_dir / "metrics.json").write_text(json.dumps(metrics))
    older = _collect(tmp_path, version, cfg, as_of)
    assert older.shap.height == 0 and older.shap_accounts == 0
    assert older.shap_note.startswith(f"Model {version} was registered before training stored its mean |SHAP|")

