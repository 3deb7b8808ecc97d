"""The report page's markup: :func:`render_report` turns a :class:`~pipelines.report.sections.ReportData` and
the charts' data URIs into one self-contained HTML page. Computes nothing; every value is escaped."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from pipelines.model.metrics import psi_band
from pipelines.report.sections import ACTION_ORDER, GateView, ReportData, SWAP_SET_DEFINITION, UNSCORED, format_cny


_CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 "DejaVu Sans",Helvetica,Arial,sans-serif;color:#1d2430;background:#f4f6f9}
header{background:#16324f;color:#fff;padding:14px 28px 12px}
header h1{margin:0;font-size:22px;font-weight:600}
header .sub{color:#c9d6e6;font-size:13px;margin-top:3px}
header code{color:#fff}
nav{background:#fff;border-bottom:1px solid #dde3ea;padding:6px 28px;font-size:13px}
nav a{color:#16324f;margin-right:18px;text-decoration:none;font-weight:600}
main{padding:14px 28px 40px;max-width:1320px}
.cards{display:grid;grid-template-columns:repeat(6,1fr);gap:10px}
.card{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:10px 12px;min-height:112px}
.card .label{color:#5b6675;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .big{font-size:26px;font-weight:700;margin:2px 0}
.card .small{font-size:12px;color:#3b4656}
.card .small div{display:flex;justify-content:space-between}
.attention{background:#fff;border:1px solid #dde3ea;border-left:4px solid #c77700;border-radius:6px;
 margin:10px 0;padding:8px 14px}
.attention.ok{border-left-color:#2e7d32}
.attention ul{margin:4px 0;padding-left:18px}
section{background:#fff;border:1px solid #dde3ea;border-radius:6px;margin:14px 0;padding:4px 18px 14px}
section h2{font-size:18px;margin:12px 0 6px;color:#16324f}
h3{font-size:14px;margin:14px 0 6px}
.grid2{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:18px;align-items:start}
.cols3{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:14px;align-items:start}
.scroll{overflow-x:auto}
.card .version{font-size:14px;font-weight:700;word-break:break-all;margin:6px 0}
img{max-width:100%;height:auto;border:1px solid #eef1f5}
table{border-collapse:collapse;font-size:13px;margin:4px 0 8px}
th,td{padding:3px 9px;border-bottom:1px solid #e8ecf1;text-align:left;white-space:nowrap}
th{background:#f0f3f7;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#5b6675;font-size:12.5px;margin:4px 0}
.pill{display:inline-block;padding:0 8px;border-radius:9px;font-size:12px;font-weight:600;color:#fff}
.stable,.passed,.promoted{background:#2e7d32}.watch{background:#c77700}.shifted,.failed,.rejected{background:#c62828}
code{font-size:12.5px}
"""

def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _int(value: Any) -> str:
    return f"{int(value):,}"


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100.0 * float(value):.{digits}f}%"


def _pill(kind: str, text: str | None = None) -> str:
    return f'<span class="pill {_e(kind)}">{_e(text or kind)}</span>'


def _lookup(manifest: Mapping[str, Any], key: str) -> Any:
    value: Any = manifest
    for part in key.split("."):
        value = value[part]
    return value


def _m(manifest: Mapping[str, Any], key: str, number: bool = False) -> str:
    """A manifest value, tagged with its key so the page can be checked against the manifest."""
    value = _lookup(manifest, key)
    shown = _int(value) if number else str(value)
    return f'<span data-manifest="{_e(key)}">{_e(shown)}</span>'


