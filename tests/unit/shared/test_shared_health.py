"""Health status: healthy, degraded (only Graph down) or unhealthy; anonymous callers get the status only."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import load_settings
from shared.health import CheckResult, HealthReport, check_config
from tests.conftest import PLAN_SECRETS

ROOT = Path(__file__).resolve().parents[3]
GRAPH = "http://127.0.0.1:9/v1.0"


def _report(**ok: bool) -> HealthReport:
    return HealthReport(
        tuple(CheckResult(name, passed, f"{name} detail", 1.0) for name, passed in ok.items())
    )


@pytest.mark.parametrize(
    ("checks", "status"),
    [
        ({"config": True, "storage": True, "graph": True}, "healthy"),
        ({"config": True, "storage": True, "graph": False}, "degraded"),
        ({"config": True, "storage": False, "graph": True}, "unhealthy"),
        ({"config": False, "storage": True, "graph": False}, "unhealthy"),
        ({"settings": False}, "unhealthy"),
    ],
)
def test_the_overall_status(checks: dict[str, bool], status: str) -> None:
    assert _report(**checks).status == status


def test_anonymous_callers_learn_only_the_status() -> None:
    report = _report(config=True, storage=True, graph=False)
    assert report.to_public_dict() == {"status": "degraded"}
    assert report.to_dict()["checks"]["graph"]["detail"] == "graph detail"  # type: ignore[index]


def test_the_plan_check_follows_the_file_and_never_remembers_a_broken_plan(tmp_path: Path) -> None:
    plan = tmp_path / "waveguard.yaml"
    good = (ROOT / "config" / "waveguard.yaml").read_text("utf-8")
    plan.write_text(good, "utf-8")
    settings = load_settings({**PLAN_SECRETS, "WAVEGUARD_CONFIG": str(plan), "GRAPH_BASE_URL": GRAPH})
    first = check_config(settings)
    assert first.ok, first.detail
    again = check_config(settings)
    assert (again.ok, again.detail) == (True, first.detail)
    plan.write_text(good.replace("waves:", "wavez:", 1) + "\n# edited\n", "utf-8")  # changed: checked again
    broken = check_config(settings)
    assert not broken.ok
    assert "waves" in broken.detail
    assert not check_config(settings).ok  # and again: a failure is never remembered
    plan.write_text(good, "utf-8")
    assert check_config(settings).ok


def test_the_graph_probe_reads_a_small_answer_not_the_schema() -> None:
    # GIVEN a stand-in Graph that, like Graph, serves a multi-megabyte $metadata to anyone and a
    # short 401 to a request for a resource without a token
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from shared.health import check_graph

    sent: list[tuple[str, int]] = []

    class Graph(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/v1.0/$metadata"):
                status, body = 200, b"<edmx:Edmx/>" * 400_000
            else:
                status, body = (
                    401,
                    b'{"error":{"code":"InvalidAuthenticationToken","message":"Access token is empty."}}',
                )
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            sent.append((self.path, len(body)))

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Graph)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = load_settings(
            {**PLAN_SECRETS, "GRAPH_BASE_URL": f"http://127.0.0.1:{server.server_port}/v1.0"}
        )
        # WHEN the health check probes it
        result = check_graph(settings)
    finally:
        server.shutdown()
        server.server_close()
    # THEN Graph counts as reachable, from an answer of a few hundred bytes
    assert result.ok, result.detail
    assert [path for path, _ in sent] == ["/v1.0/organization?$select=id"]
    assert sum(size for _, size in sent) < 1_000
