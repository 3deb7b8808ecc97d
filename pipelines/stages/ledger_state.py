"""The ledger's state between nights: a night starts from the last night's working set, not from the lake's
first day (``pipelines.domain.working_set`` says what the working set is and what retired loans leave).

Each ledger partition keeps, in ``_state/`` beside its published files, what the next night needs:

* ``installments.parquet``, ``payments.parquet``: the curated rows of every loan in the working set (and
  every payment naming no known loan), in their curated order within each loan;
* ``retired_loans.parquet``: one row per retired loan; their past-due instalments and unallocated payments
  are the published files' rows of those loans;
* ``state.json``: the format, the business time zone and a token per curated partition it was built from.

Tonight (D) uses the newest state of a date s < D when its format and time zone match and no curated
installments or payments partition of a date <= s was published again since (a redelivery re-curated: its
token changed); it then reads the state and the curated partitions of dates s+1 .. D only. Else, and with
``run.incremental_ledger: false`` (``riskline run --rebuild-ledger``), it reads the whole curated history.
Both give the same bytes (tests/reliability/test_incremental_ledger.py); ``state.json`` says which was used.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipelines.config.location import Location
from pipelines.config.settings import RisklineConfig
from pipelines.domain.ledger import LOAN_KEY
from pipelines.domain.sharding import filter_shard
from pipelines.domain.working_set import Retired
from pipelines.store import lake, zones
from pipelines.store.zones import (
    LEDGER_STATE_DIR, LEDGER_STATE_FILES, LEDGER_STATE_MANIFEST, LEDGER_ZONE, ledger_partition,
)

STATE_FORMAT = 1  # bump when the ledger's rules or the state's files change: older states are then not used
# The curated columns allocation reads (pipelines.domain.ledger.prepare_installments / prepare_payments).
INSTALLMENT_COLUMNS = (*LOAN_KEY, "installment_id", "installment_no", "due_date", "principal_due_cents",
                       "interest_due_cents", "dt")
PAYMENT_COLUMNS = (*LOAN_KEY, "payment_id", "paid_at", "amount_cents", "dt")
CURATED = ("installments", "payments")


@dataclass(frozen=True)
class LedgerInputs:
    """The rows tonight allocates, the loans retired before tonight, and how they were found (``built``).

    The rows are read once: allocation and tonight's state both use them (a lazy scan would read them twice).
    """

    installments: pl.DataFrame
    payments: pl.DataFrame
    before: Retired
    built: str
    tokens: dict[str, dict[str, str]]


def _curated(root: Location, dataset: str, as_of: dt.date, shard: int, n_shards: int,
             since: dt.date | None = None) -> pl.LazyFrame:
    """The columns allocation reads of the curated ``dataset`` of dates ``since`` .. D, for one shard."""
    columns = INSTALLMENT_COLUMNS if dataset == "installments" else PAYMENT_COLUMNS
    scan = zones.scan_curated(root, dataset, as_of, since=since).select(columns)
    return filter_shard(scan, shard, n_shards)


def state_dates(root: Location, before: dt.date) -> list[dt.date]:
    """Dates s < ``before`` whose ledger partition is complete and holds a state, newest last."""
    return [day for day in lake.complete_partition_dates(root, LEDGER_ZONE, key="as_of_date")
            if day < before and lake.is_file(_state_file(ledger_partition(root, day), LEDGER_STATE_MANIFEST))]


def ledger_inputs(
    root: Location, as_of: dt.date, cfg: RisklineConfig, resolved: pl.DataFrame, shard: int = 0, n_shards: int = 1
) -> LedgerInputs:
    """What tonight's ledger allocates: the last state and the curated rows since, or the whole history.

    ``resolved``: the quarantined payments applied tonight; a retired loan they pay is taken back.
    """
    tokens = {name: zones.partition_tokens(root, name, as_of) for name in CURATED}  # before any read: see below

    def full(reason: str) -> LedgerInputs:
        return LedgerInputs(_curated(root, "installments", as_of, shard, n_shards).collect(),
                            _curated(root, "payments", as_of, shard, n_shards).collect(), Retired.none(),
                            f"full: {reason}", tokens)

    if not cfg.run.incremental_ledger:
        return full("run.incremental_ledger is off")
    earlier = state_dates(root, as_of)
    if not earlier:
        return full("no earlier ledger state")
    since = earlier[-1]
    try:
        reason = _stale(root, since, cfg, tokens)
        if reason:
            return full(reason)
        return _incremental(root, as_of, since, resolved, tokens, shard, n_shards) or full(
            f"ids of the drops since {since} were curated on an earlier date too: the whole history is reconciled")
    except (OSError, ValueError, KeyError, pl.exceptions.PolarsError) as exc:
        # a damaged or half-removed state is never trusted, and never stops the night: the history is there
        return full(f"the state of {since} is unreadable ({type(exc).__name__}: {str(exc)[:200]})")


def _stale(root: Location, since: dt.date, cfg: RisklineConfig, tokens: dict[str, dict[str, str]]) -> str | None:
    """Why the state of ``since`` cannot be used tonight, None when it can."""
    meta = json.loads(lake.read_bytes(_state_file(ledger_partition(root, since), LEDGER_STATE_MANIFEST)) or b"")
    if meta.get("format") != STATE_FORMAT or meta.get("timezone") != cfg.business.timezone:
        return f"the state of {since} has another format or time zone"
    if meta.get("unusable"):
        return f"the state of {since} is not used: {meta['unusable']}"
    for name in LEDGER_STATE_FILES:  # each there and readable (its footer), or the state is not used
        lake.read_parquet_schema(_state_file(ledger_partition(root, since), name))
    for name in CURATED:
        then = meta["curated"][name]
        now = {day: token for day, token in tokens[name].items() if day <= since.isoformat()}
        if now != then:
            changed = sorted(day for day in now.keys() | then.keys() if now.get(day) != then.get(day))
            return f"curated {name} of {changed[0]} changed since the state of {since} was built"
    return None


def _curated_again(root: Location, dataset: str, key: str, new: pl.DataFrame, since: dt.date) -> bool:
    """Whether any ``key`` of tonight's new rows is also curated on a date <= ``since``. Ingest refuses that
    (a redelivery under another date); the reconciliation of a full rebuild is the net for one that got
    through anyway, and it needs every row: a retired loan's copy is not in the working set. Partitions are
    ruled out by their footers' id ranges (zones.partitions_holding), so this reads almost nothing."""
    ids = new.select(pl.col(key).drop_nulls().unique())
    return not ids.is_empty() and zones.curated_matching(root, dataset, since, ids).limit(1).collect().height > 0


