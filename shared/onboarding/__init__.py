"""HR onboarding: hires into their wave with a TAP for the manager; updates and terminations.

``process_hr_message(body, deps)`` handles one ``hr-events`` message; the use cases
(``handle_hired`` / ``handle_updated`` / ``handle_terminated``) take a ``Deps`` of ports so unit
tests pass in-memory fakes (``OnboardingGraph`` for Graph).
"""

from __future__ import annotations

from shared.onboarding.deps import ACTOR, Deps, QueueSenderPort, build_deps
from shared.onboarding.dispatch import Outcome, process_hr_message
from shared.onboarding.hired import HIRES_NAMESPACE, HireOutcome, handle_hired, recheck_delay, tap_start
from shared.onboarding.ports import DirectoryUser, GraphOnboarding, OnboardingGraph
from shared.onboarding.tap_mail import REGISTRATION_URL, TapMail, compose_tap_mail
from shared.onboarding.terminated import TerminationOutcome, handle_terminated
from shared.onboarding.updated import UpdateOutcome, handle_updated

__all__ = [
    "ACTOR",
    "HIRES_NAMESPACE",
    "REGISTRATION_URL",
    "Deps",
    "DirectoryUser",
    "GraphOnboarding",
    "HireOutcome",
    "OnboardingGraph",
    "Outcome",
    "QueueSenderPort",
    "TapMail",
    "TerminationOutcome",
    "UpdateOutcome",
    "build_deps",
    "compose_tap_mail",
    "handle_hired",
    "handle_terminated",
    "handle_updated",
    "process_hr_message",
    "recheck_delay",
    "tap_start",
]
