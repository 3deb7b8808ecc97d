"""Nights form a chain: what a night read, whether it may run now, and which published nights are stale.

Night D decides from the limit history that the previous night left (``decisions/as_of_date=P``, P the
newest night before D). Running nights out of order, skipping one, or changing an input a published
night read, breaks that chain silently unless it is checked and recorded. The rule (docs/operations.md, "Nights form
a chain"):

* night D may run when its previous night is D - 1 (or when the lake has no night before D at all: the
  first night), that night is not stale, and no later night exists;
* a *rerun* of D while later nights exist is allowed when D's published manifest names the same previous
  night, with the same limit history, that D would read now (nothing before D moved), or when D itself
  is marked stale (that rerun is the repair);
* anything else is refused with :class:`ChainError`, unless forced (``--force-chain``, DAG param
  ``force_chain``); a forced night records the waived problems in its manifest;
* after a published night D whose limit history changed, every later night is marked stale
  (``outputs/_stale/as_of_date=N.json``, with the reason) until it is rerun; ``riskline rebuild --from N``
  reruns them in order. Re-ingesting a date X whose curated content changed marks every published night
  on or after X stale the same way.

Fingerprints (:func:`input_fingerprints`) name every input partition a night read: every curated
partition up to D, the model's bytes and the previous night's limit history.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipelines.config.location import Location, is_remote

from pipelines.store import lake, zones
from pipelines.store.zones import DECISIONS_ZONE, LIMIT_HISTORY_FILE, curated_dates, night_dates, previous_night
from pipelines.vocab import DATASETS

CHAIN_FILE = "chain.json"  # beside the run's timings: what decide saw, read by publish for the manifest
_DAY = dt.timedelta(days=1)


class ChainError(RuntimeError):
    """Night D may not run now: its previous night is missing, stale or newer nights already ran."""


@dataclass(frozen=True)
class ChainRecord:
    """The link night D decided on, as its manifest records it."""

    previous_night: str | None  # ISO date of the night whose limit history D read; None on a first night
    previous_limit_history_sha256: str | None
    forced: bool = False
    waived: list[str] = field(default_factory=list)  # the problems --force-chain overrode

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- what the lake holds -----------------------------------------------------------------------------


def limit_history_sha256(root: Location, night: dt.date | None) -> str | None:
    if night is None:
        return None
    part = lake.derived_partition(root, DECISIONS_ZONE, night)
    if not lake.is_complete(part):
        return None
    return lake.sha256_of(lake.partition_file(part, LIMIT_HISTORY_FILE))


def _manifest(root: Location, night: dt.date) -> dict[str, Any] | None:
    raw = lake.read_bytes(lake.partition_dir(root, "outputs", "_manifests", night, key="as_of_date") / "manifest.json")
    return json.loads(raw) if raw is not None else None


def published_nights(root: Location) -> list[dt.date]:
    base = root / "outputs" / "_manifests"
    days = [_parse(rel.split("/")[0].removeprefix("as_of_date=")) for rel in lake.glob(base, "as_of_date=*/manifest.json")]
    return sorted(d for d in days if d is not None)


def compared_night(root: Location, as_of: dt.date) -> tuple[dt.date | None, dt.date | None]:
    """``(previous, compared)``: D's previous night (:func:`zones.previous_night`) and the night D's page and
    book summary compare with: the newest *published* night before D. They differ when the previous night was
    decided but never published (publish refused it): the comparison then skips to the last published night
    instead of claiming there is none. The report's score PSI, roll and swap set and the manifest's score PSI
    use this one function, so they name the same night."""
    previous = previous_night(root, as_of)
    earlier = [n for n in published_nights(root) if n < as_of]
    return previous, (earlier[-1] if earlier else None)


def curated_digest(root: Location, dataset: str, day: dt.date) -> str | None:
    """One sha256 for a complete curated partition (over its files' names and sha256); None if absent.

    Every night's manifest names the digest of every curated partition up to D, so on a long history hashing
    them all again is most of publishing (3 years: 1.7 s of a 4 s publish, measured). A digest is kept per
    partition version in ``DATA_ROOT/_cache/curated_digests.json`` (zones.digest_cache_path), keyed by its
    files' (name, inode, mtime, size): a partition is replaced whole, never edited in place, so a republished
    one has new files and is hashed anew.
    """
    part = zones.curated(root, dataset, day)
    if not lake.is_complete(part):
        return None
    files = sorted(lake.parquet_files(part))
    key = f"{dataset}/{day.isoformat()}"
    stats = _file_versions(part, files)
    cache = _digest_cache(root)
    held = cache.get(key)
    if held is not None and held["stats"] == stats:
        return held["digest"]
    lines = "".join(f"{p.name} {_sha256(part, p)}\n" for p in files)
    digest = hashlib.sha256(lines.encode()).hexdigest()
    cache[key] = {"stats": stats, "digest": digest}
    _DIRTY.add(str(root))
    return digest


_CACHES: dict[str, dict[str, Any]] = {}
_DIRTY: set[str] = set()


def _sha256(part: Location, file: Location) -> str | None:
    """A curated file's sha256: from its commit on an object store (recorded at upload), else hashed here."""
    recorded = lake.committed_sha256(part, file.name) if is_remote(part) else None
    return recorded or lake.sha256_of(file)


def _file_versions(part: Location, files: list[Location]) -> list[list[Any]]:
    """What names each file's content: (name, inode, mtime, size) locally, the committed version on an
    object store (a republish is a new version; its files never change in place)."""
    if is_remote(part):
        return [[p.name, lake.committed_version(part)] for p in files]
    # no ctime: a dry run's private copy hard-links the curated files, which changes it and nothing else
    return [[p.name, (st := p.stat()).st_ino, st.st_mtime_ns, st.st_size] for p in files]


def _digest_cache(root: Location) -> dict[str, Any]:
    path = zones.digest_cache_path(root)
    cached = _CACHES.get(str(root))
    if cached is None:
        try:
            raw = lake.read_bytes(path)
            cached = json.loads(raw) if raw is not None else {}
        except (OSError, ValueError):
            cached = {}  # unreadable: hashed anew and rewritten
        _CACHES[str(root)] = cached
    return cached


def save_digest_cache(root: Location) -> None:
    """Write the digests hashed by this process (atomically; a concurrent writer's digests are just as valid,
    and the one whose write lands last is kept)."""
    if str(root) in _DIRTY:
        path = zones.digest_cache_path(root)
        lake.atomic_write_bytes(path, json.dumps(_CACHES[str(root)], sort_keys=True).encode())
        _DIRTY.discard(str(root))


def _parse(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


# --- stale marks -------------------------------------------------------------------------------------


def _stale_path(root: Location, night: dt.date) -> Path:
    return lake.ensure_inside(root, root / "outputs" / "_stale" / f"as_of_date={night.isoformat()}.json")


def stale_nights(root: Location) -> dict[dt.date, str]:
    """Published nights marked stale, with why (cleared when the night is rerun)."""
    base = root / "outputs" / "_stale"
    out = {}
    for name in lake.list_names(base):
        day = _parse(name.removeprefix("as_of_date=").removesuffix(".json")) if name.endswith(".json") else None
        raw = lake.read_bytes(base / name) if day is not None else None
        if day is not None and raw is not None:
            out[day] = json.loads(raw)["reason"]
    return out


def mark_stale(root: Location, nights: list[dt.date], reason: str) -> list[dt.date]:
    """Mark ``nights`` stale (a night already marked keeps its first reason); returns them."""
    known = stale_nights(root)
    for night in nights:
        if night not in known:
            data = {"as_of_date": night.isoformat(), "reason": reason}
            lake.atomic_write_bytes(_stale_path(root, night), (json.dumps(data, sort_keys=True) + "\n").encode())
    write_latest_status(root)
    return nights


def clear_stale(root: Location, night: dt.date) -> None:
    lake.remove_file(_stale_path(root, night))
    write_latest_status(root)


LATEST_STATUS = "_LATEST.json"  # beside outputs/_LATEST: whether the date it names is stale (docs/operations.md)


def night_status(root: Location, night: dt.date) -> dict[str, Any]:
    """``as_of_date``, ``stale`` and, when stale, ``reason`` and the ``rebuild`` command, for one night."""
    stale = stale_nights(root)
    status: dict[str, Any] = {"as_of_date": night.isoformat(), "stale": night in stale}
    if night in stale:
        later = [n for n in published_nights(root) if n >= night]
        status |= {"reason": stale[night], "rebuild": rebuild_hint(root, later or [night])}
    return status


def write_latest_status(root: Location) -> None:
    """Rewrite ``outputs/_LATEST.json`` for the date ``outputs/_LATEST`` names (nothing before a first publish).

    ``_LATEST`` stays a bare date (what every reader parses); this file says whether that night is stale,
    so a consumer can refuse or flag it. Written after ``_LATEST`` moves and whenever a mark changes; its
    ``as_of_date`` says which pointer it describes (a crash between the two leaves them naming different
    dates: trust the flag only when the dates agree; the next publish or mark rewrites it).
    """
    pointer = lake.read_bytes(root / "outputs" / "_LATEST")
    if pointer is None:
        return
    latest = _parse(pointer.decode().strip())
    if latest is None:
        return
    body = json.dumps(night_status(root, latest), sort_keys=True) + "\n"
    path = root / "outputs" / LATEST_STATUS
    if lake.read_bytes(path) != body.encode():
        lake.atomic_write_bytes(path, body.encode())


def rebuild_start(root: Location, night: dt.date) -> dt.date:
    """Where a rebuild that repairs ``night`` must start: walking back from it, the earliest of the stale
    nights just before it (the one whose previous night is not stale), else ``night`` itself.

    :func:`check_chain` refuses every night whose previous night is stale, so a rebuild from any later night
    stops at once; every hint that proposes a rebuild names this night (the one definition)."""
    stale = stale_nights(root)
    while (previous := previous_night(root, night)) in stale:
        night = previous
    return night


def rebuild_hint(root: Location, nights: list[dt.date]) -> str:
    """The next step for stale ``nights`` (sorted): rerun them forward, in order, from :func:`rebuild_start`
    of the first (CLI and Airflow)."""
    first, last = rebuild_start(root, nights[0]), nights[-1]
    return (f"rebuild them in order: `riskline rebuild --from {first}` (or an Airflow backfill of business dates "
            f"{first}..{last} with --max-active-runs 1 --reprocess-behavior completed)")


# --- the rule ----------------------------------------------------------------------------------------


def check_chain(root: Location, as_of: dt.date, force: bool = False) -> ChainRecord:
    """Whether night ``as_of`` may run now (module docstring); the record its manifest will carry.

    Raises:
        ChainError: the night would break the chain and ``force`` is False.
    """
    # A date before anything upstream ever delivered has no night at all: the chain has nothing to say (a
    # rebuild from it would only fail again), and its ingest refuses it, naming the book's first date.
    # A curated date counts as delivered: upstream may purge drops once ingested (a retention policy), and a
    # rerun of a night whose drops are gone, while later ones are not, is no night before the book.
    first = min((d for name in DATASETS
                 for d in (*zones.landing_dates(lake.delivery_root(root), name)[:1], *curated_dates(root, name)[:1])),
                default=None)
    if first is not None and as_of < first:
        return ChainRecord(None, None)
    stale = stale_nights(root)
    later = [n for n in night_dates(root) if n > as_of]
    previous = previous_night(root, as_of)
    record = ChainRecord(previous.isoformat() if previous else None, limit_history_sha256(root, previous))
    problems = []
    if previous is not None and previous != as_of - _DAY:
        problems.append(f"its previous night {as_of - _DAY} has not run (the newest night before it is {previous}); "
                        f"run the missing nights first, in order: `riskline rebuild --from {previous + _DAY} --to {as_of}`")
    if previous in stale:
        problems.append(f"its previous night {previous} is stale ({stale[previous]}); "
                        f"rebuild from it first: `riskline rebuild --from {rebuild_start(root, previous)}`")
    if later and as_of not in stale and not _reruns_in_place(root, as_of, record):
        problems.append(
            f"later nights already ran ({later[0]}..{later[-1]}) and {as_of} would not be a rerun of the same chain "
            f"(its published manifest names another previous night, or there is none); running it now marks "
            f"them stale, so do it as a rebuild: `riskline rebuild --from {as_of} --force-chain`")
    if problems and not force:
        raise ChainError(f"night {as_of} is out of order: " + "; ".join(problems)
                         + " (or pass --force-chain / DAG param force_chain to run it anyway, recorded in its manifest)")
    return ChainRecord(record.previous_night, record.previous_limit_history_sha256, forced=bool(problems),
                       waived=problems)


def _reruns_in_place(root: Location, as_of: dt.date, record: ChainRecord) -> bool:
    manifest = _manifest(root, as_of)
    recorded = ((manifest or {}).get("inputs") or {}).get("chain")
    return isinstance(recorded, dict) and (
        recorded.get("previous_night"), recorded.get("previous_limit_history_sha256")
    ) == (record.previous_night, record.previous_limit_history_sha256)


def save_chain_record(root: Location, as_of: dt.date, record: ChainRecord) -> None:
    """Keep the link decide used (``runs/as_of_date=D/chain.json``): publish puts it in the manifest."""
    path = lake.derived_partition(root, "runs", as_of) / CHAIN_FILE
    lake.atomic_write_bytes(path, (json.dumps(record.to_dict(), sort_keys=True, indent=2) + "\n").encode())


def load_chain_record(root: Location, as_of: dt.date) -> ChainRecord:
    """The link night D's decisions were made on (what its decide saved; else what D would read now)."""
    path = lake.derived_partition(root, "runs", as_of) / CHAIN_FILE
    raw = lake.read_bytes(path)
    if raw is not None:
        return ChainRecord(**json.loads(raw))
    night = previous_night(root, as_of)
    return ChainRecord(night.isoformat() if night else None, limit_history_sha256(root, night))


def after_publish(root: Location, as_of: dt.date) -> list[dt.date]:
    """Night D is published: clear its stale mark; if the next night read another limit history than the
    one D holds now (a rerun changed it, or D ran after it), mark every later night stale and return them."""
    clear_stale(root, as_of)
    later = [n for n in night_dates(root) if n > as_of]
    if not later:
        return []
    read = load_chain_record(root, later[0])
    if (read.previous_night, read.previous_limit_history_sha256) == (as_of.isoformat(), limit_history_sha256(root, as_of)):
        return []
    return mark_stale(root, later, f"night {as_of} was (re)run after them and its limit history differs from "
                                   f"the one night {later[0]} read")


def after_ingest(root: Location, day: dt.date, before: dict[str, str | None]) -> list[dt.date]:
    """Curated partitions of ``day`` were replaced: mark published nights that read other content stale.

    ``before`` maps each re-ingested dataset to its :func:`curated_digest` before the ingest. Returns the
    nights on or after ``day`` that are now stale (empty when the content did not change).
    """
    changed = sorted(name for name, digest in before.items() if curated_digest(root, name, day) != digest)
    nights = [n for n in published_nights(root) if n >= day]
    if not changed or not nights:
        return []
    return mark_stale(root, nights, f"curated {', '.join(changed)} dt={day} changed after the night read it")


# --- fingerprints ------------------------------------------------------------------------------------


def input_fingerprints(
    root: Location, as_of: dt.date, model_version: str, model_sha256: str | None, chain: ChainRecord
) -> dict[str, Any]:
    """Every input partition night ``as_of`` read: curated partitions up to D, the model, the previous night.

    ``model_sha256`` is the sha256 of the model's bytes (the registry, a layer above, reads them).
    """
    curated = {
        name: {d.isoformat(): curated_digest(root, name, d) for d in curated_dates(root, name) if d <= as_of}
        for name in DATASETS
    }
    save_digest_cache(root)
    model = {"version": model_version, "model_sha256": model_sha256} if model_version else {}
    return {"curated": curated, "model": model, "chain": chain.to_dict()}
