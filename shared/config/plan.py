"""The rollout plan: the whole ``config/waveguard.yaml`` schema and its cross-references."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Final, Literal, Self

from pydantic import AfterValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from shared.config.alerting import AlertingConfig
from shared.config.base import ConfigModel, Guid, HttpUrl, Secret, check_whsec
from shared.config.communications import STAGES, Communications, placeholders_of
from shared.config.helpdesk import Helpdesk
from shared.config.risk import ResponseMode, Risk, RiskResponses
from shared.config.waves import AUTO_WAVE, BreakGlass, NewHires, Wave
from shared.countries import alpha2

__all__ = [
    "DEFAULT_ADMIN_ROLES",
    "AdminPolicy",
    "AllowedCountries",
    "BambooHr",
    "Communications",
    "GroupChanges",
    "Helpdesk",
    "HrProviders",
    "Policies",
    "RequireMfa",
    "ResponseMode",
    "Risk",
    "RiskResponses",
    "RolloutPlan",
    "SignInRisk",
    "StandardWebhooks",
    "Subscriptions",
    "Tenant",
    "TrustedLocation",
    "UserRisk",
]

PolicyState = Literal["enabledForReportingButNotEnforced", "disabled", "enabled"]

# Role template ids of Microsoft's "Require MFA for administrators" baseline.
DEFAULT_ADMIN_ROLES: tuple[str, ...] = (
    "62e90394-69f5-4237-9190-012177145e10",  # Global Administrator
    "194ae4cb-b126-40b2-bd5b-6091b380977d",  # Security Administrator
    "e8611ab8-c189-46e8-94e1-60213ab1f814",  # Privileged Role Administrator
    "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",  # Privileged Authentication Administrator
    "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9",  # Conditional Access Administrator
    "c4e39bd9-1100-46d3-8c65-fb160da0071f",  # Authentication Administrator
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",  # Application Administrator
    "158c047a-c907-4556-b7ef-446551a6b5f7",  # Cloud Application Administrator
    "29232cdf-9323-42fd-ade2-1d097af3e4de",  # Exchange Administrator
    "f28a1f50-f6e7-4571-818b-6a12f2af6b6c",  # SharePoint Administrator
    "fe930be7-5e62-47db-91af-98c3a49a38b1",  # User Administrator
    "729827e3-9c14-49f7-bb1b-9608f156bbb8",  # Helpdesk Administrator
    "b0f54661-2d74-4c50-afa3-1ec803f12efe",  # Billing Administrator
    "3a2c62db-5318-420d-8d74-23affee5d9d5",  # Intune Administrator
)


WebhookSecret = Annotated[Secret, AfterValidator(check_whsec)]


class Tenant(ConfigModel):
    """Which tenant this plan is for (informational; shown in alerts and the CLI)."""

    domain: str | None = None
    name: str | None = None


class StandardWebhooks(ConfigModel):
    """The canonical HR webhook (Standard Webhooks); several secrets allow rotation."""

    enabled: bool = True
    secrets: list[WebhookSecret] = []
    tolerance_seconds: Annotated[int, Field(ge=1, le=3600)] = 300

    @model_validator(mode="after")
    def _secret_when_enabled(self) -> Self:
        if self.enabled and not self.secrets:
            raise PydanticCustomError(
                "webhook_secrets", "give at least one secret (e.g. ${WAVEGUARD_HR_WEBHOOK_SECRET})"
            )
        return self


class BambooHr(ConfigModel):
    """The BambooHR adapter (``POST /api/hr/bamboohr``); ``fieldMap`` maps their fields to ours."""

    enabled: bool = False
    secret: Secret | None = None
    field_map: dict[str, str] = {}

    @model_validator(mode="after")
    def _secret_when_enabled(self) -> Self:
        if self.enabled and self.secret is None:
            raise PydanticCustomError("bamboohr_secret", "secret is required when bamboohr is enabled")
        return self


class HrProviders(ConfigModel):
    """Authenticated HR sources; a disabled provider answers 404."""

    standard_webhooks: StandardWebhooks = StandardWebhooks(enabled=False)
    bamboohr: BambooHr = BambooHr()


class AdminPolicy(ConfigModel):
    """A separate policy requiring MFA (and optionally a compliant device) for directory roles, on
    every app: "MFA for administrators", whatever the wave, device or network."""

    enabled: bool = True
    roles: list[Guid] = list(DEFAULT_ADMIN_ROLES)
    require_compliant_device: bool = False


RiskLevel = Literal["low", "medium", "high"]
# Grant controls that may stand in for MFA in the wave-driven Require MFA policies (grant "OR").
MfaAlternative = Literal["compliantDevice", "domainJoinedDevice"]
# Entra sees the public address a sign-in comes from: these ranges never match one.
_NON_PUBLIC: Final = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/127",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
        # an IPv4 address written as IPv6 (IPv4-mapped), NAT64 translation prefixes: Entra sees the
        # IPv4 address itself, so give that
        "::ffff:0:0/96",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        # documentation ranges (RFC 5737, RFC 3849, RFC 9637): examples, never a real egress
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "2001:db8::/32",
        "3fff::/20",
    )
)
# Entra refuses a named location range wider than /8 (IPv4). An IPv6 /32 is already a whole ISP's
# allocation: nothing wider is one organisation's network.
_WIDEST_PREFIX: Final = {4: 8, 6: 32}
# Graph's limits: up to 195 named locations per tenant, up to 2,000 IP ranges per named location.
MAX_NAMED_LOCATIONS: Final = 195
MAX_RANGES_PER_LOCATION: Final = 2000


def _check_cidr(value: str) -> str:
    text = value.strip()
    if "/" not in text:
        raise PydanticCustomError(
            "cidr", "expected a CIDR range such as 203.0.114.0/24 (one address is 203.0.114.7/32)"
        )
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise PydanticCustomError(
                "cidr", "expected a CIDR range such as 203.0.114.0/24 or 2001:4860::/48"
            ) from None
        raise PydanticCustomError(
            "cidr",
            "{value} has host bits set; did you mean {network}?",
            {"value": text, "network": str(loose)},
        ) from None
    widest = _WIDEST_PREFIX[network.version]
    if network.prefixlen < widest:
        raise PydanticCustomError(
            "cidr",
            "IPv{version} ranges must be /{widest} or narrower, got /{prefix}",
            {"version": network.version, "widest": widest, "prefix": network.prefixlen},
        )
    if any(network.version == other.version and network.overlaps(other) for other in _NON_PUBLIC):
        raise PydanticCustomError(
            "cidr",
            "{network} is not a public range (private, CGNAT, loopback, link-local, multicast, "
            "documentation, IPv4-mapped or NAT64): Entra only ever sees the public address a sign-in "
            "comes from, so it would never match (give the office's public egress range)",
            {"network": str(network)},
        )
    return str(network)


def _check_name(value: str) -> str:
    if value != value.strip():
        raise PydanticCustomError(
            "name", "{value} starts or ends with a space: remove it", {"value": repr(value)}
        )
    return value


def _check_country(value: str) -> str:
    code = alpha2(value)
    if code is None:
        raise PydanticCustomError(
            "country",
            "expected an ISO 3166-1 alpha-2 country code such as GB, IE or US, got {value}",
            {"value": repr(value)},
        )
    return code


CidrRange = Annotated[str, AfterValidator(_check_cidr)]
CountryCode = Annotated[str, AfterValidator(_check_country)]


def _unique[T](values: list[T], what: str) -> list[T]:
    seen: set[str] = set()
    for value in values:
        key = str(value).casefold()
        if key in seen:
            raise PydanticCustomError(
                "duplicate", "{what} {value} is listed twice", {"what": what, "value": repr(value)}
            )
        seen.add(key)
    return values


class RequireMfa(ConfigModel):
    """What else satisfies the wave-driven Require MFA policies: the seed's "low risk, no prompt"."""

    # e.g. [compliantDevice, domainJoinedDevice]: grant "mfa OR compliantDevice OR domainJoinedDevice".
    # Never applied to the administrators' or the high-risk apps' policy (the lint refuses that).
    satisfied_by: list[MfaAlternative] = []

    @field_validator("satisfied_by")
    @classmethod
    def _distinct(cls, value: list[MfaAlternative]) -> list[MfaAlternative]:
        return _unique(value, "control")


