"""Property: whatever plan is written, no Graph write can lock the break-glass accounts out.

Hypothesis generates plans whose group references point at the exclusion group by id, by name, in
any case, through a selector group, through a group nesting the exclusion group or holding a
break-glass account, with the break-glass accounts named by id or UPN in any case. Each plan runs
the real membership sync and the real policy apply against the Graph emulator (in process). Every
write that reaches the emulator is recorded, and none may break the rules; the tenant ends with
both break-glass accounts in the exclusion group and in no wave group.
"""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.graph_emulator import BREAK_GLASS_GROUP, BREAK_GLASS_UPNS, IT_PILOT_GROUP
from local.graph_emulator.app import Emulator, EmulatorConfig
from local.graph_emulator.transport import emulator_transport
from shared.config import APP_ROOT, load_settings, parse_plan
from shared.envelope import Envelope
from shared.errors import ConfigError, NotFoundError, SafetyViolationError
from shared.graph import build_graph_client
from shared.graph.batch import BatchClient
from shared.graph.conditional_access import ConditionalAccessApi
from shared.rollout.membership import MembershipWriter, SyncDeps, process_chunk, start_wave_sync
from shared.rollout.policies.apply import apply_policy_plan, build_policy_plan
from shared.rollout.policies.tenant import GraphReferenceLookup, resolve_tenant
from shared.state import build_memory_state
from tests.aio import aio
from tests.conftest import PLAN_SECRETS

BASE = "http://127.0.0.1:9/v1.0"
EXAMPLE: dict[str, Any] = yaml.safe_load((APP_ROOT / "config" / "waveguard.yaml").read_text("utf-8"))
EMULATOR = Emulator(EmulatorConfig(seed="demo"))
TARGETED_WAVE = 1  # finance-hr: a wave with department selectors, whose group the run may point anywhere


@dataclass
class Recorder:
    """Every request the emulator received (so: every request the guard let through)."""

    writes: list[tuple[str, str, Any]] = field(default_factory=list)

    def wrap(self, inner: httpx.MockTransport) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            if request.method != "GET":
                raw = request.read()
                self.writes.append((request.method, request.url.path, json.loads(raw) if raw else None))
            return inner.handle_request(request)

        return httpx.MockTransport(handle)


def _case(text: str, flips: list[bool]) -> str:
    return "".join(c.upper() if flips[i % len(flips)] else c.lower() for i, c in enumerate(text))


