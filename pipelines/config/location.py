"""Where the data root is: a local folder or an object-store URL, parsed without touching either.

Below the store layer so the config can resolve ``paths.data_root``; ``pipelines/store/lake.py`` does the I/O.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeAlias

from upath import UPath


# A local folder (pathlib.Path) or an object-store URL (upath.UPath). Local paths keep the rename layout.
Location: TypeAlias = Path | UPath
_LOCAL_PROTOCOLS = ("", "file", "local")


def as_location(raw: str | os.PathLike[str] | UPath) -> Location:
    """A data root as given: a plain path or ``file://`` URL becomes a local ``Path``, any other URL a ``UPath``.

    Relative local paths are left relative (the caller decides what they are relative to).
    """
    if isinstance(raw, UPath) and not isinstance(raw, Path):
        return raw if raw.protocol not in _LOCAL_PROTOCOLS else Path(raw.path)
    text = os.fspath(raw)
    if "://" not in text:
        return Path(text)
    url = UPath(text)
    if url.protocol in _LOCAL_PROTOCOLS:
        return Path(url.path)
    return url


def is_remote(location: Location) -> bool:
    """True for an object-store location (no rename, no fsync, no file locks)."""
    return not isinstance(location, Path)
