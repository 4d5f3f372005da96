"""Gate evidence read from Graph: wave members, the registration report and the sign-in log.

The registration report is limited to 5 requests per 10 s, so it is read whole (paged) once per
evaluation and filtered locally, never per user. Both reports are read as plain JSON through the
client's request adapter, whose retry middleware honours Retry-After on a 429.

When a wave sets ``maxMfaPromptsPerUserPerDay`` the one sign-in read goes to ``/beta``: only beta's
signIn carries ``authenticationRequirement`` and ``authenticationDetails`` (v1.0 has neither). A
sign-in is an MFA prompt when it is interactive, its ``authenticationRequirement`` is
``multiFactorAuthentication``, and no authentication step says the MFA was satisfied by a claim
already in the token (the user saw no prompt then).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from shared.errors import PermanentError
from shared.graph.batch import version_root
from shared.graph.directory import find_group
from shared.graph.errors import to_waveguard_error
from shared.rollout.lifecycle.gates import SignInResult

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

    from shared.config.plan import RolloutPlan

__all__ = ["MFA_REQUIRED", "REGISTRATION_DETAILS_PATH", "SIGN_INS_PATH", "GraphEvidence", "is_mfa_prompt"]

REGISTRATION_DETAILS_PATH: Final = "/reports/authenticationMethods/userRegistrationDetails"
SIGN_INS_PATH: Final = "/auditLogs/signIns"
_MAX_PAGES: Final = 1000
MFA_REQUIRED: Final = "multiFactorAuthentication"
# authenticationDetails that mean the MFA requirement was met without asking the user.
_NO_PROMPT_METHODS: Final = frozenset({"previously satisfied"})
_NO_PROMPT_DETAIL: Final = "satisfied by claim in the token"


class GraphEvidence:
    """Reads what the gates need through WaveGuard's Graph client."""

    def __init__(self, client: GraphServiceClient, plan: RolloutPlan) -> None:
        self._client = client
        self._plan = plan
        self.requests = 0
        self._upns: dict[str, frozenset[str]] = {}

    async def wave_members(self, wave: str) -> frozenset[str]:
        """Object ids of the wave group's members (empty while the group does not exist); their
        UPNs are read with them and kept for ``wave_member_upns``.

        Raises:
            RetryableError: Graph throttled, failed or could not be reached.
            PermanentError: Graph refused the read.
        """
        ref = self._plan.wave(wave).group
        group = await find_group(self._client, group_id=ref.id, display_name=ref.display_name)
        if group is None or not group.id:
            self._upns[wave] = frozenset()
            return frozenset()
        url = f"/groups/{group.id}/members?$select=id,userPrincipalName&$top=999"
        ids: set[str] = set()
        upns: set[str] = set()
        async for row in self._pages(url, "list group members"):
            if row.get("id"):
                ids.add(str(row["id"]))
            if isinstance(row.get("userPrincipalName"), str):
                upns.add(row["userPrincipalName"].casefold())
        self._upns[wave] = frozenset(upns)
        return frozenset(ids)

    async def wave_member_upns(self, wave: str) -> frozenset[str]:
        """The case-folded UPNs of the members last read for ``wave`` (read now if never).

        Raises:
            RetryableError / PermanentError: as ``wave_members``.
        """
        if wave not in self._upns:
            await self.wave_members(wave)
        return self._upns[wave]

    async def registered_users(self) -> frozenset[str]:
        """Ids of every user the registration report shows as MFA-registered (one paged read).

        Raises:
            RetryableError: Graph throttled past its retries, failed or could not be reached.
            PermanentError: Graph refused the read (e.g. missing AuditLog.Read.All).
        """
        url = f"{REGISTRATION_DETAILS_PATH}?$filter=isMfaRegistered%20eq%20true&$top=999"
        return frozenset(
            [
                str(row["id"])
                async for row in self._pages(url, "read registration details")
                if row.get("isMfaRegistered") and row.get("id")
            ]
        )

    async def report_only_sign_ins(
        self, policy_name: str, *, since: datetime, mfa_details: bool = False
    ) -> list[SignInResult]:
        """Sign-ins since ``since`` with the result the policy named ``policy_name`` had on each;
        with ``mfa_details`` (read from beta) every interactive sign-in too, marked as an MFA
        prompt or not.

        Raises:
            RetryableError: Graph throttled past its retries, failed or could not be reached.
            PermanentError: Graph refused the read.
        """
        moment = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        url = f"{SIGN_INS_PATH}?$filter=createdDateTime%20ge%20{moment}&$top=999"
        results: list[SignInResult] = []
        async for row in self._pages(url, "read sign-in logs", version="beta" if mfa_details else None):
            result = _policy_result(row, policy_name)
            created = _timestamp(row.get("createdDateTime"))
            interactive = row.get("isInteractive") is True
            if created is None or not row.get("userId"):
                continue
            if result is not None or (mfa_details and interactive):
                prompt = mfa_details and interactive and is_mfa_prompt(row)
                results.append(SignInResult(str(row["userId"]), created, result or "", interactive, prompt))
        return results

    async def _pages(
        self, url: str, operation: str, *, version: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        next_url: str | None = version_root(self._client.request_adapter.base_url, version) + url
        for _ in range(_MAX_PAGES):
            if next_url is None:
                return
            page = await self._get(next_url, operation)
            for row in page.get("value", []):
                if isinstance(row, dict):
                    yield row
            link = page.get("@odata.nextLink")
            next_url = str(link) if link else None
        raise PermanentError(f"{operation}: paging did not end after {_MAX_PAGES} pages")

    async def _get(self, url: str, operation: str) -> dict[str, Any]:
        from kiota_abstractions.method import Method
        from kiota_abstractions.request_information import RequestInformation
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError

        info = RequestInformation(Method.GET)
        info.url = url
        info.headers.try_add("Accept", "application/json")
        self.requests += 1
        try:
            raw: Any = await self._client.request_adapter.send_primitive_async(
                info, "bytes", {"XXX": ODataError}
            )
        except Exception as exc:
            raise to_waveguard_error(exc, operation=operation) from exc
        data = json.loads(raw) if isinstance(raw, bytes) and raw else {}
        return data if isinstance(data, dict) else {}


def is_mfa_prompt(row: dict[str, Any]) -> bool:
    """Whether a (beta) sign-in required MFA and the user was asked for it, not spared by a claim
    already in the token."""
    if row.get("authenticationRequirement") != MFA_REQUIRED:
        return False
    for step in row.get("authenticationDetails") or []:
        if not isinstance(step, dict):
            continue
        method = str(step.get("authenticationMethod") or "").casefold()
        detail = str(step.get("authenticationStepResultDetail") or "").casefold()
        if method in _NO_PROMPT_METHODS or _NO_PROMPT_DETAIL in detail:
            return False
    return True


def _policy_result(row: dict[str, Any], policy_name: str) -> str | None:
    for applied in row.get("appliedConditionalAccessPolicies") or []:
        if isinstance(applied, dict) and applied.get("displayName") == policy_name:
            return str(applied.get("result", ""))
    return None


def _timestamp(raw: object) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
