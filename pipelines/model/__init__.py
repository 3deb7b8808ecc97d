"""The PD model: training (train, train_dask), scoring, metrics and the model registry."""
