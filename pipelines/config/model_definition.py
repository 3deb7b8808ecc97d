"""The PD model's definition (``models/pd_model.yaml``) loaded into typed, validated objects.

The definition says what the model *is*: its features and their monotone constraints, the XGBoost
hyperparameters, the promotion gate, score scaling, grade cut-offs and the reason-code policy. It is
committed config, hashed into every registered model, and read once at the edge (CLI, Airflow task)
like ``riskline.yaml``; the nightly knobs (training window, leakage ceiling) stay in ``riskline.yaml``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipelines.config.settings import ConfigError, RisklineConfig
from pipelines.contracts.landing import PROTECTED_ATTRIBUTES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Strict):
    name: str
    # +1: PD may only rise as the feature rises; -1: only fall; 0: unconstrained.
    monotone: Literal[-1, 0, 1] = 0


class Hyperparameters(_Strict):
    num_boost_round: int = Field(300, gt=0, le=1000)
    early_stopping_rounds: int = Field(30, gt=0)
    eta: float = Field(0.08, gt=0, le=1)
    max_depth: int = Field(4, ge=1, le=8)
    min_child_weight: float = Field(20.0, ge=0)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    reg_lambda: float = Field(1.0, ge=0)
    reg_alpha: float = Field(0.0, ge=0)
    max_bin: int = Field(256, ge=2)
    seed: int = 0
    nthread: int = Field(2, ge=1)


class PromotionGate(_Strict):
    """A challenger replaces the champion only if it clears the floors and is not worse on the same OOT."""

    min_oot_auc: float = Field(0.65, ge=0.5, le=1)
    max_calibration_error: float = Field(0.02, gt=0, le=1)
    auc_tolerance: float = Field(0.01, ge=0, le=1)
    calibration_error_tolerance: float = Field(0.005, ge=0, le=1)


class Stability(_Strict):
    bins: int = Field(10, ge=2, le=100)
    psi_bands: tuple[float, float] = (0.10, 0.25)  # below first: stable; between: watch; above: shifted

    @model_validator(mode="after")
    def _ordered(self) -> Stability:
        lo, hi = self.psi_bands
        if not 0 < lo < hi:
            raise ValueError("stability.psi_bands must be [low, high] with 0 < low < high")
        return self


class ScoreScaling(_Strict):
    base_points: float = 600.0
    base_odds: float = Field(19.0, gt=0)  # good:bad odds at base_points
    points_to_double_odds: float = Field(50.0, gt=0)

    @property
    def factor(self) -> float:
        return self.points_to_double_odds / math.log(2.0)

    @property
    def offset(self) -> float:
        return self.base_points - self.factor * math.log(self.base_odds)


class Grades(_Strict):
    """Grade cut-offs. ``by: pd``: grade i while PD < bounds[i] (ascending); ``by: score``: grade i while
    score >= bounds[i] (descending). The last label takes every account past the last bound."""

    by: Literal["pd", "score"] = "pd"
    labels: tuple[str, ...] = ("A", "B", "C", "D", "E")
    bounds: tuple[float, ...] = (0.01, 0.03, 0.08, 0.20)

    @model_validator(mode="after")
    def _consistent(self) -> Grades:
        if len(self.labels) != len(self.bounds) + 1 or len(set(self.labels)) != len(self.labels):
            raise ValueError("grades.labels must be distinct and one more than grades.bounds")
        steps = [b - a for a, b in zip(self.bounds, self.bounds[1:], strict=False)]
        if self.by == "pd" and (any(s <= 0 for s in steps) or not all(0 < b < 1 for b in self.bounds)):
            raise ValueError("grades.bounds on pd must be strictly ascending and inside (0, 1)")
        if self.by == "score" and any(s >= 0 for s in steps):
            raise ValueError("grades.bounds on score must be strictly descending")
        return self


class FeatureScreen(_Strict):
    """Features dropped at training time because, across the pooled snapshots, they tell *when* not *who*.

    On a young lake a feature can be (near-)constant across accounts at each snapshot while its value
    moves with the snapshot date (``months_on_book`` of a book opened on one day; ``limit_change_180d_ratio``,
    null before 180 days of history and 0 after). Pooled, such a feature lets the trees learn the snapshot
    date, i.e. that period's bad rate, which is no property of the account and drifts out of time.
    """

    # constant at a snapshot: at least this share of accounts on one value (null counts as a value)
    max_modal_share: float = Field(0.999, gt=0.5, le=1)
    # a function of the date: at least this share of the feature's variance (or of its null indicator's)
    # lies between snapshot dates, i.e. the within-snapshot variance is close to 0 while the means differ
    max_date_share: float = Field(0.8, gt=0, le=1)


class Calibration(_Strict):
    """Recalibration of the PD on the newest matured data before the out-of-time snapshot.

    ``platt``: PD = sigmoid(slope x margin + intercept), fitted by maximum likelihood on a held-out slice
    (``holdout_share`` of the accounts, by a stable hash) of the early-stopping snapshots; those accounts
    are then used neither to fit the trees nor to early-stop. A positive slope keeps PD strictly monotone
    in the trees' margin, so rankings, reason codes and SHAP stay those of the trees. ``none``: raw PD.
    """

    method: Literal["platt", "none"] = "platt"
    holdout_share: float = Field(0.5, gt=0, lt=1)


class ReasonCodePolicy(_Strict):
    count: int = Field(3, ge=1, le=10)
    # Accounts that may get an adverse action or a collections contact get exact TreeSHAP reasons:
    exact_for_grades: tuple[str, ...] = ("D", "E")
    exact_when_positive: tuple[str, ...] = ()  # e.g. the DPD feature: any arrears means collections
    # PD up by more than this (absolute) since the previous run may trigger a limit cut (None: ignore)
    exact_on_pd_rise_above: float | None = Field(0.05, ge=0, lt=1)


class ModelDefinition(_Strict):
    name: str
    description: str = ""
    target: str = "bad"
    features: tuple[FeatureSpec, ...]
    # How class imbalance is handled; the definition file says why. "none" (no reweighting) is the only
    # option on purpose: PD feeds expected loss, grades and limits, and reweighting would inflate it.
    imbalance: Literal["none"] = "none"
    hyperparameters: Hyperparameters = Hyperparameters()
    gate: PromotionGate = PromotionGate()
    stability: Stability = Stability()
    score_scaling: ScoreScaling = ScoreScaling()
    grades: Grades = Grades()
    reason_codes: ReasonCodePolicy = ReasonCodePolicy()
    feature_screen: FeatureScreen = FeatureScreen()
    calibration: Calibration = Calibration()

    @model_validator(mode="after")
    def _consistent(self) -> ModelDefinition:
        names = self.feature_names
        if not names:
            raise ValueError("features must list at least one feature")
        if len(set(names)) != len(names):
            raise ValueError("features must not repeat a name")
        protected = sorted(set(names) & PROTECTED_ATTRIBUTES)
        if protected:
            raise ValueError(f"protected attributes may never be model features: {protected}")
        unknown = sorted(set(self.reason_codes.exact_when_positive) - set(names))
        if unknown:
            raise ValueError(f"reason_codes.exact_when_positive names non-features: {unknown}")
        unknown = sorted(set(self.reason_codes.exact_for_grades) - set(self.grades.labels))
        if unknown:
            raise ValueError(f"reason_codes.exact_for_grades names unknown grades: {unknown}")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def without(self, excluded: Collection[str]) -> ModelDefinition:
        """The definition less ``excluded`` features, order and monotone constraints of the rest kept.

        Not re-validated on purpose: a reason-code trigger feature (e.g. ``dpd``) may be screened out of
        the trees and is still read from the snapshot to decide who gets exact reasons.
        """
        return self.model_copy(update={"features": tuple(f for f in self.features if f.name not in excluded)})

    @property
    def monotone_constraints(self) -> str:
        """XGBoost's positional form, e.g. ``(1,0,-1)``, in feature order."""
        return "(" + ",".join(str(f.monotone) for f in self.features) + ")"

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON form: equal definitions hash equal whatever the YAML layout."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def definition_path(cfg: RisklineConfig) -> Path:
    path = Path(cfg.model.definition).expanduser()
    return (path if path.is_absolute() else cfg.source_dir / path).resolve()


def load_model_definition(cfg: RisklineConfig) -> ModelDefinition:
    """Read and validate the definition file that ``cfg.model.definition`` points at."""
    path = definition_path(cfg)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read model definition {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"model definition {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"model definition {path} must hold a mapping at the top level")
    try:
        return ModelDefinition(**raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"model definition {path} is invalid: {problems}") from exc
