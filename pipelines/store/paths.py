"""Partition paths under the data root, built only here and refused when they would leave it.

Every zone's folder (``root/zone/dataset/dt=D``, ``root/zone/as_of_date=D``) is named by these functions;
``pipelines.store.lake`` re-exports them for its callers.
"""

from __future__ import annotations

import datetime as dt
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
    return ensure_inside(root, root / zone / dataset / f"{key}={date.isoformat()}")


def derived_partition(root: Location, zone: str, date: dt.date, key: str = "as_of_date") -> Location:
    """``root/zone/<key>=YYYY-MM-DD`` for zones computed per run date (features, ledger, labels)."""
    if not isinstance(date, dt.date):
        raise TypeError(f"partition date must be a datetime.date, got {type(date).__name__}")
    return ensure_inside(root, root / zone / f"{key}={date.isoformat()}")


def ensure_inside(root: Location, path: Location) -> Location:
    """Return ``path`` resolved, or raise :class:`PathEscapeError` if it is not under ``root``."""
    if is_remote(root) or is_remote(path):
        return _ensure_inside_url(root, path)
    # Resolved on every call, never remembered: a folder swapped for a link out of the root, or a re-pointed
    # root link, must be seen by a long-lived process (a worker, a test session) at once.
    root_r = Path(root).resolve()
    path_r = Path(path).resolve()
    if path_r != root_r and not str(path_r).startswith(str(root_r).rstrip(os.sep) + os.sep):
        raise PathEscapeError(f"path {path} escapes the data root {root_r}")
    return path_r


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
