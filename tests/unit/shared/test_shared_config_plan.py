"""The rollout plan file: the example validates; every mistake gets a clear, located message."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.config import APP_ROOT, RolloutPlan, Settings, load_plan, load_plan_for, parse_plan
from shared.errors import ConfigError

EXAMPLE = APP_ROOT / "config" / "waveguard.yaml"
SOURCE = "config/waveguard.yaml"
HR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ENV = {
    "WAVEGUARD_HR_WEBHOOK_SECRET": HR_SECRET,
    "PAGERDUTY_ROUTING_KEY": "R0UT1NGKEY000000000000000000000A",
    "TEAMS_WEBHOOK_URL": "https://contoso.webhook.office.com/workflows/abc",
    "WAVEGUARD_GRAPH_CLIENT_STATE": "client-state-123",
}
EXAMPLE_DOC: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def _plan_error(mutate: Callable[[dict[str, Any]], None], env: dict[str, str] = ENV) -> ConfigError:
    doc = copy.deepcopy(EXAMPLE_DOC)
    mutate(doc)
    with pytest.raises(ConfigError) as caught:
        parse_plan(yaml.safe_dump(doc, sort_keys=False), env, source=SOURCE)
    return caught.value


def _plan(mutate: Callable[[dict[str, Any]], None], env: dict[str, str] = ENV) -> RolloutPlan:
    doc = copy.deepcopy(EXAMPLE_DOC)
    mutate(doc)
    return parse_plan(yaml.safe_dump(doc, sort_keys=False), env, source=SOURCE)


def test_the_example_plan_validates_and_fits_the_demo_tenant() -> None:
    # WHEN the shipped example is loaded with the local secrets
    plan = load_plan(EXAMPLE, ENV)
    # THEN it describes the demo tenant's break-glass accounts, waves and new-hire policy
    upns = [a.user_principal_name for a in plan.break_glass.accounts]
    assert upns == ["bg-admin1@contoso.onmicrosoft.com", "bg-admin2@contoso.onmicrosoft.com"]
    assert plan.break_glass.exclusion_group.display_name == "WaveGuard - Break glass exclusion"
    assert [w.name for w in plan.waves] == ["pilot", "finance-hr", "sales-marketing", "everyone"]
    assert plan.waves[0].group.display_name == "WaveGuard - Wave 1 Pilot"
    assert plan.waves[0].selectors.groups == ["IT pilot"]
    assert plan.waves[0].selectors.departments == ["IT"]
    assert plan.waves[1].selectors.departments == ["Finance", "HR"]
    assert plan.catch_all_wave is plan.waves[-1]
    assert (plan.new_hires.wave, plan.new_hires.fallback_wave) == ("auto", "everyone")
    assert plan.new_hires.delivery.sender_mailbox == "waveguard@contoso.com"
    # AND secrets arrive from the environment, hidden from repr
    assert plan.hr_providers.standard_webhooks.secrets[0].get_secret_value() == HR_SECRET
    assert HR_SECRET not in repr(plan)
    # AND defaults fill what the file leaves out
    assert plan.waves[1].gates.min_registration_rate == 0.95
    assert plan.alerting.receiver("pagerduty-oncall").pagerduty is not None
    assert (
        plan.alerting.receiver("pagerduty-oncall").pagerduty.url == "https://events.pagerduty.com/v2/enqueue"
    )
    assert plan.policies.state == "enabledForReportingButNotEnforced"
    assert plan.risk.responses.revoke_sessions.mode == "dryRun"
    assert plan.risk.responses.confirm_compromised.mode == "off"
    assert plan.risk.levels.high == "critical"
    assert plan.subscriptions.notification_url is None


def test_load_plan_for_uses_the_settings_path_and_environment() -> None:
    settings = Settings(config_path=EXAMPLE, environ=ENV)
    assert load_plan_for(settings).tenant.domain == "contoso.onmicrosoft.com"


def test_a_plan_file_is_parsed_again_only_when_its_text_or_environment_changed(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(EXAMPLE.read_text("utf-8"), "utf-8")

    first = load_plan(path, ENV)
    assert load_plan(path, dict(ENV)) is first  # the same text and environment: not parsed again
    other_environment = load_plan(path, {**ENV, "PAGERDUTY_URL": "http://127.0.0.1:1/v2/enqueue"})
    assert other_environment is not first
    path.write_text(EXAMPLE.read_text("utf-8").replace("contoso.onmicrosoft.com", "fabrikam.onmicrosoft.com"))
    assert load_plan(path, ENV).tenant.domain == "fabrikam.onmicrosoft.com"
    path.write_text("waves: [")  # broken: refused every time, never remembered
    for _ in range(2):
        with pytest.raises(ConfigError, match=r"plan\.yaml"):
            load_plan(path, ENV)


def test_a_url_default_can_be_overridden_so_tests_point_pagerduty_at_a_local_server() -> None:
    plan = load_plan(EXAMPLE, {**ENV, "PAGERDUTY_URL": "http://127.0.0.1:45678/v2/enqueue"})
    pagerduty = plan.alerting.receiver("pagerduty-oncall").pagerduty
    assert pagerduty is not None
    assert pagerduty.url == "http://127.0.0.1:45678/v2/enqueue"


def test_a_missing_required_section_is_named() -> None:
    error = _plan_error(lambda doc: doc.pop("breakGlass"))
    assert f"{SOURCE}: breakGlass: Field required" in error.problems


def test_an_unset_variable_names_the_variable_the_file_and_the_yaml_path() -> None:
    env = {k: v for k, v in ENV.items() if k != "PAGERDUTY_ROUTING_KEY"}
    with pytest.raises(ConfigError) as caught:
        load_plan(EXAMPLE, env)
    path = "alerting.receivers[0].pagerduty.routingKey"
    assert caught.value.problems == [
        f"{SOURCE}: {path}: environment variable PAGERDUTY_ROUTING_KEY is not set"
    ]
    lines = EXAMPLE.read_text("utf-8").splitlines()
    line = next(n for n, text in enumerate(lines, 1) if "routingKey:" in text)
    assert f"PAGERDUTY_ROUTING_KEY is not set (line {line})" in str(caught.value)


def test_an_unresolved_key_vault_reference_is_refused_not_used_as_the_secret() -> None:
    # GIVEN App Service could not read the secret and passed the reference text through
    env = {
        **ENV,
        "WAVEGUARD_HR_WEBHOOK_SECRET": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/hr)",
    }
    # WHEN the plan loads / THEN it refuses, naming the variable and what to check
    with pytest.raises(ConfigError) as caught:
        load_plan(EXAMPLE, env)
    assert len(caught.value.problems) == 1
    assert "WAVEGUARD_HR_WEBHOOK_SECRET holds an unresolved Key Vault reference" in caught.value.problems[0]
    assert "Key Vault Secrets User" in caught.value.problems[0]


def test_malformed_references_and_escapes() -> None:
    def set_description(text: str) -> Callable[[dict[str, Any]], None]:
        return lambda doc: doc["waves"][0].update(description=text)

    error = _plan_error(set_description("costs ${1BAD}"))
    assert error.problems[0].startswith(f"{SOURCE}: waves[0].description: malformed reference")
    plan = _plan(set_description("literal $${NOT_A_VAR} and ${UNSET:-fallback} and $5"))
    assert plan.waves[0].description == "literal ${NOT_A_VAR} and fallback and $5"


def test_out_of_range_values_are_reported_with_dotted_paths() -> None:
    def break_gate(doc: dict[str, Any]) -> None:
        doc["waves"][1]["gates"] = {"minRegistrationRate": 1.5}
        doc["newHires"]["tap"]["lifetimeMinutes"] = 5

    error = _plan_error(break_gate)
    assert (
        f"{SOURCE}: waves[1].gates.minRegistrationRate: Input should be less than or equal to 1"
        in error.problems
    )
    assert (
        f"{SOURCE}: newHires.tap.lifetimeMinutes: Input should be greater than or equal to 10"
        in error.problems
    )
    assert "2 problems" in str(error)


def test_unknown_keys_are_refused() -> None:
    error = _plan_error(lambda doc: doc["waves"][0].update(minRegistrationRate=0.9))
    assert f"{SOURCE}: waves[0].minRegistrationRate: Extra inputs are not permitted" in error.problems


def _receiver(doc: dict[str, Any], index: int) -> dict[str, Any]:
    receiver: dict[str, Any] = doc["alerting"]["receivers"][index]
    return receiver


def _child_route(doc: dict[str, Any], index: int) -> dict[str, Any]:
    route: dict[str, Any] = doc["alerting"]["route"]["routes"][index]
    return route


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["breakGlass"].update(accounts=[]), "breakGlass.accounts: List should have at least 1"),
        (lambda d: d["breakGlass"]["accounts"].append({}), "breakGlass.accounts[2]: give the account's id"),
        (lambda d: d["waves"][0]["group"].update(id="not-a-guid"), "waves[0].group.id: expected a GUID"),
        (lambda d: d["waves"][0].update(name="Pilot Wave"), "waves[0].name: expected a short slug"),
        (lambda d: d["waves"][1].update(selectors={}), "waves[1]: give at least one selector"),
        (lambda d: d["waves"][1]["selectors"].update(countries=["GBR"]), "waves[1].selectors.countries[0]"),
        (
            lambda d: d["waves"][1]["selectors"].update(countries=["FR", "XX"]),
            "waves[1].selectors.countries[1]",
        ),
        (lambda d: d["policies"].update(state="enabled"), "policies: new policies start in report-only"),
        (lambda d: d["risk"]["responses"].update(revokeSessions="yes"), "risk.responses.revokeSessions"),
        (lambda d: _child_route(d, 0).update(matchers=["sev=~("]), "invalid regex"),
        (lambda d: _receiver(d, 2).update(slack={"webhookUrl": "${TEAMS_WEBHOOK_URL}"}), "exactly one of"),
    ],
)
def test_invalid_values_name_the_field(mutate: Callable[[dict[str, Any]], None], expected: str) -> None:
    error = _plan_error(mutate)
    assert any(expected in p for p in error.problems), error.problems


def test_a_literal_webhook_secret_in_the_file_is_refused_without_echoing_it() -> None:
    error = _plan_error(lambda d: d["hrProviders"]["standardWebhooks"].update(secrets=[HR_SECRET]))
    [problem] = error.problems
    assert problem.startswith(
        f"{SOURCE}: hrProviders.standardWebhooks.secrets[0]: literal webhook secret in the file"
    )
    assert HR_SECRET not in str(error)


def test_secrets_refuse_literals_and_defaults_but_accept_the_environment() -> None:
    literal = _plan_error(lambda d: d["subscriptions"].update(clientState="hunter2"))
    assert "subscriptions.clientState: secrets never live in the file" in literal.problems[0]
    defaulted = _plan_error(lambda d: d["subscriptions"].update(clientState="${CS:-hunter2}"))
    assert "use ${CS} without ':-'" in defaulted.problems[0]


def test_a_webhook_secret_from_the_environment_must_look_like_one() -> None:
    error = _plan_error(lambda d: None, env={**ENV, "WAVEGUARD_HR_WEBHOOK_SECRET": "not-a-secret"})
    assert "hrProviders.standardWebhooks.secrets[0]: expected a Standard Webhooks secret" in error.problems[0]
    assert "not-a-secret" not in str(error)


def _add_wave(doc: dict[str, Any], index: int, **wave: Any) -> None:
    doc["waves"].insert(index, {"group": {"displayName": f"G {wave['name']}"}, **wave})


BG1 = "BG-ADMIN1@contoso.onmicrosoft.com"
PILOT_GROUP = "WaveGuard - Wave 1 Pilot"
EXCLUSION_GROUP = "WaveGuard - Break glass exclusion"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["newHires"].update(wave="interns"), "newHires.wave: unknown wave 'interns'"),
        (
            lambda d: d["newHires"].update(fallbackWave="nobody"),
            "newHires.fallbackWave: unknown wave 'nobody'",
        ),
        (
            lambda d: _child_route(d, 1).update(receiver="ghost"),
            "route names receivers that do not exist: ghost",
        ),
        (lambda d: d["waves"][2].update(name="pilot"), "waves[2].name: duplicate wave name 'pilot'"),
        (
            lambda d: d["waves"][2]["group"].update(displayName=PILOT_GROUP),
            f"waves[2].group: {PILOT_GROUP} is",
        ),
        (lambda d: d["waves"][0]["group"].update(displayName=EXCLUSION_GROUP), "cannot be a wave group"),
        (lambda d: d["waves"][0]["selectors"].update(users=[BG1]), f"{BG1} is a break-glass account"),
        (lambda d: _add_wave(d, 0, name="all", catchAll=True), "only one wave may be catchAll"),
        (
            lambda d: _add_wave(d, 4, name="late", selectors={"users": ["x@contoso.com"]}),
            "catchAll wave must be last",
        ),
    ],
)
def test_cross_references_are_checked(mutate: Callable[[dict[str, Any]], None], expected: str) -> None:
    error = _plan_error(mutate)
    assert any(expected in p for p in error.problems), error.problems
    assert all(p.startswith(f"{SOURCE}: ") for p in error.problems)


def test_yaml_syntax_errors_name_the_file_and_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_plan("tenant:\n  name: x\nwaves: [unclosed\n", ENV, source=SOURCE)
    assert str(caught.value).startswith(f"{SOURCE}: YAML syntax error at line ")


def test_duplicate_keys_are_refused_rather_than_silently_overwritten() -> None:
    with pytest.raises(
        ConfigError, match=r"config/waveguard.yaml: tenant.name: duplicate key \(line 3; first on line 2\)"
    ):
        parse_plan("tenant:\n  name: a\n  name: b\n", ENV, source=SOURCE)


def test_country_no_stays_norway_and_codes_are_upper_cased() -> None:
    def nordics(doc: dict[str, Any]) -> None:
        doc["waves"][2]["selectors"] = {"countries": ["se", "NO"]}

    doc = copy.deepcopy(EXAMPLE_DOC)
    nordics(doc)
    text = yaml.safe_dump(doc, sort_keys=False).replace("- '''NO'''", "- NO").replace("- 'NO'", "- NO")
    assert "- NO\n" in text
    assert parse_plan(text, ENV, source=SOURCE).waves[2].selectors.countries == ["SE", "NO"]


def test_route_children_inherit_receiver_and_grouping_from_their_parent() -> None:
    def nest(doc: dict[str, Any]) -> None:
        doc["alerting"]["route"]["routes"][0]["routes"] = [
            {"matchers": ["wave=pilot"], "groupWaitSeconds": 5}
        ]

    route = _plan(nest).alerting.route
    child = route.routes[0].routes[0]
    assert child.receiver == "pagerduty-oncall"
    assert child.group_by == ["alertname", "wave"]
    assert child.group_wait_seconds == 5
    assert child.matchers[0].matches({"wave": "pilot"})
    assert not child.matchers[0].matches({"wave": "finance-hr"})
    assert route.routes[0].matchers[0].matches({"severity": "high"})
    assert not route.routes[0].matchers[0].matches({"severity": "highest"})  # regexes are anchored


def test_missing_file_and_non_mapping_documents(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_plan(tmp_path / "absent.yaml", ENV)
    (tmp_path / "list.yaml").write_text("- 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        load_plan(tmp_path / "list.yaml", ENV)


def test_uk_in_a_country_selector_is_read_as_gb() -> None:
    doc = copy.deepcopy(EXAMPLE_DOC)
    doc["waves"][2]["selectors"] = {"countries": ["uk", "Fr"]}
    plan = parse_plan(yaml.safe_dump(doc, sort_keys=False), ENV, source=SOURCE)
    assert plan.waves[2].selectors.countries == ["GB", "FR"]
