"""Entry points: the `riskline` command (cli), the Airflow glue the DAG files call (airflow), exports."""
