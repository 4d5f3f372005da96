"""`GET /api/report` over HTTP in the mini-host: a function key, one HTML page, problem JSON for a
bad parameter."""

from __future__ import annotations

import httpx
import pytest

from tests.functional.report.conftest import ReportApp
from tests.report_seed import HOSTILE

pytestmark = pytest.mark.functional


def test_the_report_needs_the_function_key(report_app: ReportApp) -> None:
    assert httpx.get(report_app.url, timeout=30).status_code == 401
    assert httpx.get(report_app.url, params={"code": "wrong"}, timeout=30).status_code == 401


def test_the_report_is_one_html_page_with_every_wave(report_app: ReportApp) -> None:
    answer = httpx.get(report_app.url, headers={"x-functions-key": report_app.key}, timeout=60)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["cache-control"] == "no-store"
    page = answer.text
    for wave in report_app.seeded.plan.waves:
        assert f'id="wave-{wave.name}"' in page
    # AND the hostile wave description is text, and the page runs no script at all
    assert HOSTILE not in page
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    assert page.count('<figure class="chart"') == 9


def test_one_wave_over_fewer_days_as_json(report_app: ReportApp) -> None:
    pilot = report_app.seeded.pilot
    answer = httpx.get(
        report_app.url,
        params={"code": report_app.key, "wave": pilot, "days": "7", "format": "json"},
        timeout=60,
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["days"] == 7
    assert [w["wave"] for w in body["waves"]] == [pilot]
    (wave,) = body["waves"]
    assert wave["state"] == "enforced"
    # within the last 7 days: the approval and the promotion to enforced
    assert [(e["kind"], e["state"]) for e in wave["events"]] == [
        ("approval", "report-only"),
        ("transition", "enforced"),
    ]


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"wave": "no-such-wave"}, ["wave"]),
        ({"days": "a-year"}, ["days"]),
        ({"days": "0", "format": "pdf"}, ["days", "format"]),
        ({"since": "2026-01-01"}, ["since"]),
    ],
)
def test_a_bad_parameter_is_problem_json_naming_it(
    report_app: ReportApp, params: dict[str, str], fields: list[str]
) -> None:
    answer = httpx.get(report_app.url, params={"code": report_app.key, **params}, timeout=30)
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert (problem["status"], problem["title"]) == (400, "Bad Request")
    assert [e["field"] for e in problem["errors"]] == fields
    assert problem["detail"].startswith("invalid report request: ")
