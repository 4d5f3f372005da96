"""The report page: one self-contained file (no script, nothing fetched), phone-ready, every data
string escaped, a chart where there is data and a plain sentence where there is none."""

from __future__ import annotations

import html
import re
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.report import (
    CONTENT_SECURITY_POLICY,
    HTTP_CONTENT_SECURITY_POLICY,
    build_rollout_report,
    render_html,
)
from shared.state import build_memory_state
from tests.report_seed import HOSTILE, load_report_plan, seed_history

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 3, 20, 14, 30, tzinfo=UTC)


@pytest.fixture
async def page(tmp_path: Path) -> str:
    stores = build_memory_state(clock=lambda: NOW)
    plan = load_report_plan(tmp_path / "plan.yaml", "t")
    await seed_history(stores.aio, plan, now=NOW)
    return render_html(await build_rollout_report(plan, stores.aio, now=NOW))


def test_the_page_is_self_contained(page: str) -> None:
    # THEN no script at all, and nothing the browser would fetch: no src, no external href, no url()
    assert "<script" not in page.lower()
    assert not re.search(r"<[^>]*\ssrc\s*=", page)
    assert not re.search(r"@import|url\(", page)
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs
    assert all(h.startswith("#") for h in hrefs)
    # AND the only addresses left are the SVG namespace and pygal's credit comments
    addresses = set(re.findall(r"https?://[^\s\"'<>-]+", page))
    assert addresses <= {"http://www.w3.org/2000/svg", "http://pygal.org", "http://github.com/Kozea/pygal"}
    # AND a policy that forbids script and every fetch even if something slipped through
    policy = html.escape(CONTENT_SECURITY_POLICY, quote=True)
    assert f'<meta http-equiv="Content-Security-Policy" content="{policy}">' in page
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert "script-src" not in CONTENT_SECURITY_POLICY
    # AND no Referer leaves the page; frame-ancestors only in the header (a <meta> policy cannot
    # carry it: browsers ignore it there with a console error)
    assert '<meta name="referrer" content="no-referrer">' in page
    assert "frame-ancestors" not in CONTENT_SECURITY_POLICY
    assert HTTP_CONTENT_SECURITY_POLICY == CONTENT_SECURITY_POLICY + "; frame-ancestors 'none'"


def test_the_page_is_laid_out_for_a_phone(page: str) -> None:
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    # every chart is an SVG that scales to its column (a viewBox, no fixed width or height)
    svgs = re.findall(r"<svg [^>]*>", page)
    assert svgs
    for svg in svgs:
        assert "viewBox=" in svg
        assert not re.search(r'\s(width|height)="', svg)


def test_every_string_from_data_is_escaped(page: str) -> None:
    # GIVEN a wave description, an approval reason and an alert summary holding markup
    # THEN each is shown as text
    assert HOSTILE not in page
    assert (
        "&lt;script&gt;window.__xss = 1&lt;/script&gt;&lt;img src=x onerror=&quot;window.__xss = 2&quot;&gt;"
        in page
    )
    assert "pilot &lt;b&gt;signed off&lt;/b&gt;" in page
    assert "Blast radius exceeded: &lt;b&gt;120&lt;/b&gt; changes &gt; 100 &amp; held" in page
    assert "<b>" not in page


def test_a_chart_where_there_is_data_a_sentence_where_there_is_none(page: str) -> None:
    figures = re.findall(r'<figure class="chart" data-chart="([^"]+)">(.*?)</figure>', page, re.S)
    keys = [key for key, _ in figures]
    # the pilot has all four; the second wave three (no failure rate yet); the waves not started one
    assert keys.count("state-timeline") == 4
    assert keys.count("registration") == 2
    assert keys.count("report-only-failure-rate") == 1
    assert keys.count("per-user-mfa") == 2
    for _, body in figures:
        assert body.count("<svg ") == 1
        assert re.search(r'class="(line|dot|rect)[ "]', body), "a chart without data marks"
    empties = re.findall(
        r'<div class="chart-empty" data-chart="[^"]+"><h3>[^<]+</h3><p class="empty">([^<]+)', page
    )
    assert len(empties) == 16 - len(figures)
    assert all(e.strip() for e in empties)


def test_the_report_path_never_loads_graph() -> None:
    # GIVEN a fresh interpreter / WHEN the HTTP handler's module and the report are used end to end
    script = textwrap.dedent(
        """
        import asyncio, sys
        from datetime import UTC, datetime
        from pathlib import Path
        import tempfile
        import handlers.report
        from shared.report import build_rollout_report, render_html
        from shared.state import build_memory_state
        from tests.report_seed import load_report_plan, seed_history
        now = datetime(2026, 3, 20, tzinfo=UTC)
        stores = build_memory_state()
        plan = load_report_plan(Path(tempfile.mkdtemp()) / "plan.yaml", "t")
        asyncio.run(seed_history(stores.aio, plan, now=now))
        render_html(asyncio.run(build_rollout_report(plan, stores.aio, now=now)))
        graph = ("msgraph", "msgraph_core", "kiota_abstractions")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in graph)
        print(loaded)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    # THEN msgraph was never imported
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
