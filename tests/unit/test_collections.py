"""Collections queue: buckets, expected loss, treatments, agent capacity overflow and priorities."""

from __future__ import annotations

import polars as pl
import pytest
from pydantic import ValidationError

from pipelines.config.decisions import CollectionsConfig
from pipelines.domain.collections import QUEUE_COLUMNS, assign_treatments, collection_cases, rank_collections

CFG = CollectionsConfig(agent_daily_capacity=2)  # LGD 0.85

# account, dpd, overdue, outstanding principal, pd
BOOK = [
    ("A", 0, 1_000, 5_000, 0.1),  # due today, unpaid: overdue but DPD 0, so it joins tomorrow at DPD 1
    ("B", 5, 2_000, 20_000, 0.2),  # EL 3,400
    ("C", 12, 2_000, 10_000, 0.3),  # 8-30: EL 2,550
    ("D", 40, 9_000, 50_000, 0.5),  # 31-60 agent: EL 21,250
    ("E", 70, 9_000, 30_000, 0.6),  # 61-90 agent: EL 15,300
    ("F", 45, 3_000, 10_000, 0.9),  # agent: EL 7,650
    ("K", 50, 3_000, 10_000, 0.9),  # agent: EL 7,650, a tie with F broken by id
    ("G", 120, 40_000, 40_000, None),  # 90+, unscored: ranked with pd 1.0 -> EL 34,000
    ("H", 20, 1_500, 8_000, 0.25),  # 8-30 but has a hardship offer: EL 1,700
    ("I", 0, 0, 7_000, 0.05),  # nothing overdue: not in the queue
]


def inputs() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    ledger_accounts = pl.DataFrame(
        [(a, d, o, p) for a, d, o, p, _ in BOOK],
        schema={"account_id": pl.String, "dpd": pl.Int32, "overdue_cents": pl.Int64,
                "outstanding_principal_cents": pl.Int64},
        orient="row",
    )
    scores = pl.DataFrame(
        [(a, pd_, "pd-v1") for a, _, _, _, pd_ in BOOK if pd_ is not None],
        schema={"account_id": pl.String, "pd": pl.Float64, "model_version": pl.String},
        orient="row",
    )
    offers = pl.DataFrame({"account_id": ["H", "H"], "loan_id": ["H1", "H2"]})  # one row per loan
    return ledger_accounts, scores, offers


def test_queue_by_hand():
    queue = rank_collections(*inputs(), CFG)
    assert queue.columns == list(QUEUE_COLUMNS)
    got = {r["account_id"]: (r["bucket"], r["treatment"], r["priority"], r["overflow"], r["expected_loss_cents"])
           for r in queue.to_dicts()}
    assert got == {
        # auto_reminder: only B (EL 0.2 x 20,000 x 0.85 = 3,400); A is DPD 0 and not queued yet
        "B": ("1-7", "auto_reminder", 1, False, 3_400),
        # agent capacity 2 keeps D (21,250) and E (15,300); F and K (7,650 each) overflow to smart_call,
        # where they rank ahead of C (2,550), F before K on the tie
        "D": ("31-60", "agent", 1, False, 21_250),
        "E": ("61-90", "agent", 2, False, 15_300),
        "F": ("31-60", "smart_call", 1, True, 7_650),
        "K": ("31-60", "smart_call", 2, True, 7_650),
        "C": ("8-30", "smart_call", 3, False, 2_550),
        "G": ("90+", "external_review", 1, False, 34_000),
        "H": ("8-30", "hardship_offer", 1, False, 1_700),
    }
    assert queue["account_id"].to_list() == sorted(got)  # one row per overdue account, sorted
    channels = dict(zip(queue["account_id"], queue["channel"], strict=True))
    assert "A" not in channels and "I" not in channels
    assert (channels["B"], channels["C"], channels["D"], channels["F"], channels["G"], channels["H"]) == (
        "push_sms", "ivr", "phone_agent", "ivr", "letter", "in_app_offer")
    row_g = queue.filter(pl.col("account_id") == "G").row(0, named=True)
    # unscored (e.g. missing from tonight's snapshot): the fallback PD, flagged, never a null that blocks publish
    assert (row_g["pd"], row_g["pd_source"], row_g["model_version"]) == (CFG.unscored_pd, "fallback", None)
    assert set(queue.filter(pl.col("account_id") != "G")["pd_source"]) == {"model"}
    assert set(queue["policy_version"]) == {CFG.version}


def test_an_account_whose_payment_waits_in_quarantine_is_not_queued():
    # D (40 DPD) may have paid already: its payment waits in quarantine, so it is not chased tonight
    holds = pl.DataFrame({"account_id": ["D"], "pending_payments": [1]})
    queue = rank_collections(*inputs(), CFG, holds)
    assert "D" not in set(queue["account_id"])
    # the agent slot D would have taken goes to the next case by expected loss
    assert queue.filter(pl.col("treatment") == "agent")["account_id"].to_list() == ["E", "F"]


@pytest.mark.parametrize(
    "capacity, agents", [(0, []), (1, ["D"]), (4, ["D", "E", "F", "K"]), (100, ["D", "E", "F", "K"])]
)
def test_agent_capacity(capacity: int, agents: list[str]):
    queue = rank_collections(*inputs(), CFG.model_copy(update={"agent_daily_capacity": capacity}))
    agent = queue.filter(pl.col("treatment") == "agent").sort("priority")
    assert agent["account_id"].to_list() == agents
    assert queue["overflow"].sum() == 4 - len(agents)


def test_sharded_cases_rank_the_same_as_the_whole_book():
    ledger_accounts, scores, offers = inputs()
    whole = rank_collections(ledger_accounts, scores, offers, CFG)
    halves = [ledger_accounts.filter(pl.col("account_id") < "E"), ledger_accounts.filter(pl.col("account_id") >= "E")]
    cases = pl.concat([collection_cases(part, scores, offers, CFG) for part in reversed(halves)])
    assert assign_treatments(cases, CFG).equals(whole)


def test_empty_book_gives_an_empty_queue():
    ledger_accounts, scores, offers = inputs()
    queue = rank_collections(ledger_accounts.clear(), scores, offers.clear(), CFG)
    assert queue.height == 0 and queue.columns == list(QUEUE_COLUMNS)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ({"buckets": [{"name": "x", "min_dpd": 0, "treatment": "agent"}]}, "start at min_dpd 1"),
        ({"buckets": [{"name": "a", "min_dpd": 1, "treatment": "agent"},
                      {"name": "b", "min_dpd": 1, "treatment": "agent"}]}, "strictly ascending"),
        ({"buckets": [{"name": "a", "min_dpd": 1, "treatment": "robocall"}]}, "unknown treatment 'robocall'"),
        ({"overflow_treatment": "agent"}, "cannot be agent"),
        ({"channels": {"agent": "phone_agent"}}, "channels must name"),
        ({"lgd": 0}, "lgd"),
    ],
)
def test_collections_config_rejects(override: dict, fragment: str):
    with pytest.raises(ValidationError, match=fragment):
        CollectionsConfig.model_validate(override)
