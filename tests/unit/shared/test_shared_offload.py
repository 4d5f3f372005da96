"""The I/O thread count comes from a setting that can never stop the app from loading."""

from __future__ import annotations

import pytest

from shared.offload import _io_threads


@pytest.mark.parametrize(
    ("text", "threads"),
    [
        (None, 32),
        ("", 32),
        ("  ", 32),
        ("auto", 32),
        ("0", 32),
        ("-4", 32),
        ("999", 32),
        ("8", 8),
        (" 64 ", 64),
    ],
)
def test_a_bad_io_thread_setting_falls_back_to_the_default(text: str | None, threads: int) -> None:
    assert _io_threads(text) == threads