def _incremental(
    root: Location, as_of: dt.date, since: dt.date, resolved: pl.DataFrame, tokens: dict[str, dict[str, str]],
    shard: int, n_shards: int,
) -> LedgerInputs | None:
    """The inputs from the state of ``since`` and the curated rows since; None when an id of the rows since
    is curated on an earlier date too (:func:`_curated_again`)."""
    state = ledger_partition(root, since)

    def read(name: str) -> pl.LazyFrame:
        return filter_shard(lake.scan_parquet(_state_file(state, name)), shard, n_shards)

    def read_published(name: str) -> pl.LazyFrame:
        return filter_shard(lake.scan_parquet(lake.partition_file(state, name)), shard, n_shards)

    first_new = since + dt.timedelta(days=1)
    new_inst = _curated(root, "installments", as_of, shard, n_shards, since=first_new).collect()
    new_pay = _curated(root, "payments", as_of, shard, n_shards, since=first_new).collect()
    if (_curated_again(root, "payments", "payment_id", new_pay, since)
            or _curated_again(root, "installments", "installment_id", new_inst, since)):
        return None
    retired_loans = read("retired_loans.parquet").collect()
    keys = retired_loans.select(*LOAN_KEY)
    before = Retired(
        loans=retired_loans,
        installments=read_published("installments.parquet").join(keys.lazy(), on=list(LOAN_KEY), how="semi",
                                                                    maintain_order="left").collect(),
        unallocated=read_published("unallocated.parquet").join(keys.lazy(), on=list(LOAN_KEY), how="semi",
                                                                 maintain_order="left").collect(),
    )
    # A retired loan paid again (an overpayment, a late settlement, a quarantined payment resolving) or
    # drawn on again comes back whole from its curated rows, so that allocation sees every payment in order.
    touched = pl.concat([frame.select(*LOAN_KEY) for frame in (new_inst, new_pay, resolved)]).unique().join(
        keys, on=list(LOAN_KEY), how="semi")
    parts_inst, parts_pay = [read("installments.parquet")], [read("payments.parquet")]
    if touched.height:
        for dataset, parts in (("installments", parts_inst), ("payments", parts_pay)):
            columns = INSTALLMENT_COLUMNS if dataset == "installments" else PAYMENT_COLUMNS
            # in date order, from the partitions whose loan ids may hold them
            found = zones.curated_matching(root, dataset, since, touched, tuple(c for c in columns if c not in LOAN_KEY))
            parts.append(found.select(columns))
        before = before.without(touched)
    return LedgerInputs(
        installments=pl.concat([*parts_inst, new_inst.lazy()]).collect(),
        payments=pl.concat([*parts_pay, new_pay.lazy()]).collect(),
        before=before,
        built=f"incremental from {since}" + (f" ({touched.height} retired loan(s) taken back)" if touched.height else ""),
        tokens=tokens,
    )


