"""Run one feature-build implementation (riskline or a peer) or a scan floor, and time it.

    .venv/bin/python benchmarks/peers/run_peers.py {riskline|duckdb|pandas|scan_behaviour|scan_inputs} \
        DATA_ROOT YYYY-MM-DD [--out frame.parquet]

prints one JSON line: ``{"name", "seconds", "peak_rss_mib", "rows"}`` (``riskline bench`` runs each in a
fresh process, so peak RSS is that implementation's own).

Compared subset (:data:`SUBSET_COLUMNS`): the behaviour-window features of every active/frozen account
of D: spend, purchase count, cash-draw count and amount, login count over 7/30/90/180 days, refund ratio
over 30/90/180 days and the 30-day spend trend (24 of the 47 model features; the ledger, repayment and
line features are not re-implemented: the ledger's payment allocation is several hundred lines of rules).

Floors: ``scan_behaviour`` reads the columns the subset needs (behaviour: account_id, event_type,
amount_cents, date; accounts of D: account_id, status) into memory; ``scan_inputs`` reads every column
the whole feature build reads from its four inputs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import resource
import time
from pathlib import Path

import polars as pl

from pipelines.domain.feature_dictionary import BEHAVIOUR_WINDOWS, HISTORY_DAYS, RATIO_WINDOWS
from pipelines.domain.features import SCORED_STATUSES, aggregate_behaviour
from pipelines.store import lake, zones

HERE = Path(__file__).resolve().parent
SUBSET_COLUMNS: tuple[str, ...] = (
    "account_id",
    *(
        name
        for w in BEHAVIOUR_WINDOWS
        for name in (f"spend_{w}d_cents", f"purchase_count_{w}d", f"cash_draw_count_{w}d",
                     f"cash_draw_amount_{w}d_cents", f"login_count_{w}d")
    ),
    *(f"refund_ratio_{w}d" for w in RATIO_WINDOWS),
    "spend_trend_30d",
)


def _since(as_of: dt.date) -> dt.date:
    return as_of - dt.timedelta(days=HISTORY_DAYS - 1)


def behaviour_inputs(root: Path, as_of: dt.date) -> tuple[list[tuple[dt.date, Path]], Path]:
    """The complete curated behaviour files of the last 180 days and the accounts file of D."""
    days = [d for d in lake.complete_partition_dates(root, "curated", "behaviour") if _since(as_of) <= d <= as_of]
    files = [(d, f) for d in days for f in lake.parquet_files(lake.partition_dir(root, "curated", "behaviour", d))]
    (accounts,) = lake.parquet_files(lake.partition_dir(root, "curated", "accounts", as_of))
    return files, accounts


def run_riskline(root: Path, as_of: dt.date) -> pl.DataFrame:
    """riskline's own code for the subset: features.aggregate_behaviour joined to the book as build_features does."""

    behaviour = zones.scan_curated(root, "behaviour", as_of, since=_since(as_of))
    book = (
        zones.scan_curated(root, "accounts", as_of, dates=[as_of])
        .filter(pl.col("status").is_in(SCORED_STATUSES))
        .select("account_id")
        .collect()
    )
    agg = aggregate_behaviour(behaviour, as_of).collect(engine="streaming")
    filled = [c for c in SUBSET_COLUMNS[1:] if not c.startswith(("refund_ratio", "spend_trend"))]
    return (
        book.join(agg, on="account_id", how="left")
        .with_columns(pl.col(c).fill_null(0) for c in filled)
        .select(SUBSET_COLUMNS)
        .sort("account_id")
    )


def run_duckdb(root: Path, as_of: dt.date, threads: int | None = None) -> pl.DataFrame:
    import duckdb

    files, accounts = behaviour_inputs(root, as_of)
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute(f"SET VARIABLE as_of = DATE '{as_of.isoformat()}'")
    listed = ", ".join(f"'{f}'" for _, f in files)
    con.execute(
        "CREATE VIEW behaviour AS SELECT account_id, event_type, amount_cents, "
        r"CAST(regexp_extract(filename, 'dt=(\d{4}-\d{2}-\d{2})', 1) AS DATE) AS dt "
        f"FROM read_parquet([{listed}], filename = true)"
    )
    con.execute(
        f"CREATE VIEW book AS SELECT account_id FROM read_parquet('{accounts}') WHERE status IN ('active', 'frozen')"
    )
    frame = con.sql((HERE / "features_duckdb.sql").read_text()).pl()
    con.close()
    return frame.select(SUBSET_COLUMNS)


def run_pandas(root: Path, as_of: dt.date) -> pl.DataFrame:
    spec = importlib.util.spec_from_file_location("features_pandas", HERE / "features_pandas.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    files, accounts = behaviour_inputs(root, as_of)
    frame = module.behaviour_features(files, accounts, as_of)
    return pl.from_pandas(frame).with_columns(pl.col("account_id").cast(pl.String)).select(SUBSET_COLUMNS)


def scan_behaviour(root: Path, as_of: dt.date) -> int:
    behaviour = zones.scan_curated(root, "behaviour", as_of, since=_since(as_of))
    events = behaviour.select("account_id", "event_type", "amount_cents", "dt").collect()
    book = zones.scan_curated(root, "accounts", as_of, dates=[as_of]).select("account_id", "status").collect()
    return events.height + book.height


def scan_inputs(root: Path, as_of: dt.date) -> int:
    from pipelines.config.settings import load_config
    from pipelines.stages.features import scan_inputs as feature_inputs
    from pipelines.stages.ledger_state import ledger_inputs

    # what the features stage reads: accounts, behaviour, and the ledger's inputs (the last night's state and
    # the drops since, or the whole history without a state)
    inputs = ledger_inputs(root, as_of, load_config(), pl.DataFrame(schema={"account_id": pl.String(),
                                                                               "loan_id": pl.String()}))
    scans = {**feature_inputs(root, as_of), "installments": inputs.installments.lazy(),
             "payments": inputs.payments.lazy()}
    columns = {
        "accounts": ["account_id", "opened_on", "credit_limit_cents", "status", "dt"],
        "behaviour": ["account_id", "event_type", "amount_cents", "dt"],
    }
    return sum(
        (scan.select(columns[name]) if name in columns else scan).collect().height for name, scan in scans.items()
    )


RUNNERS = {"riskline": run_riskline, "duckdb": run_duckdb, "pandas": run_pandas,
           "scan_behaviour": scan_behaviour, "scan_inputs": scan_inputs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=sorted(RUNNERS))
    parser.add_argument("root", type=Path)
    parser.add_argument("as_of", type=dt.date.fromisoformat)
    parser.add_argument("--out", type=Path, help="write the feature frame here (for the equality check)")
    args = parser.parse_args()
    start = time.perf_counter()
    result = RUNNERS[args.name](args.root, args.as_of)
    seconds = time.perf_counter() - start
    rows = result if isinstance(result, int) else result.height
    if args.out is not None and isinstance(result, pl.DataFrame):
        result.write_parquet(args.out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"name": args.name, "seconds": round(seconds, 3), "peak_rss_mib": round(peak, 1), "rows": rows}))


if __name__ == "__main__":
    main()
