"""The Conditional Access baseline as code: templates, rendering, diff, safety lint and apply.

WaveGuard identifies its own policies (and its named locations: trusted networks, allowed
countries) by display name: every one it writes is named ``policies.namePrefix`` + a fixed title;
anything else in the tenant is left alone.
"""

from __future__ import annotations

from shared.rollout.policies.apply import (
    APPLY_LOCK_KEY,
    POLICIES_NAMESPACE,
    ApplyResult,
    PolicyApi,
    PolicyPlan,
    apply_lock,
    apply_policy_plan,
    build_policy_plan,
    record_report_only,
)
from shared.rollout.policies.baseline import sync_baseline
from shared.rollout.policies.diff import (
    FieldChange,
    PolicyChange,
    PolicyDiff,
    diff_policies,
    is_waveguard_policy,
)
from shared.rollout.policies.lint import (
    CHECKS,
    Finding,
    LintContext,
    LintReport,
    ReferenceLookup,
    lint_policies,
)
from shared.rollout.policies.render import (
    POLICY_TITLES,
    DesiredPolicy,
    TenantIds,
    read_wave_states,
    render_policies,
)
from shared.rollout.policies.templates import (
    AZURE_MANAGEMENT_APP_ID,
    REGISTER_SECURITY_INFO,
    REPORT_ONLY,
    Exclusions,
)

__all__ = [
    "APPLY_LOCK_KEY",
    "AZURE_MANAGEMENT_APP_ID",
    "CHECKS",
    "POLICIES_NAMESPACE",
    "POLICY_TITLES",
    "REGISTER_SECURITY_INFO",
    "REPORT_ONLY",
    "ApplyResult",
    "DesiredPolicy",
    "Exclusions",
    "FieldChange",
    "Finding",
    "LintContext",
    "LintReport",
    "PolicyApi",
    "PolicyChange",
    "PolicyDiff",
    "PolicyPlan",
    "ReferenceLookup",
    "TenantIds",
    "apply_lock",
    "apply_policy_plan",
    "build_policy_plan",
    "diff_policies",
    "is_waveguard_policy",
    "lint_policies",
    "read_wave_states",
    "record_report_only",
    "render_policies",
    "sync_baseline",
]
