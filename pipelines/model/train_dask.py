"""Training beyond one machine: the same PD booster fitted with ``xgboost.dask`` on a Dask cluster.

``model.train_backend: dask`` in riskline.yaml routes :func:`pipelines.model.train.train_evaluate_register`
here. The cluster is ``model.dask_scheduler_address`` (``tcp://scheduler:8786``: a long-running cluster,
e.g. dask-kubernetes or dask-jobqueue); empty starts a ``LocalCluster`` of ``model.dask_local_workers``
workers for the run, which is how tests and a single big machine use it.

Same hyperparameters, monotone constraints, early stopping on the same held-out snapshots and the
same "keep only the best trees" as :func:`pipelines.model.train.train_model`; the result is the same
:class:`~pipelines.model.train.TrainedModel`, so evaluation, the gate and the registry do not know which
backend trained it. What differs: histogram sums are reduced across workers, so the model is of equal
quality (a test holds the OOT AUC within 0.01 of the local model) but not byte-identical to it, and
its bytes can depend on the worker count. A rerun with the same cluster shape gives the same model.

Data: the fit and early-stopping rows are split into one block per worker. Here they are built on the
driver from the frames :func:`pipelines.model.train.run_training` loaded (at ``training_sample_rate`` 0.1 a 1M
book's six months are ~2.6M rows x 47 float32 = 0.5 GB). Past what one driver can hold, the workers
should read the feature and label partitions themselves (``dask.dataframe.read_parquet`` over the
snapshot paths, local or object-store URLs) and join them per partition; the training call below
stays the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from pipelines.config.model_definition import ModelDefinition
from pipelines.config.settings import ModelConfig
from pipelines.domain.feature_dictionary import KEY_COLUMNS
from pipelines.model.fit import TrainedModel, check_both_classes, keep_best_trees, xgb_params
from pipelines.model.pd import feature_matrix

if TYPE_CHECKING:
    from distributed import Client


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


def _blocks(client: Client, frame: pl.DataFrame, features: list[str], n_blocks: int):
    """Features and labels as dask arrays of ``n_blocks`` row blocks, scattered to the workers up front
    (embedding the arrays in the task graph would ship them through the scheduler)."""
    # why: Dask is imported only when model.train_backend is dask
    import dask.array as da

    x = feature_matrix(frame, features)
    y = frame["bad"].to_numpy().astype(np.float32)
    bounds = np.unique(np.linspace(0, len(x), n_blocks + 1).astype(np.int64))
    spans = list(zip(bounds[:-1], bounds[1:], strict=True))
    x_parts = client.scatter([x[a:b] for a, b in spans])
    y_parts = client.scatter([y[a:b] for a, b in spans])
    x_blocks = [da.from_delayed(f, shape=(b - a, x.shape[1]), dtype=x.dtype)
                for f, (a, b) in zip(x_parts, spans, strict=True)]
    y_blocks = [da.from_delayed(f, shape=(b - a,), dtype=y.dtype) for f, (a, b) in zip(y_parts, spans, strict=True)]
    return da.concatenate(x_blocks), da.concatenate(y_blocks)


def train_model_dask(
    fit: pl.DataFrame, early_stopping: pl.DataFrame, definition: ModelDefinition, client: Client
) -> TrainedModel:
    """:func:`pipelines.model.train.train_model` on the cluster behind ``client`` (one data block per worker)."""
    # why: Dask is imported only when model.train_backend is dask
    from xgboost import dask as dxgb

    features = list(definition.feature_names)
    hp = definition.hyperparameters
    check_both_classes(fit, early_stopping)
    workers = max(1, len(client.scheduler_info()["workers"]))
    x_fit, y_fit = _blocks(client, fit.sort(*KEY_COLUMNS), features, workers)
    x_stop, y_stop = _blocks(client, early_stopping.sort(*KEY_COLUMNS), features, workers)
    dfit = dxgb.DaskQuantileDMatrix(client, x_fit, y_fit, feature_names=features, max_bin=hp.max_bin,
                                    missing=np.nan)
    dstop = dxgb.DaskQuantileDMatrix(client, x_stop, y_stop, feature_names=features, ref=dfit, missing=np.nan)
    out = dxgb.train(
        client, xgb_params(definition), dfit, num_boost_round=hp.num_boost_round,
        evals=[(dstop, "early_stopping")], early_stopping_rounds=hp.early_stopping_rounds, verbose_eval=False,
    )
    return keep_best_trees(out["booster"], features)