class TrustedLocation(ConfigModel):
    """A network WaveGuard keeps as a trusted ``ipNamedLocation``; the Require MFA policies skip it."""

    name: Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_check_name)]
    ip_ranges: Annotated[list[CidrRange], Field(min_length=1, max_length=MAX_RANGES_PER_LOCATION)]
    # Graph's isTrusted: the Require MFA policies exclude the location by id, which needs no trust
    # mark; marked trusted it also joins "AllTrusted" in every other policy of the tenant and lowers
    # Identity Protection's sign-in risk from it, so that is an explicit choice.
    is_trusted: bool = False

    @field_validator("ip_ranges")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        # Compared as networks (after normalisation: 2001:4860::/48 and 2001:4860:0::/48 are one).
        return _unique([str(ipaddress.ip_network(v)) for v in value], "range")


class SignInRisk(ConfigModel):
    """Identity Protection's sign-in risk (Entra ID P2): block at some levels, MFA at others."""

    enabled: bool = False
    block_levels: list[RiskLevel] = ["high"]
    mfa_levels: list[RiskLevel] = ["medium"]

    @field_validator("block_levels", "mfa_levels")
    @classmethod
    def _distinct(cls, value: list[RiskLevel]) -> list[RiskLevel]:
        return _unique(value, "level")

    @model_validator(mode="after")
    def _levels(self) -> Self:
        both = sorted(set(self.block_levels) & set(self.mfa_levels))
        if both:
            raise PydanticCustomError(
                "risk_levels",
                "blockLevels and mfaLevels share {levels}: a level is either blocked or asks for MFA",
                {"levels": ", ".join(both)},
            )
        if self.enabled and not (self.block_levels or self.mfa_levels):
            raise PydanticCustomError(
                "risk_levels", "enabled needs at least one level in blockLevels or mfaLevels"
            )
        return self


