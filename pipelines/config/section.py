"""The base of every config section, and the config's one error type (settings and decisions share them)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """The config file is missing, unreadable or invalid."""


class Section(BaseModel):
    """A section of ``riskline.yaml``: unknown keys are rejected, values are frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
