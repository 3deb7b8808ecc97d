"""The strategy test readout (pipelines/domain/cells.py): hand-built nights, ledgers and outcomes, hand-computed."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from pipelines.contracts.landing import CONTRACT
from pipelines.domain.cells import (
    ASSIGNMENT_SCHEMA, CellsError, Interval, cell_assignments, cohorts_in_range, matured_windows,
    newcombe_difference, readout_cells, t_value, unmoved_challenger, welch_difference, wilson_interval,
    window_outcomes, z_value,
)
from pipelines.domain.ledger import build_ledger

D = dt.date
UTC = dt.timezone.utc
A = D(2026, 1, 1)  # the assignment night
NEWEST = D(2026, 2, 10)  # 30-day windows of A mature (Jan 31 + 7 late days = Feb 7), 60-day ones do not (Mar 9)
LATE = 7  # ingest.payment_late_days
VERSION = "limits-test"
Z95 = z_value(0.95)


def _limits(rows: list[tuple], version: str = VERSION) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={
        "account_id": pl.String, "as_of_date": pl.Date, "test_cell": pl.String, "action": pl.String,
        "reason_codes": pl.List(pl.String), "previous_limit_cents": pl.Int64, "new_limit_cents": pl.Int64,
    }, orient="row").with_columns(policy_version=pl.lit(version))


def test_z_value_is_the_two_sided_quantile() -> None:
    assert Z95 == pytest.approx(1.959964, abs=1e-6)
    assert z_value(0.90) == pytest.approx(1.644854, abs=1e-6)


def test_tested_population_and_first_assignment() -> None:
    later = D(2026, 1, 20)
    limits = _limits([
        ("CH-DEC", A, "champion", "decrease", ["DPD_1_29"], 50_000, 35_000),
        ("CH-DEC", later, "champion", "decrease", ["DPD_1_29"], 35_000, 24_500),  # again: its first night counts
        ("CO-DEC", A, "control", "hold", ["DPD_1_29", "TEST_CONTROL"], 20_000, 20_000),
        ("CO-DEC", later, "control", "hold", ["DPD_1_29", "TEST_CONTROL"], 20_000, 20_000),  # held every night
        ("CO-INC", A, "control", "hold", ["GOOD_PAYMENT_HISTORY", "HIGH_UTILIZATION", "TEST_CONTROL"], 9_000, 9_000),
        ("CL-INC", A, "challenger", "increase", ["GOOD_PAYMENT_HISTORY"], 10_000, 11_000),
        ("CH-HOLD", A, "champion", "hold", ["NO_TRIGGER"], 10_000, 10_000),  # never in the test
        ("CO-HOLD", A, "control", "hold", ["NO_TRIGGER"], 10_000, 10_000),  # a control line with nothing held
        ("CO-FRZ", A, "control", "freeze", ["DPD_30_PLUS"], 10_000, 10_000),  # a freeze is never tested
        ("CL-UNF", A, "challenger", "unfreeze", ["CURRENT_FOR_30_DAYS"], 10_000, 10_000),
    ])
    got = cell_assignments(limits, ["decrease", "increase"])
    assert got.select("account_id", "assigned_on", "test_cell", "tested_action", "previous_limit_cents").rows() == [
        ("CH-DEC", A, "champion", "decrease", 50_000),
        ("CO-DEC", A, "control", "decrease", 20_000),
        ("CL-INC", A, "challenger", "increase", 10_000),
        ("CO-INC", A, "control", "increase", 9_000),
    ]


def test_a_window_matures_once_its_last_day_and_its_late_payments_are_in_the_data() -> None:
    # A + 30 + 7 = Feb 7 <= Feb 10; Jan 20 + 30 + 7 = Feb 26 is after it; 60 days: neither
    assert matured_windows([A, D(2026, 1, 20), A], [30, 60], NEWEST, LATE) == [(A, 30)]
    assert matured_windows([A], [33], NEWEST, LATE) == [(A, 33)]  # Feb 3 + 7 = Feb 10 itself: matured
    assert matured_windows([A], [34], NEWEST, LATE) == []  # its last day is in, a late payment for it may not be
    assert matured_windows([A], [40], NEWEST, 0) == [(A, 40)]  # no late payments accepted: the last day suffices


def test_a_late_payment_cannot_flip_a_matured_window() -> None:
    # Reviewer's case (FINDINGS20B, 2): due Oct 6, assigned Oct 10 (4 DPD), paid Nov 4 (29 DPD) but delivered
    # dt=Nov 10, six days late. Read on Nov 9 the window (Oct 10, Nov 9] would say bad and not cured; read on
    # Nov 10 it says the opposite. With payment_late_days = 7 it is not matured before Nov 16, when it is final.
    schema_i = {**CONTRACT["installments"].curated_schema(), "dt": pl.Date()}
    schema_p = {**CONTRACT["payments"].curated_schema(), "dt": pl.Date()}
    inst = pl.LazyFrame([("L1-01", "L1", "A1", 1, D(2026, 10, 6), 100_000, 1_000, D(2026, 9, 6))],
                        schema=schema_i, orient="row")
    pay = pl.LazyFrame([("P1", "A1", "L1", dt.datetime(2026, 11, 4, 2, tzinfo=UTC), 101_000, D(2026, 11, 10))],
                       schema=schema_p, orient="row")
    asg = pl.DataFrame([(VERSION, "A1", D(2026, 10, 10), "control", "decrease", 200_000)],
                       schema=ASSIGNMENT_SCHEMA, orient="row")
    moves = pl.DataFrame(schema={"account_id": pl.String, "as_of_date": pl.Date, "previous_limit_cents": pl.Int64,
                                 "new_limit_cents": pl.Int64})

    def read(newest: dt.date, late: int) -> list[tuple]:
        ledger = build_ledger(inst, pay, newest, "Asia/Shanghai")  # reads dt <= newest itself
        return window_outcomes(asg, ledger, moves, [30], newest, 30, late).select("bad", "cured").rows()

    assert read(D(2026, 11, 9), 0) == [(True, False)]  # the old rule: "matured", and wrong
    assert read(D(2026, 11, 10), 0) == [(False, True)]
    assert read(D(2026, 11, 9), LATE) == [] and read(D(2026, 11, 15), LATE) == []  # not matured yet
    assert read(D(2026, 11, 16), LATE) == [(False, True)]  # Nov 9 + 7: final


def _inst(acc: str, no: int, due: dt.date, principal: int, draw: dt.date) -> tuple:
    return (f"{acc}-L-{no}", f"{acc}-L", acc, no, due, principal, 0, draw)


def _pay(acc: str, day: dt.date, cents: int) -> tuple:
    return (f"{acc}-{day}", acc, f"{acc}-L", dt.datetime.combine(day, dt.time(3), UTC), cents, day)


def _ledger():  # type: ignore[no-untyped-def]
    drawn = D(2025, 12, 1)
    inst = [
        # CURED: due Dec 20 paid Jan 10 (12 DPD at A, worst 20 DPD on Jan 9), due Jan 20 paid on time
        _inst("CURED", 1, D(2025, 12, 20), 10_000, drawn), _inst("CURED", 2, D(2026, 1, 20), 10_000, drawn),
        # BAD: due Dec 25, never paid: 7 DPD at A, 30 DPD on Jan 24, 37 at the window end
        _inst("BAD", 1, D(2025, 12, 25), 10_000, drawn),
    ]
    pay = [_pay("CURED", D(2026, 1, 10), 10_000), _pay("CURED", D(2026, 1, 20), 10_000)]
    schema_i = {**CONTRACT["installments"].curated_schema(), "dt": pl.Date()}
    schema_p = {**CONTRACT["payments"].curated_schema(), "dt": pl.Date()}
    return build_ledger(pl.LazyFrame(inst, schema=schema_i, orient="row"),
                        pl.LazyFrame(pay, schema=schema_p, orient="row"), NEWEST)


def test_window_outcomes_by_hand() -> None:
    assignments = cell_assignments(_limits([
        ("CURED", A, "champion", "decrease", ["DPD_1_29"], 50_000, 35_000),
        ("BAD", A, "control", "hold", ["DPD_1_29", "TEST_CONTROL"], 20_000, 20_000),
        ("NOLOAN", A, "challenger", "increase", ["GOOD_PAYMENT_HISTORY"], 10_000, 12_000),
        ("GONE", A, "champion", "increase", ["GOOD_PAYMENT_HISTORY"], 10_000, 13_000),
    ]), ["decrease", "increase"])
    # the policy's line moves on every night since A (the assigned accounts' published rows)
    moves = _limits([
        ("CURED", A, "champion", "decrease", [], 50_000, 35_000),
        ("BAD", A, "control", "hold", [], 20_000, 20_000),
        ("NOLOAN", A, "challenger", "increase", [], 10_000, 12_000),
        ("GONE", A, "champion", "increase", [], 10_000, 13_000),
        # Jan 20: upstream never applied the cut (its line is 50,000 again) and the night cuts once more: the
        # line last set is 40,000 (summing both cuts, -25,000, would count the first twice)
        ("CURED", D(2026, 1, 20), "champion", "decrease", [], 50_000, 40_000),
        ("BAD", D(2026, 1, 20), "control", "hold", [], 20_000, 20_000),
        ("NOLOAN", D(2026, 1, 20), "challenger", "increase", [], 12_000, 12_500),
        ("NOLOAN", D(2026, 2, 5), "challenger", "increase", [], 12_500, 99_900),  # after the window end: not read
    ]).select("account_id", "as_of_date", "previous_limit_cents", "new_limit_cents")
    got = window_outcomes(assignments, _ledger(), moves, [30, 60], NEWEST, bad_dpd=30, late_days=LATE)
    # only the 30-day window has matured (A + 60 + 7 = Mar 9 > Feb 10)
    assert got["window_days"].unique().to_list() == [30]
    rows = {r["account_id"]: r for r in got.iter_rows(named=True)}
    cured, bad, noloan, gone = rows["CURED"], rows["BAD"], rows["NOLOAN"], rows["GONE"]
    assert cured["window_end"] == D(2026, 1, 31)
    # CURED: worst 20 DPD in (Jan 1, Jan 31] -> not bad; overdue at A, current on Jan 31 -> cured
    assert (cured["bad"], cured["overdue_at_assignment"], cured["cured"]) == (False, True, True)
    # the line the policy last set by Jan 31 is 400.00 CNY, from 500.00 when assigned; utilization 20,000 / 50,000 =
    # 0.4 at A, 0 / 40,000 at the end
    assert cured["exposure_change_cents"] == -10_000
    assert cured["utilization_change"] == pytest.approx(-0.4)
    # BAD: 30 DPD on Jan 24 -> bad; still 37 DPD at the end -> not cured; line and balance unchanged
    assert (bad["bad"], bad["overdue_at_assignment"], bad["cured"]) == (True, True, False)
    assert bad["exposure_change_cents"] == 0 and bad["utilization_change"] == pytest.approx(0.0)
    # NOLOAN: never past due, not overdue at A (cured is null); raised to 120.00 on A and to 125.00 on Jan 20
    # (the last line set by Jan 31; the Feb 5 raise is after it): +25.00 CNY; nothing drawn
    assert (noloan["bad"], noloan["overdue_at_assignment"], noloan["cured"]) == (False, False, None)
    assert noloan["exposure_change_cents"] == 2_500 and noloan["utilization_change"] == pytest.approx(0.0)
    # GONE: no decision after A (closed upstream): the line the policy set on A, 130.00; a closure is no effect
    # of the cell
    assert gone["exposure_change_cents"] == 3_000 and gone["utilization_change"] == pytest.approx(0.0)


def test_window_outcomes_refuses_a_ledger_short_of_the_newest_date() -> None:
    assignments = cell_assignments(_limits([("BAD", A, "champion", "decrease", [], 1, 1)]), ["decrease"])
    with pytest.raises(CellsError, match="before the newest data"):
        window_outcomes(assignments, _ledger(), pl.DataFrame(), [30], NEWEST + dt.timedelta(days=1), 30, LATE)
    with pytest.raises(CellsError, match="positive"):
        window_outcomes(assignments, _ledger(), pl.DataFrame(), [0], NEWEST, 30, LATE)


def test_wilson_interval_matches_the_published_value() -> None:
    # 3 of 10 at 95%: Wilson (1927) / Newcombe (1998) table: 0.1078 .. 0.6032
    got = wilson_interval(3, 10, Z95)
    assert (got.value, round(got.low, 4), round(got.high, 4)) == (0.3, 0.1078, 0.6032)
    # 0 of 10: the interval starts at 0 and is not degenerate (a Wald interval would be 0 .. 0)
    zero = wilson_interval(0, 10, Z95)
    assert zero.low == 0.0 and round(zero.high, 4) == 0.2775


def test_newcombe_difference_matches_the_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 - 48/80 = 0.2, method 10: 0.0524 .. 0.3339
    got = newcombe_difference(wilson_interval(56, 70, Z95), wilson_interval(48, 80, Z95))
    assert (round(got.value, 4), round(got.low, 4), round(got.high, 4)) == (0.2, 0.0524, 0.3339)


def _outcomes(rows: list[tuple], version: str = VERSION) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(assignments, outcomes) of 30-day windows from (account, night, cell, bad, exposure cents, util, cured)."""
    frame = pl.DataFrame(rows, schema={
        "account_id": pl.String, "assigned_on": pl.Date, "test_cell": pl.String, "bad": pl.Boolean,
        "exposure_change_cents": pl.Int64, "utilization_change": pl.Float64, "cured": pl.Boolean,
    }, orient="row").with_columns(tested_action=pl.lit("decrease"), previous_limit_cents=pl.lit(0, pl.Int64),
                                  policy_version=pl.lit(version))
    assignments = frame.select(*ASSIGNMENT_SCHEMA)
    matured = frame.filter(pl.col("assigned_on") + dt.timedelta(days=30 + LATE) <= NEWEST).with_columns(
        window_days=pl.lit(30, pl.Int32))
    return assignments, matured


