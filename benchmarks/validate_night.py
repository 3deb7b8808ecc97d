"""Time one night's validation per dataset on a generated lake (numbers quoted in docs/contracts.md).

    riskline --data-root /tmp/gen1m generate --accounts 1000000 --days 40 --end-date 2026-11-20
    riskline --data-root /tmp/gen1m ingest --from-date 2026-10-12 --to-date 2026-11-19
    .venv/bin/python benchmarks/validate_night.py /tmp/gen1m 2026-11-20

Per landing dataset of the date: rows, polars -> pandas conversion of the columns the suite reads
(plain ``to_pandas()``, ``use_pyarrow_extension_array=True``, and the value view validate.py uses), the
GX validation itself (references read beforehand), then the whole ``ingest_date`` of the night.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

from pipelines.stages import ingest
from pipelines.store import drops
from pipelines.quality import gx_engine, read_references, references, validate
from pipelines.config.settings import load_config


def _best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _with_view(convert, run) -> tuple[float, str]:
    """Time ``run`` with validate.py's value view replaced by another conversion."""
    original = gx_engine.to_value_view
    gx_engine.to_value_view = convert
    try:
        took = _best(run, repeat=2)
        broken = [o.rule for o in _last[0].report.outcomes if o.observed and str(o.observed).startswith("error")]
        return took, ",".join(broken)
    finally:
        gx_engine.to_value_view = original


_last: list = [None]


def main(root: Path, day: dt.date) -> None:
    cfg = load_config()
    t0 = time.perf_counter()
    gx_engine.load_engine()
    print(f"GX import + context + suites: {time.perf_counter() - t0:.2f} s (once per process)")
    print("conversion = polars -> pandas of the columns the suite reads; validate = GX on that frame")
    print(f"{'dataset':<13}{'rows':>10} | {'to_pandas':>9}{'arrow':>7}{'view':>7} | "
          f"{'validate(to_pandas)':>19}{'(arrow)':>8}{'(view)':>8}")
    in_flight = {}
    for name in ("accounts", "installments", "payments", "behaviour"):
        frame = drops.read_landing(root, name, day, cfg)
        refs = read_references.load_references(root, name, day, cfg, frame, in_flight)
        flagged = references.add_reference_flags(frame, refs)
        cols = [c for c in flagged.columns if c in set(gx_engine.suite_columns(name))]
        plain = _best(lambda: flagged.select(cols).to_pandas())
        arrow = _best(lambda: flagged.select(cols).to_pandas(use_pyarrow_extension_array=True))
        view = _best(lambda: gx_engine.to_value_view(flagged, cols))
        result = None

        def run() -> None:
            nonlocal result
            result = validate.validate_landing(frame, name, day, cfg, refs)
            _last[0] = result

        took = _best(run, repeat=2)
        with_plain = _with_view(lambda f, c: f.select([x for x in f.columns if x in c]).to_pandas(), run)
        with_arrow = _with_view(
            lambda f, c: f.select([x for x in f.columns if x in c]).to_pandas(use_pyarrow_extension_array=True), run
        )
        if name == "accounts":
            in_flight["accounts"] = frame.filter(result.reasons == "").get_column("account_id")
        elif name == "installments":
            in_flight["installments"] = frame.filter(result.reasons == "").get_column("loan_id")
        print(f"{name:<13}{frame.height:>10,} | {plain:>8.2f}s{arrow:>6.2f}s{view:>6.2f}s | "
              f"{with_plain[0]:>18.2f}s{with_arrow[0]:>7.2f}s{took:>7.2f}s"
              + "".join(f"  ({label} could not evaluate: {bad})" for label, (_, bad) in
                        (("to_pandas", with_plain), ("arrow", with_arrow)) if bad))
    start = time.perf_counter()
    results = ingest.ingest_date(root, day, cfg)
    print(f"ingest_date (read, conform, dedup, validate, results + Data Docs, publish): "
          f"{time.perf_counter() - start:.2f} s for {sum(r.rows_in for r in results):,} rows")


if __name__ == "__main__":
    main(Path(sys.argv[1]), dt.date.fromisoformat(sys.argv[2]))
