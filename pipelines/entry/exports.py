"""Exports for downstream teams, built only from published outputs (the contract in pipelines/contracts/outputs.py)."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import polars as pl

from pipelines.config.location import as_location
from pipelines.config.settings import load_config
from pipelines.store import lake


def agent_queue(queue: pl.DataFrame) -> pl.DataFrame:
    """The human-agent part of a published collection queue, in contact order."""
    return (
        queue.filter(pl.col("treatment") == "agent")
        .sort("priority")
        .select("priority", "account_id", "dpd", "bucket", "overdue_amount", "outstanding_balance",
                "expected_loss", "channel")
    )


def export_agent_queue(event: dict[str, Any], data_root: str | None = None) -> str | None:
    """Write the agent queue of the partition named in an asset event as CSV; None for a dry-run event."""
    if not event.get("published", False):
        return None
    cfg = load_config()
    root = cfg.data_root(data_root)
    partition = lake.ensure_inside(root, as_location(event["path"]))
    queue = lake.read_partition(partition)
    if queue.height != int(event["rows"]):
        raise ValueError(f"{partition} holds {queue.height} rows but the asset event announced {event['rows']}")
    as_of = dt.date.fromisoformat(event["as_of_date"])
    target = lake.partition_dir(root, "exports", "agent_queue", as_of, key="as_of_date") / "agent_queue.csv"
    buffer = io.BytesIO()
    agent_queue(queue).write_csv(buffer)
    lake.atomic_write_bytes(target, buffer.getvalue())
    return str(target)
