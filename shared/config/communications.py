"""Plan section ``communications``: the announcements a wave's members get before it moves to
report-only and again before it is enforced (docs/waves.md, 'Announcements').

The company-wide texts, contact, registration link and mail budget live in the top-level
``communications`` section; a wave overrides only what differs (``waves[].communications``: a
wave abroad in its own language, another contact) next to its ``announcedDaysBefore`` gate.
Templates name their placeholders in braces; an unknown one is refused when the plan is loaded.
"""

from __future__ import annotations

import string
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from shared.config.base import ConfigModel, HttpUrl

__all__ = [
    "PLACEHOLDERS",
    "STAGES",
    "Communications",
    "MailBudget",
    "Stage",
    "StageTemplate",
    "StageTemplates",
    "WaveCommunications",
    "WaveTemplates",
    "placeholders_of",
]

# The two announcements, by the move they come before.
Stage = Literal["reportOnly", "enforce"]
STAGES: Final[tuple[Stage, ...]] = ("reportOnly", "enforce")
# What a template may say: {displayName} (from the directory), {wave}, {date} (the earliest day the
# stage happens), {registerUrl}, {contact}. Literal braces are written {{ and }}.
PLACEHOLDERS: Final = ("displayName", "wave", "date", "registerUrl", "contact")


def placeholders_of(template: str) -> set[str]:
    """The placeholder names ``template`` uses.

    Raises:
        ValueError: an unbalanced brace.
    """
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _check_template(value: str) -> str:
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as exc:
        raise PydanticCustomError(
            "template", "{error} (write a literal brace twice)", {"error": str(exc)}
        ) from None
    known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            raise PydanticCustomError(
                "placeholder",
                "unknown placeholder {placeholder} (known: {known}; write a literal brace twice)",
                {"placeholder": "{" + name + "}", "known": known},
            )
        if spec or conversion:
            raise PydanticCustomError(
                "placeholder",
                "placeholder {placeholder} takes no format or conversion; write it as {plain}",
                {
                    "placeholder": "{" + name + (f"!{conversion}" if conversion else "") + f":{spec}}}"
                    if spec
                    else "{" + name + f"!{conversion}}}",
                    "plain": "{" + name + "}",
                },
            )
    return value


Template = Annotated[str, Field(min_length=1, max_length=20_000), AfterValidator(_check_template)]
Subject = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_check_template)]


class StageTemplate(ConfigModel):
    """One announcement: subject and body with placeholders. ``html`` bodies are the plan author's
    HTML; every placeholder value (a display name from the directory) is escaped into it."""

    subject: Subject
    body: Template
    format: Literal["text", "html"] = "text"


DEFAULT_REPORT_ONLY: Final = StageTemplate(
    subject="Multi-factor authentication is coming to your account from {date}",
    body=(
        "Hello {displayName},\n\n"
        "From {date} at the earliest, your sign-ins to Microsoft 365 are watched for multi-factor\n"
        "authentication (MFA) as part of the rollout wave '{wave}'. Nothing is blocked yet; a few weeks\n"
        "later every sign-in will ask for a second factor.\n\n"
        "Please register the Microsoft Authenticator app now (about five minutes):\n"
        "{registerUrl}\n\n"
        "Questions? Contact {contact}.\n"
    ),
)
DEFAULT_ENFORCE: Final = StageTemplate(
    subject="From {date}, multi-factor authentication is required to sign in",
    body=(
        "Hello {displayName},\n\n"
        "From {date} at the earliest, every sign-in to Microsoft 365 requires multi-factor\n"
        "authentication (MFA) (rollout wave '{wave}'). Without a registered method you will not be\n"
        "able to sign in.\n\n"
        "If you have not registered the Microsoft Authenticator app yet, do it now:\n"
        "{registerUrl}\n\n"
        "Questions? Contact {contact}.\n"
    ),
)


class StageTemplates(ConfigModel):
    """The company-wide announcement of each stage."""

    report_only: StageTemplate = DEFAULT_REPORT_ONLY
    enforce: StageTemplate = DEFAULT_ENFORCE

    def of(self, stage: Stage) -> StageTemplate:
        return self.report_only if stage == "reportOnly" else self.enforce


class WaveTemplates(ConfigModel):
    """A wave's own announcement for a stage (unset: the company-wide one)."""

    report_only: StageTemplate | None = None
    enforce: StageTemplate | None = None

    def of(self, stage: Stage) -> StageTemplate | None:
        return self.report_only if stage == "reportOnly" else self.enforce


class WaveCommunications(ConfigModel):
    """``waves[].communications``: what this wave says differently (unset: the section's)."""

    enabled: bool | None = None
    contact: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    templates: WaveTemplates = WaveTemplates()
    allow_unreachable: bool | None = None


class MailBudget(ConfigModel):
    """What announcements may send from the sender mailbox. Exchange Online allows a mailbox 30
    messages a minute and 10,000 recipients a day; the defaults leave room for the TAP e-mails and
    nudges the same mailbox sends unpaced."""

    per_minute: Annotated[int, Field(ge=1, le=30)] = 20
    per_day: Annotated[int, Field(ge=1, le=10_000)] = 8000
    # How long one run (a timer tick, `waves announce`) may spend sending, waiting between minutes;
    # a tick also stops sending 4 minutes after it started (functionTimeout 5 minutes, less a margin).
    max_seconds_per_run: Annotated[int, Field(ge=1, le=180)] = 120


class Communications(ConfigModel):
    """``communications``: announcements before report-only and before enforcement, from the
    mailbox nudges use (``newHires.delivery.senderMailbox``)."""

    enabled: bool = False
    register_url: HttpUrl = "https://aka.ms/mysecurityinfo"
    # Members no e-mail can reach (no mailbox, an address Exchange refused) count against the
    # announced gate's share, and a wave nobody can be told holds, unless this says such members
    # are expected (kiosk accounts): then the share is over the members who can be told.
    allow_unreachable: bool = False
    contact: Annotated[str, Field(min_length=1, max_length=500)] = "the IT service desk"
    templates: StageTemplates = StageTemplates()
    budget: MailBudget = MailBudget()
