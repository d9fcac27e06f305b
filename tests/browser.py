"""A headless Chromium for the browser tests and for docs/make_screenshots.py (Debian's chromium and
chromium-driver, driven by Selenium; nothing downloads a browser)."""
from __future__ import annotations

import importlib.util
import shutil

WIDTH, HEIGHT = 1280, 900
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def missing() -> str:
    """Why no browser test can run here ('' when everything is installed)."""
    if importlib.util.find_spec("selenium") is None:
        return "the selenium package is not installed (pip install -e '.[test]')"
    if not CHROMIUM or not CHROMEDRIVER:
        return "Chromium or chromedriver is not installed (Debian: apt-get install chromium chromium-driver)"
    return ""


def new_browser(width: int = WIDTH, height: int = HEIGHT):
    """A headless Chromium at ``width`` x ``height`` CSS pixels, with the browser console log kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--force-device-scale-factor=1", "--hide-scrollbars"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    return driver
