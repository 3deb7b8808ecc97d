"""Nightly PD retrain: matured snapshots in, a registered challenger and a gate decision out.

On run date D with label horizon H the newest matured snapshot is ``D - H``: that snapshot is the
out-of-time (OOT) set, never seen by training or early stopping. The K snapshots before it, every
``model.snapshot_interval_days``, are the training set; the latest of them
(``model.early_stopping_snapshots``) are held out for early stopping, so the number of trees is chosen
on data later than what the trees were fit on (as OOT is later still). No refit on the held-out
snapshots afterwards: the model that was early-stopped is the one that is evaluated and served.

Determinism: rows sorted by (as_of_date, account_id), a fixed seed and a fixed thread count
(``hyperparameters.nthread``: XGBoost's histogram sums depend on it) give a byte-identical UBJSON model
for identical inputs, hence the same registry version id.

The pure steps (:func:`plan_snapshots`, :func:`label_snapshot`, :func:`train_model`) take frames and
config; :func:`train_evaluate_register` adds the registry; :func:`run_training` (bottom) is the only
part that reads the lake.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl
import xgboost as xgb

from pipelines.config.model_definition import ModelDefinition
from pipelines.config.settings import ModelConfig
from pipelines.domain.feature_dictionary import KEY_COLUMNS
from pipelines.domain.sharding import fnv1a_64
from pipelines.model import metrics as evaluate
from pipelines.model.feature_screen import screen_clock_features  # noqa: F401  (re-exported: tests and tools)
from pipelines.model.fit import InsufficientHistoryError, TrainedModel, train_model
from pipelines.model.importance import shap_summary
from pipelines.model.pd import (
    CALIBRATION_ATTR, PlattCalibration, model_features, predict_margin, predict_pd, score_pd,
)
from pipelines.model.score import reason_reference
from pipelines.model.registry import GateDecision, ModelRegistry, NoChampionError, decide_promotion, version_id

_SAMPLE_BUCKETS = 1_000_000


# --- pure steps -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotPlan:
    """Which snapshot dates a run on ``as_of`` trains, early-stops and is judged on (oldest first)."""

    as_of: dt.date
    horizon_days: int
    fit_dates: tuple[dt.date, ...]
    early_stopping_dates: tuple[dt.date, ...]
    oot_date: dt.date
    gap_days: int = 0  # labels.gap_days: the outcome window of s starts at s + gap + 1

    @property
    def training_dates(self) -> tuple[dt.date, ...]:
        return self.fit_dates + self.early_stopping_dates

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return json.loads(json.dumps(data, default=lambda d: d.isoformat()))


def plan_snapshots(
    as_of: dt.date,
    horizon_days: int,
    model_cfg: ModelConfig,
    earliest: dt.date | None = None,
    gap_days: int = 0,
) -> SnapshotPlan:
    """The snapshot dates of the run on ``as_of``; dates before ``earliest`` (no data yet) are dropped.

    The OOT snapshot is the newest matured one, ``as_of - gap_days - horizon_days`` (see labels.py for
    the gap). Dates are counted back from D, not from a calendar anchor: tonight's snapshots were the
    OOT and training snapshots of earlier nights, so their feature partitions are already built.
    """
    oot = as_of - dt.timedelta(days=horizon_days + gap_days)
    step = dt.timedelta(days=model_cfg.snapshot_interval_days)
    training = [oot - step * k for k in range(model_cfg.training_snapshots, 0, -1)]
    if earliest is not None:
        if oot < earliest:
            raise InsufficientHistoryError(
                f"the OOT snapshot {oot} (= {as_of} - {horizon_days + gap_days} days) is before the first data "
                f"on {earliest}"
            )
        training = [d for d in training if d >= earliest]
    held_out = model_cfg.early_stopping_snapshots
    if len(training) <= held_out:
        raise InsufficientHistoryError(
            f"only {len(training)} matured training snapshots since {earliest} for a run on {as_of}; "
            f"need more than model.early_stopping_snapshots ({held_out})"
        )
    return SnapshotPlan(
        as_of, horizon_days, tuple(training[:-held_out]), tuple(training[-held_out:]), oot, gap_days
    )


def label_snapshot(features: pl.DataFrame, labels: pl.DataFrame, feature_names: Sequence[str]) -> pl.DataFrame:
    """Features of a snapshot joined to its labels: keys, features, ``bad``; sorted by the keys.

    Accounts without a label (already in default at the snapshot, see labels.py) drop out, as do labels
    without features. Features are cast to Float32, the model's input type, to halve the memory.
    """
    absent = [f for f in feature_names if f not in features.columns]
    if absent:
        raise ValueError(f"feature snapshot lacks model features {absent}")
    return (
        features.select(*KEY_COLUMNS, *(pl.col(f).cast(pl.Float32) for f in feature_names))
        .join(
            labels.select("account_id", pl.col("snapshot_date").alias("as_of_date"), pl.col("bad").cast(pl.Int8)),
            on=["account_id", "as_of_date"],
            how="inner",
        )
        .sort(*KEY_COLUMNS)
    )


def sample_accounts(frame: pl.DataFrame, rate: float) -> pl.DataFrame:
    """Keep a stable ``rate`` share of accounts (by id hash): the same accounts every snapshot and run."""
    if rate >= 1.0:
        return frame
    bucket = fnv1a_64(frame["account_id"]) % _SAMPLE_BUCKETS
    return frame.filter(bucket < int(rate * _SAMPLE_BUCKETS))


def split_calibration_slice(frame: pl.DataFrame, share: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rest, calibration slice): ``share`` of the accounts by a stable hash, the same on every snapshot.

    The hash is salted so the slice is independent of :func:`sample_accounts` and of the shards.
    """
    salted = frame.select(pl.concat_str(pl.lit("calibration:"), pl.col("account_id")))[:, 0]
    held = pl.Series((fnv1a_64(salted) % _SAMPLE_BUCKETS).to_numpy() < int(share * _SAMPLE_BUCKETS))
    return frame.filter(~held), frame.filter(held)


