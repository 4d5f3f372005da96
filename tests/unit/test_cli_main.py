"""The CLI's own behaviour: --version, and a reader that goes away (`waveguard ... | head`)."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.main import EXIT_BROKEN_PIPE, build_parser, hoist_global_options, main


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


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every sub-command parser under ``parser``, with the words that reach it (aliases once)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, command in action.choices.items():
                if id(command) not in seen:
                    seen.add(id(command))
                    yield (*path, name), command
                    yield from _commands(command, (*path, name))


def _is_leaf(parser: argparse.ArgumentParser) -> bool:
    return not any(isinstance(action, argparse._SubParsersAction) for action in parser._actions)


def test_every_command_accepts_json() -> None:
    leaves = [(path, command) for path, command in _commands(build_parser()) if _is_leaf(command)]
    assert len(leaves) > 10  # the walk did reach the verbs under alerts, waves, ...
    without = [
        " ".join(path)
        for path, command in leaves
        if not any("--json" in action.option_strings for action in command._actions)
    ]
    assert without == []


def test_every_commands_help_names_the_global_options() -> None:
    commands = list(_commands(build_parser()))
    assert commands
    missing = [
        " ".join(path)
        for path, command in commands
        if not all(option in command.format_help() for option in ("--settings", "--config"))
    ]
    assert missing == []
