"""Charts of the nightly run report, drawn with matplotlib's Agg canvas into inline PNGs.

Every chart has a title, axis labels with units, and CNY amounts formatted as ``¥1.2M``. Figures are built
on :class:`matplotlib.figure.Figure` with an Agg canvas (never pyplot: no global figure state, no
display) and saved without the ``Software`` metadata, so the same data always gives the same PNG bytes.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.dates import AutoDateLocator, DateFormatter
from matplotlib.ticker import FuncFormatter, PercentFormatter

from pipelines.report.sections import ACTION_ORDER, ReportData, format_cny_compact

DPI = 100
SIZE = (6.4, 3.6)  # inches: 640 x 360 px, half the page width
BLUE, ORANGE, GREEN, RED, GREY, PURPLE = "#1f5f99", "#d9822b", "#2e7d32", "#c62828", "#8a96a3", "#6a3d9a"
ACTION_COLOURS = {"freeze": RED, "decrease": ORANGE, "hold": GREY, "unfreeze": PURPLE, "increase": GREEN}
_CNY_AXIS = FuncFormatter(lambda yuan, _pos: format_cny_compact(int(round(yuan * 100))))
# the trend strip's balances move by a few percent: ticks a tenth of a million apart need two decimals
_CNY_AXIS_FINE = FuncFormatter(lambda yuan, _pos: f"¥{yuan / 1e6:,.2f}M" if abs(yuan) >= 1e6 else
                               f"¥{yuan / 1e3:,.1f}K" if abs(yuan) >= 1e3 else f"¥{yuan:,.0f}")


def _figure(size: tuple[float, float] = SIZE) -> Figure:
    fig = Figure(figsize=size, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def to_data_uri(fig: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI (deterministic: no timestamp or software tag)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _finish(fig: Figure) -> str:
    fig.tight_layout()
    return to_data_uri(fig)


# --- model ------------------------------------------------------------------------------------------


def trend_chart(trend: pl.DataFrame) -> str:
    fig = _figure()
    ax = fig.add_subplot()
    x = np.arange(trend.height)
    for column, label, colour in (("auc", "AUC", BLUE), ("ks", "KS", ORANGE), ("gini", "Gini", GREEN)):
        ax.plot(x, trend[column].to_numpy(), marker="o", color=colour, label=label)
    serving = np.flatnonzero(trend["serving"].to_numpy())
    for i in serving:
        ax.axvline(i, color=GREY, linestyle=":", linewidth=1)
    ax.set_xticks(x, [v[:10] for v in trend["version"].to_list()], rotation=30, ha="right", fontsize=8)
    ax.set_title("OOT discrimination by registered model version")
    ax.set_xlabel("model version (training date); dotted: serving tonight")
    ax.set_ylabel("metric on the OOT snapshot")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _finish(fig)


def roc_chart(fpr: np.ndarray, tpr: np.ndarray, auc: float) -> str:
    fig = _figure((4.6, 3.8))
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, color=BLUE, label=f"model (AUC {auc:.4f})")
    ax.plot([0, 1], [0, 1], color=GREY, linestyle="--", label="random")
    ax.set_title("ROC curve, OOT snapshot")
    ax.set_xlabel("false positive rate (share of goods flagged)")
    ax.set_ylabel("true positive rate (share of bads)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _finish(fig)


def ks_chart(curve: Any) -> str:
    fig = _figure((4.6, 3.8))
    ax = fig.add_subplot()
    ax.plot(curve.population_share, curve.bad_share, color=RED, label="bads captured")
    ax.plot(curve.population_share, curve.good_share, color=GREEN, label="goods captured")
    at = curve.at_share
    lo = np.interp(at, curve.population_share, curve.good_share)
    ax.vlines(at, lo, lo + curve.ks, color=BLUE, linewidth=2, label=f"KS {curve.ks:.4f} at {at:.0%}")
    ax.set_title("KS curve, OOT snapshot")
    ax.set_xlabel("share of accounts, highest PD first")
    ax.set_ylabel("cumulative share")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _finish(fig)


def calibration_chart(calibration: list[dict[str, Any]]) -> str:
    fig = _figure()
    ax = fig.add_subplot()
    deciles = np.array([row["decile"] for row in calibration])
    width = 0.4
    predicted = [row["mean_pd"] for row in calibration]
    observed = [row["bad_rate"] for row in calibration]
    ax.bar(deciles - width / 2, predicted, width, color=BLUE, label="predicted (mean PD)")
    ax.bar(deciles + width / 2, observed, width, color=ORANGE, label="observed bad rate")
    ax.set_title("Calibration by PD decile, OOT snapshot")
    ax.set_xlabel("PD decile (1 = lowest PD)")
    ax.set_ylabel("bad rate within the horizon")
    ax.set_xticks(deciles)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return _finish(fig)


def score_distribution_chart(now: np.ndarray, previous: np.ndarray | None, psi: float | None) -> str:
    fig = _figure()
    ax = fig.add_subplot()
    values = now if previous is None else np.r_[now, previous]
    edges = np.linspace(np.floor(values.min() / 10) * 10, np.ceil(values.max() / 10) * 10 + 10, 41)
    weights = np.full(now.size, 1.0 / max(now.size, 1))
    ax.hist(now, bins=edges, weights=weights, histtype="stepfilled", alpha=0.45, color=BLUE, label="tonight")
    if previous is not None and previous.size:
        ax.hist(previous, bins=edges, weights=np.full(previous.size, 1.0 / previous.size), histtype="step",
                linewidth=1.6, color=ORANGE, label="previous run")
    title = "Score distribution" + (f" (PSI {psi:.4f} vs previous run)" if psi is not None else "")
    ax.set_title(title)
    ax.set_xlabel("score (points; higher = lower PD)")
    ax.set_ylabel("share of accounts scored")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return _finish(fig)


def importance_chart(gain: pl.DataFrame, shap: pl.DataFrame) -> str:
    rows = max(gain.height, shap.height, 1)
    panels = [p for p in (
        (gain, "gain", "Top features by gain", "mean gain per split", BLUE),
        (shap, "mean_abs_shap", "Top features by mean |SHAP|", "mean |SHAP| (log-odds)", ORANGE),
    ) if p[0].height]  # a missing one is said in the page's note, not drawn as empty axes
    fig = _figure((6.4 * len(panels), 0.9 + 0.26 * rows))
    for position, (frame, column, title, xlabel, colour) in enumerate(panels, 1):
        ax = fig.add_subplot(1, len(panels), position)
        y = np.arange(frame.height)[::-1]
        ax.barh(y, frame[column].to_numpy(), color=colour)
        ax.set_yticks(y, frame["feature"].to_list(), fontsize=8)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
    return _finish(fig)


# --- portfolio --------------------------------------------------------------------------------------


def delinquency_chart(frame: pl.DataFrame) -> str:
    fig = _figure()
    ax = fig.add_subplot()
    late = frame.filter(pl.col("bucket") != "current")
    x = np.arange(late.height)
    width = 0.4
    ax.bar(x - width / 2, late["account_share"].to_numpy(), width, color=BLUE, label="share of accounts")
    ax.bar(x + width / 2, late["balance_share"].to_numpy(), width, color=ORANGE, label="share of outstanding principal")
    ax.set_xticks(x, late["bucket"].to_list())
    ax.set_title("Delinquency by DPD bucket (accounts owing money)")
    ax.set_xlabel("DPD bucket (days past due)")
    ax.set_ylabel("share of the book owing money")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return _finish(fig)


def roll_rate_chart(frame: pl.DataFrame) -> str:
    names = list(dict.fromkeys(frame["from_bucket"].to_list()))
    n = len(names)
    shares = frame["share"].to_numpy().reshape(n, n)  # sorted from-major, both in bucket order
    counts = frame["accounts"].to_numpy().reshape(n, n)
    fig = _figure((6.4, 4.2))
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):  # a cell per bucket pair: a handful of labels, not data rows
        for j in range(n):
            colour = "white" if shares[i, j] > 0.6 else "#1d2430"
            ax.text(j, i, f"{shares[i, j]:.1%}\n({counts[i, j]:,})", ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(n), names)
    ax.set_yticks(range(n), names)
    ax.set_title("Roll rates since the previous run")
    ax.set_xlabel("DPD bucket tonight")
    ax.set_ylabel("DPD bucket at the previous run")
    fig.colorbar(image, ax=ax, format=PercentFormatter(1.0), label="share of the row's accounts")
    return _finish(fig)


def vintage_chart(frame: pl.DataFrame, bad_dpd: int) -> str:
    fig = _figure()
    ax = fig.add_subplot()
    vintages = frame["vintage"].unique().sort().to_list()
    colours = [BLUE, ORANGE, GREEN, RED, PURPLE, GREY, "#17becf", "#8c564b", "#bcbd22", "#e377c2", "#7f7f7f", "#393b79"]
    for i, vintage in enumerate(vintages):  # one line per opening month (a dozen or so)
        rows = frame.filter(pl.col("vintage") == vintage)
        ax.plot(rows["months_on_book"].to_numpy(), rows["bad_rate"].to_numpy(), marker=".",
                color=colours[i % len(colours)], label=f"{vintage:%Y-%m} (n={rows['accounts'][0]:,})")
    ax.set_title(f"Vintage curves: ever {bad_dpd}+ DPD by opening month")
    ax.set_xlabel("months on book")
    ax.set_ylabel(f"share of accounts ever {bad_dpd}+ DPD")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=6.5, ncol=2)
    return _finish(fig)


# --- decisions and collections ----------------------------------------------------------------------


def exposure_chart(by_action_grade: pl.DataFrame, grades: tuple[str, ...]) -> str:
    fig = _figure()
    ax = fig.add_subplot()
    moved = by_action_grade.filter(pl.col("exposure_change_cents") != 0)
    labels = [g for g in [*grades, "unscored"] if g in set(moved["grade"].to_list())]
    x = np.arange(len(labels))
    actions = [a for a in ACTION_ORDER if a in set(moved["action"].to_list())]
    width = 0.8 / max(len(actions), 1)
    for k, action in enumerate(actions):
        rows = dict(moved.filter(pl.col("action") == action).select("grade", "exposure_change_cents").iter_rows())
        yuan = [rows.get(g, 0) / 100 for g in labels]  # display only: axis positions are floats
        ax.bar(x + (k - (len(actions) - 1) / 2) * width, yuan, width, color=ACTION_COLOURS.get(action, GREY),
               label=action)
    ax.axhline(0, color="#1d2430", linewidth=0.8)
    ax.set_xticks(x, labels)
    ax.set_title("Exposure change by action and grade")
    ax.set_xlabel("grade tonight")
    ax.set_ylabel("sum of new - previous limit (CNY)")
    ax.yaxis.set_major_formatter(_CNY_AXIS)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig)


def limit_change_chart(changes: pl.DataFrame) -> str:
    fig = _figure()
    ax = fig.add_subplot()
    yuan = changes["change_cents"].to_numpy() / 100  # display only
    edges = np.histogram_bin_edges(yuan, bins=40)
    seen = set(changes["action"].unique().to_list())
    for action in [a for a in ACTION_ORDER if a in seen]:
        values = changes.filter(pl.col("action") == action)["change_cents"].to_numpy() / 100
        ax.hist(values, bins=edges, color=ACTION_COLOURS.get(action, GREY), alpha=0.8,
                label=f"{action} ({values.size:,})")
    ax.set_title("Limit changes tonight")
    ax.set_xlabel("new - previous limit per account (CNY)")
    ax.set_ylabel("accounts")
    ax.xaxis.set_major_formatter(_CNY_AXIS)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig)


def queue_chart(queue: pl.DataFrame, capacity: int) -> str:
    fig = _figure()
    ax = fig.add_subplot()
    x = np.arange(queue.height)
    ax.bar(x, queue["accounts"].to_numpy(), color=BLUE, label="cases tonight")
    overflow = queue["overflow"].to_numpy()
    if overflow.sum():
        ax.bar(x, overflow, color=ORANGE, label="overflow from agent queue")
    agent = [i for i, t in enumerate(queue["treatment"].to_list()) if t == "agent"]
    for i in agent:
        ax.hlines(capacity, i - 0.45, i + 0.45, color=RED, linewidth=2, label=f"agent capacity ({capacity:,}/day)")
    ax.set_xticks(x, queue["treatment"].to_list(), rotation=15, fontsize=8)
    ax.set_title("Collections queue by treatment vs capacity")
    ax.set_xlabel("treatment")
    ax.set_ylabel("cases (accounts)")
    ax.set_ylim(0, max(int(queue["accounts"].max() or 0), capacity if agent else 0) * 1.15 + 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig)


# --- trends (issue 20) ------------------------------------------------------------------------------


def _dates_axis(ax: Any, dates: list[Any]) -> None:
    ax.set_xlim(dates[0] - dt.timedelta(days=1), dates[-1] + dt.timedelta(days=1))
    ax.xaxis.set_major_locator(AutoDateLocator(minticks=2, maxticks=5))
    ax.xaxis.set_major_formatter(DateFormatter("%m-%d"))
    ax.tick_params(labelsize=7.5)
    ax.grid(alpha=0.3)


def _values(frame: pl.DataFrame, column: str, scale: float = 1.0) -> np.ndarray:
    """A trend column as floats for plotting only (missing nights: NaN, drawn as gaps)."""
    return np.array([np.nan if v is None else v / scale for v in frame[column].to_list()], dtype=float)


def trend_strip_chart(frame: pl.DataFrame, actions: list[str], psi_bands: tuple[float, float]) -> str:
    """The trend strip: 30+ DPD rate, balances, expected loss, limit actions, queue size, score PSI by night.

    Only measures with at least one night's value get a panel (the page names the missing ones).
    """
    dates = frame["as_of"].to_list()
    x = np.array(dates, dtype="datetime64[D]")
    panels: list[tuple[str, Callable[[Any], None]]] = []

    def line(ax: Any, values: np.ndarray, colour: str, label: str | None = None) -> None:
        ax.plot(x, values, color=colour, marker="o", markersize=2.5, linewidth=1.4, label=label)

    def has(column: str) -> bool:
        return column in frame.columns and frame[column].null_count() < frame.height

    if has("dpd30_rate"):
        def dpd(ax: Any) -> None:
            line(ax, _values(frame, "dpd30_rate"), RED)
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
        panels.append(("30+ DPD rate (accounts owing)", dpd))
    if has("outstanding_cents"):
        def balance(ax: Any) -> None:
            line(ax, _values(frame, "outstanding_cents", 100), BLUE)
            ax.yaxis.set_major_formatter(_CNY_AXIS_FINE)
        panels.append(("Outstanding principal (CNY)", balance))
    if has("expected_loss_cents") or has("queue_expected_loss_cents"):
        def loss(ax: Any) -> None:
            if has("expected_loss_cents"):
                line(ax, _values(frame, "expected_loss_cents", 100), PURPLE, "book")
            line(ax, _values(frame, "queue_expected_loss_cents", 100), ORANGE, "queue")
            ax.yaxis.set_major_formatter(_CNY_AXIS_FINE)
            ax.legend(fontsize=7, loc="best")
        panels.append(("Expected loss (CNY)", loss))
    if actions:
        def acts(ax: Any) -> None:
            for action in actions:
                line(ax, _values(frame, f"action_{action}"), ACTION_COLOURS.get(action, GREY), action)
            ax.set_yscale("symlog", linthresh=10)
            # headroom above the largest count (hold, thousands) so the legend never sits on a line
            counts = np.concatenate([_values(frame, f"action_{a}") for a in actions])
            peak = float(np.nanmax(counts)) if np.isfinite(counts).any() else 0.0
            ax.set_ylim(bottom=0, top=peak * 40 + 10)
            ax.legend(fontsize=6.5, loc="upper center", ncol=len(actions), frameon=False)
        panels.append(("Limit actions (accounts)", acts))
    if has("queue_size"):
        panels.append(("Collection queue (accounts)", lambda ax: line(ax, _values(frame, "queue_size"), GREEN)))
    if has("score_psi"):
        def psi(ax: Any) -> None:
            values = _values(frame, "score_psi")
            line(ax, values, BLUE)
            top = max(float(np.nanmax(values)) * 1.3, 0.02)
            for band, colour in zip(psi_bands, (ORANGE, RED), strict=True):
                if band <= top:  # a band far above tonight's values would flatten them to a line at zero
                    ax.axhline(band, color=colour, linestyle=":", linewidth=1)
            ax.set_ylim(0, max([top, *(b * 1.05 for b in psi_bands if b <= top)]))
        panels.append((f"Score PSI vs previous night (watch from {psi_bands[0]})", psi))
    columns = 3
    rows = -(-len(panels) // columns)
    fig = _figure((12.8, 2.3 * rows))
    for i, (title, draw) in enumerate(panels):
        ax = fig.add_subplot(rows, columns, i + 1)
        draw(ax)
        ax.set_title(title, fontsize=9.5)
        _dates_axis(ax, dates)
    return _finish(fig)


def draw_charts(data: ReportData) -> dict[str, str]:
    """Every chart of the page that has something to draw, as a data URI, keyed as the templates expect.

    A chart with nothing to draw is left out: the page says why in its place (no blank image, no empty axes).
    """
    m, p, d, c = data.model, data.portfolio, data.decisions, data.collections
    charts: dict[str, Callable[[], str]] = {}
    if m.trend.height:
        charts["trend"] = lambda: trend_chart(m.trend)
    if m.oot.get("calibration"):
        charts["calibration"] = lambda: calibration_chart(m.oot["calibration"])
    if m.scores_now.size:
        charts["scores"] = lambda: score_distribution_chart(m.scores_now, m.scores_previous, m.score_psi)
    if m.gain.height or m.shap.height:
        charts["importance"] = lambda: importance_chart(m.gain, m.shap)
    if p.delinquency.filter(pl.col("bucket") != "current")["accounts"].sum():
        charts["delinquency"] = lambda: delinquency_chart(p.delinquency)
    if p.vintages.height:
        charts["vintage"] = lambda: vintage_chart(p.vintages, p.bad_dpd)
    if d.by_action_grade.filter(pl.col("exposure_change_cents") != 0).height:
        charts["exposure"] = lambda: exposure_chart(d.by_action_grade, data.grades)
    if d.changes.height:
        charts["changes"] = lambda: limit_change_chart(d.changes)
    if c.queue.height:
        charts["queue"] = lambda: queue_chart(c.queue, c.capacity)
    t = data.trends
    if t is not None and t.frame.height >= 2:
        charts["trend_strip"] = lambda: trend_strip_chart(t.frame, t.actions, m.psi_bands)
    if m.roc is not None and m.ks is not None and m.recomputed_auc is not None:
        fpr, tpr = m.roc
        auc, ks = m.recomputed_auc, m.ks
        charts["roc"] = lambda: roc_chart(fpr, tpr, auc)
        charts["ks"] = lambda: ks_chart(ks)
    if p.roll is not None and p.roll["accounts"].sum():
        roll = p.roll
        charts["roll"] = lambda: roll_rate_chart(roll)
    return {name: draw() for name, draw in charts.items()}
