"""The model registry: immutable model versions, the champion pointer and its history, the promotion gate.

Layout under ``DATA_ROOT/registry/``::
    <version>/model.ubj          the booster (UBJSON), byte-identical for identical inputs
    <version>/features.json      feature names, dtypes and monotone constraints, in model order
    <version>/manifest.json      training window, input fingerprints, config hash, code version
    <version>/metrics.json       OOT metrics, stability, the champion's metrics on the same OOT
    <version>/gate.json          the promotion decision taken when the version was trained
    champion.json                pointer to the current champion (atomically replaced)
    champion_history.jsonl       append-only: which version serves from which business date, and why
    .lock                        fcntl lock held by writers

A version id is ``<as_of>-<first 12 hex of sha256(model.ubj)>``: a rerun on the same inputs produces
the same bytes, hence the same id, and reuses the existing folder. A version folder is written into a
temporary sibling and renamed into place once, then never touched again. Writers serialise on the
lock; readers take no lock because every file they read is replaced atomically.

:func:`decide_promotion` (pure) is the gate: a challenger must clear absolute floors, and must not be
worse than the champion *on the same OOT data* beyond a tolerance.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import xgboost as xgb

from pipelines.config.model_definition import PromotionGate
from pipelines.config.location import Location, is_remote
from pipelines.store import lake
from pipelines.store.lake import atomic_write_bytes, ensure_inside, fsync_dir
from pipelines.store.locks import file_lock

MODEL_FILE = "model.ubj"
HISTORY_FILE = "champion_history.jsonl"
POINTER_FILE = "champion.json"
_RECORD_FILES = ("features.json", "manifest.json", "metrics.json", "gate.json")

Action = Literal["promote", "manual_promote", "rollback"]


class RegistryError(RuntimeError):
    """A registry operation cannot be done as asked (unknown version, nothing to roll back to, ...)."""


class NoChampionError(RegistryError):
    """No model may serve: there is no champion and the challenger failed the gate (or none was trained)."""


# --- the promotion gate (pure) --------------------------------------------------------------------


@dataclass(frozen=True)
class GateCheck:
    name: str
    value: float
    limit: float
    passed: bool
    rule: str  # human-readable, e.g. "challenger AUC >= champion AUC - 0.01"


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    champion: str | None  # the champion the challenger was compared with (None on a first run)
    checks: tuple[GateCheck, ...]
    note: str = ""

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.value:.4f} fails {c.rule}" for c in self.checks if not c.passed]

    def summary(self) -> str:
        verdict = "promoted" if self.promote else "rejected"
        why = "; ".join(self.reasons) or "all checks passed"
        against = f" against champion {self.champion}" if self.champion else " (first model: floors only)"
        return f"{verdict}{against}: {why}" + (f" [{self.note}]" if self.note else "")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reasons": self.reasons, "summary": self.summary()}


def decide_promotion(
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    gate: PromotionGate,
    champion_version: str | None = None,
    note: str = "",
) -> GateDecision:
    """Promote the challenger only if it clears the floors and is not worse than the champion.

    Args:
        challenger: the challenger's OOT metrics (``auc``, ``calibration_error``).
        champion: the champion's metrics on the *same* OOT rows, or None when there is no champion
            (or it cannot score this snapshot): then only the floors apply.
    """
    # The ceiling is on calibration error beyond what chance alone gives a calibrated PD on these rows
    # (evaluate.calibration_noise; 0 in records from before it was measured): a sound model on a small
    # OOT snapshot must not fail for the noise of its decile bad rates.
    noise = float(challenger.get("calibration_noise", 0.0))
    ceiling = gate.max_calibration_error + noise
    checks = [
        GateCheck("oot_auc", challenger["auc"], gate.min_oot_auc,
                  challenger["auc"] >= gate.min_oot_auc, f"floor >= {gate.min_oot_auc}"),
        GateCheck("calibration_error", challenger["calibration_error"], ceiling,
                  challenger["calibration_error"] <= ceiling,
                  f"ceiling <= {gate.max_calibration_error} + sampling noise {noise:.4f}"),
    ]
    if champion is not None:
        auc_limit = champion["auc"] - gate.auc_tolerance
        cal_limit = champion["calibration_error"] + gate.calibration_error_tolerance
        checks += [
            GateCheck("auc_vs_champion", challenger["auc"], auc_limit, challenger["auc"] >= auc_limit,
                      f">= champion AUC {champion['auc']:.4f} - {gate.auc_tolerance}"),
            GateCheck("calibration_vs_champion", challenger["calibration_error"], cal_limit,
                      challenger["calibration_error"] <= cal_limit,
                      f"<= champion calibration error {champion['calibration_error']:.4f} + "
                      f"{gate.calibration_error_tolerance}"),
        ]
    return GateDecision(
        promote=all(c.passed for c in checks),
        champion=champion_version if champion is not None else None,
        checks=tuple(checks),
        note=note,
    )


# --- records --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChampionEvent:
    """One line of the champion history: ``version`` serves from ``effective_from`` on."""

    seq: int
    version: str
    effective_from: dt.date
    action: Action
    reason: str
    recorded_at: str | None = None  # wall-clock time of a manual action (read at the CLI edge)

    def to_json(self) -> str:
        data = {**asdict(self), "effective_from": self.effective_from.isoformat()}
        return json.dumps(data, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> ChampionEvent:
        data = json.loads(line)
        return cls(**{**data, "effective_from": dt.date.fromisoformat(data["effective_from"])})


@dataclass(frozen=True)
class ModelRecord:
    """What the registry holds about one version (the booster is loaded separately)."""

    version: str
    path: Location
    features: list[dict[str, Any]] = field(repr=False)
    manifest: dict[str, Any] = field(repr=False)
    metrics: dict[str, Any] = field(repr=False)
    gate: dict[str, Any] = field(repr=False)

    @property
    def as_of(self) -> dt.date:
        return dt.date.fromisoformat(self.manifest["as_of"])


def version_id(as_of: dt.date, model_bytes: bytes) -> str:
    return f"{as_of.isoformat()}-{hashlib.sha256(model_bytes).hexdigest()[:12]}"


def to_json_bytes(data: Any) -> bytes:
    """Canonical JSON (sorted keys, fixed separators) so equal content gives equal bytes."""
    return (json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False, default=str) + "\n").encode()


# --- the registry on disk -------------------------------------------------------------------------


class ModelRegistry:
    """``DATA_ROOT/registry``: register versions, read them, move the champion pointer."""

    def __init__(self, data_root: Location) -> None:

        self.root = ensure_inside(data_root, data_root / "registry")

    # readers (no lock: every file is replaced atomically)

    def versions(self) -> list[str]:
        return [name for name in lake.list_names(self.root)
                if not name.startswith((".", "_")) and _registered(self.root / name)]

    def _version_dir(self, version: str) -> Location:

        if not version or "/" in version or version.startswith("."):
            raise RegistryError(f"not a model version: {version!r}")
        path = ensure_inside(self.root, self.root / version)
        if not _registered(path):
            known = ", ".join(self.versions()[-5:]) or "none"
            raise RegistryError(f"unknown model version {version!r} (latest known: {known})")
        return path

    def _read(self, version: str, name: str) -> bytes:
        data = lake.read_bytes(lake.partition_file(self._version_dir(version), name))
        if data is None:
            raise RegistryError(f"model version {version} has no {name}: the registry is damaged")
        return data

    def record(self, version: str) -> ModelRecord:
        path = self._version_dir(version)
        data = {name.removesuffix(".json"): json.loads(self._read(version, name)) for name in _RECORD_FILES}
        return ModelRecord(version=version, path=path, **data)

    def model_bytes(self, version: str) -> bytes:
        return self._read(version, MODEL_FILE)

    def load_booster(self, version: str) -> xgb.Booster:
        booster = xgb.Booster()
        booster.load_model(bytearray(self.model_bytes(version)))
        return booster

    def history(self) -> list[ChampionEvent]:
        raw = lake.read_bytes(self.root / HISTORY_FILE)
        if raw is None:
            return []
        return [ChampionEvent.from_json(line) for line in raw.decode().splitlines() if line.strip()]

    def champion(self) -> str | None:
        """The version serving from the latest effective date on (the pointer file)."""
        raw = lake.read_bytes(self.root / POINTER_FILE)
        return json.loads(raw)["version"] if raw is not None else None

    def champion_on(self, date: dt.date) -> str | None:
        """The champion serving on business date ``date``: a backfill scores with the model of its day."""
        return _champion_on(self.history(), date)

    def require_champion_on(self, date: dt.date) -> str:
        version = self.champion_on(date)
        if version is None:
            raise NoChampionError(
                f"no champion model serves on {date}: no version was promoted with an effective date on or "
                "before it"
            )  # the next step depends on where this is read (CLI flags vs DAG params): the caller adds it
        return version

    # writers (under the lock)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with file_lock(self.root / ".lock"):
            yield

    def register(self, version: str, model_bytes: bytes, records: Mapping[str, Any]) -> bool:
        """Write a new version folder; False (and nothing written) when the version already exists.

        ``records`` maps ``features``/``manifest``/``metrics``/``gate`` to JSON-able content.
        """

        if version != version_id(dt.date.fromisoformat(records["manifest"]["as_of"]), model_bytes):
            raise RegistryError(f"version {version} does not match its model bytes and as_of")
        with self._locked():
            target = self.root / version
            if _registered(target):
                if self.model_bytes(version) != model_bytes:
                    raise RegistryError(f"version {version} exists with different model bytes")
                return False
            files = {MODEL_FILE: model_bytes} | {
                name: to_json_bytes(records[name.removesuffix(".json")]) for name in _RECORD_FILES
            }
            if is_remote(target):  # one uploaded version, committed by its _SUCCESS (lake.staged_partition)
                with lake.staged_partition(target) as staged:
                    for name, data in sorted(files.items()):
                        (staged / name).write_bytes(data)
                return True
            assert isinstance(target, Path)
            if target.exists():
                raise RegistryError(f"{target} exists but holds no complete model version: remove it, then retrain")
            tmp = self.root / f".tmp-{version}-{uuid.uuid4().hex}"
            tmp.mkdir()
            try:
                for name, data in sorted(files.items()):
                    with open(tmp / name, "wb") as fh:
                        fh.write(data)
                        fh.flush()
                        os.fsync(fh.fileno())
                    os.chmod(tmp / name, 0o444)  # immutable by convention and by permission
                os.rename(tmp, target)  # fails rather than overwrite if a folder appeared meanwhile
                fsync_dir(self.root)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        return True

    def set_champion(
        self,
        version: str,
        effective_from: dt.date,
        action: Action,
        reason: str,
        recorded_at: str | None = None,
    ) -> ChampionEvent | None:
        """Make ``version`` the champion from ``effective_from`` on; None if that is already recorded.

        Automatic promotions are idempotent (a rerun of the same night appends nothing); manual actions
        are always recorded, each with its reason.
        """
        if not reason.strip():
            raise RegistryError("a champion change needs a reason")
        self._version_dir(version)
        with self._locked():
            history = self.history()
            if action == "promote" and any(
                e.version == version and e.effective_from == effective_from and e.action == action for e in history
            ):
                self._write_pointer(history)  # a crash between history and pointer left the pointer behind
                return None
            event = ChampionEvent(len(history) + 1, version, effective_from, action, reason, recorded_at)
            self._write_history([*history, event])
            return event

    def rollback(self, effective_from: dt.date, reason: str, recorded_at: str | None = None) -> ChampionEvent:
        """Reinstate the champion that served before the one serving on ``effective_from``."""
        history = self.history()
        current = _champion_on(history, effective_from)
        if current is None:
            raise RegistryError(f"no champion serves on {effective_from}: nothing to roll back")
        earlier = [e for e in _ordered(history) if e.effective_from <= effective_from]
        previous = next((e.version for e in reversed(earlier) if e.version != current), None)
        if previous is None:
            raise RegistryError(f"{current} is the only champion so far: there is no earlier one to roll back to")
        event = self.set_champion(previous, effective_from, "rollback", reason, recorded_at)
        assert event is not None  # manual actions are always recorded
        return event

    def _write_history(self, history: list[ChampionEvent]) -> None:

        existing = lake.read_bytes(self.root / HISTORY_FILE) or b""
        content = "".join(e.to_json() + "\n" for e in history).encode()
        if not content.startswith(existing):
            raise RegistryError("the champion history would be rewritten; it is append-only")
        # Rewriting the whole (small) file atomically, rather than appending, means a concurrent reader
        # never sees half a line; the prefix check above keeps it append-only.
        atomic_write_bytes(self.root / HISTORY_FILE, content)
        self._write_pointer(history)

    def _write_pointer(self, history: list[ChampionEvent]) -> None:
        """Point ``champion.json`` at the history's latest champion (no write when it already does)."""

        latest = _ordered(history)[-1]
        pointer = {"version": latest.version, "effective_from": latest.effective_from.isoformat(), "seq": latest.seq}
        path = self.root / POINTER_FILE
        if lake.read_bytes(path) != to_json_bytes(pointer):
            atomic_write_bytes(path, to_json_bytes(pointer))


def _registered(folder: Location) -> bool:
    """A complete version: its manifest is there (a local folder appears whole by rename), or on an object
    store its ``_SUCCESS`` commits an uploaded version."""
    if is_remote(folder):
        return lake.is_complete(folder)
    return (folder / "manifest.json").is_file()


def _ordered(history: list[ChampionEvent]) -> list[ChampionEvent]:
    """By effective date, then by the order recorded: a later action on the same date wins."""
    return sorted(history, key=lambda e: (e.effective_from, e.seq))


def _champion_on(history: list[ChampionEvent], date: dt.date) -> str | None:
    serving = [e for e in _ordered(history) if e.effective_from <= date]
    return serving[-1].version if serving else None


