"""Gate evidence read from Graph: wave members, the registration report and the sign-in log.

The registration report is limited to 5 requests per 10 s, so it is read whole (paged) once per
evaluation and filtered locally, never per user. Both reports are read as plain JSON through the
client's request adapter, whose retry middleware honours Retry-After on a 429.

When a wave sets ``maxMfaPromptsPerUserPerDay`` the one sign-in read goes to ``/beta``: only beta's
signIn carries ``authenticationRequirement`` and ``authenticationDetails`` (v1.0 has neither). A
sign-in is an MFA prompt when it is interactive, its ``authenticationRequirement`` is
``multiFactorAuthentication``, and no authentication step says the MFA was satisfied by a claim
already in the token (the user saw no prompt then); a row without ``authenticationRequirement`` is
unknown (None), never "no prompt". If the beta read fails the same read is made on v1.0: the
report-only evidence stands, every prompt is unknown, and only the prompt gate fails.

Members are read with their UPN and ``mail`` (a service desk may name the requester by either).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from shared.errors import PermanentError, WaveGuardError
from shared.graph.batch import version_root
from shared.graph.directory import find_group
from shared.graph.errors import to_waveguard_error
from shared.rollout.lifecycle.gates import SignInResult

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

    from shared.config.plan import RolloutPlan

__all__ = ["MFA_REQUIRED", "REGISTRATION_DETAILS_PATH", "SIGN_INS_PATH", "GraphEvidence", "is_mfa_prompt"]

log = logging.getLogger(__name__)

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
        self._addresses: dict[str, dict[str, str]] = {}

    async def wave_members(self, wave: str) -> frozenset[str]:
        """Object ids of the wave group's members (empty while the group does not exist); their
        UPNs and mail addresses are read with them and kept for ``wave_member_addresses``.

        Raises:
            RetryableError: Graph throttled, failed or could not be reached.
            PermanentError: Graph refused the read.
        """
        ref = self._plan.wave(wave).group
        group = await find_group(self._client, group_id=ref.id, display_name=ref.display_name)
        if group is None or not group.id:
            self._addresses[wave] = {}
            return frozenset()
        url = f"/groups/{group.id}/members?$select=id,userPrincipalName,mail&$top=999"
        ids: set[str] = set()
        addresses: dict[str, str] = {}
        async for row in self._pages(url, "list group members"):
            if not row.get("id"):
                continue
            member = str(row["id"])
            ids.add(member)
            for name in ("userPrincipalName", "mail"):
                if isinstance(row.get(name), str) and row[name]:
                    addresses[row[name].casefold()] = member
        self._addresses[wave] = addresses
        return frozenset(ids)

    async def wave_member_addresses(self, wave: str) -> Mapping[str, str]:
        """The case-folded UPN and mail of each member last read for ``wave`` -> its object id
        (read now if never).

        Raises:
            RetryableError / PermanentError: as ``wave_members``.
        """
        if wave not in self._addresses:
            await self.wave_members(wave)
        return self._addresses[wave]

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
        prompt or not (None: the row does not say). A failed beta read is made again on v1.0
        (every prompt then unknown), so the report-only evidence does not depend on beta.

        Raises:
            RetryableError: Graph throttled past its retries, failed or could not be reached.
            PermanentError: Graph refused the read.
        """
        moment = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        url = f"{SIGN_INS_PATH}?$filter=createdDateTime%20ge%20{moment}&$top=999"
        if not mfa_details:
            return await self._sign_ins(url, policy_name, mfa_details=False, version=None)
        try:
            return await self._sign_ins(url, policy_name, mfa_details=True, version="beta")
        except WaveGuardError as exc:
            log.warning(
                "beta sign-in read failed; report-only evidence read from v1.0, MFA prompts not measurable",
                extra={"error": type(exc).__name__},
            )
            return await self._sign_ins(url, policy_name, mfa_details=True, version=None)

    async def _sign_ins(
        self, url: str, policy_name: str, *, mfa_details: bool, version: str | None
    ) -> list[SignInResult]:
        results: list[SignInResult] = []
        async for row in self._pages(url, "read sign-in logs", version=version):
            result = _policy_result(row, policy_name)
            created = _timestamp(row.get("createdDateTime"))
            interactive = row.get("isInteractive") is True
            if created is None or not row.get("userId"):
                continue
            if result is not None or (mfa_details and interactive):
                prompt = is_mfa_prompt(row) if mfa_details and interactive else None
                flow = str(row.get("correlationId") or "")
                results.append(
                    SignInResult(str(row["userId"]), created, result or "", interactive, prompt, flow)
                )
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


def is_mfa_prompt(row: dict[str, Any]) -> bool | None:
    """Whether a (beta) sign-in required MFA and the user was asked for it, not spared by a claim
    already in the token; None when the row does not carry ``authenticationRequirement`` (v1.0)."""
    requirement = row.get("authenticationRequirement")
    if not isinstance(requirement, str) or not requirement:
        return None
    if requirement != MFA_REQUIRED:
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
