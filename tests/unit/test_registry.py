"""Registry: the gate's arithmetic, immutable versions, the champion history and its pointer."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import pytest

from pipelines.config.model_definition import PromotionGate
from pipelines.model.registry import (
    ModelRegistry,
    NoChampionError,
    RegistryError,
    decide_promotion,
    version_id,
)

GATE = PromotionGate(min_oot_auc=0.65, max_calibration_error=0.02, auc_tolerance=0.01,
                     calibration_error_tolerance=0.005)
D1, D2, D3 = dt.date(2026, 9, 1), dt.date(2026, 9, 8), dt.date(2026, 9, 15)


def _metrics(auc: float, cal: float) -> dict:
    return {"auc": auc, "calibration_error": cal}


@pytest.mark.parametrize(
    "challenger, champion, promote, failed",
    [
        (_metrics(0.70, 0.010), None, True, []),  # first run: floors only
        (_metrics(0.60, 0.010), None, False, ["oot_auc"]),
        (_metrics(0.70, 0.030), None, False, ["calibration_error"]),
        # 0.755 >= 0.76 - 0.01 and 0.014 <= 0.010 + 0.005: not worse beyond the tolerance
        (_metrics(0.755, 0.014), _metrics(0.76, 0.010), True, []),
        (_metrics(0.745, 0.010), _metrics(0.76, 0.010), False, ["auc_vs_champion"]),
        (_metrics(0.80, 0.016), _metrics(0.76, 0.010), False, ["calibration_vs_champion"]),
    ],
)
def test_promotion_gate(challenger, champion, promote, failed):
    decision = decide_promotion(challenger, champion, GATE, "champ" if champion else None)
    assert decision.promote is promote
    assert [r.split(":")[0] for r in decision.reasons] == failed
    assert len(decision.checks) == (4 if champion else 2)
    assert ("first model" in decision.summary()) is (champion is None)


def _register(registry: ModelRegistry, as_of: dt.date, payload: bytes) -> str:
    version = version_id(as_of, payload)
    records = {"features": [{"name": "dpd"}], "manifest": {"as_of": as_of.isoformat()}, "metrics": {"oot": {}},
               "gate": {"promote": True}}
    registry.register(version, payload, records)
    return version


def test_versions_are_content_addressed_and_immutable(tmp_path: Path):
    registry = ModelRegistry(tmp_path)
    version = _register(registry, D1, b"model-a")
    assert version.startswith("2026-09-01-") and len(version) == len("2026-09-01-") + 12
    assert registry.versions() == [version]
    records = {"features": [], "manifest": {"as_of": D1.isoformat()}, "metrics": {"x": 1}, "gate": {}}
    # a rerun with the same bytes reuses the folder and does not rewrite its records
    assert registry.register(version, b"model-a", records) is False
    assert registry.record(version).metrics == {"oot": {}}
    assert registry.model_bytes(version) == b"model-a"
    assert all((p.stat().st_mode & 0o222) == 0 for p in (tmp_path / "registry" / version).iterdir())
    with pytest.raises(RegistryError, match="does not match"):
        registry.register(version, b"model-b", records)
    assert not [p for p in (tmp_path / "registry").iterdir() if p.name.startswith(".tmp-")]


def test_unknown_or_hostile_versions_are_refused(tmp_path: Path):
    registry = ModelRegistry(tmp_path)
    for bad in ("nope", "../etc", ".lock", ""):
        with pytest.raises(RegistryError):
            registry.record(bad)


def test_champion_history_answers_which_model_served_on_a_date(tmp_path: Path):
    registry = ModelRegistry(tmp_path)
    a, b = _register(registry, D1, b"a"), _register(registry, D2, b"b")
    with pytest.raises(NoChampionError, match="no champion model serves on 2026-09-01"):
        registry.require_champion_on(D1)
    registry.set_champion(a, D1, "promote", "first")
    registry.set_champion(b, D2, "promote", "better")
    # the nightly promotion is idempotent: a rerun of the night appends nothing
    assert registry.set_champion(b, D2, "promote", "better") is None
    assert [registry.champion_on(d) for d in (D1 - dt.timedelta(days=1), D1, D2 - dt.timedelta(days=1), D3)] == [
        None, a, a, b
    ]
    assert registry.champion() == b
    pointer = json.loads((tmp_path / "registry" / "champion.json").read_text())
    assert pointer == {"version": b, "effective_from": D2.isoformat(), "seq": 2}


def test_rollback_reinstates_the_previous_champion_and_is_recorded(tmp_path: Path):
    registry = ModelRegistry(tmp_path)
    a, b = _register(registry, D1, b"a"), _register(registry, D2, b"b")
    registry.set_champion(a, D1, "promote", "first")
    with pytest.raises(RegistryError, match="only champion"):
        registry.rollback(D2, "no earlier one")
    registry.set_champion(b, D2, "promote", "better")
    event = registry.rollback(D3, "complaints about grade E rate", recorded_at="2026-09-15T02:00:00+00:00")
    assert (event.version, event.action, event.effective_from) == (a, "rollback", D3)
    # a backfill of D2 still scores with b: the history says b served from D2 until the rollback on D3
    assert (registry.champion_on(D2), registry.champion_on(D3), registry.champion()) == (b, a, a)
    history = registry.history()
    assert [e.seq for e in history] == [1, 2, 3] and history[-1].reason == "complaints about grade E rate"
    with pytest.raises(RegistryError, match="needs a reason"):
        registry.set_champion(b, D3, "manual_promote", "  ")


def test_concurrent_writers_never_lose_a_history_line(tmp_path: Path):
    version = _register(ModelRegistry(tmp_path), D1, b"a")

    def promote_many(worker: int) -> None:
        registry = ModelRegistry(tmp_path)  # its own lock file handle: flock excludes it like a process
        for i in range(10):
            registry.set_champion(version, D1, "manual_promote", f"worker {worker} #{i}")

    workers = [threading.Thread(target=promote_many, args=(w,)) for w in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    # Without the lock two writers read the same history and one's line is lost, or seq numbers repeat.
    assert [e.seq for e in ModelRegistry(tmp_path).history()] == list(range(1, 31))
