from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path

import polars as pl
import pytest

from pipelines.store import lake
from pipelines.store import publish
from pipelines.contracts.outputs import OUTPUT_COLUMNS, OUTPUTS, cents_to_money, to_published

D1, D2 = dt.date(2026, 11, 24), dt.date(2026, 11, 25)


def _frames(as_of: dt.date, marker: str = "x") -> dict[str, pl.DataFrame]:
    """Minimal contract-shaped frames: one row each, distinguishable by ``marker``."""
    out = {}
    for name in OUTPUTS:
        row = {}
        for col, dtype in OUTPUT_COLUMNS[name]:
            if col == "as_of_date":
                row[col] = as_of
            elif isinstance(dtype, pl.Decimal):
                row[col] = decimal.Decimal("250.00")
            elif dtype == pl.String():
                row[col] = marker
            elif isinstance(dtype, pl.List):
                row[col] = [marker]
            elif dtype == pl.Boolean():
                row[col] = False
            elif dtype == pl.Date():
                row[col] = as_of
            else:
                row[col] = 1
        out[name] = pl.DataFrame([row], schema=dict(OUTPUT_COLUMNS[name]))
    return out


def test_cents_to_money_is_exact():
    out = pl.DataFrame({"c": [1234, -1, 5, None, 5_000_000_000]}).select(cents_to_money(pl.col("c")))
    assert out.to_series().to_list() == [
        decimal.Decimal("12.34"), decimal.Decimal("-0.01"), decimal.Decimal("0.05"), None,
        decimal.Decimal("50000000.00"),
    ]


def test_to_published_orders_casts_and_names_missing_columns():
    internal = pl.DataFrame(
        {"account_id": ["b", "a"], "pd": [0.1, 0.2], "score": [600, 610], "grade": ["A", "B"],
         "reason_1": ["x", "y"], "reason_2": [None, None], "reason_3": [None, None],
         "pending_payment": [False, True]}
    )
    out = to_published("scores", internal, D1, {"model_version": "m1"})
    assert out.columns == [c for c, _ in OUTPUT_COLUMNS["scores"]]
    assert out["account_id"].to_list() == ["a", "b"]  # sorted by key: same input, same bytes
    assert out["model_version"].to_list() == ["m1", "m1"]
    with pytest.raises(KeyError, match="scores.*model_version"):
        to_published("scores", internal, D1, {})


def test_publish_writes_all_outputs_manifest_and_latest(tmp_path: Path):
    path = publish.publish_outputs(tmp_path, D1, _frames(D1), {"model_version": "m1"})
    manifest = json.loads(path.read_text())
    assert set(manifest["outputs"]) == set(OUTPUTS)
    for name in OUTPUTS:
        part = publish.output_dir(tmp_path, name, D1)
        assert (part / "_SUCCESS").is_file()
        assert manifest["outputs"][name]["files"]["part-0.parquet"] == lake.file_sha256(part / "part-0.parquet")
        assert oct((part / "part-0.parquet").stat().st_mode & 0o777) == "0o644"  # not world-writable
    assert publish.read_latest(tmp_path) == D1


def test_republish_is_byte_identical(tmp_path: Path):
    publish.publish_outputs(tmp_path, D1, _frames(D1), {"model_version": "m1"})
    first = {p: p.read_bytes() for p in sorted((tmp_path / "outputs").rglob("*")) if p.is_file()}
    publish.publish_outputs(tmp_path, D1, _frames(D1), {"model_version": "m1"})
    second = {p: p.read_bytes() for p in sorted((tmp_path / "outputs").rglob("*")) if p.is_file()}
    assert first == second


def test_backfill_of_older_date_does_not_move_latest_back(tmp_path: Path):
    publish.publish_outputs(tmp_path, D2, _frames(D2), {})
    publish.publish_outputs(tmp_path, D1, _frames(D1), {})
    assert publish.read_latest(tmp_path) == D2


def test_wrong_output_set_publishes_nothing(tmp_path: Path):
    frames = _frames(D1)
    del frames["hardship_offers"]
    with pytest.raises(publish.PublishError, match="exactly the outputs"):
        publish.publish_outputs(tmp_path, D1, frames, {})
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*.parquet"))


def test_crash_after_journal_is_rolled_forward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    publish.publish_outputs(tmp_path, D1, _frames(D1, "old"), {})
    calls = {"n": 0}
    real_swap = publish.lake.swap_into_place

    def dying_swap(tmp, target):
        calls["n"] += 1
        if calls["n"] == 2:  # die after the first output was swapped in
            raise KeyboardInterrupt("simulated crash")
        real_swap(tmp, target)

    monkeypatch.setattr(publish.lake, "swap_into_place", dying_swap)
    with pytest.raises(KeyboardInterrupt):
        publish.publish_outputs(tmp_path, D1, _frames(D1, "new"), {})
    monkeypatch.setattr(publish.lake, "swap_into_place", real_swap)
    assert publish.recover(tmp_path) == [D1]
    for name in OUTPUTS:  # every output now holds the new run: no mix of old and new
        frame = publish.read_output(tmp_path, name, D1)
        assert "new" in frame.row(0), name
