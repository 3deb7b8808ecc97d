"""Split per-account work into shards by a stable hash of ``account_id``.

Every per-account step (ledger, features, labels) can run on one shard of the book at a time: a shard
holds every row whose ``account_id`` hashes to it, in every dataset, so no step needs another shard's
rows. Concatenating the shards' outputs and sorting gives exactly the unsharded output.

Stability guarantee: the shard of an account is ``FNV-1a-64(utf8 bytes of account_id) mod n_shards``.
FNV-1a is a fixed, published algorithm implemented here with numpy, so the assignment is the same in
every process, on every machine, in every run and across polars/numpy upgrades (polars' own ``hash``
is only stable within one polars version). A null ``account_id`` (a defect upstream validation should
already have quarantined) goes to shard 0, so it is still processed exactly once.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def fnv1a_64(values: pl.Series) -> pl.Series:
    """FNV-1a 64-bit hash of each string's UTF-8 bytes (null stays null).

    Vectorized over rows: the loop runs over byte positions (an id is a dozen bytes), never over rows.
    """
    arr = values.cast(pl.String).to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string())
    n = len(arr)
    hashes = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    if n:
        _, offsets_buf, data_buf = arr.buffers()
        offsets = np.frombuffer(offsets_buf, dtype=np.int64)[arr.offset : arr.offset + n + 1]
        data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
        starts = offsets[:-1]
        lengths = np.diff(offsets)
        width = int(lengths.max(initial=0))
        if width and bool((lengths == width).all()):
            # Fixed-width ids (the usual case): one strided column per byte, no index gathering.
            matrix = data[starts[0] : starts[0] + n * width].reshape(n, width)
            for pos in range(width):
                hashes ^= matrix[:, pos]
                hashes *= _FNV_PRIME  # wraps modulo 2**64, as FNV requires
        else:
            for pos in range(width):
                live = np.flatnonzero(lengths > pos)
                hashes[live] = (hashes[live] ^ data[starts[live] + pos]) * _FNV_PRIME
    out = pl.Series(values.name, hashes, dtype=pl.UInt64)
    return out.set(values.is_null(), None) if values.null_count() else out  # type: ignore[arg-type]


def shard_expr(n_shards: int, column: str = "account_id") -> pl.Expr:
    """The shard number (0 .. n_shards-1, UInt32) of each row's ``column``."""
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    return (
        pl.col(column)
        .map_batches(fnv1a_64, return_dtype=pl.UInt64, is_elementwise=True)
        .mod(n_shards)
        .fill_null(0)
        .cast(pl.UInt32)
        .alias("shard")
    )


def filter_shard(
    lf: pl.LazyFrame, shard: int, n_shards: int, column: str = "account_id"
) -> pl.LazyFrame:
    """Keep the rows of ``lf`` whose ``column`` belongs to ``shard`` of ``n_shards``."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard must be in 0..{n_shards - 1}, got {shard}")
    if n_shards == 1:
        return lf  # every row is in the only shard; skip hashing the whole table
    return lf.filter(shard_expr(n_shards, column) == shard)
