"""The bundled report opened in a real browser (Debian's Chromium driven by Selenium).

Checks what a reader meets at 1280 px: every navigation link lands on its section and every section
links back to the top, no element is wider than the window (wide tables scroll inside their own
box), no console error, every image loads, every source URL is a clickable ``<a href>``, and the
print stylesheet hides the navigation and keeps the page within the paper's width.

Needs ``chromium`` and ``chromium-driver`` (Debian packages) and the ``selenium`` package (the
``test`` extra); nothing downloads a browser.  Without them the tests are skipped, unless
``METAPOOL_REQUIRE_BROWSER=1`` (set by ``.ci/run``, which installs them): then they fail.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from browser import missing, new_browser

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def page(bundled_run):
    """The bundled run's report.html, open in Chromium."""
    problem = missing()
    if problem:
        if os.environ.get("METAPOOL_REQUIRE_BROWSER") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    driver = new_browser()
    report = Path(bundled_run) / "results" / "report.html"
    driver.get(report.as_uri())
    yield driver
    driver.quit()


def test_every_navigation_link_lands_on_its_section(page):
    from selenium.webdriver.common.by import By

    links = page.find_elements(By.CSS_SELECTOR, "nav.top a[href^='#']")
    targets = [a.get_attribute("href").split("#", 1)[1] for a in links]
    assert {"top", "published", "main", "methods", "data", "references"} <= set(targets)
    outcome_targets = [t for t in targets if t.startswith("o-")]
    assert len(outcome_targets) == len(page.find_elements(By.CSS_SELECTOR, "section.outcome"))
    nav_height = page.execute_script("return document.querySelector('nav.top').getBoundingClientRect().height")
    for target in targets:
        page.execute_script("window.scrollTo(0, 0)")
        link = page.find_element(By.CSS_SELECTOR, f"nav.top a[href='#{target}']")
        if target.startswith("o-"):                      # the outcome menu opens first
            page.execute_script("document.querySelector('nav.top details').open = true")
        link.click()
        top = page.execute_script(f"return document.getElementById({target!r}).getBoundingClientRect().top")
        at_end = page.execute_script("return window.innerHeight + window.scrollY >= document.body.scrollHeight - 2")
        # the section starts just below the sticky bar (or the page cannot scroll further)
        assert nav_height - 2 <= top <= nav_height + 60 or (at_end and top >= 0), (target, top)
        page.execute_script("document.querySelector('nav.top details').open = false")


def test_every_section_links_back_to_the_top(page):
    from selenium.webdriver.common.by import By

    sections = page.find_elements(By.CSS_SELECTOR, "h2, section.outcome h3")
    assert len(sections) > 10
    for h in sections:
        assert h.find_elements(By.CSS_SELECTOR, "a.up[href='#top']"), h.text


def test_nothing_is_wider_than_the_window(page):
    offenders = page.execute_script("""
        const vw = document.documentElement.clientWidth, out = [];
        for (const el of document.querySelectorAll('main *')) {
          const r = el.getBoundingClientRect();
          if (r.width === 0 || r.right <= vw + 1) continue;
          let clipped = false;                       // inside a box that scrolls or clips, itself inside the window
          for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
            const s = getComputedStyle(p);
            if (['auto', 'scroll', 'hidden'].includes(s.overflowX) && p.getBoundingClientRect().right <= vw + 1) {
              clipped = true; break;
            }
          }
          if (!clipped) out.push(el.tagName + '.' + el.className + ': ' + Math.round(r.right) + ' px');
        }
        return [document.documentElement.scrollWidth, vw, out.slice(0, 10)];
    """)
    scroll_width, viewport, wide = offenders
    assert scroll_width <= viewport, f"the page scrolls sideways: {scroll_width} > {viewport} px"
    assert not wide, wide


def test_no_console_errors(page):
    errors = [e for e in page.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors


def test_every_image_loads(page):
    from selenium.webdriver.common.by import By

    images = page.find_elements(By.TAG_NAME, "img")
    assert len(images) >= 10
    broken = page.execute_script(
        "return [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt)")
    assert not broken, broken
    too_wide = page.execute_script(
        "return [...document.images].filter(i => i.getBoundingClientRect().right > "
        "document.documentElement.clientWidth + 1).map(i => i.alt)")
    assert not too_wide, too_wide


def test_every_source_url_is_a_link(page):
    bare = page.execute_script("""
        const out = [];
        const walker = document.createTreeWalker(document.querySelector('main'), NodeFilter.SHOW_TEXT);
        for (let n = walker.nextNode(); n; n = walker.nextNode()) {
          if (/https?:\\/\\//.test(n.textContent) && !n.parentElement.closest('a[href]')) out.push(n.textContent.slice(0, 80));
        }
        return out;
    """)
    assert not bare, bare[:5]
    hrefs = page.execute_script("return [...document.querySelectorAll('td.src a')].map(a => a.getAttribute('href'))")
    assert len(hrefs) > 20 and all(h.startswith(("http://", "https://")) for h in hrefs)


def test_confidence_intervals_never_break_across_lines(page):
    """An interval "(a to b)" is always on one line; outside the narrow columns of the first table
    the estimate stays on its line too."""
    broken = page.execute_script("""
        const one = e => new Set([...e.getClientRects()].map(r => Math.round(r.bottom))).size <= 1;  // 0: folded away
        return [...document.querySelectorAll('.ci-i, :not(table.fixed *).ci')].filter(e => !one(e))
          .map(e => e.textContent).slice(0, 5);
    """)
    assert not broken, broken


def test_print_layout_hides_navigation_and_fits_the_paper(page):
    page.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        nav = page.execute_script("return getComputedStyle(document.querySelector('nav.top')).display")
        assert nav == "none"
        hidden = page.execute_script(
            "return [...document.querySelectorAll('main details > :not(summary)')].filter(e => e.offsetParent === null).length")
        assert hidden == 0, "folded content is printed"
    finally:
        page.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