def test_readout_by_hand() -> None:
    # champion: 10 accounts, 3 bad; exposure -100.00, -200.00, -300.00 CNY then 0; 2 of 4 overdue ones cured
    champion = [(f"CH{i}", A, "champion", i < 3, -10_000 * (i + 1) if i < 3 else 0, 0.0, (i < 2) if i < 4 else None)
                for i in range(10)]
    # control: 10 accounts, 6 bad; exposure 0 for all
    control = [(f"CO{i}", A, "control", i < 6, 0, 0.1, None) for i in range(10)]
    # challenger: assigned after A: its 30-day window matures on Feb 26 (Feb 19 + 7 late days), after Feb 10
    challenger = [(f"CL{i}", D(2026, 1, 20), "challenger", False, 0, 0.0, None) for i in range(3)]
    assignments, outcomes = _outcomes(champion + control + challenger)
    got = readout_cells(assignments, outcomes, [30], NEWEST, 0.95, min_accounts=5, late_days=LATE)
    rows = {(r["metric"], r["test_cell"]): r for r in got.iter_rows(named=True)}

    ch = rows[("bad_rate", "champion")]
    assert (ch["assigned"], ch["matured"], ch["n"], ch["events"], ch["verdict"]) == (10, 10, 10, 3, "reference")
    assert (round(ch["ci_low"], 4), round(ch["ci_high"], 4)) == (0.1078, 0.6032)  # Wilson 3/10, as above

    co = rows[("bad_rate", "control")]
    six = wilson_interval(6, 10, Z95)
    diff = newcombe_difference(six, wilson_interval(3, 10, Z95))
    assert co["value"] == 0.6 and co["diff"] == pytest.approx(0.3)
    assert (co["diff_low"], co["diff_high"]) == (pytest.approx(diff.low), pytest.approx(diff.high))
    assert diff.low < 0 < diff.high  # 6/10 vs 3/10 is not enough to tell
    # two comparisons: control's 30+ DPD and utilization change (its line change is 0 by construction, the cure
    # rate has no control account, the challenger has not matured)
    assert co["comparisons"] == 2 and co["verdict"] == "not yet significant at 95% adjusted for 2 comparisons"

    # exposure: champion mean (-600.00 CNY) / 10 = -60.00 CNY per account, exact total; sample sd by hand
    ex = rows[("exposure_change", "champion")]
    values = [-10_000, -20_000, -30_000] + [0] * 7
    mean = sum(values) / 10
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 9)
    assert (ex["total_cents"], ex["value"]) == (-60_000, -6_000.0)
    # Student t with 9 degrees of freedom (2.2622), not z (1.96): a cell of ten is 15% wider
    assert t_value(0.95, 9) == pytest.approx(2.262157, abs=1e-6)
    assert ex["ci_low"] == pytest.approx(mean - 2.262157 * sd / math.sqrt(10))
    # control: every value 0 (no variance): the difference's interval is the champion's alone (Welch, whose
    # Welch-Satterthwaite df is then the champion's 9); but control lines are held, so it is no comparison
    exc = rows[("exposure_change", "control")]
    assert round(sd) == 10_750 and exc["diff"] == pytest.approx(6_000.0)
    assert exc["diff_low"] == pytest.approx(6_000 - 2.262157 * sd / math.sqrt(10))
    assert exc["comparisons"] is None
    assert exc["verdict"] == "no comparison: control lines are held (0 by construction)"

    # cure rate: only the overdue-at-assignment accounts count: champion 2 of 4; control has none
    cure = rows[("cure_rate", "champion")]
    assert (cure["n"], cure["events"], cure["value"]) == (4, 2, 0.5)
    assert rows[("cure_rate", "control")]["verdict"] == "no account to measure"

    # challenger: nothing matured; says when the first window matures, computes nothing
    cl = rows[("bad_rate", "challenger")]
    assert (cl["assigned"], cl["matured"], cl["value"]) == (3, 0, None)
    assert cl["verdict"] == "not yet matured (matures on 2026-02-26)"  # Jan 20 + 30 + 7 late days