@st.composite
def plans(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A plan and how its targeted wave's group relates to the exclusion group."""
    demo = EMULATOR.demo
    assert demo is not None
    doc = copy.deepcopy(EXAMPLE)
    flips = draw(st.lists(st.booleans(), min_size=1, max_size=6))
    exclusion_id, bg_ids = demo.break_glass_group_id, demo.break_glass_ids
    # The break-glass section: accounts by id or UPN (any case), the exclusion group by id and/or name.
    doc["breakGlass"]["accounts"] = [
        {"id": _case(i, flips)} if draw(st.booleans()) else {"userPrincipalName": _case(u, flips)}
        for i, u in zip(bg_ids, BREAK_GLASS_UPNS, strict=True)
    ]
    doc["breakGlass"]["exclusionGroup"] = draw(
        st.sampled_from(
            [
                {"id": exclusion_id},
                {"displayName": BREAK_GLASS_GROUP},
                {"id": exclusion_id.upper()},
                {"id": exclusion_id, "displayName": BREAK_GLASS_GROUP},
            ]
        )
    )
    wave = doc["waves"][TARGETED_WAVE]
    target = draw(
        st.sampled_from(
            [
                "own",
                "exclusion-id",
                "exclusion-name",
                "exclusion-name-case",
                "selector-exclusion",
                "selector-nesting",
                "selector-bg-holder",
            ]
        )
    )
    if target == "exclusion-id":
        wave["group"] = {"id": draw(st.sampled_from([exclusion_id, exclusion_id.upper()]))}
    elif target == "exclusion-name":
        wave["group"] = {"displayName": BREAK_GLASS_GROUP}
    elif target == "exclusion-name-case":
        wave["group"] = {"displayName": _case(BREAK_GLASS_GROUP, flips)}
    elif target == "selector-exclusion":
        wave["selectors"]["groups"] = [draw(st.sampled_from([exclusion_id, BREAK_GLASS_GROUP]))]
    elif target == "selector-nesting":
        wave["selectors"]["groups"] = ["Nests the exclusion group"]
    elif target == "selector-bg-holder":
        wave["selectors"]["groups"] = ["Holds a break-glass account", IT_PILOT_GROUP]
    return doc, target


async def _run(doc: dict[str, Any]) -> tuple[Recorder, list[Exception]]:
    EMULATOR.reset(EmulatorConfig(seed="demo"))
    demo = EMULATOR.demo
    assert demo is not None
    recorder = Recorder()
    http = httpx.AsyncClient(transport=recorder.wrap(emulator_transport(EMULATOR)))
    admin = httpx.AsyncClient(transport=emulator_transport(EMULATOR), base_url="http://127.0.0.1:9")
    await admin.post(
        "/_emulator/groups",
        json=[
            {"displayName": "WaveGuard - Wave 2 Finance and HR"},
            {"displayName": "Nests the exclusion group", "members": [demo.break_glass_group_id]},
            {"displayName": "Holds a break-glass account", "members": [demo.break_glass_ids[0]]},
        ],
    )
    errors: list[Exception] = []
    try:
        plan = parse_plan(yaml.safe_dump(doc, sort_keys=False), PLAN_SECRETS, source="generated")
    except ConfigError as exc:
        return recorder, [exc]
    client = build_graph_client(
        load_settings({"GRAPH_BASE_URL": BASE}), http_client=http, max_retries=0, break_glass=plan.break_glass
    )
    state = build_memory_state()
    sent: list[Envelope] = []

    class Queues:
        async def send(self, queue_name: str, envelope: Envelope, **_: Any) -> str:
            sent.append(envelope)
            return "m"

    deps = SyncDeps(
        plan=plan,
        graph=client,
        writer=MembershipWriter(BatchClient.for_graph(client)),
        state=state.aio,
        queues=Queues(),
    )
    try:
        await start_wave_sync(deps, plan.waves[TARGETED_WAVE].name, correlation_id="prop")
        for envelope in sent:
            await process_chunk(deps, envelope)
    except (SafetyViolationError, NotFoundError, ConfigError) as exc:
        errors.append(exc)
    api = ConditionalAccessApi(client, min_interval=0)
    try:
        policy_plan = await build_policy_plan(
            plan,
            api=api,
            lookup=GraphReferenceLookup(client),
            tenant=await resolve_tenant(client, plan),
            kv=aio(state.kv),
        )
        await apply_policy_plan(
            policy_plan,
            api=api,
            kv=aio(state.kv),
            audit=aio(state.audit),
            actor="property",
            correlation_id="prop",
        )
    except (SafetyViolationError, ConfigError) as exc:
        errors.append(exc)
    return recorder, errors


def _member_id(reference: str) -> str:
    return reference.rstrip("/").rsplit("/", 1)[-1].lower()


def _check_writes(recorder: Recorder, exclusion: str, accounts: set[str]) -> None:
    for method, path, body in recorder.writes:
        items = (
            body.get("requests", [])
            if path.endswith("$batch")
            else [{"method": method, "url": path, "body": body}]
        )
        for item in items:
            url = str(item["url"]).removeprefix("/v1.0")
            item_body = item.get("body") or {}
            adds = "/members" in url and item["method"] in ("POST", "PATCH")
            if adds or "members@odata.bind" in item_body:
                group = url.split("/")[2].lower()
                refs = item_body.get("members@odata.bind") or [item_body.get("@odata.id")]
                for member in map(_member_id, refs):
                    assert member != exclusion, f"nested the exclusion group: {item}"
                    assert (member in accounts) == (group == exclusion), f"forbidden add: {item}"
            if item["method"] == "DELETE" and url.lower().startswith(f"/groups/{exclusion}"):
                raise AssertionError(f"removed from / deleted the exclusion group: {item}")
            if "/conditionalAccess/policies" in url and item["method"] in ("POST", "PATCH"):
                users = (item_body.get("conditions") or {}).get("users")
                if item["method"] == "POST" or users is not None:
                    assert exclusion in {g.lower() for g in users.get("excludeGroups", [])}, item


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=plans())
def test_no_plan_can_make_a_write_that_locks_break_glass_out(case: tuple[dict[str, Any], str]) -> None:
    doc, target = case
    recorder, errors = asyncio.run(_run(doc))
    demo = EMULATOR.demo
    assert demo is not None
    exclusion, accounts = demo.break_glass_group_id.lower(), {i.lower() for i in demo.break_glass_ids}
    # No write that reached Graph breaks a rule ...
    _check_writes(recorder, exclusion, accounts)
    # ... the exclusion group still holds exactly both accounts, and no wave group holds one ...
    assert {m.lower() for m in EMULATOR.store.member_ids(demo.break_glass_group_id)} == accounts
    for group in EMULATOR.store.groups_of(demo.break_glass_ids[0]) + EMULATOR.store.groups_of(
        demo.break_glass_ids[1]
    ):
        if str(group.get("displayName", "")).startswith("WaveGuard - Wave"):
            raise AssertionError(f"a break-glass account is in wave group {group['displayName']}")
    if target == "own" and not errors:
        # a plan that targets nothing forbidden did its work: members written, policies created
        assert any(path.endswith("$batch") for _, path, _ in recorder.writes), recorder.writes
        assert any("conditionalAccess" in path for _, path, _ in recorder.writes), recorder.writes
    # ... and a plan pointing a wave or selector at the exclusion group was refused by name.
    if target in ("exclusion-id", "exclusion-name", "exclusion-name-case", "selector-exclusion"):
        # at plan load when the words already match, else once Graph resolved both to one id
        assert any(isinstance(e, SafetyViolationError | ConfigError) for e in errors), errors
        assert any("exclusion group" in str(e) for e in errors), errors
