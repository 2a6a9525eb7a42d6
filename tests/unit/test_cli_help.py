"""The CLI's help says which options take a value: a flag shows none, an option shows one."""

from __future__ import annotations

from typer.testing import CliRunner

from api.cli import app


def _after(option: str, help_text: str) -> str:
    """What the help shows after ``option``'s name on its line."""
    line = next(line for line in help_text.splitlines() if f"{option} " in line)
    return line.split(option, 1)[1].strip(" │")


def test_a_flag_shows_no_value_and_an_option_shows_its_own() -> None:
    result = CliRunner().invoke(app, ["demo", "--help"], env={"COLUMNS": "120"})

    assert result.exit_code == 0, result.output
    # `--auto-approve <bool>` reads as if it took a value: `--auto-approve true` fails
    assert _after("--auto-approve", result.output).startswith("Approve every gate")
    assert not _after("--workflow", result.output).startswith("Workflow type")
