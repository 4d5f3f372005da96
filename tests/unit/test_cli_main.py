"""The CLI's own behaviour: --version, and a reader that goes away (`waveguard ... | head`)."""

from __future__ import annotations

import io

import pytest

from cli.main import EXIT_BROKEN_PIPE, main


class GoneReader(io.TextIOBase):
    """A stdout whose reader closed the pipe: every write fails as a real pipe's would."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        raise io.UnsupportedOperation("no file descriptor")


def test_a_reader_that_goes_away_ends_the_command_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout", GoneReader())
    # (doctor reports even a bare environment: it prints, and the write fails)
    assert main(["doctor", "--json"], environ={}) == EXIT_BROKEN_PIPE


def test_version_names_the_installed_package(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("waveguard ")
