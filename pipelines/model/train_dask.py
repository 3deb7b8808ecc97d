"""Training beyond one machine: the PD booster fitted with ``xgboost.dask`` on rows that only the workers hold.

``model.train_backend: dask`` in riskline.yaml makes :func:`pipelines.stages.train.run_training` fit here. The
cluster is ``model.dask_scheduler_address`` (``tcp://scheduler:8786``: a long-running cluster, e.g.
dask-kubernetes or dask-jobqueue, whose workers have riskline installed); empty starts a ``LocalCluster`` of
``model.dask_local_workers`` worker processes for the run, which is how a single big machine uses it.

What the driver hands over (:class:`TrainingFiles`): the committed files of each training snapshot's feature
and label partitions, as local paths or object-store URLs (``lake.parquet_files``: the version ``_SUCCESS``
commits, never a listing of ``_v=`` folders), which snapshots fit and which early-stop, the sample rate, and
the data root's fsspec storage options (credentials come from each worker's environment, never from config).

What the workers do (:func:`read_training_rows`): ``dask.dataframe.read_parquet`` of a snapshot's files, then,
in one task per snapshot, the account sample, the join and the sort by (as_of_date, account_id) with the local
backend's own functions (``sample_accounts`` and ``label_snapshot`` of pipelines/model/train.py): the same rows
in the same order. A snapshot stays whole in one worker's memory (snapshot i of each set on the worker that
XGBoost ranks i mod n), so the per-snapshot clock screen is exact and which rows each worker feeds XGBoost is
fixed, hence the same model bytes on a rerun with the same cluster shape.

:func:`fit_challenger_dask` then takes the local backend's steps where the rows are: the clock-feature screen
(per-snapshot statistics), the calibration slice, the fit, Platt recalibration, the fit and early-stopping AUC,
row counts, and the fit sample's reason reference and the training window's PSI bins (exact order statistics,
pipelines/model/order_stats.py). The driver receives per-snapshot summaries, the calibration slice's labels and
raw margins (two numbers a row: Platt is fitted on them), a few numbers per partition for the AUCs, and the
selected quantiles: never the training matrix. The result is the local backend's
:class:`~pipelines.model.train.FittedChallenger`, so evaluation, the gate and the registry do not know which
backend fitted it.

Same hyperparameters, monotone constraints, early stopping and "keep only the best trees" as
:func:`pipelines.model.fit.train_model`; histogram sums are reduced across workers, so the model is of equal
quality (a test holds the OOT AUC within 0.01 of the local model) but not byte-identical to it, and its bytes
can depend on the worker count.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import xgboost as xgb

from pipelines.config.model_definition import ModelDefinition
from pipelines.config.settings import ModelConfig
from pipelines.domain.feature_dictionary import KEY_COLUMNS
from pipelines.model import order_stats as order
from pipelines.model.feature_screen import decide_clock_features, snapshot_feature_stats
from pipelines.model.fit import TrainedModel, keep_best_trees, require_both_classes, xgb_params
from pipelines.model.pd import feature_matrix, predict_margin, predict_pd
from pipelines.model.train import (
    FittedChallenger, calibrate, label_snapshot, sample_accounts, split_calibration_slice, without_clocks,
)

if TYPE_CHECKING:
    import pandas as pd
    from distributed import Client, Future

_LABEL_COLUMNS = ("account_id", "snapshot_date", "bad")


@dataclass(frozen=True)
class SnapshotFiles:
    """One training snapshot as the workers read it: the committed files of its features and of its labels."""

    date: dt.date
    features: tuple[str, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class TrainingFiles:
    """What the driver hands the workers (module docstring); snapshots oldest first, as the plan lists them."""

    fit: tuple[SnapshotFiles, ...]
    early_stopping: tuple[SnapshotFiles, ...]
    sample_rate: float  # model.training_sample_rate: sample_accounts, on each worker
    storage_options: Mapping[str, Any] = field(default_factory=dict)  # the data root's (fsspec), none from config


@dataclass(frozen=True)
class Part:
    """One snapshot's labelled rows (a polars frame) in one worker's memory, and that worker's address."""

    future: Future
    worker: str


