"""Glue between schedulers (Airflow, the CLI) and the pipeline: small functions taking and returning
plain values (dates as ISO strings, paths, small dicts), because Airflow 3 tasks pass only
JSON-serialisable XComs, never frames.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from pipelines.config import RisklineConfig, load_config


def business_date_of(interval_start: dt.datetime, cfg: RisklineConfig) -> dt.date:
    """The business date a scheduled run covers: the local (business-timezone) date its interval starts on.

    The nightly run fires at 02:00 Asia/Shanghai with a one-day interval [D 02:00, D+1 02:00), so the
    interval's start date in the business timezone is D, the day whose data it processes.
    """
    if interval_start.tzinfo is None:
        raise ValueError("interval_start must be timezone-aware")
    return interval_start.astimezone(cfg.business.tz).date()


def ingest_one(dataset: str, business_date: str, data_root: str | None = None) -> dict[str, Any]:
    """Ingest one dataset for one business date; return its result as a small dict (for XCom)."""
    from pipelines.ingest import ingest_date

    cfg = load_config()
    (result,) = ingest_date(cfg.data_root(data_root), dt.date.fromisoformat(business_date), cfg, [dataset])
    out = dataclasses.asdict(result)
    out["date"] = result.date.isoformat()
    return out