class UserRisk(ConfigModel):
    """Identity Protection's user risk (Entra ID P2): a secure password change, after MFA."""

    enabled: bool = False
    levels: Annotated[list[RiskLevel], Field(min_length=1)] = ["high"]

    @field_validator("levels")
    @classmethod
    def _distinct(cls, value: list[RiskLevel]) -> list[RiskLevel]:
        return _unique(value, "level")


class AllowedCountries(ConfigModel):
    """The countries sign-ins may come from (a ``countryNamedLocation``); elsewhere: block or MFA."""

    enabled: bool = False
    countries: list[CountryCode] = []
    outside: Literal["block", "mfa"] = "block"
    # Addresses Entra cannot place in a country count as allowed (default: they are "outside").
    include_unknown_countries: bool = False

    @field_validator("countries", mode="before")
    @classmethod
    def _yaml_norway(cls, value: object) -> object:
        if isinstance(value, list) and any(v is False for v in value):
            raise PydanticCustomError(
                "country", "a country read as false: YAML reads NO (Norway) as false; quote it: 'NO'"
            )
        return value

    @field_validator("countries")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return _unique(value, "country")

    @model_validator(mode="after")
    def _countries_when_enabled(self) -> Self:
        if self.enabled and not self.countries:
            raise PydanticCustomError(
                "countries", "enabled needs at least one country (ISO 3166-1 alpha-2, e.g. [GB, IE])"
            )
        return self


