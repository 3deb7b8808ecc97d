"""riskline: a nightly credit-risk pipeline for a consumer credit-line book.

The package is layered; a module imports only from its own layer or those below it (`.importlinter`,
checked by `make test` and tests/unit/test_architecture.py):

``entry`` (cli, Airflow glue) > ``stages`` (ingest, the night, shards) > ``report`` > ``model`` | ``quality``
> ``store`` (lake, publish, chain: paths and atomic writes) > ``domain`` (pure frame-in/frame-out steps)
> ``config`` (typed settings) > ``contracts`` (landing and output schemas) > ``vocab`` (names).
"""