def test_too_few_accounts_are_never_significant() -> None:
    champion = [(f"CH{i}", A, "champion", False, 0, 0.0, None) for i in range(40)]
    control = [(f"CO{i}", A, "control", True, 0, 0.0, None) for i in range(10)]  # 10 of 10 bad vs 0 of 40
    assignments, outcomes = _outcomes(champion + control)
    strict = readout_cells(assignments, outcomes, [30], NEWEST, 0.95, min_accounts=30, late_days=LATE)
    row = strict.filter((pl.col("metric") == "bad_rate") & (pl.col("test_cell") == "control")).row(0, named=True)
    assert row["diff_low"] > 0  # the interval alone would say significant ...
    assert row["verdict"] == "not yet significant (fewer than 30 matured accounts)"  # ... but 10 < 30
    loose = readout_cells(assignments, outcomes, [30], NEWEST, 0.95, min_accounts=10, late_days=LATE)
    row = loose.filter((pl.col("metric") == "bad_rate") & (pl.col("test_cell") == "control")).row(0, named=True)
    assert row["verdict"] == "higher than champion at 95% adjusted for 2 comparisons"


def test_interval_dataclass_is_plain() -> None:
    assert Interval(0.5, 0.1, 0.9) == Interval(0.5, 0.1, 0.9)


