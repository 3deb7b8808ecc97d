"""Developer tooling, outside the production package: the synthetic book generator, the bench and the local Airflow.

Not installed with the wheel; `riskline generate` and `riskline bench` import it from a source checkout."""
