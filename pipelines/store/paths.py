"""Partition paths under the data root, built only here and refused when they would leave it.

Every zone's folder (``root/zone/dataset/dt=D``, ``root/zone/as_of_date=D``) is named by these functions;
``pipelines.store.lake`` re-exports them for its callers.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import posixpath
from pathlib import Path

from upath import UPath

from pipelines.config.location import Location, is_remote


class PathEscapeError(ValueError):
    """A path built from user input would leave the data root."""


def partition_dir(root: Location, zone: str, dataset: str, date: dt.date, key: str = "dt") -> Location:
    """``root/zone/dataset/<key>=YYYY-MM-DD``, refusing anything that escapes ``root``."""
    if not isinstance(date, dt.date):
        raise TypeError(f"partition date must be a datetime.date, got {type(date).__name__}")
    if is_remote(root):
        return ensure_inside(root, root / zone / dataset / f"{key}={date.isoformat()}")
    return _local_partition_dir(os.path.abspath(root), zone, dataset, date, key)


@functools.lru_cache(maxsize=1 << 16)
def _local_partition_dir(root: str, zone: str, dataset: str, date: dt.date, key: str) -> Path:
    # a range ingest names every partition of the history for every date it ingests (see _resolved)
    path = ensure_inside(Path(root), Path(root) / zone / dataset / f"{key}={date.isoformat()}")
    assert isinstance(path, Path)
    return path


def derived_partition(root: Location, zone: str, date: dt.date, key: str = "as_of_date") -> Location:
    """``root/zone/<key>=YYYY-MM-DD`` for zones computed per run date (features, ledger, labels)."""
    if not isinstance(date, dt.date):
        raise TypeError(f"partition date must be a datetime.date, got {type(date).__name__}")
    return ensure_inside(root, root / zone / f"{key}={date.isoformat()}")


def ensure_inside(root: Location, path: Location) -> Location:
    """Return ``path`` resolved, or raise :class:`PathEscapeError` if it is not under ``root``."""
    if is_remote(root) or is_remote(path):
        return _ensure_inside_url(root, path)
    # (absolute before the cache: a relative root means another folder after a chdir)
    root_r = _resolved(os.path.abspath(root))
    path_r = _resolved(os.path.abspath(path))
    if path_r != root_r and not str(path_r).startswith(str(root_r).rstrip(os.sep) + os.sep):
        raise PathEscapeError(f"path {path} escapes the data root {root_r}")
    return path_r


@functools.lru_cache(maxsize=1 << 15)
def _resolved(path: str) -> Path:
    """``Path(path).resolve()``, once per process: a range ingest builds tens of thousands of partition paths
    and resolving each walks its every folder (seconds a year of history, measured). The data root's folders
    are not re-linked while a command runs."""
    return Path(path).resolve()


def _ensure_inside_url(root: Location, path: Location) -> UPath:
    """The URL form of :func:`ensure_inside`: same file system, and a normalized key prefix of ``root``."""
    if not (is_remote(root) and is_remote(path)):
        raise PathEscapeError(f"path {path} and data root {root} are not on the same file system")
    assert isinstance(root, UPath) and isinstance(path, UPath)
    same_store = path.protocol == root.protocol and path.storage_options == root.storage_options
    root_key = posixpath.normpath(root.path).rstrip("/") or "/"
    key = posixpath.normpath(path.path)
    if not same_store or not (key == root_key or key.startswith(root_key.rstrip("/") + "/")):
        raise PathEscapeError(f"path {path} escapes the data root {root}")
    rel = key[len(root_key):].strip("/")
    return root.joinpath(*rel.split("/")) if rel else root
