"""The screenshots in docs/, taken from a lake's report and what-if pages in headless Chromium at 1440 px.

``make screenshots`` (after ``make demo``) runs::

    python -m tools.screenshots --as-of 2026-11-25 --candidate docs/candidate-example.yaml

It rebuilds the report of the night (``riskline report``), simulates the candidate on it (``riskline simulate``:
its page lands under ``DATA_ROOT/simulations/``, nothing a run reads changes) and writes:

* ``docs/report-first-screen.png``: the report's first screen (1440 x 900);
* ``docs/report-trends.png``: the trend strip and the expected-loss tile (``#trends``);
* ``docs/report-cells.png``: the test-cell readout (``#cells``);
* ``docs/whatif-page.png``: the what-if page, whole.

Debian's /usr/bin/chromium is driven by Playwright, as in the browser tests; Chinese text needs a CJK font
(``apt-get install fonts-noto-cjk``), else it shows as boxes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
WIDTH = 1440
REPO = Path(__file__).resolve().parents[1]


def _riskline(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "pipelines.entry.cli", *args], capture_output=True, text=True,
                          cwd=REPO)
    if done.returncode:
        raise SystemExit(f"riskline {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--as-of", required=True, help="the published night (YYYY-MM-DD)")
    parser.add_argument("--candidate", type=Path, required=True, help="a candidate policy file for the what-if page")
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    report = Path(_riskline("report", "--as-of", args.as_of).strip().splitlines()[-1].split()[-1])
    printed = _riskline("simulate", "--policy", str(args.candidate.resolve()), "--as-of", args.as_of)
    whatif = Path(next(line for line in printed.splitlines() if line.strip().endswith("whatif.html")).split()[-1])
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(report.as_uri(), wait_until="load")
        page.screenshot(path=str(args.out / "report-first-screen.png"))
        page.locator("#trends").screenshot(path=str(args.out / "report-trends.png"))
        page.locator("#cells").screenshot(path=str(args.out / "report-cells.png"))
        page.goto(whatif.as_uri(), wait_until="load")
        page.screenshot(path=str(args.out / "whatif-page.png"), full_page=True)
        browser.close()
    if errors:
        print("console errors:\n" + "\n".join(errors), file=sys.stderr)
        return 1
    print(f"screenshots of {report} and {whatif} in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
