"""Where validation results are kept and how they are shown: one JSON per report, GX Data Docs per date.

:func:`write_results` persists reports under ``validation/dt=D/`` and rebuilds that date's Data Docs under
``reports/data_docs/dt=D/``, made readable offline (no CDN scripts, one bundled stylesheet).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipelines.config.settings import RisklineConfig
from pipelines.quality.gx_engine import load_engine
from pipelines.quality.results import ValidationReport, jsonable
from pipelines.store import lake


def results_dir(root: Path, day: dt.date) -> Path:
    return lake.derived_partition(root, "validation", day, key="dt")


def data_docs_dir(root: Path, day: dt.date) -> Path:
    return lake.partition_dir(root, "reports", "data_docs", day)


def write_results(
    root: Path, day: dt.date, reports: Iterable[ValidationReport], cfg: RisklineConfig, data_docs: bool = True
) -> Path:
    """Persist each report as ``validation/dt=D/<name>.json`` (atomically) and rebuild that date's Data Docs.

    The Data Docs of a date are rendered from every result JSON of the date (ingest's and publish's), so a
    later writer never hides an earlier one.
    """
    folder = results_dir(root, day)
    for report in reports:
        body = json.dumps(report.to_json_dict(), indent=2, sort_keys=True, default=jsonable) + "\n"
        lake.atomic_write_bytes(folder / f"{report.name}.json", body.encode())
    if cfg.validation.data_docs and data_docs:
        build_data_docs(root, day)
    return folder


def build_data_docs(root: Path, day: dt.date) -> Path:
    """Render GX Data Docs for ``day`` alone from its persisted results; replace the folder atomically."""
    # why: Great Expectations takes seconds to import; only validating pays for it
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResultSchema
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    context = load_engine().context
    target = data_docs_dir(root, day)
    keys = []
    rows: list[dict[str, Any]] = []
    site = f"riskline-{day.isoformat()}"
    with lake.staged_partition(target) as tmp:
        context.add_data_docs_site(site, {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(tmp)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        try:
            for path in sorted(results_dir(root, day).glob("*.json")):
                stored = json.loads(path.read_text())
                if not stored.get("gx_result"):
                    continue
                result = ExpectationSuiteValidationResultSchema().load(stored["gx_result"])
                key = ValidationResultIdentifier(
                    expectation_suite_identifier=ExpectationSuiteIdentifier(name=stored["name"]),
                    run_id=RunIdentifier(run_name=f"{stored['kind']}-{day.isoformat()}",
                                         run_time=dt.datetime.combine(day, dt.time(0), dt.UTC)),
                    batch_identifier=stored["name"],
                )
                context.validation_results_store.set(key, result)
                keys.append(key)
                stats = result.statistics or {}
                rows.append({"name": stored["name"], "kind": stored["kind"], "success": bool(result.success),
                             "evaluated": stats.get("evaluated_expectations", 0),
                             "unsuccessful": stats.get("unsuccessful_expectations", 0)})
            context.build_data_docs(site_names=[site])
            _make_offline(tmp, day, rows)
            _prune_static(tmp)
        finally:
            for key in keys:
                context.validation_results_store.remove_key(key)
            context.delete_data_docs_site(site)
    return target


_TEMPLATES = Path(__file__).resolve().parent / "templates"
_OFFLINE_CSS = "static/styles/data_docs_offline.css"
# GX pages take Bootstrap, Font Awesome, jQuery, bootstrap-table and Vega from CDNs: offline (a bank's
# closed network, a laptop on a train) the index is blank, since its table is drawn by script, and the pages
# lose their styling. Those tags go; one bundled stylesheet replaces them.
_CDN_TAG = re.compile(
    r'<link\b[^>]*href="https?://[^"]*"[^>]*>\s*|<script\b[^>]*src="https?://[^"]*"[^>]*>\s*</script>\s*',
    re.IGNORECASE)
# Remote images (the GX logo, fetched with a timestamp on every view) become their alt text; remote CSS
# backgrounds go.
_REMOTE_IMG = re.compile(r'<img\b[^>]*src="https?://[^"]*"[^>]*>', re.IGNORECASE)
_REMOTE_URL = re.compile(r"url\(['\"]?https?://[^)]*\)", re.IGNORECASE)


def _alt_text(match: re.Match[str]) -> str:
    alt = re.search(r'alt="([^"]*)"', match.group(0))
    return alt.group(1) if alt else ""


def _make_offline(site: Path, day: dt.date, rows: list[dict[str, Any]]) -> None:
    """Make a rendered Data Docs site readable with no network: local styling, and an index without script.

    ``rows``: one per validation result (name, kind, success, evaluated, unsuccessful), for the index.
    """
    from jinja2 import Environment, FileSystemLoader, select_autoescape  # why: only a Data Docs build renders

    css = site / _OFFLINE_CSS
    css.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_TEMPLATES / "data_docs_offline.css", css)
    for page in site.rglob("*.html"):
        depth = len(page.relative_to(site).parts) - 1
        link = f'<link rel="stylesheet" href="{"../" * depth}{_OFFLINE_CSS}">\n</head>'
        html = _CDN_TAG.sub("", page.read_text(encoding="utf-8"))
        html = _REMOTE_URL.sub("none", _REMOTE_IMG.sub(_alt_text, html))
        page.write_text(html.replace("</head>", link, 1), encoding="utf-8")
    for row in rows:
        found = sorted(site.glob(f"validations/{row['name']}/{row['kind']}-{day.isoformat()}/*/*.html"))
        row["href"] = found[0].relative_to(site).as_posix() if found else None
    suites = [{"name": p.stem, "href": p.relative_to(site).as_posix()} for p in sorted(site.glob("expectations/*.html"))]
    env = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    index = env.get_template("data_docs_index.html.j2").render(day=day.isoformat(), validations=rows, suites=suites)
    (site / "index.html").write_text(index, encoding="utf-8")


def _prune_static(site: Path) -> None:
    """Drop the site builder's static files no page links to (3.4 MB of images and fonts per date)."""
    pages = "".join(p.read_text(errors="replace") for p in site.rglob("*.html"))
    for path in sorted((site / "static").rglob("*"), reverse=True):
        if path.is_file() and path.relative_to(site).as_posix() not in pages:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
