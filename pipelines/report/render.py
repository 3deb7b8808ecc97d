"""The report page's markup: :func:`render_report` turns a :class:`~pipelines.report.sections.ReportData` and
the charts' data URIs into one self-contained HTML page, from the Jinja2 templates in ``templates/``
(``report.html.j2``, one template per section, ``report.css``). The only module that knows the templates.

Computes nothing the sections did not: it derives what the page lists (the "look at first" items, the
action-by-grade grid) and leaves the markup to the templates. Every value is escaped; nothing is marked safe.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import polars as pl
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from jinja2.ext import Extension
from markupsafe import Markup

from pipelines.model.metrics import psi_band
from pipelines.report.sections import (
    ACTION_ORDER, ReportData, SWAP_SET_DEFINITION, UNSCORED, format_cny, format_cny_cents,
)
from pipelines.report.trends import SOURCES as TREND_SOURCES

TEMPLATES = Path(__file__).resolve().parent / "templates"
PAGE_TEMPLATE = "report.html.j2"


class _JoinLines(Extension):
    """Drop each line break and the indentation after it from the ``*.html.j2`` templates' source.

    The page has always been one line of markup (plus the CSS); joining the templates' lines keeps it byte for
    byte while the templates stay readable. The last line break of a file stays (``keep_trailing_newline``
    ends the page with it), and ``report.css`` keeps its lines. A space that begins a continued line must be
    written ``{{ " " }}``.
    """

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        if name is None or not name.endswith(".html.j2"):
            return source
        return re.sub(r"\n[ \t]*(?!\Z)", "", source)


def _escape(value: Any) -> Markup:
    """Every ``{{ }}`` value, escaped with ``html.escape`` (as the page always was: ``&#x27;`` for ``'``, where
    markupsafe writes ``&#39;``), so the bytes of the page did not change when it moved to templates. Markup
    (a macro's output) passes untouched. Do not use the ``join``/``e``/``escape`` filters: they escape with
    markupsafe."""
    if hasattr(value, "__html__"):
        return value  # type: ignore[no-any-return]
    return Markup(html.escape(str(value), quote=True))


def _count(value: Any) -> str:
    return f"{int(value):,}"


def _fixed(value: Any, digits: int) -> str:
    return f"{value:.{digits}f}"


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100.0 * float(value):.{digits}f}%"


def _manifest_value(manifest: Mapping[str, Any], key: str) -> Any:
    value: Any = manifest
    for part in key.split("."):
        value = value[part]
    return value


def _fail(message: str) -> NoReturn:
    raise ValueError(message)


@functools.cache
def environment() -> Environment:
    """The templates' environment (autoescaped, strict: a missing value is an error, not an empty string)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        finalize=_escape,
        extensions=[_JoinLines],
    )
    env.filters.update(count=_count, fixed=_fixed, pct=_pct, cny=format_cny, cny_cents=format_cny_cents,
                       manifest_value=_manifest_value)
    env.globals["fail"] = _fail
    env.globals["trend_sources"] = TREND_SOURCES
    return env


@dataclass(frozen=True)
class _ActionGrade:
    """Actions (rows) by grade (columns); a cell is the ``by_action_grade`` row, or None where no account."""

    grades: list[str]
    rows: list[tuple[str, list[dict[str, Any] | None]]]


@dataclass(frozen=True)
class _PageView:
    """What the page lists beyond the sections' own fields."""

    attention: list[str]
    grade_mix: list[tuple[str, int]]
    net_exposure_cents: int
    quarantined_rows: int
    failed_expectations: int
    trend: pl.DataFrame  # the model trend, the serving version labelled
    psi_columns: list[pl.DataFrame]  # feature PSI in three columns (none when no feature has a reference)
    score_band: str | None
    serving_judged_before: bool  # the serving champion was trained on an earlier night
    action_grade: _ActionGrade
    test_cell_action_columns: list[tuple[str, str, str]]
    swap_set_definition: str
    roll30: _RollGrid | None = None  # issue 20: the 30-day roll as a matrix


def _attention(data: ReportData) -> list[str]:
    """The few things a reader should look at first."""
    items = _chain_attention(data)  # first: a stale night's every figure is from the chain before a rerun
    failed = data.data.datasets.filter(~pl.col("ok"))
    if failed.height:
        items.append(f"Validation failed critically for {', '.join(failed['dataset'].to_list())}.")
    quarantined = int(data.data.datasets["quarantined_rows"].sum()) if data.data.datasets.height else 0
    if quarantined:
        items.append(f"{quarantined:,} landing rows quarantined tonight (see Data).")
    m = data.model
    shifted = m.feature_psi.filter(pl.col("band") == "shifted")["feature"].to_list()
    watch = m.feature_psi.filter(pl.col("band") == "watch")["feature"].to_list()
    if shifted:
        items.append(f"Feature PSI shifted (>= {m.psi_bands[1]}): {', '.join(shifted)}.")
    if watch:
        items.append(f"Feature PSI on watch ({m.psi_bands[0]}-{m.psi_bands[1]}): {', '.join(watch)}.")
    if m.score_psi is not None and m.score_psi >= m.psi_bands[0]:
        items.append(f"Score distribution moved since the previous run: PSI {m.score_psi:.3f}.")
    for gate in m.trained_tonight:
        if not gate.promote:
            items.append(f"Challenger {gate.version} was rejected: {gate.summary}.")
    overflow = int(data.collections.queue["overflow"].sum()) if data.collections.queue.height else 0
    if overflow:
        items.append(f"{overflow:,} agent cases over capacity went to automated treatment.")
    if data.decisions.swap.size:
        items.append(f"{data.decisions.swap.size:,} accounts changed limit action because the model changed.")
    return items + _trend_attention(data)


def _chain_attention(data: ReportData) -> list[str]:
    """This night stale (an earlier night was rerun since: chain.night_status, the store's own rebuild hint),
    earlier stale nights in the lake, and a previous night never published."""
    items = []
    if data.stale.get("stale"):
        items.append(f"This night ({data.as_of}) is STALE: {data.stale['reason']}. Its outputs and this page come "
                     f"from the chain before that rerun; {data.stale['rebuild']}.")
    earlier = [str(n) for n in data.stale_in_trend]
    if earlier:
        items.append(f"{len(earlier)} earlier night(s) are marked stale: {', '.join(earlier)} (their trend figures "
                     "are the old chain's).")
    if data.previous_unpublished is not None:
        items.append(f"The previous night, {data.previous_unpublished}, was not published: "
                     + (f"tonight is compared with {data.previous_run}." if data.previous_run else
                        "there is no published night to compare tonight with."))
    return items


def _trend_attention(data: ReportData) -> list[str]:
    """Nights scored by a model trained after their business date (a backfill served by a later champion)."""
    t = data.trends
    if t is None:
        return []
    later = t.scored_later
    items = []
    tonight = later.filter(pl.col("as_of") == data.as_of)
    if tonight.height:
        row = tonight.row(0, named=True)
        items.append(f"Tonight was scored by model {row['model_version']}, trained on {row['model_as_of']}, after this "
                     f"business date ({data.as_of}): a backfill served by a later champion, which saw this night's future.")
    earlier = later.filter(pl.col("as_of") != data.as_of)
    if earlier.height:
        nights = ", ".join(str(d) for d in earlier["as_of"].to_list())
        items.append(f"{earlier.height} earlier night(s) in the trend were scored by a model trained after their "
                     f"business date: {nights} (marked in the trend table).")
    return items


@dataclass(frozen=True)
class _RollGrid:
    """A roll-rate frame as a matrix: from-bucket rows, to-bucket columns, each cell (share, accounts)."""

    buckets: list[str]
    rows: list[tuple[str, int, list[tuple[float, int]]]]  # from_bucket, its accounts, its cells


def roll_grid(roll: pl.DataFrame | None) -> _RollGrid | None:
    if roll is None:
        return None
    names = list(dict.fromkeys(roll["from_bucket"].to_list()))
    cells = {(r["from_bucket"], r["to_bucket"]): (r["share"], r["accounts"]) for r in roll.iter_rows(named=True)}
    return _RollGrid(names, [(f, sum(cells[(f, t)][1] for t in names), [cells[(f, t)] for t in names]) for f in names])


def _grade_mix(data: ReportData) -> list[tuple[str, int]]:
    grades = data.decisions.by_action_grade.group_by("grade").agg(pl.col("accounts").sum())
    counts = dict(grades.iter_rows())
    return [(g, int(counts[g])) for g in [*data.grades, UNSCORED] if g in counts]


def _action_grade(by_action_grade: pl.DataFrame, grades: Sequence[str]) -> _ActionGrade:
    cells = {(r["action"], r["grade"]): r for r in by_action_grade.iter_rows(named=True)}
    columns = [g for g in [*grades, UNSCORED] if any(k[1] == g for k in cells)]
    actions = [a for a in ACTION_ORDER if any(k[0] == a for k in cells)]
    return _ActionGrade(columns, [(a, [cells.get((a, g)) for g in columns]) for a in actions])


def _page_view(data: ReportData) -> _PageView:
    m = data.model
    ds = data.data.datasets
    actions = data.decisions.by_action
    third = -(-m.feature_psi.height // 3)
    return _PageView(
        attention=_attention(data),
        grade_mix=_grade_mix(data),
        net_exposure_cents=int(actions["exposure_change_cents"].sum()) if actions.height else 0,
        quarantined_rows=int(ds["quarantined_rows"].sum()) if ds.height else 0,
        failed_expectations=int(ds["failed"].sum()) if ds.height else 0,
        trend=m.trend.with_columns(
            pl.when(pl.col("serving")).then(pl.col("version") + " (serving)").otherwise(pl.col("version"))
            .alias("version")
        ),
        psi_columns=[m.feature_psi.slice(i * third, third) for i in range(3)] if third else [],
        score_band=None if m.score_psi is None else psi_band(m.score_psi, m.psi_bands),
        serving_judged_before=m.serving_gate is not None and m.serving not in {g.version for g in m.trained_tonight},
        action_grade=_action_grade(data.decisions.by_action_grade, data.grades),
        test_cell_action_columns=[(a, a, "count") for a in ACTION_ORDER if a in data.decisions.test_cells.columns],
        swap_set_definition=SWAP_SET_DEFINITION,
        roll30=roll_grid(data.trends.roll30.roll) if data.trends is not None else None,
    )


def render_report(data: ReportData, uris: Mapping[str, str]) -> str:
    """The page as HTML text. ``uris`` maps chart names to ``data:image/png;base64,...`` URIs."""
    return environment().get_template(PAGE_TEMPLATE).render(data=data, view=_page_view(data), uris=uris)