def fit_platt(bad: Any, margin: Any) -> tuple[float, float]:
    """Maximum-likelihood (slope, intercept) of P(bad) = sigmoid(slope x margin + intercept).

    Newton's method on two parameters, from the identity (1, 0); deterministic for equal inputs. A tiny
    ridge towards the identity keeps it finite when the slice separates perfectly.
    """
    y = np.asarray(bad, dtype=np.float64)
    m = np.asarray(margin, dtype=np.float64)
    design = np.column_stack([m, np.ones_like(m)])
    theta = np.array([1.0, 0.0])
    ridge = 1e-6 * max(y.size, 1)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(design @ theta)))
        grad = design.T @ (p - y) + ridge * (theta - [1.0, 0.0])
        hess = (design * (p * (1.0 - p))[:, None]).T @ design + ridge * np.eye(2)
        step = np.linalg.solve(hess, grad)
        theta = theta - step
        if np.abs(step).max() < 1e-10:
            break
    return float(theta[0]), float(theta[1])


@dataclass(frozen=True)
class Provenance:
    """What the run stood on, stored in the manifest (computed at the I/O edge)."""

    code_version: str = "unknown"
    config_hash: str = ""
    inputs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingResult:
    version: str
    created: bool  # False: the same model was already registered (a rerun)
    promoted: bool
    champion: str | None  # serving on the run date after this run
    gate: dict[str, Any]
    oot: dict[str, Any]
    plan: SnapshotPlan
    seconds: float = 0.0
    calibration: Mapping[str, Any] = field(default_factory=dict)  # before/after, see _calibration_record
    excluded_features: Mapping[str, str] = field(default_factory=dict)  # clock features and why

    def describe(self) -> str:
        m = self.oot
        lines = [
            f"model {self.version} ({'new' if self.created else 'already registered'}); "
            f"OOT {self.plan.oot_date}: AUC {m['auc']:.4f}  KS {m['ks']:.4f}  Brier {m['brier']:.5f}  "
            f"calibration error {m['calibration_error']:.4f}  ({m['accounts']} accounts, bad rate {m['bad_rate']:.2%})",
        ]
        if self.calibration.get("method") == "platt":
            c = self.calibration
            lines.append(
                f"recalibration (platt, slope {c['slope']:.3f}, intercept {c['intercept']:+.3f}, fitted on "
                f"{c['rows']} held-out rows of {', '.join(c['snapshots'])}): OOT calibration error "
                f"{c['oot_error_before']:.4f} -> {c['oot_error_after']:.4f}"
            )
        for name, why in self.excluded_features.items():
            lines.append(f"excluded feature {name}: {why}")
        lines += [
            f"gate: {self.gate['summary']}",
            f"champion on {self.plan.as_of}: {self.champion}  (trained and judged in {self.seconds:.1f} s)",
        ]
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        """A small JSON-able dict for the orchestrator (XCom) and logs."""
        return {
            "version": self.version,
            "created": self.created,
            "promoted": self.promoted,
            "champion": self.champion,
            "oot_date": self.plan.oot_date.isoformat(),
            "oot_auc": round(self.oot["auc"], 4),
            "oot_ks": round(self.oot["ks"], 4),
            "oot_calibration_error": round(self.oot["calibration_error"], 4),
            "excluded_features": sorted(self.excluded_features),
            "gate": self.gate["summary"],
        }


