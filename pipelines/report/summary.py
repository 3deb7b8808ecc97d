"""The short morning summary of a published night, built from its manifest and outputs only."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from pipelines.model.registry import ModelRegistry, RegistryError
from pipelines.store import chain, publish


def _counts(frame: pl.DataFrame, column: str) -> str:
    rows = frame.group_by(column).len().sort(column).iter_rows()
    return ", ".join(f"{k} {n:,}" for k, n in rows) or "none"


def describe_published(root: Path, as_of: dt.date) -> str:
    """Accounts scored, limit actions, queue sizes, hardship offers, model quality and where it all is."""
    manifest = publish.read_manifest(root, as_of)
    limits = publish.read_output(root, "limits", as_of, columns=["action"])
    queue = publish.read_output(root, "collection_queue", as_of, columns=["treatment"])
    rows = {name: meta["rows"] for name, meta in manifest["outputs"].items()}
    status = chain.night_status(root, as_of)
    lines = [
        f"riskline outputs for business date {as_of}"
        + (f"  STALE: {status['reason']}; {status['rebuild']}" if status["stale"] else ""),
        f"  accounts scored:   {rows['scores']:,} with model {manifest['model_version']}",
    ]
    try:
        oot = ModelRegistry(root).record(manifest["model_version"]).metrics.get("oot", {})
    except RegistryError:
        oot = {}  # a model registered elsewhere: the summary still lists the outputs
    if "auc" in oot:
        lines.append(f"  model OOT:         AUC {oot['auc']:.4f}, KS {oot.get('ks', float('nan')):.4f}")
    lines += [
        f"  limit actions:     {_counts(limits, 'action')}  (policy {manifest['policy_version']})",
        f"  collection queue:  {_counts(queue, 'treatment')}",
        f"  hardship offers:   {rows['hardship_offers']:,} loans",
        f"  outputs:           {root / 'outputs'}/<name>/as_of_date={as_of}/  (manifest {publish.manifest_path(root, as_of)})",
    ]
    return "\n".join(lines)