class Policies(ConfigModel):
    """The Conditional Access baseline WaveGuard writes (always excluding break-glass)."""

    name_prefix: Annotated[str, Field(min_length=1, max_length=64)] = "WaveGuard - "
    state: PolicyState = "enabledForReportingButNotEnforced"
    allow_enabled_on_create: bool = False
    block_legacy_auth: bool = True
    require_mfa_registration: bool = True
    admin_policy: AdminPolicy = AdminPolicy()
    high_risk_apps: list[Guid] = []
    require_mfa: RequireMfa = RequireMfa()
    trusted_locations: list[TrustedLocation] = []
    sign_in_risk: SignInRisk = SignInRisk()
    user_risk: UserRisk = UserRisk()
    allowed_countries: AllowedCountries = AllowedCountries()

    @field_validator("trusted_locations")
    @classmethod
    def _distinct_locations(cls, value: list[TrustedLocation]) -> list[TrustedLocation]:
        _unique([location.name for location in value], "name")
        # The allowed countries take one more; the tenant's own named locations count too (Graph
        # refuses the create past its limit).
        if len(value) >= MAX_NAMED_LOCATIONS:
            raise PydanticCustomError(
                "too_many",
                "{count} trusted locations: Graph takes at most {limit} named locations per tenant "
                "(the allowed countries take one more): merge networks into fewer locations",
                {"count": len(value), "limit": MAX_NAMED_LOCATIONS},
            )
        return value

    @model_validator(mode="after")
    def _report_only_first(self) -> Self:
        if self.state == "enabled" and not self.allow_enabled_on_create:
            raise PydanticCustomError(
                "policy_state",
                "new policies start in report-only; state 'enabled' needs allowEnabledOnCreate: true "
                "(enforcement normally comes from a wave promotion)",
            )
        return self

    @property
    def needs_p2(self) -> bool:
        """Whether the baseline has risk-based conditions (Microsoft Entra ID P2)."""
        return self.sign_in_risk.enabled or self.user_risk.enabled


