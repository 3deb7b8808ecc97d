"""Training on a Dask cluster (pipelines/model/train_dask.py) gives a model as good as training locally."""

from __future__ import annotations

import pytest

from pipelines.model import metrics as evaluate
from pipelines.model.fit import InsufficientHistoryError, train_model
from pipelines.model.pd import predict_pd
from pipelines.model.train import fit_with_backend
from pipelines.model.train_dask import train_model_dask


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    # Threads, not processes: the same xgboost.dask code path (two workers, a collective allreduce of the
    # histograms) in a second instead of spawning interpreters on a shared 2-core machine.
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


def test_dask_model_matches_the_local_model_on_oot(book, definition, client):
    local = train_model(book.fit, book.early_stopping, definition)
    remote = train_model_dask(book.fit, book.early_stopping, definition, client)
    nthread = definition.hyperparameters.nthread
    auc_local = evaluate.auc(book.oot["bad"], predict_pd(local.booster, book.oot, nthread))
    auc_dask = evaluate.auc(book.oot["bad"], predict_pd(remote.booster, book.oot, nthread))
    # The synthetic book separates goods from bads at ~0.8 AUC (tests/model/conftest.py); both backends fit
    # the same hyperparameters and early-stop on the same rows, so only histogram rounding may differ.
    assert auc_local > 0.7
    assert abs(auc_dask - auc_local) <= 0.01
    # early stopping kept only the best trees, as locally
    assert remote.trees == remote.best_iteration + 1 and remote.booster.num_boosted_rounds() == remote.trees
    assert remote.feature_names == local.feature_names


def test_dask_training_refuses_a_set_without_bads(book, definition, client):
    no_bads = book.fit.filter(book.fit["bad"] == 0)
    with pytest.raises(InsufficientHistoryError, match="fit set"):
        train_model_dask(no_bads, book.early_stopping, definition, client)


def test_the_local_backend_is_the_local_trainer(book, definition, cfg):
    # train_backend: local (the default) must be exactly pipelines.model.train.train_model: same bytes
    local = train_model(book.fit, book.early_stopping, definition)
    via_config = fit_with_backend(book.fit, book.early_stopping, definition, cfg.model)
    assert cfg.model.train_backend == "local" and via_config.model_bytes == local.model_bytes
