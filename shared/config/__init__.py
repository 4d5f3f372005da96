"""Configuration: process settings from the environment and the rollout plan file.

``load_settings()`` is the only reader of ``os.environ`` in the app; ``load_plan(path, environ)``
reads ``config/waveguard.yaml`` (or ``WAVEGUARD_CONFIG``) with ``${VAR}`` interpolation. Both
raise ``ConfigError`` with messages naming the file (or ``environment``) and the field.
"""

from __future__ import annotations

from shared.config.alerting import (
    AlertingConfig,
    EmailReceiver,
    InhibitRule,
    Matcher,
    PagerDutyReceiver,
    Receiver,
    ReceiverKind,
    Route,
    Silence,
    SlackReceiver,
    TeamsReceiver,
    WebhookReceiver,
)
from shared.config.base import GroupRef, is_guid
from shared.config.loader import load_plan, parse_plan
from shared.config.plan import (
    DEFAULT_ADMIN_ROLES,
    AdminPolicy,
    BambooHr,
    GroupChanges,
    HrProviders,
    Policies,
    ResponseMode,
    Risk,
    RiskResponses,
    RolloutPlan,
    StandardWebhooks,
    Subscriptions,
    Tenant,
)
from shared.config.settings import (
    APP_ROOT,
    Settings,
    StorageSettings,
    TelemetryMode,
    WaveGuardEnv,
    is_loopback_url,
    load_settings,
    load_telemetry_settings,
)
from shared.config.waves import (
    AUTO_WAVE,
    BreakGlass,
    BreakGlassAccount,
    Delivery,
    Gates,
    NewHires,
    Nudges,
    ProvisioningRetry,
    Selectors,
    Tap,
    Wave,
)

__all__ = [
    "APP_ROOT",
    "AUTO_WAVE",
    "DEFAULT_ADMIN_ROLES",
    "AdminPolicy",
    "AlertingConfig",
    "BambooHr",
    "BreakGlass",
    "BreakGlassAccount",
    "Delivery",
    "EmailReceiver",
    "Gates",
    "GroupChanges",
    "GroupRef",
    "HrProviders",
    "InhibitRule",
    "Matcher",
    "NewHires",
    "Nudges",
    "PagerDutyReceiver",
    "Policies",
    "ProvisioningRetry",
    "Receiver",
    "ReceiverKind",
    "ResponseMode",
    "Risk",
    "RiskResponses",
    "RolloutPlan",
    "Route",
    "Selectors",
    "Settings",
    "Silence",
    "SlackReceiver",
    "StandardWebhooks",
    "StorageSettings",
    "Subscriptions",
    "Tap",
    "TeamsReceiver",
    "TelemetryMode",
    "Tenant",
    "Wave",
    "WaveGuardEnv",
    "WebhookReceiver",
    "is_guid",
    "is_loopback_url",
    "load_plan",
    "load_plan_for",
    "load_settings",
    "load_telemetry_settings",
    "parse_plan",
]


def load_plan_for(settings: Settings) -> RolloutPlan:
    """The plan at ``settings.config_path``, interpolated from the settings' environment.

    Raises:
        ConfigError: the plan file is missing, malformed or invalid.
    """
    return load_plan(settings.config_path, settings.environ)
