"""UPNs refuse control, bidi and invisible characters wherever they are accepted (plan and HR events)."""

from __future__ import annotations

import pytest

from shared.config import load_plan
from shared.errors import InvalidPayloadError
from shared.hr.events import parse_hr_event
from shared.upn import is_upn

SNEAKY = [
    "ada\x00@contoso.com",
    "ada@contoso.com\x00",
    "ceo\u202e@contoso.com",
    "a\u2066b@contoso.com",
    "ada\u200b@contoso.com",
    "ada@cont\u200doso.com",
    "ada\x1b@contoso.com",
    "ada\x85@contoso.com",
    "ada\u2028@contoso.com",
    "ada @contoso.com",
]


@pytest.mark.parametrize("value", SNEAKY)
def test_control_and_invisible_characters_are_not_a_upn(value: str) -> None:
    assert not is_upn(value)


@pytest.mark.parametrize("value", ["ada@contoso.com", "o'neil.ann@contoso.co.uk", "zoë@contoso.com"])
def test_ordinary_upns_pass(value: str) -> None:
    assert is_upn(value)


@pytest.mark.parametrize("value", SNEAKY[:4])
def test_an_hr_event_naming_such_a_upn_is_refused_naming_the_field(value: str) -> None:
    event = {"type": "employee.hired", "data": {"employeeId": "E1", "userPrincipalName": value}}
    with pytest.raises(InvalidPayloadError) as caught:
        parse_hr_event(event)
    assert any(e["field"] == "data.userPrincipalName" for e in caught.value.errors)


def test_a_plan_naming_such_a_upn_is_refused_naming_the_field(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from shared.config.settings import APP_ROOT
    from shared.errors import ConfigError
    from tests.conftest import PLAN_SECRETS

    text = (APP_ROOT / "config" / "waveguard.yaml").read_text("utf-8")
    assert "senderMailbox: waveguard@contoso.com" in text
    path = tmp_path / "plan.yaml"
    path.write_text(
        text.replace("senderMailbox: waveguard@contoso.com", 'senderMailbox: "waveguard\\u202e@contoso.com"')
    )
    with pytest.raises(ConfigError) as caught:
        load_plan(path, PLAN_SECRETS)
    assert "newHires.delivery.senderMailbox" in str(caught.value)