def _judge(
    registry: ModelRegistry,
    as_of: dt.date,
    oot: pl.DataFrame,
    oot_metrics: dict[str, Any],
    score: np.ndarray,
    definition: ModelDefinition,
) -> tuple[GateDecision, dict[str, Any] | None, dict[str, Any] | None]:
    """The gate decision against the champion serving on ``as_of``, judged on the same OOT rows.

    Returns the decision, the champion's metrics on those rows and the score PSI against the
    champion's own OOT score distribution (both None without a champion).
    """
    champion = registry.champion_on(as_of)
    if champion is None:
        return decide_promotion(oot_metrics, None, definition.gate), None, None
    booster = registry.load_booster(champion)
    reference = registry.record(champion).metrics["oot"]["score_reference"]
    psi = evaluate.psi_against(reference, score)
    score_psi = {"champion": champion, "psi": psi, "band": evaluate.psi_band(psi, definition.stability.psi_bands)}
    absent = [f for f in model_features(booster) if f not in oot.columns]
    if absent:  # a champion that cannot score tonight's snapshot cannot serve tomorrow either
        note = f"champion {champion} cannot score this snapshot (missing {absent}): floors only"
        return decide_promotion(oot_metrics, None, definition.gate, note=note), None, score_psi
    champion_pd = predict_pd(booster, oot, definition.hyperparameters.nthread)
    on_same = evaluate.discrimination_and_calibration(oot["bad"], champion_pd, definition.stability.bins)
    decision = decide_promotion(oot_metrics, on_same, definition.gate, champion)
    return decision, {"version": champion, **on_same}, score_psi


@dataclass(frozen=True)
class FittedChallenger:
    """A challenger fitted and recalibrated on the training snapshots, with what evaluation and the registry need
    of those rows, so :func:`evaluate_register` judges it without holding them. :func:`fit_challenger` makes one
    from frames in memory; ``pipelines.model.train_dask.fit_challenger_dask`` on a Dask cluster, whose workers
    hold the rows."""

    raw: TrainedModel  # as early stopping left it
    trained: TrainedModel  # with its recalibration stored in the model
    platt: PlattCalibration | None
    note: str  # why there is no recalibration
    excluded: Mapping[str, str]  # clock features and why (screen_clock_features)
    served: ModelDefinition  # the definition less those features
    calibration_bad: np.ndarray  # the calibration slice's labels, in its row order,
    calibration_margin: np.ndarray  # and the raw model's margins on it
    rows: Mapping[str, Mapping[str, int]]  # fit, early_stopping, calibration: row_counts
    fit_auc: float  # of the served (recalibrated) PD
    early_stopping_auc: float
    training_bins: Mapping[str, Mapping[str, list[float]]]  # reference_bins of each feature, fit + early stopping
    reason_reference: Mapping[str, float | None]  # of the fit rows (pipelines.model.score.reason_reference)


def row_counts(frame: pl.DataFrame) -> dict[str, int]:
    """What the manifest says of a set of rows."""
    return {"rows": frame.height, "bads": int(frame["bad"].sum()), "accounts": frame["account_id"].n_unique()}


