"""The rollout report in a real browser: headless Chromium (Debian's ``chromium``, driven by
Playwright through ``executable_path``; Playwright's own browser download is never used) loads the
page from the app in the mini-host, every chart has drawn its marks, a phone-wide viewport does not
scroll sideways, nothing runs and nothing is fetched; a screenshot is kept under the test's tmp dir.

Skipped, saying why, where Chromium or Playwright is missing or Chromium does not launch (``make
test`` installs both as root).
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.browser import CHARTS_JS, PHONE
from tests.functional.report.conftest import ReportApp


def _chromium() -> str:
    """Debian's chromium binary, or a skip saying why there is none that Playwright can drive."""
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("chromium not installed: apt-get install chromium", allow_module_level=True)
    if "/snap/" in f"{found}:{os.path.realpath(found)}":
        pytest.skip(
            f"chromium at {found} is the snap, which Playwright cannot drive: install Debian's chromium "
            "package (apt-get install chromium) where it is not a snap wrapper",
            allow_module_level=True,
        )
    return found


def _playwright() -> ModuleType:
    try:
        return importlib.import_module("playwright.sync_api")
    except Exception as exc:  # not installed, or installed but broken (e.g. its greenlet build)
        pytest.skip(
            f"playwright cannot be imported ({type(exc).__name__}: {exc}): "
            "make install (requirements-dev.txt)",
            allow_module_level=True,
        )


CHROMIUM = _chromium()
sync_api = _playwright()

pytestmark = [pytest.mark.functional, pytest.mark.browser]


def _launch_error(exc: Exception) -> str:
    """Playwright's first line and what chromium itself wrote to stderr (its ``[err]`` lines)."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    logs = lines[: lines.index("Call log:")] if "Call log:" in lines else lines
    said = [line.split("[err] ", 1)[1] for line in logs if "[err] " in line]
    return "; ".join([lines[0], *said[:3]])


@pytest.fixture(scope="module")
def browser() -> Any:
    """Chromium launched once for the module; a chromium that is installed but does not start (a
    missing library, no /dev/shm, a broken package) skips with the launch error, not an error."""
    with sync_api.sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"], timeout=30_000
            )
        except Exception as exc:
            pytest.skip(f"chromium at {CHROMIUM} did not launch: {_launch_error(exc)}")
        try:
            yield launched
        finally:
            launched.close()


def test_every_chart_renders_on_a_phone_and_nothing_runs_or_loads(
    report_app: ReportApp, browser: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The function key as a header, as docs/report.md advises (a ?code= URL lands in browser history)
    key = {"x-functions-key": report_app.key}
    url = httpx.URL(report_app.url)
    expected = (
        httpx.get(report_app.url, params={"format": "json"}, headers=key, timeout=60)
        .raise_for_status()
        .json()
    )
    drawn = [
        chart["key"]
        for wave in expected["waves"]
        for chart in wave["charts"]
        if any(v is not None for line in chart["lines"] if line["role"] == "data" for v in line["values"])
    ]
    page = browser.new_page(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, extra_http_headers=key
    )
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
    # WHEN the operator opens the report on a phone
    answer = page.goto(str(url), wait_until="load")
    assert answer is not None
    assert answer.status == 200
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    # THEN every chart the report holds is drawn, each with its data marks
    charts = page.evaluate(CHARTS_JS)
    assert [c["key"] for c in charts] == drawn
    assert len(charts) == 9
    for chart in charts:
        assert chart["width"] > 300, chart
        assert chart["height"] > 100, chart
        assert chart["marks"] > 0, chart
        assert chart["width"] <= PHONE["width"], chart
    # AND the page does not scroll sideways at 390 px
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= PHONE["width"], f"horizontal overflow: {widths}"
    # AND the hostile wave description is inert text: nothing ran, nothing else was fetched
    assert page.evaluate("typeof window.__xss") == "undefined"
    description = page.locator(f"#wave-{report_app.seeded.pilot} .description").inner_text()
    assert description.startswith("<script>window.__xss = 1</script><img src=x onerror=")
    assert requests == [str(url)]
    assert problems == []
    shot = tmp_path / "rollout-report-390px.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    with capsys.disabled():
        print(f"\nrollout report screenshot (390 px wide): {shot}")
    page.close()
