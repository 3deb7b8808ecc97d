"""The policy what-if page: what a candidate limit policy would have decided on a published night, against the live one.

Pure pieces (frames in, frames and numbers out): :func:`compare_decisions` lines up, per account, the live
decision (the published one, reproduced) and the candidate's; :func:`swap_matrix`, :func:`by_grade`,
:func:`harsher_accounts`, :func:`sample_explanations`, :func:`cell_redraw` and :func:`policy_changes` summarise it;
:func:`render_whatif` turns a :class:`WhatIfPage` into one self-contained HTML page with the run report's
stylesheet and macros (``templates/whatif.html.j2``). Reading the lake and deciding is
:mod:`pipelines.stages.whatif`'s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from pipelines.config.decisions import LIMIT_ACTIONS
from pipelines.report.render import environment
from pipelines.report.sections import UNSCORED

PAGE_TEMPLATE = "whatif.html.j2"

HARSHER_DEFINITION = (
    "Judged on the customer's outcome, not the action's label. Outcome = whether the line can be drawn on after "
    "the decision (active) or not (frozen), and its new limit. Harsher: the candidate gives a lower new limit, or "
    "leaves the line frozen where the live decision leaves it usable. Gentler is the mirror image; an account can "
    "be both (a usable line at a lower limit where live freezes it at the old one). The same outcome under another "
    "action label (e.g. a frozen line's freeze re-issued where live holds it frozen) is neither: it is counted "
    "apart as 'same outcome, different label'."
)
CHANGED_DEFINITION = ("Customers affected: accounts whose outcome differs between the two decisions (new limit, or "
                      "line usable / frozen).")
WORDING_DEFINITION = ("Wording changed: accounts whose customer text (explanation_en or explanation_zh) would differ, "
                      "whatever their outcome; the samples below are of accounts whose decision is unchanged.")
STAYS_FROZEN_CUT = (
    "The candidate cuts {count} line(s) that are frozen and stay frozen (the policy engine decides a decrease for a "
    "frozen line whose DPD is below freeze.min_dpd but at least decrease.min_dpd, and a decrease keeps the line's "
    "status): the customer can still not draw, and the limit is lower. They read the 'decrease_frozen' text, which "
    "names the cut and says that new draws remain paused and how to lift the pause, e.g.: {sample}"
)
EL_DEFINITION = (
    "Expected loss = PD x new limit x collections.lgd per account, rounded to the cent, summed: exposure at default "
    "is the full new line (a line can be drawn to its limit before default). An unscored line counts with "
    "collections.unscored_pd, as the collections queue ranks it. Exposure change = new limit - previous limit."
)

# the published limits' columns the two sides are compared on, and their names in the comparison
_SIDE_COLUMNS = ("action", "new_limit_cents", "new_status", "test_cell", "reason_codes", "explanation_en",
                 "explanation_zh")
_TEXTS = ("explanation_en", "explanation_zh")


class WhatIfError(ValueError):
    """The two decisions cannot be compared (they are not of the same accounts)."""


def compare_decisions(live: pl.DataFrame, candidate: pl.DataFrame) -> pl.DataFrame:
    """One row per account: the live and the candidate decision side by side, with ``changed`` (the outcome
    differs), ``harsher``, ``gentler``, ``harsher_because``, ``relabelled`` (same outcome, another action label) and
    ``wording_changed`` (definitions: :data:`CHANGED_DEFINITION`, :data:`HARSHER_DEFINITION`,
    :data:`WORDING_DEFINITION`).

    Both are :func:`pipelines.domain.policy.decide_limits` frames of the same night on the same inputs.

    Raises:
        WhatIfError: they do not decide the same accounts (then they did not read the same inputs).
    """
    missing = live.select("account_id").join(candidate.select("account_id"), on="account_id", how="anti")
    extra = candidate.select("account_id").join(live.select("account_id"), on="account_id", how="anti")
    if missing.height or extra.height:
        raise WhatIfError(f"the candidate decided {candidate.height:,} accounts and the live policy {live.height:,} "
                          f"({missing.height:,} only live, {extra.height:,} only candidate): not the same inputs")
    frame = live.select(
        "account_id", "grade", "pd", "dpd", "previous_limit_cents",
        *(pl.col(c).alias(f"live_{c}") for c in _SIDE_COLUMNS),
    ).join(candidate.select("account_id", *(pl.col(c).alias(f"candidate_{c}") for c in _SIDE_COLUMNS)),
           on="account_id", how="inner")

    def worse(a: str, b: str) -> dict[str, pl.Expr]:
        """Why side ``a`` leaves the customer worse off than side ``b``, one flag per respect."""
        return {
            "lower limit": pl.col(f"{a}_new_limit_cents") < pl.col(f"{b}_new_limit_cents"),
            "line frozen": (pl.col(f"{a}_new_status") == "frozen") & (pl.col(f"{b}_new_status") != "frozen"),
        }

    harsher, gentler = worse("candidate", "live"), worse("live", "candidate")
    outcome_differs = ((pl.col("live_new_limit_cents") != pl.col("candidate_new_limit_cents"))
                       | (pl.col("live_new_status") != pl.col("candidate_new_status")))
    return frame.with_columns(
        changed=outcome_differs,
        relabelled=~outcome_differs & (pl.col("live_action") != pl.col("candidate_action")),
        wording_changed=pl.any_horizontal(pl.col(f"live_{c}").ne_missing(pl.col(f"candidate_{c}")) for c in _TEXTS),
        harsher=pl.any_horizontal(*harsher.values()),
        gentler=pl.any_horizontal(*gentler.values()),
        harsher_because=pl.concat_str([pl.when(e).then(pl.lit(k)) for k, e in harsher.items()], separator="; ",
                                      ignore_nulls=True),
        limit_change_cents=pl.col("candidate_new_limit_cents") - pl.col("live_new_limit_cents"),
    ).sort("account_id")


def swap_matrix(comparison: pl.DataFrame) -> pl.DataFrame:
    """Accounts by live action (rows, ``live_action``) and candidate action (one count column per action), every
    action of :data:`LIMIT_ACTIONS` in both, zeros included, plus ``total`` per row."""
    counts = {(a, b): n for a, b, n in comparison.group_by("live_action", "candidate_action").len().iter_rows()}
    rows = [{"live_action": a, **{b: int(counts.get((a, b), 0)) for b in LIMIT_ACTIONS},
             "total": int(sum(counts.get((a, b), 0) for b in LIMIT_ACTIONS))} for a in LIMIT_ACTIONS]
    return pl.DataFrame(rows, schema={"live_action": pl.String, **{a: pl.Int64 for a in LIMIT_ACTIONS},
                                      "total": pl.Int64})


def _expected_loss(limit: str, lgd: float, unscored_pd: float) -> pl.Expr:
    return (pl.col("pd").fill_null(unscored_pd) * lgd * pl.col(limit)).round(0).cast(pl.Int64)


def by_grade(comparison: pl.DataFrame, grades: Sequence[str], lgd: float, unscored_pd: float) -> pl.DataFrame:
    """Per grade (the model's labels, best first, then ``unscored``): accounts, changed, harsher, gentler, exposure
    change and expected loss (:data:`EL_DEFINITION`) under each policy and their difference, in integer cents."""
    cents = comparison.with_columns(
        pl.col("grade").fill_null(UNSCORED),
        live_exposure_change_cents=pl.col("live_new_limit_cents") - pl.col("previous_limit_cents"),
        candidate_exposure_change_cents=pl.col("candidate_new_limit_cents") - pl.col("previous_limit_cents"),
        live_el_cents=_expected_loss("live_new_limit_cents", lgd, unscored_pd),
        candidate_el_cents=_expected_loss("candidate_new_limit_cents", lgd, unscored_pd),
    )
    order = {g: i for i, g in enumerate([*grades, UNSCORED])}
    table = cents.group_by("grade").agg(
        pl.len().cast(pl.Int64).alias("accounts"),
        *(pl.col(c).sum().cast(pl.Int64) for c in ("changed", "harsher", "gentler")),
        *(pl.col(c).sum().cast(pl.Int64) for c in ("live_exposure_change_cents", "candidate_exposure_change_cents",
                                                  "live_el_cents", "candidate_el_cents")),
    ).with_columns(
        exposure_delta_cents=pl.col("candidate_exposure_change_cents") - pl.col("live_exposure_change_cents"),
        el_delta_cents=pl.col("candidate_el_cents") - pl.col("live_el_cents"),
    )
    return table.sort(pl.col("grade").replace_strict(order, default=len(order), return_dtype=pl.Int32))


def harsher_accounts(comparison: pl.DataFrame) -> pl.DataFrame:
    """The accounts the candidate treats more harshly, the largest limit cut against live first (then by id)."""
    return comparison.filter(pl.col("harsher")).sort("limit_change_cents", "account_id").select(
        "account_id", "grade", "dpd", "previous_limit_cents", "live_action", "live_new_limit_cents",
        "candidate_action", "candidate_new_limit_cents", "limit_change_cents", "harsher_because",
    )


def sample_explanations(comparison: pl.DataFrame, rows: int) -> pl.DataFrame:
    """The candidate's customer explanations (en and zh, as the customer would read them) of the first ``rows``
    accounts affected, by account id, beside the live decision's English text."""
    return comparison.filter(pl.col("changed")).head(rows).select(
        "account_id", "live_action", "candidate_action", "candidate_explanation_en", "candidate_explanation_zh",
        "live_explanation_en",
    )


def wording_samples(comparison: pl.DataFrame, rows: int) -> pl.DataFrame:
    """Accounts whose decision is unchanged (same action, same outcome) but whose customer text would change: the
    first ``rows`` by account id, both texts in both languages (a candidate that rewords only still shows)."""
    return comparison.filter(pl.col("wording_changed") & ~pl.col("changed") & ~pl.col("relabelled")).head(rows).select(
        "account_id", "live_action", "live_explanation_en", "candidate_explanation_en", "live_explanation_zh",
        "candidate_explanation_zh",
    )


def frozen_and_cut(comparison: pl.DataFrame) -> tuple[int, str | None]:
    """Affected lines the candidate cuts while they stay frozen (a decrease keeps the line's status), and the
    English text the first of them would read (:data:`STAYS_FROZEN_CUT`)."""
    hit = comparison.filter(pl.col("changed") & (pl.col("candidate_action") == "decrease")
                            & (pl.col("candidate_new_status") == "frozen"))
    return hit.height, (hit["candidate_explanation_en"][0] if hit.height else None)


@dataclass(frozen=True)
class CellRedraw:
    """What re-seeding the test cells by the candidate's version would change (the page shows the live cells)."""

    redrawn: bool  # the candidate's version differs from the live one
    moved: int  # accounts whose cell the candidate's version would change
    outcomes_differ: int  # accounts whose candidate decision would differ from the one shown
    cells: pl.DataFrame  # live cell x cell under the candidate's version: accounts


def cell_redraw(shown: pl.DataFrame, redrawn: pl.DataFrame | None) -> CellRedraw:
    """Compare the candidate decided with the live version's cells (``shown``) and with its own (``redrawn``;
    None: the candidate keeps the live version, so the cells are the same)."""
    if redrawn is None:
        return CellRedraw(False, 0, 0, pl.DataFrame(schema={"live_cell": pl.String, "candidate_cell": pl.String,
                                                            "accounts": pl.Int64}))
    both = shown.select("account_id", "test_cell", "action", "new_limit_cents").join(
        redrawn.select("account_id", pl.col("test_cell").alias("cell_2"), pl.col("action").alias("action_2"),
                       pl.col("new_limit_cents").alias("limit_2")), on="account_id", how="inner")
    cells = (both.group_by(pl.col("test_cell").alias("live_cell"), pl.col("cell_2").alias("candidate_cell"))
             .agg(pl.len().cast(pl.Int64).alias("accounts")).sort("live_cell", "candidate_cell"))
    return CellRedraw(
        True,
        both.filter(pl.col("test_cell") != pl.col("cell_2")).height,
        both.filter((pl.col("action") != pl.col("action_2")) | (pl.col("new_limit_cents") != pl.col("limit_2"))).height,
        cells,
    )


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def policy_changes(live: Mapping[str, Any], candidate: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(key, live value, candidate value)`` of every policy key that differs (dotted keys; absent: ``-``)."""
    a, b = _flatten(live, "policy"), _flatten(candidate, "policy")
    return [(k, str(a.get(k, "-")), str(b.get(k, "-"))) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


@dataclass(frozen=True)
class WhatIfPage:
    """What the what-if page shows: every number comes from these frames; the template formats, never computes."""

    as_of: dt.date
    live_version: str
    candidate_version: str
    model_version: str
    accounts: int  # lines decided (active and frozen) on the night
    changed: int  # outcome differs
    harsher: int
    gentler: int
    relabelled: int  # same outcome, another action label
    wording_changed: int  # customer text differs (any line)
    candidate_source: str  # the candidate file's name (or the DAG param's)
    candidate_sha256: str  # of the candidate's bytes: which file produced this page
    swap: pl.DataFrame  # swap_matrix
    grades: pl.DataFrame  # by_grade
    harsher_rows: pl.DataFrame  # harsher_accounts, first rows
    samples: pl.DataFrame  # sample_explanations
    cells: CellRedraw
    changes: list[tuple[str, str, str]]  # policy_changes
    wording: pl.DataFrame  # wording_samples
    notes: list[str] = field(default_factory=list)

    @property
    def actions(self) -> tuple[str, ...]:
        return LIMIT_ACTIONS

    def total(self, column: str) -> int:
        return int(self.grades[column].sum()) if self.grades.height else 0


def render_whatif(page: WhatIfPage) -> str:
    """The what-if page as HTML text: self-contained (the report's CSS inline, no script, no network)."""
    env = environment()
    return env.get_template(PAGE_TEMPLATE).render(page=page, definitions={
        "harsher": HARSHER_DEFINITION, "changed": CHANGED_DEFINITION, "el": EL_DEFINITION,
        "wording": WORDING_DEFINITION})