def fit_challenger(fit: pl.DataFrame, early_stopping: pl.DataFrame, definition: ModelDefinition) -> FittedChallenger:
    """The local backend: screen clock features, hold out the calibration slice, fit, recalibrate, on frames in
    memory (see :func:`train_evaluate_register` for the steps)."""
    excluded = screen_clock_features(
        pl.concat([fit.select("as_of_date", *definition.feature_names),
                   early_stopping.select("as_of_date", *definition.feature_names)]),
        definition.feature_names,
        definition.feature_screen,
    )
    served = without_clocks(definition, excluded)
    if definition.calibration.method == "platt":
        stopping, calibration_slice = split_calibration_slice(early_stopping, definition.calibration.holdout_share)
    else:
        stopping, calibration_slice = early_stopping, early_stopping.clear()
    raw = train_model(fit, stopping, served)
    nthread = definition.hyperparameters.nthread
    bad, margin = calibration_slice["bad"].to_numpy(), predict_margin(raw.booster, calibration_slice, nthread)
    trained, platt, note = calibrate(raw, bad, margin, served)
    features = served.feature_names
    training = pl.concat([fit.select(features), stopping.select(features)], how="vertical")
    return FittedChallenger(
        raw=raw, trained=trained, platt=platt, note=note, excluded=excluded, served=served,
        calibration_bad=bad, calibration_margin=margin,
        rows={"fit": row_counts(fit), "early_stopping": row_counts(stopping), "calibration": row_counts(calibration_slice)},
        fit_auc=evaluate.auc(fit["bad"], predict_pd(trained.booster, fit, nthread)),
        early_stopping_auc=evaluate.auc(stopping["bad"], predict_pd(trained.booster, stopping, nthread)),
        training_bins={f: evaluate.reference_bins(training[f].cast(pl.Float64).to_numpy(), served.stability.bins)
                       for f in features},
        reason_reference=reason_reference(fit, features),
    )


def without_clocks(definition: ModelDefinition, excluded: Mapping[str, str]) -> ModelDefinition:
    """The definition the challenger serves: less the screened-out features, of which one must remain."""
    served = definition.without(excluded)
    if not served.features:
        raise InsufficientHistoryError(f"every model feature was screened out as a clock: {excluded}")
    return served


def _metrics_record(
    challenger: FittedChallenger,
    oot: pl.DataFrame,
    oot_metrics: dict[str, Any],
    champion_metrics: dict[str, Any] | None,
    score_psi: dict[str, Any] | None,
    calibration: dict[str, Any],
) -> dict[str, Any]:
    trained, definition = challenger.trained, challenger.served
    features = definition.feature_names
    return {
        "oot": oot_metrics,  # the served (recalibrated) PD: what the gate judges
        "calibration": calibration,  # how, on what, and the calibration before/after
        # features screened out of this model as clocks (pooled snapshots would let them tell the date)
        "excluded_features": dict(challenger.excluded),
        # in-sample vs held-out vs OOT AUC: a wide gap is overfitting, a falling one drift
        "fit_auc": challenger.fit_auc,
        "early_stopping_auc": challenger.early_stopping_auc,
        "early_stopping_logloss": trained.early_stopping_logloss,
        "champion_on_same_oot": champion_metrics,
        "stability": {
            "score_vs_champion": score_psi,
            "features_oot_vs_training": evaluate.feature_stability(
                challenger.training_bins, oot, features, definition.stability),
        },
        # what the scored population looked like, for monitoring PSI on later nights
        "feature_reference": {
            f: evaluate.reference_bins(oot[f].cast(pl.Float64).to_numpy(), definition.stability.bins) for f in features
        },
        "importance_gain": dict(sorted(trained.booster.get_score(importance_type="gain").items())),
    }


def _manifest(
    version: str,
    plan: SnapshotPlan,
    challenger: FittedChallenger,
    oot: pl.DataFrame,
    definition: ModelDefinition,
    model_cfg: ModelConfig,
    provenance: Provenance,
) -> dict[str, Any]:
    trained = challenger.trained
    return {
        "version": version,
        "model_name": definition.name,
        "as_of": plan.as_of.isoformat(),
        "training_window": plan.to_dict(),
        "rows": {**challenger.rows, "oot": row_counts(oot)},
        "training_sample_rate": model_cfg.training_sample_rate,
        "best_iteration": trained.best_iteration,
        "trees": trained.trees,
        "imbalance": definition.imbalance,
        "model_sha256": hashlib.sha256(trained.model_bytes).hexdigest(),
        "features": list(trained.feature_names),  # after the clock-feature screen, in model order
        "definition_sha256": definition.fingerprint(),
        "definition": definition.model_dump(mode="json"),
        "config_hash": provenance.config_hash,
        "code_version": provenance.code_version,
        "xgboost_version": xgb.__version__,
        "polars_version": pl.__version__,
        "inputs": dict(provenance.inputs),
    }


