"""The time-scaled clock and the per-API sliding windows (fake monotonic clock)."""

from __future__ import annotations

import pytest

from local.graph_emulator.__main__ import parse_args, rate_limits
from local.graph_emulator.clock import EmulatorClock, parse_iso
from local.graph_emulator.errors import GraphError
from local.graph_emulator.limits import (
    CONDITIONAL_ACCESS,
    REGISTRATION_DETAILS,
    RateLimitConfig,
    RateLimiters,
)


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def limiters(time_scale: float = 1.0, **enabled: bool) -> tuple[RateLimiters, FakeTime]:
    fake = FakeTime()
    config = RateLimitConfig.from_json({CONDITIONAL_ACCESS: True, REGISTRATION_DETAILS: True, **enabled})
    return RateLimiters(config, EmulatorClock(time_scale, monotonic=fake)), fake


def test_registration_details_allow_five_per_ten_seconds_then_429_with_retry_after() -> None:
    limits, fake = limiters()
    for _ in range(5):
        limits.check(REGISTRATION_DETAILS)

    with pytest.raises(GraphError) as refused:
        limits.check(REGISTRATION_DETAILS)

    assert refused.value.status == 429
    assert refused.value.headers == {"Retry-After": "10"}
    fake.now += 10
    limits.check(REGISTRATION_DETAILS)


def test_conditional_access_allows_one_per_second_and_sends_no_retry_after() -> None:
    limits, fake = limiters()
    limits.check(CONDITIONAL_ACCESS)

    with pytest.raises(GraphError) as refused:
        limits.check(CONDITIONAL_ACCESS)

    assert refused.value.headers == {}
    fake.now += 1.0
    limits.check(CONDITIONAL_ACCESS)


def test_a_time_scale_shrinks_the_window() -> None:
    limits, fake = limiters(time_scale=10)
    for _ in range(5):
        limits.check(REGISTRATION_DETAILS)
    fake.now += 1.0

    limits.check(REGISTRATION_DETAILS)


def test_a_disabled_limit_never_refuses() -> None:
    limits, _ = limiters(conditionalAccess=False)

    for _ in range(50):
        limits.check(CONDITIONAL_ACCESS)


def test_the_defaults_are_registration_details_on_and_conditional_access_off() -> None:
    assert RateLimitConfig().to_json() == {CONDITIONAL_ACCESS: False, REGISTRATION_DETAILS: True}


@pytest.mark.parametrize("raw", [{"signIns": True}, {CONDITIONAL_ACCESS: "yes"}, []])
def test_bad_rate_limit_settings_name_the_field(raw: object) -> None:
    with pytest.raises(ValueError, match="rateLimits"):
        RateLimitConfig.from_json(raw)


@pytest.mark.parametrize("scale", [0, -1, True])
def test_a_clock_needs_a_positive_scale(scale: float) -> None:
    with pytest.raises(ValueError, match="timeScale"):
        EmulatorClock(scale)


def test_parse_iso_reads_graphs_seven_fractional_digits_and_zones() -> None:
    assert parse_iso("2024-05-01T10:00:00.1234567Z") == parse_iso("2024-05-01T10:00:00.123456+00:00")
    assert parse_iso("2024-05-01T12:00:00+02:00") == parse_iso("2024-05-01T10:00:00")


def test_command_line_flags_turn_limits_on_and_off() -> None:
    args = parse_args(["--rate-limit", "conditionalAccess=on", "--rate-limit", "registrationDetails=off"])

    assert rate_limits(args).to_json() == {CONDITIONAL_ACCESS: True, REGISTRATION_DETAILS: False}
    assert rate_limits(parse_args([])) == RateLimitConfig()


@pytest.mark.parametrize("flag", ["conditionalAccess", "conditionalAccess=yes", "signIns=on"])
def test_bad_rate_limit_flags_are_refused(flag: str) -> None:
    with pytest.raises(ValueError, match=r"rate-limit|rateLimits"):
        rate_limits(parse_args(["--rate-limit", flag]))
