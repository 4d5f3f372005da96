"""HR onboarding: hires into their wave with a TAP for the manager; updates and terminations.

``HR_ROUTES`` routes the ``hr-events`` message types to them; the use cases
(``handle_hired`` / ``handle_updated`` / ``handle_terminated``) take a ``Deps`` of ports so unit
tests pass in-memory fakes (``OnboardingGraph`` for Graph).
"""

from __future__ import annotations

from shared.onboarding.deps import ACTOR, Deps
from shared.onboarding.hired import HireOutcome, handle_hired, hire_progress, recheck_delay, tap_start
from shared.onboarding.ports import DirectoryUser, GraphOnboarding, OnboardingGraph
from shared.onboarding.tap_mail import REGISTRATION_URL, TapMail, compose_tap_mail
from shared.onboarding.terminated import TerminationOutcome, handle_terminated
from shared.onboarding.updated import UpdateOutcome, handle_updated
from shared.onboarding.worker import hr_routes, process_hr_message

__all__ = [
    "ACTOR",
    "REGISTRATION_URL",
    "Deps",
    "DirectoryUser",
    "GraphOnboarding",
    "HireOutcome",
    "OnboardingGraph",
    "TapMail",
    "TerminationOutcome",
    "UpdateOutcome",
    "compose_tap_mail",
    "handle_hired",
    "handle_terminated",
    "handle_updated",
    "hire_progress",
    "hr_routes",
    "process_hr_message",
    "recheck_delay",
    "tap_start",
]
