"""Screenshots of the report at 1280 px for the README: the first screen and one outcome section.

    python docs/make_screenshots.py [results/report.html] [--outcome sri4_wk12]

Writes docs/report_first_screen.png and docs/report_outcome.png (headless Chromium, see
tests/browser.py; Debian: apt-get install chromium chromium-driver; pip install selenium).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from browser import missing, new_browser  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", nargs="?", default=str(ROOT / "results" / "report.html"))
    ap.add_argument("--outcome", default="sri4_wk12", help="outcome whose section is shot (default sri4_wk12)")
    args = ap.parse_args(argv)
    if missing():
        raise SystemExit(missing())
    driver = new_browser(1280, 900)
    try:
        driver.get(Path(args.report).resolve().as_uri())
        driver.save_screenshot(str(ROOT / "docs" / "report_first_screen.png"))
        # the outcome section as a reader lands on it from the navigation bar, at its full height
        height = driver.execute_script(
            f"const s = document.getElementById('o-{args.outcome}'); s.scrollIntoView();"
            "return Math.ceil(s.getBoundingClientRect().height) + 60")
        driver.set_window_size(1280, min(max(height, 600), 2400))
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 1280, "height": min(max(height, 600), 2400), "deviceScaleFactor": 1,
                                "mobile": False})
        driver.execute_script(f"document.getElementById('o-{args.outcome}').scrollIntoView()")
        driver.save_screenshot(str(ROOT / "docs" / "report_outcome.png"))
    finally:
        driver.quit()
    print("wrote docs/report_first_screen.png, docs/report_outcome.png")


if __name__ == "__main__":
    main()