class Subscriptions(ConfigModel):
    """Graph change notifications: where Graph calls us, and the clientState it must echo."""

    notification_url: HttpUrl | None = None
    client_state: Secret | None = None

    @field_validator("notification_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # "${WAVEGUARD_NOTIFICATION_URL:-}" leaves an empty string when running locally.
        return None if value == "" else value

    @model_validator(mode="after")
    def _client_state_with_url(self) -> Self:
        if self.notification_url and self.client_state is None:
            raise PydanticCustomError("client_state", "clientState is required when notificationUrl is set")
        if self.client_state is not None and len(self.client_state.get_secret_value()) > 128:
            raise PydanticCustomError(
                "client_state", "clientState must be at most 128 characters (Graph's limit)"
            )
        return self


class GroupChanges(ConfigModel):
    """What the group-change worker does beyond the break-glass repairs (which are always on)."""

    # A member of an enforced wave removed by someone other than WaveGuard is always alerted on
    # (WaveMemberRemoved); with this on, the member is also put back.
    readd_removed_wave_members: bool = False


class RolloutPlan(ConfigModel):
    """The whole plan file, validated including references between sections."""

    tenant: Tenant = Tenant()
    break_glass: BreakGlass
    waves: Annotated[list[Wave], Field(min_length=1)]
    new_hires: NewHires
    hr_providers: HrProviders = HrProviders()
    helpdesk: Helpdesk = Helpdesk()
    policies: Policies = Policies()
    risk: Risk = Risk()
    alerting: AlertingConfig
    subscriptions: Subscriptions = Subscriptions()
    group_changes: GroupChanges = GroupChanges()
    communications: Communications = Communications()

    @model_validator(mode="after")
    def _cross_references(self) -> Self:
        problems = [
            *_wave_problems(self),
            *_new_hire_problems(self),
            *_break_glass_problems(self),
            *_communication_problems(self),
        ]
        if problems:
            raise PydanticCustomError(
                "plan", "{problems}", {"problems": "; ".join(problems), "items": problems}
            )
        return self

    def wave(self, name: str) -> Wave:
        """The wave called ``name``.

        Raises:
            KeyError: no wave has that name.
        """
        for wave in self.waves:
            if wave.name == name:
                return wave
        raise KeyError(name)

    @property
    def catch_all_wave(self) -> Wave | None:
        """The wave that takes everyone not selected by an earlier wave, if any."""
        return next((wave for wave in self.waves if wave.catch_all), None)


def _wave_problems(plan: RolloutPlan) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for index, wave in enumerate(plan.waves):
        if wave.name in seen:
            problems.append(f"waves[{index}].name: duplicate wave name {wave.name!r}")
        seen.add(wave.name)
        for earlier in plan.waves[:index]:
            if wave.group.matches(earlier.group):
                problems.append(
                    f"waves[{index}].group: {wave.group} is already the group of wave {earlier.name!r}"
                )
        if wave.group.matches(plan.break_glass.exclusion_group):
            problems.append(f"waves[{index}].group: the break-glass exclusion group cannot be a wave group")
    catch_alls = [index for index, wave in enumerate(plan.waves) if wave.catch_all]
    if len(catch_alls) > 1:
        problems.append(f"waves: only one wave may be catchAll (found waves {catch_alls})")
    elif catch_alls and catch_alls[0] != len(plan.waves) - 1:
        problems.append(
            f"waves[{catch_alls[0]}].catchAll: the catchAll wave must be last, or later waves never match"
        )
    return problems


def _new_hire_problems(plan: RolloutPlan) -> list[str]:
    names = [wave.name for wave in plan.waves]
    problems: list[str] = []
    hires = plan.new_hires
    if hires.wave != AUTO_WAVE and hires.wave not in names:
        problems.append(f"newHires.wave: unknown wave {hires.wave!r} (waves: {', '.join(names)}, or 'auto')")
    if hires.fallback_wave is not None and hires.fallback_wave not in names:
        problems.append(
            f"newHires.fallbackWave: unknown wave {hires.fallback_wave!r} (waves: {', '.join(names)})"
        )
    if hires.wave == AUTO_WAVE and hires.fallback_wave is None and plan.catch_all_wave is None:
        problems.append(
            "newHires.fallbackWave: required when newHires.wave is 'auto' and no wave is catchAll"
        )
    return problems


def _communication_problems(plan: RolloutPlan) -> list[str]:
    """The announcedDaysBefore gate and the announcements go together: a wave with the gate must
    send announcements, and one whose announcement promises a {date} must have the gate that keeps
    the promise."""
    problems: list[str] = []
    for index, wave in enumerate(plan.waves):
        own = wave.communications.enabled
        enabled = plan.communications.enabled if own is None else own
        gate = f"waves[{index}].gates.announcedDaysBefore"
        if not enabled:
            if wave.gates.announced_days_before is not None:
                problems.append(
                    f"{gate}: the wave sends no announcements (communications.enabled is off for it); "
                    "turn them on or remove the gate"
                )
            continue
        if wave.gates.announced_days_before is not None:
            continue
        for stage in STAGES:
            template = wave.communications.templates.of(stage)
            where = (
                f"waves[{index}].communications.templates.{stage}"
                if template is not None
                else f"communications.templates.{stage}"
            )
            template = template or plan.communications.templates.of(stage)
            if "date" in placeholders_of(template.subject) | placeholders_of(template.body):
                problems.append(
                    f"{gate}: required while the {stage} announcement promises a {{date}} ({where}); "
                    "the gate keeps that promise"
                )
                break
    return problems


def _break_glass_problems(plan: RolloutPlan) -> list[str]:
    problems: list[str] = []
    for index, wave in enumerate(plan.waves):
        for upn in wave.selectors.users:
            if plan.break_glass.is_break_glass(upn=upn):
                problems.append(
                    f"waves[{index}].selectors.users: {upn} is a break-glass account and is never targeted"
                )
    return problems
