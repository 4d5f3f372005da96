"""Health status: healthy, degraded (only Graph down) or unhealthy; anonymous callers get the status only."""

from __future__ import annotations

import pytest

from shared.health import CheckResult, HealthReport


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
