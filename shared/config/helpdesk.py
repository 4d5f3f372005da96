"""The ``helpdesk:`` plan section: where service-desk tickets come from and which are about MFA.

Each source is on when its secret is set. A secret may be written ``${VAR:-}``: with the variable
unset or empty the source is off (its endpoint answers 404), so a plan can name the helpdesk
without every environment having to hold its secret. A non-empty default is still refused: secrets
never live in the file.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from shared.config.base import ConfigModel, _secret_from_environment, check_whsec
from shared.config.interpolate import EnvStr

__all__ = [
    "DEFAULT_MFA_CATEGORIES",
    "MIN_JIRA_SECRET_CHARS",
    "Helpdesk",
    "HelpdeskStandardWebhooks",
    "JiraServiceManagement",
    "normalise_category",
]

DEFAULT_MFA_CATEGORIES: Final[tuple[str, ...]] = ("mfa", "authenticator", "sign-in")
DEFAULT_REQUESTER: Final = "reporter.emailAddress"
MIN_JIRA_SECRET_CHARS: Final = 16
_PATH_PART: Final = r"[A-Za-z_][A-Za-z0-9_]*"


def normalise_category(value: str) -> str:
    """A category or tag as it is compared: case-folded, spaces and underscores read as dashes."""
    return "-".join(value.casefold().replace("_", " ").replace("-", " ").split())


def _unset_is_none(value: Any, info: ValidationInfo) -> Any:
    # "${VAR:-}" with VAR unset gives an empty string from the file's default: no secret, source off.
    if isinstance(value, EnvStr) and value.from_default and value == "":
        return None
    if value is None:
        return None
    return _secret_from_environment(value, info)


def _long_enough_or_none(secret: SecretStr | None) -> SecretStr | None:
    # An HMAC key anyone could guess is no authentication: at least 16 characters that are not blanks.
    if secret is not None and len("".join(secret.get_secret_value().split())) < MIN_JIRA_SECRET_CHARS:
        # Never echo the value: it is (or is meant to be) a secret.
        raise PydanticCustomError(
            "jira_secret", f"expected at least {MIN_JIRA_SECRET_CHARS} non-whitespace characters"
        )
    return secret


def _whsec_or_none(secret: SecretStr | None) -> SecretStr | None:
    return None if secret is None else check_whsec(secret)


OptionalSecret = Annotated[SecretStr | None, BeforeValidator(_unset_is_none)]
OptionalWebhookSecret = Annotated[OptionalSecret, AfterValidator(_whsec_or_none)]
OptionalJiraSecret = Annotated[OptionalSecret, AfterValidator(_long_enough_or_none)]
FieldPath = Annotated[str, Field(pattern=rf"^{_PATH_PART}(\.{_PATH_PART})*$")]
FieldName = Annotated[str, Field(pattern=rf"^{_PATH_PART}$")]
Category = Annotated[str, Field(min_length=1, max_length=128)]


class HelpdeskStandardWebhooks(ConfigModel):
    """``POST /api/helpdesk/tickets``: canonical tickets behind Standard Webhooks signatures."""

    # Several during a rotation; unset ``${VAR:-}`` entries are dropped. None left: the endpoint is off.
    secrets: list[OptionalWebhookSecret] = []
    tolerance_seconds: Annotated[int, Field(ge=1, le=3600)] = 300

    @field_validator("secrets")
    @classmethod
    def _drop_unset(cls, value: list[SecretStr | None]) -> list[SecretStr | None]:
        return [secret for secret in value if secret is not None]

    @property
    def enabled(self) -> bool:
        return bool(self.secrets)

    def secret_values(self) -> tuple[str, ...]:
        return tuple(s.get_secret_value() for s in self.secrets if s is not None)


class JiraServiceManagement(ConfigModel):
    """``POST /api/helpdesk/jira``: Jira (Service Management) admin webhooks, ``X-Hub-Signature``."""

    secret: OptionalJiraSecret = None
    # How far the delivery's ``timestamp`` (epoch ms, in the signed body) may be from our clock. Jira
    # retries a failed delivery for hours, so a day; a replay older than that is refused (401).
    timestamp_tolerance_seconds: Annotated[int, Field(ge=300, le=7 * 86400)] = 86400
    # Where the requester's UPN is, as dotted paths under ``issue.fields``; the first string wins.
    requester_fields: Annotated[list[FieldPath], Field(min_length=1, max_length=5)] = [DEFAULT_REQUESTER]
    # The "Customer Request Type" field (site-specific, e.g. customfield_10010): its request type name
    # is the ticket's category. Unset: the issue type's name is.
    request_type_field: FieldName | None = None

    @property
    def enabled(self) -> bool:
        return self.secret is not None


class Helpdesk(ConfigModel):
    """Service-desk tickets as rollout evidence (the ``maxMfaTicketsPer100Users`` gate)."""

    # A ticket is MFA-related when its category or any tag is one of these (case-folded; spaces,
    # underscores and dashes alike: "Sign In" and "sign_in" are "sign-in").
    mfa_categories: Annotated[list[Category], Field(min_length=1, max_length=100)] = [*DEFAULT_MFA_CATEGORIES]
    standard_webhooks: HelpdeskStandardWebhooks = HelpdeskStandardWebhooks()
    jira: JiraServiceManagement = JiraServiceManagement()

    @property
    def enabled(self) -> bool:
        """True when at least one source can deliver tickets."""
        return self.standard_webhooks.enabled or self.jira.enabled

    def is_mfa_related(self, category: str | None, tags: tuple[str, ...]) -> bool:
        """Whether a ticket with this category and these tags is about MFA."""
        wanted = {normalise_category(c) for c in self.mfa_categories}
        given = [category, *tags] if category else list(tags)
        return any(normalise_category(value) in wanted for value in given)