# --- the command, on a hand-built lake -------------------------------------------------------------------


def _published_limits(root, night: dt.date, rows: list[tuple], version: str = VERSION) -> None:  # type: ignore[no-untyped-def]
    from pipelines.contracts.outputs import cents_to_money
    from pipelines.store import lake, publish

    frame = _limits(rows, version).with_columns(
        cents_to_money(pl.col("previous_limit_cents")).alias("previous_limit"),
        cents_to_money(pl.col("new_limit_cents")).alias("new_limit"),
        pl.lit("").alias("explanation"), pl.lit("").alias("explanation_en"),
        pl.lit("m1").alias("model_version"),
    ).drop("previous_limit_cents", "new_limit_cents")
    lake.publish_frames(publish.output_dir(root, "limits", night), {publish.PART_FILE: frame})


def _lake(root) -> None:  # type: ignore[no-untyped-def]
    from pipelines.store import lake, publish, zones

    # the two ledger accounts of test_window_outcomes_by_hand, assigned on A; a third, CL, on Jan 20
    _published_limits(root, A, [
        ("CURED", A, "champion", "decrease", ["DPD_1_29"], 50_000, 35_000),
        ("BAD", A, "control", "hold", ["DPD_1_29", "TEST_CONTROL"], 20_000, 20_000),
        ("HOLD", A, "champion", "hold", ["NO_TRIGGER"], 20_000, 20_000),
    ])
    _published_limits(root, D(2026, 1, 20), [
        ("CURED", D(2026, 1, 20), "champion", "hold", ["NO_TRIGGER"], 35_000, 35_000),
        ("BAD", D(2026, 1, 20), "control", "hold", ["DPD_1_29", "TEST_CONTROL"], 20_000, 20_000),
        ("CL", D(2026, 1, 20), "challenger", "increase", ["GOOD_PAYMENT_HISTORY"], 10_000, 11_000),
    ])
    _published_limits(root, NEWEST, [("CL", NEWEST, "challenger", "hold", ["NO_TRIGGER"], 11_000, 11_000)])
    (root / "outputs" / publish.LATEST).write_text(f"{NEWEST}\n")
    ledger = _ledger()  # its curated rows: instalments drawn Dec 1, payments on Jan 10 and Jan 20
    inst = ledger.installments.select(*CONTRACT["installments"].curated_schema())
    lake.publish_frames(zones.curated(root, "installments", D(2025, 12, 1)), {"part-0.parquet": inst})
    for day in (D(2026, 1, 10), D(2026, 1, 20)):
        pay = ledger.payments.filter(pl.col("paid_on") == day).select(*CONTRACT["payments"].curated_schema())
        lake.publish_frames(zones.curated(root, "payments", day), {"part-0.parquet": pay})


