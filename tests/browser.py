"""Open a page in headless Chromium (Debian's ``chromium`` through Playwright's ``executable_path``;
Playwright's own browser download is never used) and measure what the rollout report tests check:
each chart's drawn marks, sideways overflow at a phone's width, requests beyond the page."""

from __future__ import annotations

import importlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

PHONE: Final = {"width": 390, "height": 844}

# For each drawn chart: its key, its size, and how many data marks (lines, dots, bars) have a size.
CHARTS_JS: Final = """
() => [...document.querySelectorAll('figure.chart')].map(figure => {
  const svg = figure.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  const sized = mark => { const b = mark.getBoundingClientRect(); return b.width > 0 || b.height > 0; };
  const marks = svg ? [...svg.querySelectorAll('.series .line, .series .dot, .series .rect')]
    .filter(sized).length : 0;
  return {key: figure.dataset.chart, width: box.width, height: box.height, marks: marks};
})
"""


@dataclass
class PageCheck:
    charts: list[dict[str, Any]]
    scroll_width: int
    requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def unavailable() -> str | None:
    """Why Chromium cannot be driven here, or None when it can."""
    found = shutil.which("chromium")
    if found is None:
        return "chromium not installed: apt-get install chromium"
    if "/snap/" in f"{found}:{os.path.realpath(found)}":
        return f"chromium at {found} is the snap, which Playwright cannot drive"
    try:
        importlib.import_module("playwright.sync_api")
    except Exception as exc:
        return f"playwright cannot be imported ({type(exc).__name__}: {exc})"
    return None


def check_page(url: str, *, screenshot: Path | None = None) -> PageCheck:
    """Load ``url`` at a phone's width and measure it (call ``unavailable()`` first)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), headless=True, args=["--no-sandbox"], timeout=30_000
        )
        try:
            page = browser.new_page(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
            check = PageCheck([], 0)
            page.on("request", lambda request: check.requests.append(request.url))
            page.on("console", lambda m: check.problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: check.problems.append(str(error)))
            page.goto(url, wait_until="load")
            check.charts = page.evaluate(CHARTS_JS)
            check.scroll_width = int(page.evaluate("document.documentElement.scrollWidth"))
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
            return check
        finally:
            browser.close()
