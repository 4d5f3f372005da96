"""Plan sections about people: break-glass accounts, the waves, and the new-hire policy."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from shared.config.base import ConfigModel, GroupRef, Guid, Slug, Upn
from shared.config.communications import WaveCommunications
from shared.countries import alpha2

__all__ = [
    "AUTO_WAVE",
    "BreakGlass",
    "BreakGlassAccount",
    "Delivery",
    "Gates",
    "NewHires",
    "Nudges",
    "ProvisioningRetry",
    "Selectors",
    "Tap",
    "Wave",
]

# newHires.wave value meaning "the first wave whose selectors match the hire".
AUTO_WAVE = "auto"


def _check_country(value: str) -> str:
    code = alpha2(value)
    if code is None:
        raise PydanticCustomError(
            "country", "expected an ISO 3166-1 alpha-2 country code such as GB (UK is read as GB)"
        )
    return code


Country = Annotated[str, AfterValidator(_check_country)]
NonEmptyStr = Annotated[str, Field(min_length=1)]


class BreakGlassAccount(ConfigModel):
    """An emergency-access account: never targeted, always excluded from every CA policy."""

    id: Guid | None = None
    user_principal_name: Upn | None = None

    @model_validator(mode="after")
    def _needs_id_or_upn(self) -> Self:
        if self.id is None and self.user_principal_name is None:
            raise PydanticCustomError(
                "break_glass_account", "give the account's id or userPrincipalName (or both)"
            )
        return self


class BreakGlass(ConfigModel):
    """Break-glass accounts and the group every WaveGuard policy excludes."""

    accounts: Annotated[list[BreakGlassAccount], Field(min_length=1)]
    exclusion_group: GroupRef

    def is_break_glass(self, *, user_id: str | None = None, upn: str | None = None) -> bool:
        """True when the user (by object id or UPN, case-insensitive) is a break-glass account."""
        for account in self.accounts:
            if user_id and account.id and account.id == user_id.lower():
                return True
            if (
                upn
                and account.user_principal_name
                and account.user_principal_name.casefold() == upn.casefold()
            ):
                return True
        return False


class Selectors(ConfigModel):
    """Who belongs to a wave: any match of department, country, group membership or explicit UPN."""

    departments: list[NonEmptyStr] = []
    countries: list[Country] = []
    groups: list[NonEmptyStr] = []
    users: list[Upn] = []

    @property
    def empty(self) -> bool:
        """True when no selector is given."""
        return not (self.departments or self.countries or self.groups or self.users)


class Gates(ConfigModel):
    """What a wave must show before it may be promoted from report-only to enforced."""

    min_registration_rate: Annotated[float, Field(ge=0, le=1)] = 0.95
    max_report_only_failure_rate: Annotated[float, Field(ge=0, le=1)] = 0.02
    min_soak_days: Annotated[int, Field(ge=0)] = 7
    require_no_open_critical_alerts: bool = True
    min_report_only_sign_ins: Annotated[int, Field(ge=0)] = 50
    # The user-experience gates, off unless set (docs/waves.md, 'Helpdesk and prompt gates').
    # Members who raised MFA-related helpdesk tickets in the last ticketWindowDays, per 100 members.
    max_mfa_tickets_per_100_users: Annotated[float, Field(ge=0)] | None = None
    ticket_window_days: Annotated[int, Field(ge=1, le=60)] = 7
    # MFA prompts (interactive sign-ins that required MFA) per member and active day, last promptWindowDays.
    max_mfa_prompts_per_user_per_day: Annotated[float, Field(ge=0)] | None = None
    prompt_window_days: Annotated[int, Field(ge=1, le=30)] = 7
    # Announcements (docs/waves.md, 'Announcements'), off unless set: the wave moves to report-only,
    # and is enforced, no sooner than this many days after that stage's announcement reached at
    # least announcedShare of its members (of those WaveGuard can reach only with
    # communications.allowUnreachable), nobody is still waiting for it, and the date the message
    # named has come (12:00 UTC).
    announced_days_before: Annotated[int, Field(ge=0, le=90)] | None = None
    announced_share: Annotated[float, Field(ge=0.5, le=1)] = 0.95


class Nudges(ConfigModel):
    """Reminders to users of a wave who have not registered MFA yet."""

    enabled: bool = True
    every_days: Annotated[int, Field(ge=1)] = 3
    escalate_to_manager_after_days: Annotated[int, Field(ge=0)] = 7


class Wave(ConfigModel):
    """One step of the rollout: a target group, who is in it, and the gates to promote it."""

    name: Slug
    description: str = ""
    group: GroupRef
    selectors: Selectors = Selectors()
    catch_all: bool = False
    gates: Gates = Gates()
    promotion: Literal["auto", "approval"] = "approval"
    nudges: Nudges = Nudges()
    # What this wave's announcements say differently from the plan's ``communications``.
    communications: WaveCommunications = WaveCommunications()
    # Maximum group membership changes one run may make: a bad selector cannot move the tenant.
    blast_radius: Annotated[int, Field(ge=1)] = 1000

    @model_validator(mode="after")
    def _selectors_or_catch_all(self) -> Self:
        if self.catch_all and not self.selectors.empty:
            raise PydanticCustomError(
                "wave_selectors", "a catchAll wave takes everyone left; remove its selectors"
            )
        if not self.catch_all and self.selectors.empty:
            raise PydanticCustomError(
                "wave_selectors",
                "give at least one selector (departments, countries, groups, users) or set catchAll: true",
            )
        return self


class Tap(ConfigModel):
    """The Temporary Access Pass issued to a new hire (Graph limits: 10 to 43,200 minutes)."""

    lifetime_minutes: Annotated[int, Field(ge=10, le=43200)] = 480
    is_usable_once: bool = True
    start_at: Literal["hireDate", "now"] = "hireDate"


class Delivery(ConfigModel):
    """How the TAP reaches the new hire: by e-mail to their manager, sent from a mailbox."""

    method: Literal["managerEmail"] = "managerEmail"
    sender_mailbox: Upn
    cc_mailbox: Upn | None = None
    subject: NonEmptyStr = "Temporary Access Pass for your new team member"
    # Where the TAP goes when Entra records no manager for the hire; unset: held, and alerted.
    fallback_mailbox: Upn | None = None


class ProvisioningRetry(ConfigModel):
    """Retry schedule while the HR event is ahead of Entra provisioning (user not found yet)."""

    budget_hours: Annotated[float, Field(gt=0, le=168)] = 24
    initial_delay_seconds: Annotated[float, Field(gt=0)] = 60
    max_delay_seconds: Annotated[float, Field(gt=0, le=604800)] = 3600
    backoff_factor: Annotated[float, Field(ge=1)] = 2

    @model_validator(mode="after")
    def _initial_below_max(self) -> Self:
        if self.initial_delay_seconds > self.max_delay_seconds:
            raise PydanticCustomError("retry_delays", "initialDelaySeconds must not exceed maxDelaySeconds")
        return self


class NewHires(ConfigModel):
    """Every new hire is protected from day one: wave, TAP and its delivery."""

    wave: NonEmptyStr = AUTO_WAVE
    fallback_wave: NonEmptyStr | None = None
    tap: Tap = Tap()
    delivery: Delivery
    provisioning_retry: ProvisioningRetry = ProvisioningRetry()
    # A TAP only for an account Entra created at most this many days before WaveGuard acts on the
    # hire: an older account belongs to someone already, and a TAP would hand it over.
    max_account_age_days: Annotated[int, Field(ge=1, le=365)] = 30
