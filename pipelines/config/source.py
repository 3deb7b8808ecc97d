"""Which config file is read: the one place that knows ``$RISKLINE_CONFIG`` and the default ``riskline.yaml``.

Apart from :mod:`pipelines.config.settings` so that a DAG file can find the live config at parse time (the
what-if DAG's default candidate) without importing what the settings import (polars, via the contracts).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "riskline.yaml"
CONFIG_ENV = "RISKLINE_CONFIG"


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The config file: ``path``, else ``$RISKLINE_CONFIG``, else the repo's ``riskline.yaml``."""
    return Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH).expanduser().resolve()