@dataclass(frozen=True)
class TrainingRows:
    """The training snapshots' labelled rows on the workers, one :class:`Part` per snapshot, in plan order."""

    fit: tuple[Part, ...]
    early_stopping: tuple[Part, ...]  # whole: the calibration slice is split off in fit_challenger_dask


@contextmanager
def dask_client(model_cfg: ModelConfig) -> Iterator[Client]:
    """A client of the configured cluster, or of a LocalCluster started (and stopped) for the run."""
    # why: Dask is imported only when model.train_backend is dask
    from distributed import Client, LocalCluster

    if model_cfg.dask_scheduler_address:
        with Client(model_cfg.dask_scheduler_address) as client:
            yield client
        return
    # one thread per worker: XGBoost threads inside each worker, and the shared machine has few cores
    with LocalCluster(n_workers=model_cfg.dask_local_workers, threads_per_worker=1,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def fit_challenger_on_cluster(
    files: TrainingFiles, definition: ModelDefinition, model_cfg: ModelConfig
) -> FittedChallenger:
    """:func:`fit_challenger_dask` on the cluster ``model_cfg`` names, from the snapshots' files."""
    with dask_client(model_cfg) as client:
        return fit_challenger_dask(client, read_training_rows(client, files, definition.feature_names), definition)


def read_training_rows(client: Client, files: TrainingFiles, feature_names: Sequence[str]) -> TrainingRows:
    """Have the workers read, join, sample and sort each training snapshot (module docstring); nothing is read
    here but the files' Parquet footers, which ``dask.dataframe.read_parquet`` looks at to plan the read."""
    # why: Dask is imported only when model.train_backend is dask
    import dask
    import dask.dataframe as dd

    workers = _in_rank_order(client)
    columns = [*KEY_COLUMNS, *(f for f in dict.fromkeys(feature_names) if f not in KEY_COLUMNS)]
    # pyarrow-backed columns keep null apart from NaN and dates as dates, as polars reads them; no hive
    # partitioning: the folders' ``as_of_date=D`` would clash with the files' own column of that name
    read = {"dtype_backend": "pyarrow", "storage_options": dict(files.storage_options),
            "dataset": {"partitioning": None}}

    def place(snapshot: SnapshotFiles, i: int) -> Part:
        features = dd.read_parquet(list(snapshot.features), columns=columns, **read)
        labels = dd.read_parquet(list(snapshot.labels), columns=list(_LABEL_COLUMNS), **read)
        task = dask.delayed(_labelled_snapshot)(features.to_delayed(), labels.to_delayed(), tuple(feature_names),
                                                files.sample_rate)
        worker = workers[i % len(workers)]
        return Part(client.compute(task, workers=[worker], allow_other_workers=True), worker)

    return TrainingRows(tuple(place(s, i) for i, s in enumerate(files.fit)),
                        tuple(place(s, i) for i, s in enumerate(files.early_stopping)))


def _in_rank_order(client: Client) -> list[str]:
    """The workers' addresses in the order xgboost.dask ranks them (by the task id it gives each, from the
    worker's name), so snapshot i lands on rank i mod n whatever ports the workers got."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return sorted(workers, key=lambda a: f"[xgboost.dask-{workers[a].get('name', a)}]:{a}")


def fit_challenger_dask(client: Client, rows: TrainingRows, definition: ModelDefinition) -> FittedChallenger:
    """:func:`pipelines.model.train.fit_challenger` on the rows the workers hold (see the module docstring)."""
    names = definition.feature_names
    nthread = definition.hyperparameters.nthread
    screened = rows.fit + rows.early_stopping
    per_snapshot = pl.concat(client.gather([_on(client, p, snapshot_feature_stats, names) for p in screened]))
    excluded = decide_clock_features(per_snapshot, names, definition.feature_screen,
                                     lambda near: _pooled_modal(client, screened, per_snapshot, near))
    served = without_clocks(definition, excluded)
    if definition.calibration.method == "platt":
        share = definition.calibration.holdout_share
        stopping = tuple(Part(_on(client, p, _calibration_split, share, False), p.worker) for p in rows.early_stopping)
        calibration = tuple(Part(_on(client, p, _calibration_split, share, True), p.worker)
                            for p in rows.early_stopping)
    else:
        stopping, calibration = rows.early_stopping, ()
    sets = {"fit": rows.fit, "early_stopping": stopping, "calibration": calibration}
    counts = {name: client.gather([_on(client, p, _row_counts) for p in parts]) for name, parts in sets.items()}
    for name, label in (("fit", "fit"), ("early_stopping", "early-stopping")):
        require_both_classes(label, sum(r for r, _ in counts[name]), sum(b for _, b in counts[name]))

    raw = _train_booster(client, rows.fit, stopping, counts, served)
    # the model's bytes, not the Booster: each task loads its own (a Booster is not safe to share between threads)
    raw_model = client.scatter(raw.model_bytes, broadcast=True, hash=False)
    pieces = client.gather([_on(client, p, _labels_and_margins, raw_model, nthread) for p in calibration])
    bad = np.concatenate([b for b, _ in pieces]) if pieces else np.empty(0, dtype=np.int8)
    margin = np.concatenate([m for _, m in pieces]) if pieces else np.empty(0, dtype=np.float64)
    trained, platt, note = calibrate(raw, bad, margin, served)
    served_model = client.scatter(trained.model_bytes, broadcast=True, hash=False)
    fit_rows = sum(r for r, _ in counts["fit"])
    training_bins, reference = _order_statistics(client, rows.fit, stopping, served, fit_rows)
    return FittedChallenger(
        raw=raw, trained=trained, platt=platt, note=note, excluded=excluded, served=served,
        calibration_bad=bad, calibration_margin=margin,
        rows={name: {"rows": sum(r for r, _ in counts[name]), "bads": sum(b for _, b in counts[name]),
                     "accounts": _accounts(client, parts)} for name, parts in sets.items()},
        fit_auc=_auc(client, rows.fit, served_model, nthread),
        early_stopping_auc=_auc(client, stopping, served_model, nthread),
        training_bins=training_bins,
        reason_reference=reference,
    )


# --- on the driver: what it asks of the workers -----------------------------------------------------------


def _on(client: Client, part: Part, fn: Callable[..., Any], *args: Any) -> Future:
    """``fn(the part's frame, *args)`` on the worker holding the part: the rows never move.

    A loose restriction: the scheduler keeps it while that worker lives; if it dies, the part is read again
    on another (the model of that run may then differ in its last bits) rather than waiting for it forever.
    """
    return client.submit(fn, part.future, *args, workers=[part.worker], allow_other_workers=True, pure=False)


def _tree(client: Client, futures: list[Future], combine: Callable[[Any, Any], Any]) -> Future:
    """Combine the futures' values pairwise on the workers, down to one future."""
    while len(futures) > 1:
        futures = [client.submit(combine, *futures[i:i + 2], pure=False) if i + 1 < len(futures) else futures[i]
                   for i in range(0, len(futures), 2)]
    return futures[0]


def _pooled_modal(
    client: Client, parts: Sequence[Part], per_snapshot: pl.DataFrame, names: Sequence[str]
) -> dict[str, tuple[int, int]]:
    """feature_screen.pooled_modal over every part, for the features near-constant at each snapshot (so their
    other values are few: at most 1 - max_modal_share of the rows)."""
    counts = pl.concat(client.gather([_on(client, p, _value_counts, list(names)) for p in parts]))
    modal = dict(counts.group_by("feature", "value").agg(pl.col("count").sum())
                 .group_by("feature").agg(pl.col("count").max()).iter_rows())
    nulls = dict(per_snapshot.group_by("feature").agg(pl.col("nulls").sum()).iter_rows())
    return {n: (int(modal.get(n) or 0), int(nulls[n])) for n in names}


def _train_booster(
    client: Client, fit: Sequence[Part], stopping: Sequence[Part], counts: Mapping[str, list[tuple[int, int]]],
    served: ModelDefinition,
) -> TrainedModel:
    """The booster :func:`pipelines.model.fit.train_model` fits, fitted by ``xgboost.dask`` on the parts where
    they lie (a block of features and one of labels per snapshot, in plan order)."""
    # why: Dask and xgboost.dask are imported only when model.train_backend is dask
    import dask.array as da
    from xgboost import dask as dxgb

    features = served.feature_names
    hp = served.hyperparameters

    def arrays(parts: Sequence[Part], rows: list[tuple[int, int]]) -> tuple[Any, Any]:
        kept = [(p, n) for p, (n, _) in zip(parts, rows, strict=True) if n]  # XGBoost wants no empty block
        x = [da.from_delayed(_on(client, p, feature_matrix, features), shape=(n, len(features)), dtype=np.float32)
             for p, n in kept]
        y = [da.from_delayed(_on(client, p, _label_vector), shape=(n,), dtype=np.float32) for p, n in kept]
        return da.concatenate(x), da.concatenate(y)

    x_fit, y_fit = arrays(fit, counts["fit"])
    x_stop, y_stop = arrays(stopping, counts["early_stopping"])
    dfit = dxgb.DaskQuantileDMatrix(client, x_fit, y_fit, feature_names=features, max_bin=hp.max_bin,
                                    missing=np.nan)
    dstop = dxgb.DaskQuantileDMatrix(client, x_stop, y_stop, feature_names=features, ref=dfit, missing=np.nan)
    out = dxgb.train(
        client, xgb_params(served), dfit, num_boost_round=hp.num_boost_round,
        evals=[(dstop, "early_stopping")], early_stopping_rounds=hp.early_stopping_rounds, verbose_eval=False,
    )
    return keep_best_trees(out["booster"], features)


def _accounts(client: Client, parts: Sequence[Part]) -> int:
    """Distinct accounts over the parts (an account is in many snapshots), counted on the workers."""
    if not parts:
        return 0
    ids = _tree(client, [_on(client, p, _account_ids) for p in parts], _union)
    return int(client.submit(len, ids, pure=False).result())


def _auc(client: Client, parts: Sequence[Part], model: Future, nthread: int) -> float:
    """``metrics.auc`` of the served PD over the parts, bit for bit (order_stats), the rows sorted by PD with
    a Dask sort, which keeps each tie group in one partition."""
    # why: Dask is imported only when model.train_backend is dask
    import dask.dataframe as dd

    scores = [_on(client, p, _scores, model, nthread) for p in parts]
    frame = dd.from_delayed(scores, meta=_scores_meta(), verify_meta=False)
    pairs = frame.sort_values("pd").map_partitions(_auc_pairs, meta=_pairs_meta()).compute()
    return order.auc_from_pairs(list(pairs.itertuples(index=False, name=None)))


def _order_statistics(
    client: Client, fit: Sequence[Part], stopping: Sequence[Part], served: ModelDefinition, fit_rows: int
) -> tuple[dict[str, dict[str, list[float]]], dict[str, float | None]]:
    """``metrics.reference_bins`` of each feature over fit + early stopping, and ``score.reason_reference`` of the
    fit rows: the same numbers, by exact selection (order_stats) in three passes over the parts."""
    features = list(served.feature_names)
    bins = served.stability.bins
    training = list(fit) + list(stopping)
    # pass 1: where each wanted rank lies (the 65,536 counts per feature are summed and read on the workers)
    fit_high = _tree(client, [_on(client, p, _high_counts, features) for p in fit], np.add)
    training_high = _tree(client, [fit_high, *(_on(client, p, _high_counts, features) for p in stopping)], np.add)
    fit_at = client.submit(_locate, fit_high, "fit", bins, pure=False)
    training_at = client.submit(_locate, training_high, "training", bins, pure=False)
    # pass 2: the low bits of the keys in those bins name the values, picked on the workers as well
    fit_low = _tree(client, [_on(client, p, _low_counts, features, fit_at, training_at) for p in fit],
                    order.merge_low_counts)
    stop_low = [_on(client, p, _low_counts, features, training_at) for p in stopping]
    training_low = _tree(client, [fit_low, *stop_low], order.merge_low_counts)
    fit_n, fit_values, training_values = client.gather([
        client.submit(_present, fit_at, pure=False),
        client.submit(_picked, fit_low, fit_at, pure=False),
        client.submit(_picked, training_low, training_at, pure=False),
    ])
    edges = {i: np.unique(np.array(training_values.get(i, []), dtype=np.float64)) for i in range(len(features))}
    # pass 3: the training rows in each bin between those edges
    counts = client.gather(_tree(client, [_on(client, p, _bin_counts, features, edges) for p in training], np.add))
    total_rows = int(counts[0].sum())  # every row is in one bin of each feature, the missing one included
    training_bins = {
        name: {"edges": edges[i].tolist(),
               "shares": (counts[i, :edges[i].size + 2].astype(np.float64) / total_rows).tolist()}
        for i, name in enumerate(features)
    }
    reference: dict[str, float | None] = {}
    for i, name in enumerate(features):
        nulls = fit_rows - int(fit_n[i])
        if i not in fit_values:  # no value at all: one "value", null
            reference[name] = None
            continue
        low, median, high = fit_values[i]
        if nulls == 0 and low == high:  # one value across the fit rows: reason_reference keeps it
            reference[name] = low
        else:
            reference[name] = None if 2 * nulls > fit_rows else median
    return training_bins, reference


# --- on the workers: one snapshot's rows at a time ---------------------------------------------------------


def _labelled_snapshot(
    features: list[pd.DataFrame], labels: list[pd.DataFrame], feature_names: tuple[str, ...], rate: float
) -> pl.DataFrame:
    """One snapshot's features joined to its labels, sampled and sorted exactly as the local backend does
    (:func:`pipelines.stages.train.run_training`: sample the features, then ``label_snapshot``)."""
    feats = pl.concat([pl.from_pandas(f) for f in features], how="vertical")
    labs = pl.concat([pl.from_pandas(f) for f in labels], how="vertical")
    return label_snapshot(sample_accounts(feats, rate), labs, feature_names)


def _calibration_split(frame: pl.DataFrame, share: float, held: bool) -> pl.DataFrame:
    return split_calibration_slice(frame, share)[1 if held else 0]


def _row_counts(frame: pl.DataFrame) -> tuple[int, int]:
    return frame.height, int(frame["bad"].sum()) if frame.height else 0


def _label_vector(frame: pl.DataFrame) -> np.ndarray:
    return frame["bad"].to_numpy().astype(np.float32)


def _account_ids(frame: pl.DataFrame) -> pl.Series:
    return frame["account_id"].unique()


def _union(a: pl.Series, b: pl.Series) -> pl.Series:
    return pl.concat([a, b]).unique()


def _value_counts(frame: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """Each feature's non-null values and their counts (``feature, value, count``), as feature_screen sees them."""
    frames = [
        frame.select(pl.col(n).cast(pl.Float64).fill_nan(None).drop_nulls().alias("value"))
        .group_by("value").agg(pl.len().cast(pl.Int64).alias("count"))
        .select(pl.lit(n).alias("feature"), "value", "count")
        for n in names
    ]
    return pl.concat(frames)


def _booster(model: bytes) -> xgb.Booster:
    return xgb.Booster(model_file=bytearray(model))


def _labels_and_margins(frame: pl.DataFrame, model: bytes, nthread: int) -> tuple[np.ndarray, np.ndarray]:
    return frame["bad"].to_numpy(), predict_margin(_booster(model), frame, nthread)


def _scores_meta() -> pd.DataFrame:
    # why: pandas is what Dask's frames hold; imported where a frame is built
    import pandas as pd

    return pd.DataFrame({"pd": pd.Series(dtype="float64"), "bad": pd.Series(dtype="int8")})


def _pairs_meta() -> pd.DataFrame:
    # why: pandas is what Dask's frames hold; imported where a frame is built
    import pandas as pd

    return pd.DataFrame({"goods": pd.Series(dtype="int64"), "bads": pd.Series(dtype="int64"),
                         "pairs": pd.Series(dtype="float64")})


def _scores(frame: pl.DataFrame, model: bytes, nthread: int) -> pd.DataFrame:
    # why: pandas is what Dask's frames hold; imported where a frame is built
    import pandas as pd

    return pd.DataFrame({"pd": predict_pd(_booster(model), frame, nthread), "bad": frame["bad"].to_numpy()})


def _auc_pairs(part: pd.DataFrame) -> pd.DataFrame:
    # why: pandas is what Dask's frames hold; imported where a frame is built
    import pandas as pd

    goods, bads, pairs = order.auc_pairs(part["pd"].to_numpy(), part["bad"].to_numpy())
    return pd.DataFrame({"goods": [goods], "bads": [bads], "pairs": [pairs]})


def _columns(frame: pl.DataFrame, features: Sequence[str]) -> list[np.ndarray]:
    """Each feature as the local statistics see it: float, nulls as NaN."""
    return [frame[f].cast(pl.Float64).to_numpy() for f in features]


def _high_counts(frame: pl.DataFrame, features: list[str]) -> np.ndarray:
    return order.high_counts(_columns(frame, features))


def _locate(high: np.ndarray, ranks: str, bins: int) -> tuple[np.ndarray, dict[int, list[tuple[int, int]]]]:
    """Present values per feature, and (bin, rank in bin) of the ranks wanted: for ``fit`` the lowest, the lower
    median and the highest; for ``training`` the decile edges (``bins``)."""
    present = high.sum(axis=1)
    at: dict[int, list[tuple[int, int]]] = {}
    for i, n in enumerate(present):
        if n == 0:
            continue
        wanted = [0, order.lower_median_rank(n), n - 1] if ranks == "fit" else order.inverted_cdf_ranks(n, bins)
        at[i] = order.locate(high[i], [int(r) for r in wanted])
    return present, at


def _present(located: tuple[np.ndarray, dict[int, list[tuple[int, int]]]]) -> np.ndarray:
    return located[0]


def _low_counts(frame: pl.DataFrame, features: list[str], *located: tuple[Any, dict[int, list[tuple[int, int]]]]
                ) -> order.LowCounts:
    """:func:`order_stats.low_counts` of the high bins any of the ``located`` ranks lie in."""
    wanted: dict[int, list[int]] = {}
    for _, at in located:
        for i, where in at.items():
            wanted.setdefault(i, []).extend(b for b, _ in where)
    return order.low_counts(_columns(frame, features), wanted)


def _picked(counts: order.LowCounts, located: tuple[Any, dict[int, list[tuple[int, int]]]]) -> dict[int, list[float]]:
    """The values of the located ranks, per feature index, from the merged low counts."""
    return {i: [order.pick(counts, i, b, r) for b, r in where] for i, where in located[1].items()}


def _bin_counts(frame: pl.DataFrame, features: list[str], edges: dict[int, np.ndarray]) -> np.ndarray:
    """(features, bins + 1) counts: ``metrics.bin_shares``' bins and the missing one, padded to one width."""
    columns = _columns(frame, features)
    width = max(len(e) for e in edges.values()) + 2
    out = np.zeros((len(features), width), dtype=np.int64)
    for i, column in enumerate(columns):
        counts = order.bin_counts(column, edges[i])
        out[i, :counts.size] = counts
    return out
