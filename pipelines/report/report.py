"""The nightly run report: one self-contained HTML page per business date, read every morning.

``DATA_ROOT/reports/as_of_date=D/report.html`` (CSS inline, charts inline as base64 PNG, no script, no
network) for risk managers, model validators and collections leads. Sections: trends (the last
``report.trend_nights`` published nights from their manifests' book summaries, :func:`collect_trends`; the
expected-loss card; 30-day roll rates), data (rows, quarantine,
validation, a link to the night's Data Docs), model (OOT metric trend, ROC/KS, calibration, score drift,
feature importance, feature PSI, the champion/challenger decision), portfolio (delinquency by bucket,
roll rates, vintages), decisions (actions and exposure by grade, limit changes, the swap set, strategy
test cells) and collections (queues against capacity, hardship offers).

Every count the manifest holds (rows per output, model and policy versions) is rendered *from the
manifest* and tagged ``data-manifest="<dotted key>"`` so a test can hold the page to it. The page holds
no wall-clock time, so regenerating it from the same lake gives the same bytes.

Layout: the pure pieces (frames and arrays in, frames/numbers out: ``roll_rates``, ``vintage_curves``,
``swap_set``, ``format_cny``, ...) and the sections' dataclasses are in :mod:`pipelines.report.sections`; the
markup in :mod:`pipelines.report.render`; the charts in :mod:`pipelines.report.plots`. This module reads:
:func:`collect_report_data` reads the lake and the registry (the OOT curves and mean |SHAP| training stored,
the decide step for the swap set), :func:`write_report` writes the page atomically.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import posixpath
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.config.location import Location, is_remote
from pipelines.config.model_definition import load_model_definition
from pipelines.config.settings import RisklineConfig
from pipelines.contracts.outputs import OUTPUTS
from pipelines.domain.conform import QUARANTINE_REASON
from pipelines.domain.policy import REASON_COLUMNS
from pipelines.model.metrics import curves_from_record, shap_from_record
from pipelines.model.pd import score_pd
from pipelines.model.registry import ModelRegistry, RegistryError
from pipelines.quality.data_docs import data_docs_dir, results_dir
from pipelines.report import plots
from pipelines.report.cells import collect_cells
from pipelines.report.render import render_report
from pipelines.report import trends
from pipelines.report.sections import (
    ACTION_ORDER, CollectionsSection, DataSection, DecisionsSection, GateView, ModelSection, PortfolioSection,
    ReportData, ReportError, SwapView, delinquency_by_bucket, dpd_bucket, exposure_by_action_grade, feature_psi,
    limit_changes, money_to_cents, order_key, queue_against_capacity, roll_rates, score_psi, swap_set,
    swap_summary, test_cell_summary, vintage_curves,
)
from pipelines.store import chain, lake, zones
from pipelines.store.publish import read_manifest, read_output
from pipelines.store.readers import read_decide_inputs
from pipelines.store.zones import ledger_partition, report_path
from pipelines.vocab import DATASETS


ROLL_COLUMNS = ["account_id", "dpd", "outstanding_principal_cents", "overdue_cents"]  # what roll_rates reads


# --- I/O --------------------------------------------------------------------------------------------


def _read_manifest(root: Path, as_of: dt.date) -> dict[str, Any]:

    try:
        return read_manifest(root, as_of)
    except FileNotFoundError as exc:
        raise ReportError(f"{exc}: run `riskline run --as-of {as_of}` first") from None


def _published(root: Path, as_of: dt.date) -> dict[str, pl.DataFrame]:

    return {name: read_output(root, name, as_of) for name in OUTPUTS}


def _count_rows(partition: Path) -> int:

    if not lake.is_complete(partition):
        return 0
    files = lake.parquet_files(partition)
    return int(lake.scan_parquet(files).select(pl.len()).collect().item()) if files else 0


def _key(location: Location) -> str:
    """A location as a slash path (a local path, or an object's key), for links between pages."""
    return location.path if is_remote(location) else os.path.abspath(location)


def _collect_data(root: Path, as_of: dt.date, report_dir: Path) -> DataSection:

    rows, reasons, failures = [], [], []
    for name in DATASETS:
        stored_path = results_dir(root, as_of) / f"{name}.json"
        raw = lake.read_bytes(stored_path)
        stored = json.loads(raw) if raw is not None else None
        outcomes = stored["outcomes"] if stored else []
        quarantine = zones.quarantine(root, name, as_of)
        held = _count_rows(quarantine)
        rows.append({
            "dataset": name,
            "validated_rows": int(stored["rows"]) if stored else 0,
            "curated_rows": _count_rows(zones.curated(root, name, as_of)),
            "quarantined_rows": held,
            "passed": sum(o["outcome"] == "passed" for o in outcomes),
            "failed": sum(o["outcome"] in ("quarantined", "warning", "critical") for o in outcomes),
            "ok": bool(stored["ok"]) if stored else False,
        })
        for o in outcomes:
            if o["outcome"] in ("quarantined", "warning", "critical"):
                failures.append(f"{name}: {o['outcome'].upper()} [{o['risk']}] {o['expectation']}: "
                                f"{o.get('unexpected_count') or o.get('observed')}")
        if held:
            counts = (lake.scan_parquet(lake.parquet_files(quarantine)).select(
                pl.col(QUARANTINE_REASON).str.split(";").explode().alias("reason"))
                .group_by("reason").len().sort("reason").collect())
            reasons += [{"dataset": name, "reason": r, "rows": int(n)} for r, n in counts.iter_rows()]
    docs = data_docs_dir(root, as_of) / "index.html"
    href = posixpath.relpath(_key(docs), _key(report_dir)) if lake.is_file(docs) else None
    return DataSection(
        datasets=pl.DataFrame(rows, schema={"dataset": pl.String, "validated_rows": pl.Int64,
                                            "curated_rows": pl.Int64, "quarantined_rows": pl.Int64,
                                            "passed": pl.Int64, "failed": pl.Int64, "ok": pl.Boolean}),
        quarantine_reasons=pl.DataFrame(reasons, schema={"dataset": pl.String, "reason": pl.String, "rows": pl.Int64}),
        failures=failures,
        data_docs_href=href,
    )


def _gate_view(version: str, gate: Mapping[str, Any]) -> GateView:
    return GateView(version, bool(gate["promote"]), str(gate["summary"]), list(gate.get("checks", [])))


def _collect_model(
    root: Path, as_of: dt.date, cfg: RisklineConfig, manifest: Mapping[str, Any], scores: pl.DataFrame,
    previous_scores: pl.DataFrame | None,
) -> ModelSection:
    definition = load_model_definition(cfg)
    registry = ModelRegistry(root)
    serving = str(manifest["model_version"])
    record = registry.record(serving)

    records = [registry.record(v) for v in registry.versions()]
    shown = [r for r in records if r.as_of <= as_of][-cfg.report.trend_versions:]
    trend = pl.DataFrame(
        [{"version": r.version, "as_of": r.as_of, "auc": r.metrics["oot"]["auc"], "ks": r.metrics["oot"]["ks"],
          "gini": r.metrics["oot"]["gini"], "calibration_error": r.metrics["oot"]["calibration_error"],
          "promoted": bool(r.gate["promote"]), "serving": r.version == serving} for r in shown],
        schema={"version": pl.String, "as_of": pl.Date, "auc": pl.Float64, "ks": pl.Float64, "gini": pl.Float64,
                "calibration_error": pl.Float64, "promoted": pl.Boolean, "serving": pl.Boolean},
    )
    trained_tonight = [_gate_view(r.version, r.gate) for r in records if r.as_of == as_of]

    # Training stored the OOT curves with the model (metrics.json): the report reads them, never re-predicts.
    oot_date = dt.date.fromisoformat(record.manifest["training_window"]["oot_date"])
    roc, ks, stored_auc, note = None, None, None, ""
    if "oot_curves" in record.metrics:
        roc, ks = curves_from_record(record.metrics["oot_curves"])
        stored_auc = float(record.metrics["oot"]["auc"])
    else:
        note = (f"Model {serving} was registered before training stored its OOT curves: ROC and KS curves "
                "cannot be drawn (a retrain stores them).")

    # Likewise the mean |SHAP| (training ran TreeSHAP on a sample of the OOT accounts): read, never recomputed.
    shap, shap_accounts, shap_note = pl.DataFrame(schema={"feature": pl.String, "mean_abs_shap": pl.Float64}), 0, ""
    if "importance_shap" in record.metrics:
        shap, shap_accounts = shap_from_record(record.metrics["importance_shap"])
    else:
        shap_note = (f"Model {serving} was registered before training stored its mean |SHAP|: the SHAP chart "
                     "cannot be drawn (a retrain stores it).")

    tonight = zones.read_features(root, as_of)
    gain = pl.DataFrame(sorted(record.metrics.get("importance_gain", {}).items()), schema={
        "feature": pl.String, "gain": pl.Float64}, orient="row").sort("gain", "feature", descending=[True, False])
    oot_metrics = {k: v for k, v in record.metrics["oot"].items() if k != "score_reference"}
    run = manifest.get("run", {})
    prev_scores = previous_scores["score"].to_numpy() if previous_scores is not None else None
    now_scores = scores["score"].to_numpy()
    return ModelSection(
        serving=serving,
        oot=oot_metrics,
        oot_date=oot_date.isoformat(),
        trend=trend,
        roc=roc,
        ks=ks,
        recomputed_auc=stored_auc,
        curve_note=note,
        scores_now=now_scores,
        scores_previous=prev_scores,
        score_psi=score_psi(prev_scores, now_scores, definition.stability.bins)
        if prev_scores is not None and prev_scores.size and now_scores.size else None,
        gain=gain.head(cfg.report.top_features),
        shap=shap.head(cfg.report.top_features),
        shap_accounts=shap_accounts,
        shap_note=shap_note,
        feature_psi=feature_psi(tonight, record.metrics.get("feature_reference", {}), definition.stability.psi_bands),
        psi_bands=definition.stability.psi_bands,
        trained_tonight=trained_tonight,
        serving_gate=_gate_view(serving, record.gate),
        retrain=bool(run.get("retrain", True)) and not run.get("pinned_model_version"),
    )


def _collect_portfolio(
    root: Path, as_of: dt.date, cfg: RisklineConfig, previous_run: dt.date | None
) -> PortfolioSection:

    buckets = cfg.collections.buckets
    ledger_dir = ledger_partition(root, as_of)
    accounts_now = lake.read_parquet(lake.partition_file(ledger_dir, "accounts.parquet"))
    roll, note = None, ""
    if previous_run is not None:
        prev_dir = ledger_partition(root, previous_run)
        if lake.is_complete(prev_dir):
            previous = lake.read_parquet(lake.partition_file(prev_dir, "accounts.parquet"), columns=ROLL_COLUMNS)
            roll = roll_rates(previous, accounts_now, buckets)
        else:
            note = f"The ledger of the previous run ({previous_run}) is no longer in the lake."
    curated = zones.curated_dates(root, "accounts")
    since = curated[0] if curated else as_of
    book = lake.read_partition(zones.curated(root, "accounts", as_of)).select("account_id", "opened_on")
    installments = lake.read_parquet(lake.partition_file(ledger_dir, "installments.parquet"),
                                   columns=["account_id", "due_date", "paid_off_date"])
    return PortfolioSection(
        delinquency=delinquency_by_bucket(accounts_now, buckets),
        roll=roll,
        vintages=vintage_curves(book, installments, as_of, since, cfg.labels.bad_dpd),
        bad_dpd=cfg.labels.bad_dpd,
        since=since,
        note=note,
        dpd30_bucket=str(pl.select(dpd_bucket(pl.lit(trends.DPD_30), buckets)).item()),
    )


def _counterfactual_decisions(
    root: Path, as_of: dt.date, cfg: RisklineConfig, previous_model: str
) -> pl.DataFrame:
    """Tonight's decide step on tonight's inputs (as the decide stage reads them), scored by ``previous_model``."""
    definition = load_model_definition(cfg)
    booster = ModelRegistry(root).load_booster(previous_model)
    feats = zones.read_features(root, as_of).sort("account_id")
    pd_, score, grade = score_pd(booster, feats, definition)
    scores = feats.select("account_id").with_columns(
        pl.Series("pd", pd_, dtype=pl.Float64), pl.Series("score", score, dtype=pl.Int32), grade,
        *(pl.lit(None, dtype=pl.String).alias(c) for c in REASON_COLUMNS),  # reasons never pick an action
        pl.lit(previous_model).alias("model_version"),
    )
    limits, *_ = read_decide_inputs(root, as_of, cfg).decide(as_of, cfg, scores)
    return limits.select("account_id", "action", "grade")


def _collect_decisions(
    root: Path, as_of: dt.date, cfg: RisklineConfig, limits: pl.DataFrame, previous_model: str | None,
    serving: str, grades: Sequence[str],
) -> DecisionsSection:

    by_grade = exposure_by_action_grade(limits, grades)
    by_action = (
        by_grade.group_by("action").agg(pl.col("accounts").sum(), pl.col("exposure_change_cents").sum())
        .sort(order_key("action", ACTION_ORDER))
    )
    if previous_model is None:
        swap = SwapView(None, None, None, 0, "No previous run: there is no previous champion to compare with.")
    elif previous_model == serving:
        swap = SwapView(previous_model, None, None, 0,
                        f"The model did not change since the previous run ({serving}): the swap set is empty.")
    else:
        try:
            counterfactual = _counterfactual_decisions(root, as_of, cfg, previous_model)
        except (ValueError, KeyError, RegistryError) as exc:  # e.g. it needs a feature tonight's snapshot lacks
            swap = SwapView(previous_model, None, None, 0, f"The previous champion cannot score tonight: {exc}")
        else:
            swaps = swap_set(limits, counterfactual)
            swap = SwapView(previous_model, swap_summary(swaps), swaps.head(cfg.report.swap_set_rows), swaps.height, "")
    return DecisionsSection(
        by_action=by_action,
        by_action_grade=by_grade,
        changes=limit_changes(limits),
        test_cells=test_cell_summary(limits),
        swap=swap,
    )


def _collect_collections(cfg: RisklineConfig, queue: pl.DataFrame, offers: pl.DataFrame) -> CollectionsSection:
    queue_cents = queue.with_columns(
        money_to_cents("overdue_amount").alias("overdue_amount_cents"),
        money_to_cents("expected_loss").alias("expected_loss_cents"),
    )
    hardship = (
        offers.with_columns(
            money_to_cents("outstanding_principal").alias("outstanding_cents"),
            money_to_cents("current_instalment").alias("current_cents"),
            money_to_cents("new_instalment").alias("new_cents"),
        )
        .group_by("extension_months")
        .agg(
            pl.len().cast(pl.Int64).alias("offers"),
            pl.col("account_id").n_unique().cast(pl.Int64).alias("accounts"),
            pl.col("outstanding_cents").sum(), pl.col("current_cents").sum(), pl.col("new_cents").sum(),
        )
        .sort("extension_months")
    )
    return CollectionsSection(queue_against_capacity(queue_cents, cfg.collections),
                              cfg.collections.agent_daily_capacity, hardship, offers["account_id"].n_unique())


# --- trends (issue 20): past nights read from their manifests, never recomputed -----------------------


def _model_as_of(registry: ModelRegistry, version: str, seen: dict[str, dt.date | None]) -> dt.date | None:
    if version not in seen:
        try:
            seen[version] = registry.record(version).as_of
        except RegistryError:  # a pruned or foreign version: the warning cannot be judged, not invented
            seen[version] = None
    return seen[version]


def _night_book(root: Path, night: dt.date, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What an older night (no manifest["book"]) published of its book: two columns of two outputs."""
    actions = read_output(root, "limits", night, columns=["action"])["action"]
    queue_el = read_output(root, "collection_queue", night, columns=["expected_loss"])["expected_loss"]
    return trends.summary_from_outputs(actions, queue_el, int(manifest["outputs"]["collection_queue"]["rows"]))


def _tonights_book(
    root: Path, as_of: dt.date, cfg: RisklineConfig, manifest: Mapping[str, Any], out: Mapping[str, pl.DataFrame],
    score_psi_now: float | None,
) -> tuple[dict[str, Any], str]:
    """D's book summary: the one publish stored, or (a night published before it was stored) the same
    summary from D's own ledger and outputs, which the report reads anyway."""
    if "book" in manifest:
        return dict(manifest["book"]), "manifest"
    ledger = lake.read_parquet(lake.partition_file(ledger_partition(root, as_of), "accounts.parquet"),
                               columns=["account_id", "dpd", "outstanding_principal_cents", "overdue_cents"])
    queue = out["collection_queue"].select("account_id", "pd", money_to_cents("expected_loss").alias("expected_loss_cents"))
    return trends.book_summary(ledger, out["scores"], out["limits"], queue, cfg.collections.lgd, score_psi_now), "report"


def _collect_roll30(root: Path, as_of: dt.date, cfg: RisklineConfig, nights: list[dt.date]) -> trends.Roll30:
    target = as_of - dt.timedelta(days=30)
    tolerance = cfg.report.roll30_tolerance_days
    earlier = [n for n in nights if n < as_of]
    night = trends.nearest_night(earlier, target, tolerance)
    if night is None:
        nearest = trends.nearest_night(earlier, target, 10_000)
        why = (f"the nearest is {nearest}, {abs((nearest - target).days)} days away" if nearest
               else "no night was published before it")
        return trends.Roll30(target, None, None,
                             f"No published night within {tolerance} days of {target} (D - 30; "
                             f"report.roll30_tolerance_days): {why}. The 30-day roll needs one.")
    part = ledger_partition(root, night)
    if not lake.is_complete(part):
        return trends.Roll30(target, night, None, f"The ledger of {night} (the night nearest D - 30) is no longer in the lake.")
    previous = lake.read_parquet(lake.partition_file(part, "accounts.parquet"), columns=ROLL_COLUMNS)
    now = lake.read_parquet(lake.partition_file(ledger_partition(root, as_of), "accounts.parquet"), columns=ROLL_COLUMNS)
    return trends.Roll30(target, night, roll_rates(previous, now, cfg.collections.buckets), "")


def collect_trends(
    root: Path, as_of: dt.date, cfg: RisklineConfig, manifest: Mapping[str, Any], out: Mapping[str, pl.DataFrame],
    score_psi_now: float | None,
) -> trends.TrendSection:
    """The last ``report.trend_nights`` published nights up to D from their manifests (and, for nights published
    before manifests carried the book summary, two columns of their outputs); the EL tile; the 30-day roll."""
    nights = [n for n in chain.published_nights(root) if n <= as_of]
    shown = nights[-cfg.report.trend_nights:]
    registry, seen = ModelRegistry(root), {}
    rows = []
    tonight, tonight_source = _tonights_book(root, as_of, cfg, manifest, out, score_psi_now)
    for night in shown:
        night_manifest = manifest if night == as_of else read_manifest(root, night)
        if night == as_of:
            book, source = tonight, tonight_source
        elif "book" in night_manifest:
            book, source = night_manifest["book"], "manifest"
        else:
            book, source = _night_book(root, night, night_manifest), "outputs"
        version = str(night_manifest["model_version"])
        rows.append(trends.trend_row(night, book, source, version, _model_as_of(registry, version, seen)))
    rows += trends.unpublished_rows(shown)  # trend_frame sorts them into place
    seen_actions = {a for r in rows for a in r["actions"]}
    actions = [a for a in ACTION_ORDER if a in seen_actions] + sorted(seen_actions - set(ACTION_ORDER))
    notes = []
    old = [r["as_of"] for r in rows if r["source"] == "outputs"]
    if old:
        notes.append(f"{len(old)} night(s) ({old[0]} .. {old[-1]}) were published before manifests carried the book "
                     "summary: their 30+ DPD, balances, expected loss and score PSI are missing (not recomputed); "
                     "their action counts, queue size and queue expected loss are read from their outputs.")
    return trends.TrendSection(
        nights=cfg.report.trend_nights,
        frame=trends.trend_frame(rows, actions),
        actions=actions,
        tile=trends.expected_loss_tile(tonight),
        tile_note=trends.SOURCES[tonight_source],
        roll30=_collect_roll30(root, as_of, cfg, nights),
        notes=notes,
        bad_dpd=cfg.labels.bad_dpd,
        pd_event=(f"reaching {cfg.labels.bad_dpd}+ DPD between day {cfg.labels.gap_days + 1} and day "
                  f"{cfg.labels.gap_days + cfg.labels.horizon_days} after the night (labels.bad_dpd, gap_days, "
                  "horizon_days)"),
        pd_short=(f"{cfg.labels.bad_dpd}+ DPD in days {cfg.labels.gap_days + 1}-"
                  f"{cfg.labels.gap_days + cfg.labels.horizon_days}"),
    )


def collect_report_data(root: Path, as_of: dt.date, cfg: RisklineConfig) -> ReportData:
    """Read what the page shows for ``as_of``: the manifest, the published outputs, registry, ledger, results.

    Raises:
        ReportError: nothing was published for ``as_of``.
    """

    manifest = _read_manifest(root, as_of)
    # The night compared with: the newest published night before D (chain.compared_night, as the manifest's
    # score PSI). When D's previous night was decided but never published, the page names both (render: Look at first).
    previous_night, previous_run = chain.compared_night(root, as_of)
    out = _published(root, as_of)
    notes = [
        f"The published {name} holds {out[name].height:,} rows but the manifest says "
        f"{manifest['outputs'][name]['rows']:,}: the outputs were replaced after the manifest was written."
        for name in sorted(out) if out[name].height != manifest["outputs"][name]["rows"]
    ]
    previous_scores, previous_model = None, None
    if previous_run is not None:
        previous_scores = read_output(root, "scores", previous_run)  # only its scores are compared
        previous_model = str(_read_manifest(root, previous_run)["model_version"])
    grades = tuple(load_model_definition(cfg).grades.labels)
    limits = out["limits"].with_columns(
        money_to_cents("previous_limit").alias("previous_limit_cents"),
        money_to_cents("new_limit").alias("new_limit_cents"),
    ).join(out["scores"].select("account_id", "grade"), on="account_id", how="left")
    model = _collect_model(root, as_of, cfg, manifest, out["scores"], previous_scores)
    return ReportData(
        as_of=as_of,
        manifest=manifest,
        previous_run=previous_run,
        data=_collect_data(root, as_of, report_path(root, as_of).parent),
        model=model,
        portfolio=_collect_portfolio(root, as_of, cfg, previous_run),
        decisions=_collect_decisions(root, as_of, cfg, limits, previous_model, model.serving, grades),
        collections=_collect_collections(cfg, out["collection_queue"], out["hardship_offers"]),
        grades=grades,
        notes=notes,
        cells=collect_cells(root, as_of, cfg),
        stale=chain.night_status(root, as_of),
        previous_unpublished=previous_night if previous_night != previous_run else None,
        stale_in_trend=sorted(n for n in chain.stale_nights(root) if n < as_of),
        trends=collect_trends(root, as_of, cfg, manifest, out, model.score_psi),
    )


def write_report(root: Path, as_of: dt.date, cfg: RisklineConfig) -> Path:
    """``riskline report --as-of D``: build the page for ``as_of`` and replace it atomically; return its path."""

    data = collect_report_data(root, as_of, cfg)
    page = render_report(data, plots.draw_charts(data))
    path = report_path(root, as_of)
    lake.atomic_write_bytes(path, page.encode("utf-8"))
    return path