def test_cells_command_prints_the_readout_and_its_json(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from pipelines.entry import cli

    root = tmp_path / "data"
    _lake(root)
    assert cli.main(["--data-root", str(root), "cells", "--from", "2026-01-01", "--to", "2026-01-31"]) == 0
    out = capsys.readouterr().out
    assert ("2 published night(s) in 2026-01-01 .. 2026-01-31 (2026-01-01, 2026-01-20), first under their policy "
            "version (looked up back to 2026-01-01); outcomes up to 2026-02-10") in out
    assert "== decrease: champion 1, challenger 0, control 1 accounts" in out
    assert "== increase: champion 0, challenger 1, control 0 accounts" in out
    lines = out.splitlines()
    # 30 days after Jan 1: CURED (champion) never reached 30 DPD, BAD (control) did; one account each is far
    # under min_accounts, so nothing is significant
    bad_ctrl = next(line for line in lines if line.strip().startswith("30+ DPD") and " control " in line)
    assert "100.0%" in bad_ctrl and "+100.0 pts" in bad_ctrl and "fewer than 30 matured accounts" in bad_ctrl
    line_chg = next(line for line in lines if line.strip().startswith("line change") and " champion " in line)
    assert "-150.00 CNY" in line_chg and "reference" in line_chg
    # Jan 20 + 30 + 7 late days = Feb 26 is after the newest data: the challenger's increase is not read out
    assert "not yet matured (matures on 2026-02-26: 30 days + 7 days for late payments)" in out
    assert "not yet matured (matures on 2026-03-09: 60 days + 7 days for late payments)" in out  # after Jan 1

    assert cli.main(["--data-root", str(root), "cells", "--from", "2026-01-01", "--to", "2026-01-31", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["nights"] == ["2026-01-01", "2026-01-20"] and payload["newest"] == "2026-02-10"
    cured = next(r for r in payload["rows"] if (r["tested_action"], r["window_days"], r["metric"], r["test_cell"])
                 == ("decrease", 30, "cure_rate", "champion"))
    assert (cured["n"], cured["events"], cured["value"]) == (1, 1, 1.0)


def test_cells_command_outside_the_published_nights_is_one_clear_error(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from pipelines.entry import cli

    root = tmp_path / "data"
    _lake(root)
    assert cli.main(["--data-root", str(root), "cells", "--from", "2025-01-01", "--to", "2025-02-01"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no published night lies in 2025-01-01 .. 2025-02-01")
    assert "2026-01-01 .. 2026-02-10" in err


def test_report_section_tags_the_readout_and_names_immature_windows(tmp_path, cfg) -> None:  # type: ignore[no-untyped-def]
    import re

    from pipelines.report.cells import collect_cells
    from pipelines.report.render import environment

    root = tmp_path / "data"
    _lake(root)
    section = collect_cells(root, NEWEST, cfg)
    assert section.message == "" and section.nights == [A, D(2026, 1, 20), NEWEST]
    html = environment().get_template("cells.html.j2").module.cells_section(section)  # type: ignore[attr-defined]
    # the decrease's 30-day rows are tagged with the readout's own numbers
    row = section.readout.filter((pl.col("tested_action") == "decrease") & (pl.col("window_days") == 30)
                                 & (pl.col("metric") == "bad_rate") & (pl.col("test_cell") == "control")).row(0, named=True)
    tag = ('data-cells-action="decrease" data-cells-window="30" data-cells-metric="bad_rate" data-cells-cell="control"')
    assert tag in html
    shown = re.search(tag + r'.*?data-cells-field="diff_ci" data-low="([^"]*)" data-high="([^"]*)"', html)
    assert shown and (float(shown[1]), float(shown[2])) == (row["diff_low"], row["diff_high"])
    assert 'data-cells-immature="increase-30"' in html
    assert "matures on 2026-02-26: 30 days + 7 days for late payments" in html
    # a night with nothing matured yet: one clear message instead of empty tables
    early = collect_cells(root, A, cfg)
    assert early.message == ("No outcome window has matured yet: the first (30 days after 2026-01-01, plus 7 days for "
                             "late payments) matures on 2026-02-07. Outcomes are never read from part of a window.")
    early_html = environment().get_template("cells.html.j2").module.cells_section(early)  # type: ignore[attr-defined]
    assert "data-cells-message" in early_html and "data-cells-metric" not in early_html
    # the Bonferroni sentence names the comparisons shown, and is left out when there are none
    assert section.comparisons > 0 and "comparisons shown (Bonferroni)" in html
    import dataclasses
    none_html = environment().get_template("cells.html.j2").module.cells_section(  # type: ignore[attr-defined]
        dataclasses.replace(section, comparisons=0))
    assert "comparisons shown (Bonferroni)" not in none_html and "data-cells-comparisons" not in none_html


# --- review 20B: cohorts, policy versions, unmoved challenger lines, many comparisons, money in JSON -------------


def test_an_account_first_assigned_before_the_range_is_an_earlier_cohort() -> None:
    # Reviewer's carry-over case (FINDINGS20B, 1): a control line is held on every night the champion would cut
    # it, so a range starting mid-test met it again on its first night; its champion twin, cut once before the
    # range and then in cooldown, did not come back. Both belong to the cohort of their first night.
    d1 = D(2026, 1, 10)
    nights = _limits([
        ("CO-OLD", A, "control", "hold", ["DPD_1_29", "TEST_CONTROL"], 20_000, 20_000),
        ("CO-OLD", D(2026, 1, 5), "control", "hold", ["DPD_1_29", "TEST_CONTROL"], 20_000, 20_000),
        ("CO-OLD", d1, "control", "hold", ["DPD_1_29", "TEST_CONTROL"], 20_000, 20_000),  # held again in range
        ("CH-OLD", A, "champion", "decrease", ["DPD_1_29"], 50_000, 35_000),  # cut before, cooldown in range
        ("CO-NEW", d1, "control", "hold", ["DPD_1_29", "TEST_CONTROL"], 20_000, 20_000),
        ("CH-NEW", D(2026, 1, 12), "champion", "decrease", ["DPD_1_29"], 50_000, 35_000),
    ])
    inside, before = cohorts_in_range(cell_assignments(nights, ["decrease", "increase"]), d1, D(2026, 1, 31))
    assert inside.select("account_id", "assigned_on").rows() == [("CH-NEW", D(2026, 1, 12)), ("CO-NEW", d1)]
    assert before.rows() == [(VERSION, "decrease", "champion", 1), (VERSION, "decrease", "control", 1)]


def test_the_command_leaves_out_accounts_first_assigned_earlier(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from pipelines.entry import cli

    root = tmp_path / "data"
    _lake(root)
    # BAD (control) was held on Jan 1 and again on Jan 20; CURED (champion) was cut on Jan 1: a range from Jan 20
    # has CL's cohort only. The old readout took BAD in on Jan 20, its first night in the range.
    assert cli.main(["--data-root", str(root), "cells", "--from", "2026-01-20", "--to", "2026-01-31"]) == 0
    out = capsys.readouterr().out
    assert "looked up back to 2026-01-01" in out
    assert ("2 accounts first assigned before 2026-01-20 excluded (an earlier cohort; decrease: champion 1, "
            "challenger 0, control 1)") in out
    assert "== decrease" not in out and "== increase: champion 0, challenger 1, control 0 accounts" in out


def test_policy_versions_are_never_pooled() -> None:
    old = [(f"O{i}", A, "champion", i < 5, 0, 0.0, None) for i in range(40)]  # 5/40 bad under the old version
    new = [(f"N{i}", A, "control", True, 0, 0.0, None) for i in range(40)]  # 40/40 bad, new version: no champion
    a_old, o_old = _outcomes(old, "v1")
    a_new, o_new = _outcomes(new, "v2")
    got = readout_cells(pl.concat([a_old, a_new]), pl.concat([o_old, o_new]), [30], NEWEST, 0.95, 30, LATE)
    assert got["policy_version"].unique(maintain_order=True).to_list() == ["v1", "v2"]
    control = got.filter((pl.col("metric") == "bad_rate") & (pl.col("test_cell") == "control")).row(0, named=True)
    # v2's control is never compared with v1's champion
    assert (control["policy_version"], control["diff"]) == ("v2", None)
    assert control["verdict"] == "no champion accounts to compare with"


def test_one_policy_version_is_read_and_looking_back_stops_at_another(tmp_path, cfg) -> None:  # type: ignore[no-untyped-def]
    from pipelines.report.cells import collect_cells
    from pipelines.store.cell_outcomes import read_cell_readout

    root = tmp_path / "data"
    _lake(root)
    # Jan 25: a new policy version; BAD, held before under limits-test, is a new assignment under it
    night = D(2026, 1, 25)
    _published_limits(root, night, [("BAD", night, "control", "hold", ["DPD_1_29", "TEST_CONTROL"], 20_000, 20_000)],
                      version="limits-v2")
    both = read_cell_readout(root, D(2026, 1, 20), night, cfg, newest=NEWEST)
    assert sorted(both.assignments.select("policy_version", "account_id").rows()) == [
        ("limits-test", "CL"), ("limits-v2", "BAD")]
    v2 = read_cell_readout(root, night, night, cfg, newest=NEWEST, policy_version="limits-v2")
    assert v2.assignments["account_id"].to_list() == ["BAD"] and v2.earlier.is_empty()
    assert v2.looked_back_to == night  # Jan 20 is of another version: not an earlier cohort of this one
    # the report of Jan 25 reads its own night's version only
    section = collect_cells(root, night, cfg)
    assert section.policy_version == "limits-v2"
    assert section.readout["policy_version"].unique().to_list() == ["limits-v2"]


def test_unmoved_challenger_lines_are_counted_not_guessed() -> None:
    limits = _limits([
        ("CL-SMALL", A, "challenger", "hold", ["GOOD_PAYMENT_HISTORY", "HIGH_UTILIZATION"], 45_000, 45_000),
        ("CL-SMALL", D(2026, 1, 2), "challenger", "hold", ["GOOD_PAYMENT_HISTORY", "HIGH_UTILIZATION"], 45_000,
         45_000),
        ("CL-MAX", A, "challenger", "hold", ["GOOD_PAYMENT_HISTORY", "HIGH_UTILIZATION", "PRODUCT_MAX"], 1, 1),
        ("CL-FLOOR", A, "challenger", "hold", ["DPD_1_29", "AT_FLOOR"], 10_000, 10_000),
        ("CL-CUT", A, "challenger", "decrease", ["DPD_1_29"], 10_000, 9_000),
        ("CH-SMALL", A, "champion", "hold", ["GOOD_PAYMENT_HISTORY", "HIGH_UTILIZATION"], 45_000, 45_000),
    ])
    got = unmoved_challenger(limits, ["decrease", "increase"])
    assert sorted(got.select("account_id", "assigned_on", "tested_action").rows()) == [
        ("CL-FLOOR", A, "decrease"), ("CL-SMALL", A, "increase")]


def test_verdicts_are_adjusted_for_the_comparisons_shown() -> None:
    # 14/50 vs 6/50: Newcombe's 95% interval excludes 0, but not at the Bonferroni level over 3 comparisons
    champion = [(f"CH{i}", A, "champion", i < 6, 0, 0.01 * (i % 3), None) for i in range(50)]
    challenger = [(f"CL{i}", A, "challenger", i < 14, -100 * (i % 2), 0.01 * (i % 3), None) for i in range(50)]
    assignments, outcomes = _outcomes(champion + challenger)
    got = readout_cells(assignments, outcomes, [30], NEWEST, 0.95, 30, LATE)
    row = got.filter((pl.col("metric") == "bad_rate") & (pl.col("test_cell") == "challenger")).row(0, named=True)
    assert row["diff_low"] > 0  # the shown (unadjusted) interval alone would call it higher
    z3 = z_value(1 - 0.05 / 3)
    strict = newcombe_difference(wilson_interval(14, 50, z3), wilson_interval(6, 50, z3))
    assert strict.low < 0
    assert row["comparisons"] == 3  # 30+ DPD, line change, utilization change (no one was overdue: no cure rate)
    assert row["verdict"] == "not yet significant at 95% adjusted for 3 comparisons"


def test_min_accounts_counts_matured_accounts_not_the_metrics_measured_ones() -> None:
    # 40 matured accounts per cell, only 4 of them overdue at assignment: the cure rate is judged on the 40
    champion = [(f"CH{i}", A, "champion", False, 0, 0.0, False if i < 4 else None) for i in range(40)]
    control = [(f"CO{i}", A, "control", False, 0, 0.0, True if i < 4 else None) for i in range(40)]
    assignments, outcomes = _outcomes(champion + control)
    got = readout_cells(assignments, outcomes, [30], NEWEST, 0.95, 30, LATE)
    row = got.filter((pl.col("metric") == "cure_rate") & (pl.col("test_cell") == "control")).row(0, named=True)
    assert (row["n"], row["matured"]) == (4, 40)
    assert "fewer than" not in row["verdict"]


def test_welch_t_uses_welch_satterthwaite_degrees_of_freedom() -> None:
    a, b = Interval(10.0, 0, 0), Interval(4.0, 0, 0)
    var_a, var_b, n_a, n_b = 4.0 / 5, 9.0 / 8, 5, 8  # variances of the means
    df = (var_a + var_b) ** 2 / (var_a ** 2 / 4 + var_b ** 2 / 7)
    got = welch_difference(a, var_a, n_a, b, var_b, n_b, 0.95)
    assert got.high - got.value == pytest.approx(t_value(0.95, df) * math.sqrt(var_a + var_b))
    assert 9 < df < 11  # between the smaller sample's and the pooled df


def test_money_in_json_is_exact_decimal_cny() -> None:
    from pipelines.report.cells import cny_text, json_row

    assert cny_text(-66_595.528) == "-665.96" and cny_text(12.5) == "0.12" and cny_text(13.5) == "0.14"
    row = {"metric": "exposure_change", "value": -66_595.528, "ci_low": None, "ci_high": -100.0, "diff": 0.0,
           "diff_low": None, "diff_high": None, "total_cents": -65_530_000}
    got = json_row(row)
    assert got["value_cny"] == "-665.96" and got["ci_high_cny"] == "-1.00" and got["diff_cny"] == "0.00"
    assert "value" not in got and got["total_cents"] == -65_530_000 and got["unit"] == "CNY per account"
