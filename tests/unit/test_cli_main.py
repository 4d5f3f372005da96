"""The CLI's own behaviour: --version, and a reader that goes away (`waveguard ... | head`)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from cli.main import EXIT_BROKEN_PIPE, hoist_global_options, main


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


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["doctor", "--settings", "s.json"], ["--settings", "s.json", "doctor"]),
        (["waves", "status", "--config=p.yaml", "--json"], ["--config=p.yaml", "waves", "status", "--json"]),
        (["--settings", "s.json", "doctor"], ["--settings", "s.json", "doctor"]),
        (["alerts", "show", "--", "--config", "x"], ["alerts", "show", "--", "--config", "x"]),
        (["doctor", "--config"], ["doctor", "--config"]),  # no value: argparse names the error
    ],
)
def test_settings_and_config_work_anywhere_on_the_line(argv: list[str], expected: list[str]) -> None:
    assert hoist_global_options(argv) == expected


def test_a_settings_file_after_the_command_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.json"
    assert main(["doctor", "--settings", str(missing)], environ={}) == 2
    assert "--settings" in capsys.readouterr().err


def test_the_settings_file_may_come_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.json"
    assert main(["doctor"], environ={"WAVEGUARD_SETTINGS": str(missing)}) == 2
    assert f"WAVEGUARD_SETTINGS: {missing}: no such file" in capsys.readouterr().err
    good = tmp_path / "local.settings.json"
    good.write_text('{"IsEncrypted": false, "Values": {"WAVEGUARD_CONFIG": "nowhere.yaml"}}', "utf-8")
    main(["doctor", "--json"], environ={"WAVEGUARD_SETTINGS": str(good)})
    assert "nowhere.yaml" in capsys.readouterr().out  # the file's values were read
