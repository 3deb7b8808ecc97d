"""Charts of the nightly run report, drawn with matplotlib's Agg canvas into inline PNGs.

Every chart has a title, axis labels with units, and CNY amounts formatted as ``¥1.2M``. Figures are built
on :class:`matplotlib.figure.Figure` with an Agg canvas (never pyplot: no global figure state, no
display) and saved without the ``Software`` metadata, so the same data always gives the same PNG bytes.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from pipelines.report.sections import ACTION_ORDER, ReportData, format_cny_compact

DPI = 100
SIZE = (6.4, 3.6)  # inches: 640 x 360 px, half the page width
BLUE, ORANGE, GREEN, RED, GREY, PURPLE = "#1f5f99", "#d9822b", "#2e7d32", "#c62828", "#8a96a3", "#6a3d9a"
ACTION_COLOURS = {"freeze": RED, "decrease": ORANGE, "hold": GREY, "unfreeze": PURPLE, "increase": GREEN}
_CNY_AXIS = FuncFormatter(lambda yuan, _pos: format_cny_compact(int(round(yuan * 100))))


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


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=GREY)
    ax.set_xticks([])
    ax.set_yticks([])


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
    if values.size == 0:
        _empty(ax, "no scores")
        return _finish(fig)
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
    fig = _figure((12.8, 0.9 + 0.26 * rows))
    for position, frame, column, title, xlabel, colour in (
        (1, gain, "gain", "Top features by gain", "mean gain per split", BLUE),
        (2, shap, "mean_abs_shap", "Top features by mean |SHAP|", "mean |SHAP| (log-odds)", ORANGE),
    ):
        ax = fig.add_subplot(1, 2, position)
        if frame.height == 0:
            _empty(ax, "not available")
            continue
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
    if not vintages:
        _empty(ax, "no accounts opened since the lake began")
        return _finish(fig)
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
    if moved.height == 0:
        _empty(ax, "no limit changed tonight")
        return _finish(fig)
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
    if changes.height == 0:
        _empty(ax, "no limit changed tonight")
        return _finish(fig)
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
    if queue.height == 0:
        _empty(ax, "no account in collections tonight")
        return _finish(fig)
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


def draw_charts(data: ReportData) -> dict[str, str]:
    """Every chart of the page as a data URI, keyed as :func:`pipelines.report.report.render_report` expects."""
    m, p, d, c = data.model, data.portfolio, data.decisions, data.collections
    charts: dict[str, Callable[[], str]] = {
        "trend": lambda: trend_chart(m.trend),
        "calibration": lambda: calibration_chart(m.oot["calibration"]),
        "scores": lambda: score_distribution_chart(m.scores_now, m.scores_previous, m.score_psi),
        "importance": lambda: importance_chart(m.gain, m.shap),
        "delinquency": lambda: delinquency_chart(p.delinquency),
        "vintage": lambda: vintage_chart(p.vintages, p.bad_dpd),
        "exposure": lambda: exposure_chart(d.by_action_grade, data.grades),
        "changes": lambda: limit_change_chart(d.changes),
        "queue": lambda: queue_chart(c.queue, c.capacity),
    }
    if m.roc is not None and m.ks is not None and m.recomputed_auc is not None:
        fpr, tpr = m.roc
        auc, ks = m.recomputed_auc, m.ks
        charts["roc"] = lambda: roc_chart(fpr, tpr, auc)
        charts["ks"] = lambda: ks_chart(ks)
    if p.roll is not None:
        roll = p.roll
        charts["roll"] = lambda: roll_rate_chart(roll)
    return {name: draw() for name, draw in charts.items()}