def _table(frame: pl.DataFrame, columns: Sequence[tuple[str, str, Any]], numeric: Sequence[str] = ()) -> str:
    """An HTML table; ``columns`` are (column, header, formatter or None)."""
    head = "".join(f'<th class="{"n" if c in numeric else ""}">{_e(h)}</th>' for c, h, _ in columns)
    body = []
    for row in frame.iter_rows(named=True):  # page-sized tables (tens of rows), never the book
        cells = []
        for c, _, fmt in columns:
            value = row[c]
            text = fmt(value) if fmt is not None and value is not None else ("" if value is None else _e(value))
            cells.append(f'<td class="{"n" if c in numeric else ""}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{_e(alt)}">'


def _attention(data: ReportData) -> list[str]:
    """The few things a reader should look at first."""
    items = []
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
    return items


def _headline(data: ReportData) -> str:
    man = data.manifest
    m = data.model
    actions = data.decisions.by_action
    queue = data.collections.queue
    action_rows = "".join(
        f"<div><span>{_e(r['action'])}</span><b data-action=\"{_e(r['action'])}\">{_int(r['accounts'])}</b></div>"
        for r in actions.iter_rows(named=True)
    )
    grade_rows = "".join(f"<div><span>grade {_e(g)}</span><b>{n:,}</b></div>" for g, n in _grade_mix(data))
    queue_rows = "".join(
        f"<div><span>{_e(r['treatment'])}</span><b data-treatment=\"{_e(r['treatment'])}\">{_int(r['accounts'])}</b>"
        "</div>" for r in queue.iter_rows(named=True)
    )
    net = int(actions["exposure_change_cents"].sum()) if actions.height else 0
    ds = data.data.datasets
    quarantined = int(ds["quarantined_rows"].sum()) if ds.height else 0
    failed = int(ds["failed"].sum()) if ds.height else 0
    cards = [
        ("Accounts scored", _m(man, "outputs.scores.rows", number=True), f'<div class="small">{grade_rows}</div>'),
        ("Model", f'<div class="version">{_m(man, "model_version")}</div>',
         f'<div class="small"><div><span>OOT AUC</span><b>{m.oot["auc"]:.4f}</b></div>'
         f'<div><span>KS / Gini</span><b>{m.oot["ks"]:.3f} / {m.oot["gini"]:.3f}</b></div>'
         f'<div><span>OOT snapshot</span><b>{_e(m.oot_date)}</b></div>'
         f'<div><span>score PSI</span><b>{"n/a" if m.score_psi is None else f"{m.score_psi:.3f}"}</b></div></div>'),
        ("Limit decisions", _m(man, "outputs.limits.rows", number=True),
         f'<div class="small">{action_rows}<div><span>net exposure</span><b>{_e(format_cny(net))}</b></div></div>'),
        ("Collections queue", _m(man, "outputs.collection_queue.rows", number=True),
         f'<div class="small">{queue_rows}</div>'),
        ("Hardship offers", _m(man, "outputs.hardship_offers.rows", number=True),
         f'<div class="small"><div><span>loans re-termed</span></div><div><span>accounts</span>'
         f"<b>{data.collections.hardship_accounts:,}</b></div></div>"),
        ("Rows quarantined", f"{quarantined:,}",
         f'<div class="small"><div><span>failed expectations</span><b>{failed:,}</b></div>'
         f"<div><span>policy</span><b>{_m(man, 'policy_version')}</b></div></div>"),
    ]
    html_cards = "".join(
        f'<div class="card"><div class="label">{_e(label)}</div><div class="big">{big}</div>{rest}</div>'
        for label, big, rest in cards
    )
    items = _attention(data)
    if items:
        attention = '<div class="attention"><b>Look at first</b><ul>' + "".join(
            f"<li>{_e(i)}</li>" for i in items) + "</ul></div>"
    else:
        attention = '<div class="attention ok"><b>Nothing unusual tonight</b>: validation passed, no feature ' \
                    "or score drift, no challenger rejected, no queue over capacity.</div>"
    return f'<div class="cards">{html_cards}</div>{attention}'


def _grade_mix(data: ReportData) -> list[tuple[str, int]]:
    grades = data.decisions.by_action_grade.group_by("grade").agg(pl.col("accounts").sum())
    counts = dict(grades.iter_rows())
    return [(g, int(counts[g])) for g in [*data.grades, UNSCORED] if g in counts]


def _data_section(data: ReportData) -> str:
    d = data.data
    link = (f'<p>Great Expectations Data Docs of the night: <a href="{_e(d.data_docs_href)}">'
            f"{_e(d.data_docs_href)}</a></p>") if d.data_docs_href else \
        '<p class="note">No Data Docs were rendered for this date (validation.data_docs is off, or ingest ' \
        "did not run).</p>"
    table = _table(d.datasets, [
        ("dataset", "Dataset", None), ("validated_rows", "Rows validated", _int),
        ("curated_rows", "Rows curated", _int), ("quarantined_rows", "Rows quarantined", _int),
        ("passed", "Expectations passed", _int), ("failed", "Failed", _int),
        ("ok", "Result", lambda ok: _pill("passed") if ok else _pill("failed")),
    ], numeric=("validated_rows", "curated_rows", "quarantined_rows", "passed", "failed"))
    reasons = ""
    if d.quarantine_reasons.height:
        reasons = "<h3>Quarantine reasons</h3>" + _table(d.quarantine_reasons, [
            ("dataset", "Dataset", None), ("reason", "Reason", None), ("rows", "Rows", _int)], numeric=("rows",))
    failures = ""
    if d.failures:
        items = "".join(f"<li><code>{_e(f)}</code></li>" for f in d.failures)
        failures = f"<h3>Failed expectations</h3><ul>{items}</ul>"
    outputs = data.manifest.get("outputs", {})
    out_rows = "".join(
        f'<tr><td>{_e(name)}</td><td class="n">{_m(data.manifest, f"outputs.{name}.rows", number=True)}</td>'
        f'<td><code>{_e(meta.get("path", ""))}</code></td></tr>'
        for name, meta in sorted(outputs.items())
    )
    published = ('<h3>Published outputs (from the run manifest)</h3><table><thead><tr><th>Output</th>'
                 f'<th class="n">Rows</th><th>Path</th></tr></thead><tbody>{out_rows}</tbody></table>')
    return (f'<section id="data"><h2>Data</h2><p class="note">Landing drops of {_e(data.as_of)}: rows validated '
            "by the landing suites, rows published to the curated zone and rows held in quarantine.</p>"
            f"{table}{reasons}{failures}{link}{published}</section>")


def _gate_table(gate: GateView) -> str:
    rows = "".join(
        f"<tr><td>{_e(c['name'])}</td><td class=\"n\">{float(c['value']):.4f}</td><td>{_e(c['rule'])}</td>"
        f"<td>{_pill('passed') if c['passed'] else _pill('failed')}</td></tr>"
        for c in gate.checks
    )
    return ("<table><thead><tr><th>Check</th><th class=\"n\">Value</th><th>Rule</th><th>Result</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _model_section(data: ReportData, uris: Mapping[str, str]) -> str:
    m = data.model
    labelled = m.trend.with_columns(
        pl.when(pl.col("serving")).then(pl.col("version") + " (serving)").otherwise(pl.col("version")).alias("version")
    )
    trend = _table(labelled, [
        ("version", "Version", lambda v: f"<code>{_e(v)}</code>"), ("auc", "OOT AUC", lambda v: f"{v:.4f}"),
        ("ks", "KS", lambda v: f"{v:.4f}"), ("gini", "Gini", lambda v: f"{v:.4f}"),
        ("calibration_error", "Cal. error", lambda v: f"{v:.4f}"),
        ("promoted", "Gate", lambda v: _pill("promoted") if v else _pill("rejected")),
    ], numeric=("auc", "ks", "gini", "calibration_error"))
    if m.trained_tonight:
        decision = "".join(
            f"<p><b>Challenger <code>{_e(g.version)}</code></b> trained tonight: "
            f"{_pill('promoted') if g.promote else _pill('rejected')} {_e(g.summary)}</p>{_gate_table(g)}"
            for g in m.trained_tonight
        )
    elif not m.retrain:
        decision = "<p>No challenger was trained tonight (the run scored with the serving champion).</p>"
    else:
        decision = "<p>No new model version was registered tonight (a rerun reused an existing version).</p>"
    if m.serving_gate is not None and m.serving not in {g.version for g in m.trained_tonight}:
        decision += (f"<p>Serving champion <code>{_e(m.serving)}</code> was judged when it was trained: "
                     f"{_e(m.serving_gate.summary)}.</p>")
    curves = ""
    if m.roc is not None and m.ks is not None:
        curves = f'<div class="grid2">{_img(uris["roc"], "ROC curve")}{_img(uris["ks"], "KS curve")}</div>'
    note = f'<p class="note">{_e(m.curve_note)}</p>' if m.curve_note else ""
    third = -(-m.feature_psi.height // 3)
    psi_rows = '<div class="cols3">' + "".join(
        "<div>" + _table(m.feature_psi.slice(i * third, third), [
            ("feature", "Feature", None), ("psi", "PSI", lambda v: f"{v:.4f}"),
            ("band", "Band", _pill),
        ], numeric=("psi",)) + "</div>"
        for i in range(3) if third
    ) + "</div>"
    score_line = (f"Score PSI against the previous run ({_e(data.previous_run)}): <b>{m.score_psi:.4f}</b> "
                  f"{_pill(psi_band(m.score_psi, m.psi_bands))}" if m.score_psi is not None
                  else "No previous run to compare the score distribution with.")
    return (
        '<section id="model"><h2>Model</h2>'
        f"<p>Serving tonight: <code>{_m(data.manifest, 'model_version')}</code>; OOT snapshot {_e(m.oot_date)} "
        f"({m.oot['accounts']:,} accounts, bad rate {_pct(m.oot['bad_rate'], 2)}).</p>"
        "<h3>Champion / challenger decision</h3>" + decision +
        "<h3>OOT discrimination of recent registered versions</h3>"
        f'<div class="grid2"><div>{_img(uris["trend"], "OOT AUC, KS and Gini by model version")}</div>'
        f"<div>{trend}</div></div>"
        f"<h3>ROC and KS of the serving model on its OOT snapshot</h3>{curves}{note}"
        f'<div class="grid2"><div><h3>Calibration by PD decile (OOT)</h3>{_img(uris["calibration"], "Calibration")}'
        f'</div><div><h3>Score distribution vs the previous run</h3>{_img(uris["scores"], "Score distribution")}'
        f'<p>{score_line}</p></div></div>'
        f"<h3>Top features: gain and mean |SHAP|</h3>{_img(uris['importance'], 'Feature importance')}"
        f'<p class="note">Gain from the booster; mean |SHAP| = mean absolute exact TreeSHAP contribution '
        f"(log-odds) over {m.shap_accounts:,} accounts scored tonight (the accounts with the smallest "
        "FNV-1a hash of account_id: the same sample every night).</p>"
        f"<h3>Feature stability tonight vs the model's OOT snapshot</h3>"
        f'<p class="note">PSI over the OOT reference deciles; below {m.psi_bands[0]} stable, '
        f"{m.psi_bands[0]}-{m.psi_bands[1]} watch, {m.psi_bands[1]} and above shifted.</p>{psi_rows}</section>"
    )


def _portfolio_section(data: ReportData, uris: Mapping[str, str]) -> str:
    p = data.portfolio
    table = _table(p.delinquency, [
        ("bucket", "DPD bucket", None), ("accounts", "Accounts", _int), ("account_share", "Share", _pct),
        ("outstanding_cents", "Outstanding principal", format_cny), ("balance_share", "Share of balance", _pct),
    ], numeric=("accounts", "account_share", "outstanding_cents", "balance_share"))
    if p.roll is not None:
        roll = (f"<h3>Roll rates since the previous run ({_e(data.previous_run)})</h3>"
                f"{_img(uris['roll'], 'Roll-rate matrix')}"
                '<p class="note">Share of the accounts in each DPD bucket at the previous run (rows) found in each '
                "bucket tonight (columns); accounts on both nights' ledgers.</p>")
    else:
        roll = f'<h3>Roll rates</h3><p class="note">{_e(p.note or "No previous run to roll from.")}</p>'
    vintage = (f"<h3>Vintage curves: accounts reaching {p.bad_dpd}+ DPD by months on book</h3>"
               f"{_img(uris['vintage'], 'Vintage curves')}"
               f'<p class="note">Lines opened from {_e(p.since)} on (the first date the lake holds), by opening '
               "month; cumulative share of the month's accounts that ever reached "
               f"{p.bad_dpd} DPD.</p>")
    return (f'<section id="portfolio"><h2>Portfolio</h2><div class="grid2"><div><h3>Delinquency by DPD bucket</h3>'
            f'{_img(uris["delinquency"], "Delinquency by bucket")}</div><div><h3>Accounts owing money on '
            f"{_e(data.as_of)}</h3>{table}</div></div>"
            f'<div class="grid2"><div>{roll}</div><div>{vintage}</div></div></section>')


def _action_grade_table(by_action_grade: pl.DataFrame, grades: Sequence[str]) -> str:
    """Actions (rows) by grade (columns): accounts, and the exposure change where a limit moved."""
    cells = {(r["action"], r["grade"]): r for r in by_action_grade.iter_rows(named=True)}
    columns = [g for g in [*grades, UNSCORED] if any(k[1] == g for k in cells)]
    actions = [a for a in ACTION_ORDER if any(k[0] == a for k in cells)]
    head = "<th>Action</th>" + "".join(f'<th class="n">grade {_e(g)}</th>' for g in columns)
    rows = []
    for action in actions:
        tds = []
        for grade in columns:
            cell = cells.get((action, grade))
            if cell is None:
                tds.append('<td class="n"></td>')
                continue
            change = int(cell["exposure_change_cents"])
            extra = f'<br><span class="note">{_e(format_cny(change))}</span>' if change else ""
            tds.append(f'<td class="n">{_int(cell["accounts"])}{extra}</td>')
        rows.append(f"<tr><td>{_e(action)}</td>{''.join(tds)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _decisions_section(data: ReportData, uris: Mapping[str, str]) -> str:
    d = data.decisions
    by_action = _table(d.by_action, [
        ("action", "Action", None), ("accounts", "Accounts", _int),
        ("exposure_change_cents", "Exposure change", format_cny),
    ], numeric=("accounts", "exposure_change_cents"))
    by_grade = _action_grade_table(d.by_action_grade, data.grades)
    cell_cols: list[tuple[str, str, Any]] = [("test_cell", "Cell", None), ("accounts", "Accounts", _int)]
    cell_cols += [(a, a, _int) for a in ACTION_ORDER if a in d.test_cells.columns]
    cell_cols.append(("exposure_change_cents", "Exposure change", format_cny))
    cells = _table(d.test_cells, cell_cols, numeric=[c for c, _, _ in cell_cols[1:]])
    s = d.swap
    swap = f'<p class="note">{_e(SWAP_SET_DEFINITION)}</p>'
    if s.summary is not None and s.accounts is not None:
        summary = (f"<p>Previous champion <code>{_e(s.previous_model)}</code>, tonight "
                   f"<code>{_e(data.model.serving)}</code>: <b>{s.size:,}</b> accounts change action.</p>"
                   + _table(s.summary, [("previous_model_action", "Action with the previous model", None),
                                        ("action", "Action tonight", None), ("accounts", "Accounts", _int)],
                            numeric=("accounts",)))
        examples = ""
        if s.accounts.height:
            examples = f"<p>First {s.accounts.height} accounts of the swap set</p>" + _table(
                s.accounts, [("account_id", "Account", None), ("previous_model_action", "Previous model", None),
                             ("action", "Tonight", None), ("previous_model_grade", "Grade before", None),
                             ("grade", "Grade tonight", None)])
        swap += f'<div class="grid2"><div>{summary}</div><div class="scroll">{examples}</div></div>'
    swap += f"<p>{_e(s.note)}</p>" if s.note else ""
    return (
        '<section id="decisions"><h2>Limit decisions</h2>'
        f'<div class="grid2"><div><h3>Actions and exposure change</h3>{by_action}'
        f'{_img(uris["exposure"], "Exposure change by action and grade")}</div>'
        f'<div><h3>Accounts by action and grade</h3>{by_grade}<p class="note">Second line: exposure change (sum of '
        "new - previous limit) where limits moved.</p>"
        f'<h3>Limit changes</h3>{_img(uris["changes"], "Histogram of limit changes")}</div></div>'
        f"<h3>Strategy test cells</h3>{cells}"
        '<p class="note">Control lines keep their limit where the champion strategy would raise or cut it; '
        "challenger lines are sized with the challenger factors (riskline.yaml policy.strategy_test).</p>"
        f"<h3>Swap set</h3>{swap}</section>"
    )


def _collections_section(data: ReportData, uris: Mapping[str, str]) -> str:
    c = data.collections
    queue = _table(c.queue, [
        ("treatment", "Treatment", None), ("accounts", "Cases", _int), ("capacity", "Daily capacity", _int),
        ("overflow", "Overflow", _int), ("overdue_cents", "Overdue amount", format_cny),
        ("expected_loss_cents", "Expected loss", format_cny),
    ], numeric=("accounts", "capacity", "overflow", "overdue_cents", "expected_loss_cents"))
    if c.hardship.height:
        hardship = _table(c.hardship, [
            ("extension_months", "Extension (months)", None), ("offers", "Loans offered", _int),
            ("accounts", "Accounts", _int), ("outstanding_cents", "Outstanding principal", format_cny),
            ("current_cents", "Monthly instalments now", format_cny),
            ("new_cents", "Monthly instalments offered", format_cny),
        ], numeric=("offers", "accounts", "outstanding_cents", "current_cents", "new_cents"))
    else:
        hardship = '<p class="note">No hardship offers tonight.</p>'
    return (f'<section id="collections"><h2>Collections</h2><div class="grid2"><div><h3>Queues against capacity</h3>'
            f'{_img(uris["queue"], "Collections queue by treatment")}</div><div><h3>Cases per treatment</h3>{queue}'
            f'<p class="note">Agent capacity: {c.capacity:,} cases a day (collections.agent_daily_capacity); '
            "cases beyond it, by expected loss, overflow to the automated treatment.</p>"
            f"<h3>Hardship offers</h3>{hardship}</div></div></section>")


def render_report(data: ReportData, uris: Mapping[str, str]) -> str:
    """The page as HTML text. ``uris`` maps chart names to ``data:image/png;base64,...`` URIs."""
    man = data.manifest
    previous = f"previous run {data.previous_run}" if data.previous_run else "no previous run"
    config = str(man.get("config_sha256", ""))[:12]
    header = (
        f"<header><h1>riskline nightly run &middot; business date {_e(data.as_of)}</h1>"
        f'<div class="sub">model <code>{_m(man, "model_version")}</code> &middot; policy '
        f'<code>{_m(man, "policy_version")}</code> &middot; code <code>{_e(man.get("code_version", ""))}</code> '
        f"&middot; config {_e(config)} &middot; {_e(previous)} &middot; amounts in CNY</div></header>"
        '<nav><a href="#summary">Summary</a><a href="#data">Data</a><a href="#model">Model</a>'
        '<a href="#portfolio">Portfolio</a><a href="#decisions">Decisions</a>'
        '<a href="#collections">Collections</a></nav>'
    )
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in data.notes)
    body = (
        f'<main><div id="summary">{_headline(data)}</div>{notes}{_data_section(data)}'
        f"{_model_section(data, uris)}{_portfolio_section(data, uris)}{_decisions_section(data, uris)}"
        f"{_collections_section(data, uris)}</main>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>riskline run report {_e(data.as_of)}</title><style>{_CSS}</style></head>"
        f"<body>{header}{body}</body></html>\n"
    )
