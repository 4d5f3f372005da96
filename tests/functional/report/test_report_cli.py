"""`waveguard report` against Azurite: the HTML file, the JSON, and a clear error for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from tests.functional.report.conftest import SeededStorage

pytestmark = pytest.mark.functional


def test_the_report_is_written_as_one_html_file_and_printed_as_json(
    seeded_storage: SeededStorage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "rollout.html"
    pilot = seeded_storage.seeded.pilot
    # WHEN the operator asks for the HTML file
    assert main(["report", "--html", str(target)], environ=seeded_storage.environ) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"report written to {target} (")
    assert "4 wave(s), 9 chart(s)" in out
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert f'id="wave-{pilot}"' in page
    assert "<script" not in page.lower()
    # AND for one wave as JSON (the file message then goes to stderr, stdout stays JSON)
    code = main(
        ["report", "--wave", pilot, "--days", "30", "--json", "--html", str(target)],
        environ=seeded_storage.environ,
    )
    assert code == 0
    captured = capsys.readouterr()
    body = json.loads(captured.out)
    assert [w["wave"] for w in body["waves"]] == [pilot]
    assert body["days"] == 30
    assert "report written to" in captured.err
    charts = {c["key"]: c for c in body["waves"][0]["charts"]}
    assert charts["registration"]["lines"][0]["values"][-1] == 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --html FILE, --json, or both"),
        (["--json", "--days", "0"], "--days: expected a whole number from 1 to 366, got '0'"),
        (["--json", "--days", "many"], "--days: expected a whole number from 1 to 366, got 'many'"),
        (["--json", "--wave", "no-such-wave"], "wave: unknown wave 'no-such-wave' (waves: "),
        (["--html", "/nonexistent-dir/r.html"], "--html /nonexistent-dir/r.html: no such directory"),
    ],
)
def test_bad_input_is_a_usage_error_that_says_what_is_wrong(
    seeded_storage: SeededStorage, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", *args], environ=seeded_storage.environ) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: report: ")
    assert message in err


def test_a_directory_as_the_file_is_refused(
    seeded_storage: SeededStorage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--html", str(tmp_path)], environ=seeded_storage.environ) == 2
    assert "is a directory" in capsys.readouterr().err