def calibrate(
    trained: TrainedModel, bad: np.ndarray, margin: np.ndarray, definition: ModelDefinition
) -> tuple[TrainedModel, PlattCalibration | None, str]:
    """Fit the definition's recalibration on the calibration slice and store it inside the model.

    ``bad``: the slice's labels; ``margin``: ``trained``'s margins on the same rows. Returns the model (new
    bytes when calibrated), the calibration (None: raw PD served) and a note saying why there is none. A
    slope <= 0 would reverse the ranking the trees learned: refused.
    """
    if definition.calibration.method == "none":
        return trained, None, "calibration.method is none"
    rows, bads = len(bad), int(np.sum(bad))
    if bads == 0 or bads == rows:
        return trained, None, f"the calibration slice has {rows} rows and {bads} bads"
    slope, intercept = fit_platt(bad, margin)
    if not slope > 0:
        return trained, None, f"the fitted slope {slope:.4f} is not positive: the trees do not rank that slice"
    platt = PlattCalibration(slope, intercept)
    booster = trained.booster.copy()
    booster.set_attr(**{CALIBRATION_ATTR: platt.to_attr()})
    model_bytes = bytes(booster.save_raw(raw_format="ubj"))
    return replace(trained, booster=booster, model_bytes=model_bytes), platt, ""


def _calibration_record(
    challenger: FittedChallenger, oot: pl.DataFrame, oot_raw_pd: np.ndarray, plan: SnapshotPlan
) -> dict[str, Any]:
    """What the evaluation JSON says about recalibration: how, on which rows, calibration before and after."""
    platt, raw, definition = challenger.platt, challenger.raw, challenger.served
    bad, margin = challenger.calibration_bad, challenger.calibration_margin
    nthread, bins = definition.hyperparameters.nthread, definition.stability.bins
    record: dict[str, Any] = {
        "method": "platt" if platt else "none",
        "note": challenger.note,
        "snapshots": [d.isoformat() for d in plan.early_stopping_dates],
        "holdout_share": definition.calibration.holdout_share,
        "rows": len(bad),
        "bads": int(np.sum(bad)),
        "raw_model_sha256": hashlib.sha256(raw.model_bytes).hexdigest(),
        # the OOT snapshot is never fitted on: these are honest before/after numbers
        "oot_uncalibrated": evaluate.discrimination_and_calibration(oot["bad"], oot_raw_pd, bins),
    }
    record["oot_error_before"] = record["oot_uncalibrated"]["calibration_error"]
    if platt is None:
        record["oot_error_after"] = record["oot_error_before"]
        return record
    raw_slice = 1.0 / (1.0 + np.exp(-margin))
    before = evaluate.calibration_error(evaluate.calibration_by_decile(bad, raw_slice, bins))
    after = evaluate.calibration_error(evaluate.calibration_by_decile(bad, platt.apply(margin), bins))
    oot_after = evaluate.calibration_error(
        evaluate.calibration_by_decile(oot["bad"], platt.apply(predict_margin(raw.booster, oot, nthread)), bins)
    )
    return {
        **record,
        "slope": platt.slope,
        "intercept": platt.intercept,
        "slice_error_before": before,
        "slice_error_after": after,
        "oot_error_after": oot_after,
    }


def train_evaluate_register(
    registry: ModelRegistry,
    plan: SnapshotPlan,
    fit: pl.DataFrame,
    early_stopping: pl.DataFrame,
    oot: pl.DataFrame,
    definition: ModelDefinition,
    model_cfg: ModelConfig,
    provenance: Provenance = Provenance(),
    curve_points: int = 400,
    shap_accounts: int = 2000,
) -> TrainingResult:
    """Train a challenger, recalibrate it, judge it on OOT, register it, and promote it if the gate says so.

    Steps: features that act as clocks across the pooled training snapshots are screened out
    (:func:`screen_clock_features`); the early-stopping snapshots are split by account into an
    early-stopping part and a calibration slice (``definition.calibration``); the trees are fit and
    early-stopped; the recalibration is fitted on the slice and stored in the model; the served
    (recalibrated) PD is what the OOT metrics and the gate judge. The raw PD's OOT metrics are kept
    in ``metrics.calibration`` for the before/after comparison.

    The frames are in memory, so the trees are fitted here; with ``model.train_backend: dask`` the workers
    read the snapshots themselves instead (``pipelines.stages.train.run_training``), and this refuses.
    See :func:`evaluate_register` for ``oot``, the curves, SHAP and the errors raised.
    """
    started = time.perf_counter()
    if model_cfg.train_backend != "local":
        raise ValueError("train_evaluate_register fits frames held in memory; with model.train_backend: dask the "
                         "Dask workers read the snapshots (pipelines.model.train_dask.fit_challenger_dask)")
    challenger = fit_challenger(fit, early_stopping, definition)
    return evaluate_register(registry, plan, challenger, oot, definition, model_cfg, provenance, curve_points,
                             shap_accounts, started)


