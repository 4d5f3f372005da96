"""The manager's e-mail: who, what, when, how to register, single use, what to do if unexpected."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from shared.onboarding import REGISTRATION_URL, TapMail, compose_tap_mail

MAIL = TapMail(
    hire_name="Ada Lovelace",
    hire_upn="ada.lovelace@contoso.com",
    manager_name="Grace Hopper",
    manager_address="grace.hopper@contoso.com",
    starts_at=datetime(2026, 12, 1, tzinfo=UTC),
    expires_at=datetime(2026, 12, 1, 8, tzinfo=UTC),
    usable_once=True,
    subject="Temporary Access Pass for your new team member",
    tap="Xy7!pQ2r",
    cc=("it-onboarding@contoso.com",),
)


def test_the_email_tells_the_manager_everything_they_need() -> None:
    message = compose_tap_mail(MAIL)
    assert message.subject == MAIL.subject
    assert list(message.to) == ["grace.hopper@contoso.com"]
    assert list(message.cc) == ["it-onboarding@contoso.com"]
    body = message.body
    for expected in (
        "Hello Grace Hopper",
        "Ada Lovelace (ada.lovelace@contoso.com)",
        "Xy7!pQ2r",
        "Tuesday 01 December 2026, 00:00 UTC",
        "Tuesday 01 December 2026, 08:00 UTC",
        "It works once",
        REGISTRATION_URL,
        "Not expecting Ada Lovelace?",
    ):
        assert expected in body, expected


def test_the_secret_stays_out_of_reprs() -> None:
    assert "Xy7!pQ2r" not in repr(MAIL)
    assert "Xy7!pQ2r" not in repr(compose_tap_mail(MAIL))


def test_a_reusable_pass_says_so() -> None:
    body = compose_tap_mail(replace(MAIL, usable_once=False)).body
    assert "several times" in body
    assert "It works once" not in body
