"""Building blocks of the plan schema: the model base, GUIDs, UPNs, URLs, group refs, secrets."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Final, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    SecretStr,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from shared.config.interpolate import EnvStr
from shared.config.settings import is_loopback_url
from shared.upn import UPN_HINT, is_upn

__all__ = [
    "REQUIRE_SECRETS_FROM_ENV",
    "ConfigModel",
    "GroupRef",
    "Guid",
    "HttpUrl",
    "Secret",
    "SecretUrl",
    "Slug",
    "Upn",
    "check_whsec",
    "is_guid",
]

# Validation-context flag set by the file loader: secret fields must then come from ${VAR}.
REQUIRE_SECRETS_FROM_ENV: Final = "require_secrets_from_env"

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class ConfigModel(BaseModel):
    """Frozen, strict about unknown keys, camelCase in YAML, snake_case in Python."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )


def is_guid(value: str) -> bool:
    """True for a GUID such as ``62e90394-69f5-4237-9190-012177145e10``."""
    return bool(_GUID.match(value))


def _check_guid(value: str) -> str:
    if not is_guid(value):
        raise PydanticCustomError("guid", "expected a GUID such as 00000000-0000-0000-0000-000000000000")
    return value.lower()


def _check_upn(value: str) -> str:
    if not is_upn(value):
        raise PydanticCustomError("upn", UPN_HINT)
    return value


def _check_slug(value: str) -> str:
    if not _SLUG.match(value) or len(value) > 40:
        raise PydanticCustomError(
            "slug", "expected a short slug of lowercase letters, digits and dashes (e.g. finance-hr)"
        )
    return value


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PydanticCustomError("http_url", "expected an http(s) URL")
    if parts.scheme == "http" and not is_loopback_url(value):
        raise PydanticCustomError(
            "http_url", "expected an https URL (plain http only for 127.0.0.1/localhost)"
        )
    return value


def _secret_from_environment(value: Any, info: ValidationInfo) -> Any:
    """Refuse secrets written into the file: they must be ``${VAR}`` references, without defaults."""
    if not (info.context or {}).get(REQUIRE_SECRETS_FROM_ENV) or isinstance(value, SecretStr):
        return value
    if isinstance(value, EnvStr) and not value.from_default:
        return value
    if isinstance(value, EnvStr):
        raise PydanticCustomError(
            "secret_default",
            "a secret takes no default in the file; use ${{name}} without ':-' and set it in the environment",
            {"name": value.variables[0]},
        )
    if isinstance(value, str) and value.startswith("whsec_"):
        raise PydanticCustomError(
            "secret_literal",
            "literal webhook secret in the file; secrets never live in the file: reference an environment "
            "variable instead, e.g. ${WAVEGUARD_HR_WEBHOOK_SECRET}",
        )
    raise PydanticCustomError(
        "secret_literal",
        "secrets never live in the file: reference an environment variable, e.g. ${PAGERDUTY_ROUTING_KEY}",
    )


def check_whsec(secret: SecretStr) -> SecretStr:
    """The secret when it is a Standard Webhooks secret (``whsec_`` then base64 of >= 16 bytes)."""
    raw = secret.get_secret_value()
    try:
        ok = raw.startswith("whsec_") and len(base64.b64decode(raw[6:], validate=True)) >= 16
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        # Never echo the value: it is (or is meant to be) a secret.
        raise PydanticCustomError(
            "whsec", "expected a Standard Webhooks secret: 'whsec_' then base64 of >= 16 bytes"
        )
    return secret


Guid = Annotated[str, AfterValidator(_check_guid)]
Upn = Annotated[str, AfterValidator(_check_upn)]
Slug = Annotated[str, AfterValidator(_check_slug)]
HttpUrl = Annotated[str, AfterValidator(_check_http_url)]
Secret = Annotated[SecretStr, BeforeValidator(_secret_from_environment)]


def _check_secret_url(secret: SecretStr) -> SecretStr:
    try:
        _check_http_url(secret.get_secret_value())
    except PydanticCustomError:
        # The URL is the credential: say what is wrong without echoing it.
        raise PydanticCustomError(
            "http_url",
            "expected an https URL (plain http only for 127.0.0.1/localhost); the value is not shown",
        ) from None
    return secret


SecretUrl = Annotated[Secret, AfterValidator(_check_secret_url)]


class GroupRef(ConfigModel):
    """An Entra group by object id and/or display name (id wins when both are given)."""

    id: Guid | None = None
    display_name: str | None = None

    @model_validator(mode="after")
    def _needs_id_or_name(self) -> Self:
        if self.id is None and not (self.display_name or "").strip():
            raise PydanticCustomError("group_ref", "give the group's id or displayName (or both)")
        return self

    def matches(self, other: GroupRef) -> bool:
        """True when both refer to the same group (same id, or same display name, case-insensitive)."""
        if self.id and other.id:
            return self.id == other.id
        return bool(self.display_name and other.display_name) and (
            str(self.display_name).casefold() == str(other.display_name).casefold()
        )

    def __str__(self) -> str:
        return self.display_name or str(self.id)