def evaluate_register(
    registry: ModelRegistry,
    plan: SnapshotPlan,
    challenger: FittedChallenger,
    oot: pl.DataFrame,
    definition: ModelDefinition,
    model_cfg: ModelConfig,
    provenance: Provenance = Provenance(),
    curve_points: int = 400,
    shap_accounts: int = 2000,
    started: float | None = None,
) -> TrainingResult:
    """Judge a fitted challenger on OOT, register it, and promote it if the gate says so.

    ``oot`` may hold more feature columns than the definition (so a champion with other features can
    be scored on the same rows). The OOT ROC and KS curves (``curve_points`` points each) and the mean |SHAP|
    of each feature on at most ``shap_accounts`` OOT accounts are stored in ``metrics.json`` for the report.
    Raises :class:`~pipelines.model.metrics.LeakageSuspectedError` (nothing registered) when the OOT AUC is
    above ``model_cfg.leakage_auc_ceiling``, and
    :class:`~pipelines.model.registry.NoChampionError` when no model would serve: no champion and the
    challenger fails the gate (it is registered, for the record, but not promoted). A first model meets
    the same floors as any other, on its recalibrated PD; it is never waved through for being first.
    """
    started = time.perf_counter() if started is None else started
    trained, served = challenger.trained, challenger.served
    nthread = definition.hyperparameters.nthread
    oot = oot.sort(*KEY_COLUMNS)
    pd_, score, grade = score_pd(trained.booster, oot, definition)
    oot_metrics = evaluate.evaluate_oot(oot["bad"], pd_, score, grade, definition)
    if oot_metrics["auc"] > model_cfg.leakage_auc_ceiling:  # only then is it worth naming suspects
        suspects = evaluate.single_feature_auc(oot["bad"], oot, served.feature_names)
        evaluate.check_leakage(oot_metrics["auc"], model_cfg.leakage_auc_ceiling, suspects)
    calibration = _calibration_record(challenger, oot, predict_pd(challenger.raw.booster, oot, nthread), plan)

    version = version_id(plan.as_of, trained.model_bytes)
    created = version not in registry.versions()
    if created:
        decision, champion_metrics, score_psi = _judge(registry, plan.as_of, oot, oot_metrics, score, definition)
        gate = decision.to_dict()
        registry.register(version, trained.model_bytes, {
            "features": [{"name": f.name, "dtype": "float32", "monotone": f.monotone} for f in served.features],
            "manifest": _manifest(version, plan, challenger, oot, definition, model_cfg, provenance),
            "metrics": {
                **_metrics_record(challenger, oot, oot_metrics, champion_metrics, score_psi, calibration),
                # what the report draws, so it never re-predicts the OOT rows (``curve_points`` per curve)
                "oot_curves": evaluate.oot_curves(oot["bad"], pd_, curve_points),
                # exact TreeSHAP is costly: once here, on a stable hash sample of the OOT accounts
                "importance_shap": shap_summary(trained.booster, oot, shap_accounts, nthread),
                # what reasons are judged against when this model scores: its fit sample's median account
                "reason_reference": dict(challenger.reason_reference),
            },
            "gate": gate,
        })
    else:
        gate = registry.record(version).gate  # a rerun keeps the decision taken the first time
    if gate["promote"]:
        registry.set_champion(version, plan.as_of, "promote", gate["summary"])
    serving = registry.champion_on(plan.as_of)
    if serving is None:
        raise NoChampionError(
            f"no model can serve on {plan.as_of}: there is no champion and challenger {version} failed the "
            f"gate on its recalibrated PD ({'; '.join(gate['reasons'])}). It is registered for inspection as "
            f"{version}; fix the data or the definition, or, after a model-risk review, promote it by hand with "
            "a reason."
        )
    return TrainingResult(
        version=version,
        created=created,
        promoted=bool(gate["promote"]),
        champion=serving,
        gate=gate,
        oot=oot_metrics,
        plan=plan,
        seconds=time.perf_counter() - started,
        calibration={k: v for k, v in calibration.items() if k != "oot_uncalibrated"},
        excluded_features=challenger.excluded,
    )
