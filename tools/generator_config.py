"""The generator's settings (``tools/generator.yaml``), typed: dev tooling's own config, not riskline.yaml's.

``riskline generate`` reads ``tools/generator.yaml`` (or the file ``$RISKLINE_GENERATOR_CONFIG`` names);
production never reads it.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipelines.config.settings import ConfigError

GENERATOR_CONFIG_ENV = "RISKLINE_GENERATOR_CONFIG"
DEFAULT_GENERATOR_CONFIG = Path(__file__).resolve().parent / "generator.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CardProfileConfig(_Section):
    """The ``card`` generator profile (``riskline generate --profile card``): a credit-card book.

    Monthly statements on cycle days 1..31, a minimum payment due ``grace_days`` later, revolving balances
    and sparse behaviour; no income or region. Repayment odds, shocks and closures use the generator's own.
    """

    limit_median_cny: int = Field(8_000, gt=0)
    limit_sigma: float = Field(0.7, ge=0)
    limit_min_cny: int = Field(1_000, gt=0)
    limit_max_cny: int = Field(50_000, gt=0)
    grace_days: int = Field(25, ge=1, le=60)  # statement date -> minimum payment due date
    min_payment_share: float = Field(0.05, gt=0, le=1)  # of the statement balance ...
    min_payment_floor_cny: int = Field(50, ge=0)  # ... but at least this (capped at the balance)
    full_payment_share: float = Field(0.4, ge=0, le=1)  # payers who clear the statement (transactors)
    purchase_rate: float = Field(0.04, ge=0)
    purchase_median_cny: float = Field(150.0, gt=0)
    cash_advance_rate: float = Field(0.002, ge=0)  # a cash_draw event; it goes on the next statement
    login_rate: float = Field(0.02, ge=0)


class GeneratorConfig(_Section):
    """Calibration of the synthetic portfolio (``riskline generate``); rates are per account per day."""

    # population and underwriting
    opened_before_share: float = Field(0.7, ge=0, le=1)
    max_account_age_days: int = Field(1095, gt=0)
    limit_median_cny: int = Field(1500, gt=0)
    limit_sigma: float = Field(1.0, ge=0)
    limit_min_cny: int = Field(250, gt=0)
    limit_max_cny: int = Field(50_000, gt=0)
    limit_step_cny: int = Field(50, gt=0)
    income_present_share: float = Field(0.6, ge=0, le=1)
    income_median_cny: int = Field(60_000, gt=0)
    income_sigma: float = Field(0.6, ge=0)
    # latent risk and repayment
    miss_logit: float = -3.5
    miss_logit_per_risk: float = Field(1.0, ge=0)
    risk_drift_sd: float = Field(0.3, ge=0)
    risk_drift_days: float = Field(60.0, gt=0)
    cure_rate: float = Field(0.2, gt=0, le=1)
    partial_pay_share: float = Field(0.15, ge=0, le=1)
    # hardship shocks
    shock_rate: float = Field(0.001, ge=0, le=1)
    shock_risk_slope: float = 0.5
    shock_buffer_days: tuple[int, int] = (10, 40)
    shock_pay_prob: float = Field(0.15, ge=0, le=1)
    shock_cure_rate: float = Field(0.02, ge=0, le=1)
    recovery_rate: float = Field(0.006, ge=0, le=1)
    close_rate: float = Field(0.0003, ge=0, le=1)
    # cash draws and loans
    draw_rate: float = Field(0.015, ge=0, le=1)
    draw_rate_shock_multiplier: float = Field(5.0, ge=0)
    min_draw_cny: int = Field(100, gt=0)
    draw_step_cny: int = Field(50, gt=0)
    term_months: tuple[int, ...] = (3, 6, 12)
    term_weights: tuple[float, ...] = (0.5, 0.3, 0.2)
    monthly_rate_bp: tuple[int, int] = (60, 180)
    # behaviour events
    login_rate: float = Field(0.25, ge=0)
    login_rate_shock_multiplier: float = Field(1.6, ge=0)
    night_login_share: float = Field(0.08, ge=0, le=1)
    night_login_share_shocked: float = Field(0.2, ge=0, le=1)
    purchase_rate: float = Field(0.08, ge=0)
    purchase_rate_shock_multiplier: float = Field(0.4, ge=0)
    purchase_median_cny: float = Field(80.0, gt=0)
    purchase_amount_shock_multiplier: float = Field(0.6, gt=0)
    refund_share: float = Field(0.05, ge=0, le=1)
    channel_weights: dict[str, float] = {"app": 0.7, "mini_program": 0.2, "web": 0.08}
    card: CardProfileConfig = CardProfileConfig()

    @model_validator(mode="after")
    def _consistent(self) -> GeneratorConfig:
        if not self.limit_min_cny < self.limit_max_cny:
            raise ValueError("generator.limit_min_cny must be below generator.limit_max_cny")
        if len(self.term_months) != len(self.term_weights) or not self.term_months:
            raise ValueError("generator.term_months and generator.term_weights must have the same length")
        if any(not 1 <= m <= 60 for m in self.term_months) or any(w < 0 for w in self.term_weights):
            raise ValueError("generator.term_months must be 1..60 and term_weights >= 0")
        if sum(self.term_weights) <= 0:
            raise ValueError("generator.term_weights must not all be 0")
        lo, hi = self.shock_buffer_days
        if not 0 <= lo <= hi:
            raise ValueError("generator.shock_buffer_days must be [low, high] with 0 <= low <= high")
        lo, hi = self.monthly_rate_bp
        if not 0 <= lo <= hi:
            raise ValueError("generator.monthly_rate_bp must be [low, high] with 0 <= low <= high")
        if any(w < 0 for w in self.channel_weights.values()) or sum(self.channel_weights.values()) > 1:
            raise ValueError("generator.channel_weights must be >= 0 and sum to at most 1 (rest: null)")
        return self


def load_generator_config(path: str | os.PathLike[str] | None = None) -> GeneratorConfig:
    """The generator's settings: ``path``, else ``$RISKLINE_GENERATOR_CONFIG``, else ``tools/generator.yaml``."""
    source = Path(path or os.environ.get(GENERATOR_CONFIG_ENV) or DEFAULT_GENERATOR_CONFIG)
    try:
        raw = yaml.safe_load(source.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read generator config {source}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"generator config {source} is not valid YAML: {exc}") from exc
    try:
        return GeneratorConfig(**raw.get("generator", {}))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"generator config {source} is invalid: {problems}") from exc
