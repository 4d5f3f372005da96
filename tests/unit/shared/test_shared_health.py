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
