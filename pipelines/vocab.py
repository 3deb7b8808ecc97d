"""Names of the lake's datasets, importable without heavy dependencies (DAG files parse it often)."""

from __future__ import annotations

# Landing datasets delivered by upstream every business day (contract: pipelines/contracts/landing.py).
DATASETS: tuple[str, ...] = ("accounts", "behaviour", "installments", "payments")

# Outputs published every night for downstream systems (contract: pipelines/contracts/outputs.py).
OUTPUTS: tuple[str, ...] = ("scores", "limits", "collection_queue", "hardship_offers")


def output_asset_name(output: str) -> str:
    """The Airflow asset an output's publish emits; producer and consumer DAGs both build it from here."""
    return f"riskline_{output}"


def output_asset_uri(output: str) -> str:
    return f"riskline://outputs/{output}"
