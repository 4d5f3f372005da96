"""The e-mail that hands a new hire's Temporary Access Pass to their manager."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.graph.mail import MailMessage
from shared.names import REGISTRATION_URL

__all__ = ["REGISTRATION_URL", "TapMail", "compose_tap_mail"]


@dataclass(frozen=True, slots=True)
class TapMail:
    """What the e-mail says; ``tap`` is the secret and stays out of repr."""

    hire_name: str
    hire_upn: str
    manager_name: str
    manager_address: str
    starts_at: datetime
    expires_at: datetime
    usable_once: bool
    subject: str
    tap: str = field(repr=False)
    cc: tuple[str, ...] = ()


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%A %d %B %Y, %H:%M UTC")


def compose_tap_mail(mail: TapMail) -> MailMessage:
    """The plain-text message to the manager: who, what the pass is for, when, how, and if unexpected."""
    uses = (
        "It works once: after the first sign-in it is spent."
        if mail.usable_once
        else "It can be used several times until it expires."
    )
    body = "\n".join(
        [
            f"Hello {mail.manager_name},",
            "",
            f"{mail.hire_name} ({mail.hire_upn}) is joining your team. To protect their account from",
            "day one, they need to set up multi-factor authentication (MFA) the first time they sign in.",
            "Please give them this Temporary Access Pass in person or by phone - not by e-mail or chat:",
            "",
            f"    Temporary Access Pass:  {mail.tap}",
            "",
            f"    Valid from:   {_when(mail.starts_at)}",
            f"    Expires:      {_when(mail.expires_at)}",
            f"    {uses}",
            "",
            "How they use it:",
            f"  1. Go to {REGISTRATION_URL} and sign in as {mail.hire_upn}.",
            "  2. When asked for a password or code, enter the Temporary Access Pass.",
            "  3. Follow the steps to add the Microsoft Authenticator app (or another method offered).",
            "",
            "If the pass expires before they register, ask the IT service desk for a new one.",
            "",
            f"Not expecting {mail.hire_name}? Do not pass this on: forward this e-mail to the IT",
            "security team straight away so they can cancel the pass.",
            "",
            "Thank you,",
            "WaveGuard (IT Security)",
        ]
    )
    return MailMessage(subject=mail.subject, body=body, to=(mail.manager_address,), cc=mail.cc)