def state_frames(inputs: LedgerInputs, retired: Retired) -> dict[str, pl.DataFrame]:
    """The ``_state`` files of tonight: the rows of the loans still in the working set, and the retired."""
    keys = retired.loans.select(*LOAN_KEY).lazy()
    frames = {
        "installments.parquet": inputs.installments.lazy().join(keys, on=list(LOAN_KEY), how="anti",
                                                                maintain_order="left"),
        "payments.parquet": inputs.payments.lazy().join(keys, on=list(LOAN_KEY), how="anti", maintain_order="left"),
        "retired_loans.parquet": retired.loans.lazy(),
    }
    return {name: frame.sort(LEDGER_STATE_FILES[name], maintain_order=True).collect()
            for name, frame in frames.items()}


def write_state(target: Path, as_of: dt.date, cfg: RisklineConfig, inputs: LedgerInputs, retired: Retired) -> None:
    """Write the state into a staged ledger partition ``target`` (published with it, atomically).

    The tokens were taken before tonight read anything: a partition republished while the night ran has a
    new token by the next night, which then rebuilds from the history rather than trust this state.
    """
    folder = target / LEDGER_STATE_DIR
    folder.mkdir()
    for name, frame in state_frames(inputs, retired).items():
        lake.write_parquet(frame, folder / name)
    write_manifest(folder, as_of, cfg, inputs.built, inputs.tokens)


def write_manifest(folder: Path, as_of: dt.date, cfg: RisklineConfig, built: str,
                   tokens: dict[str, dict[str, str]]) -> None:
    meta = {"format": STATE_FORMAT, "as_of": as_of.isoformat(), "timezone": cfg.business.timezone, "built": built,
            "curated": tokens}
    (folder / LEDGER_STATE_MANIFEST).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")


def merge_state(target: Path, shard_dirs: list[Path]) -> None:
    """The merged ``_state`` of a sharded night: each file's shards stacked in order (stable: a loan's rows
    are all in one shard). The shards ran apart (Airflow tasks, retries): a curated partition republished
    between them leaves shards that read different versions, so the merged state is then marked unusable and
    the next night reads the whole history."""
    folder = target / LEDGER_STATE_DIR
    folder.mkdir()
    for name, keys in LEDGER_STATE_FILES.items():
        merged = pl.concat([lake.read_parquet(_state_file(d, name)) for d in shard_dirs])
        lake.write_parquet(merged.sort(keys, maintain_order=True), folder / name)
    metas = [json.loads(lake.read_bytes(_state_file(d, LEDGER_STATE_MANIFEST)) or b"") for d in shard_dirs]
    meta = dict(metas[0])
    builts = [m.get("built") for m in metas]
    if len(set(builts)) > 1:
        meta["built"] = "; ".join(f"shard {k}: {b}" for k, b in enumerate(builts))
    if any(m.get("curated") != meta.get("curated") for m in metas):
        meta["unusable"] = "its shards read different versions of the curated history (one was republished "\
                           "while the night ran)"
    (folder / LEDGER_STATE_MANIFEST).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")


def built_how(root: Location, as_of: dt.date) -> str | None:
    """How the ledger of D was built (``state.json``'s ``built``), None without a state."""
    part = ledger_partition(root, as_of)
    raw = lake.read_bytes(_state_file(part, LEDGER_STATE_MANIFEST)) if lake.is_complete(part) else None
    return json.loads(raw).get("built") if raw is not None else None


def _state_file(partition: Location, name: str) -> Location:
    """A file of the ``_state`` folder of a complete ledger partition (in its committed version on a store)."""
    return lake.partition_file(partition, f"{LEDGER_STATE_DIR}/{name}")

