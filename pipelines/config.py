"""The one config file (``riskline.yaml``) loaded into typed, validated objects.

Nothing is read at import time: call :func:`load_config` once at the edge (CLI command, Airflow task)
and pass the result down. Every stage gets its own section model; unknown keys are rejected so a typo
in the YAML fails loudly instead of silently falling back to a default.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[1] / "riskline.yaml"
CONFIG_ENV = "RISKLINE_CONFIG"
DATA_ROOT_ENV = "RISKLINE_DATA_ROOT"


class ConfigError(ValueError):
    """The config file is missing, unreadable or invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsConfig(_Section):
    data_root: str = "./data"


class BusinessConfig(_Section):
    timezone: str = "Asia/Shanghai"
    currency: str = "CNY"

    @model_validator(mode="after")
    def _known_zone(self) -> BusinessConfig:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class ProductConfig(_Section):
    min_limit_cny: int = Field(50, gt=0)
    max_limit_cny: int = Field(50_000, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> ProductConfig:
        if self.min_limit_cny >= self.max_limit_cny:
            raise ValueError("product.min_limit_cny must be below product.max_limit_cny")
        return self


class IngestConfig(_Section):
    business_keys: dict[str, list[str]]


class RisklineConfig(_Section):
    paths: PathsConfig = PathsConfig()
    business: BusinessConfig = BusinessConfig()
    product: ProductConfig = ProductConfig()
    ingest: IngestConfig
    # Where the file came from; relative paths in it resolve against this folder.
    source_dir: Path = Field(default=Path("."), exclude=True)
    source_sha256: str = Field(default="", exclude=True)

    def data_root(self, override: str | os.PathLike[str] | None = None) -> Path:
        """The data root: ``override`` (``--data-root``), else ``$RISKLINE_DATA_ROOT``, else the config's."""
        raw = override or os.environ.get(DATA_ROOT_ENV) or self.paths.data_root
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = (Path.cwd() if (override or os.environ.get(DATA_ROOT_ENV)) else self.source_dir) / path
        return path.resolve()


def load_config(path: str | os.PathLike[str] | None = None) -> RisklineConfig:
    """Load and validate the config: ``path``, else ``$RISKLINE_CONFIG``, else the repo's ``riskline.yaml``."""
    cfg_path = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH).expanduser().resolve()
    try:
        raw_bytes = cfg_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {cfg_path}: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(raw_bytes) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {cfg_path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {cfg_path} must hold a mapping at the top level")
    try:
        return RisklineConfig(
            **raw, source_dir=cfg_path.parent, source_sha256=hashlib.sha256(raw_bytes).hexdigest()
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"config file {cfg_path} is invalid: {problems}") from exc
