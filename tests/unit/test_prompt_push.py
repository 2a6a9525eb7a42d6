"""``auteur prompts push`` sends only the prompts whose files are new or changed."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import prompts
from api.cli_prompts import prompts_app, push_changed
from tests.doubles.langfuse_server import LangfuseServer, run_langfuse_server
from tools import tracing


@pytest.fixture
def langfuse() -> Iterator[LangfuseServer]:
    with run_langfuse_server() as server:
        tracing.configure(server.config)
        try:
            yield server
        finally:
            tracing.configure(None)


@pytest.fixture
def prompt_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of ``prompts/`` the test may edit, standing in for the real folder."""
    folder = tmp_path / "prompts"
    shutil.copytree(prompts.PROMPTS_DIR, folder, ignore=shutil.ignore_patterns("*.py", "__*"))
    monkeypatch.setattr(prompts, "PROMPTS_DIR", folder)
    return folder


def test_push_creates_every_prompt_then_only_what_changed(langfuse, prompt_files):
    client = tracing.client()
    names = sorted(prompts.file_prompts())

    first = push_changed(client)
    assert [(r.name, r.action, r.langfuse_version) for r in first] == [
        (name, "created", 1) for name in names
    ]
    assert sorted(r.body["name"] for r in langfuse.prompt_writes()) == names
    assert all(r.body["labels"] == ["production"] for r in langfuse.prompt_writes())
    assert (
        langfuse.prompt("shot_lister/list_scene_shots", "production")["prompt"]
        == (prompt_files / "shot_lister" / "list_scene_shots.md").read_text()
    )

    second = push_changed(client)
    assert {r.action for r in second} == {"unchanged"}
    assert len(langfuse.prompt_writes()) == len(names)  # nothing sent

    edited = prompt_files / "shot_lister" / "list_scene_shots.md"
    edited.write_text(edited.read_text() + "\nKeep every shot under four seconds.\n")
    third = push_changed(client)
    assert [(r.name, r.langfuse_version) for r in third if r.action != "unchanged"] == [
        ("shot_lister/list_scene_shots", 2)
    ]
    [write] = langfuse.prompt_writes()[len(names) :]
    assert write.body["name"] == "shot_lister/list_scene_shots"
    pushed = prompts.source("shot_lister/list_scene_shots")  # what runs now use
    assert (pushed.text, pushed.langfuse_version) == (edited.read_text(), 2)
    assert write.body["config"] == {"auteur_version": pushed.version}


def test_a_dry_run_sends_nothing(langfuse, prompt_files):
    results = push_changed(tracing.client(), dry_run=True)

    assert {r.action for r in results} == {"created"}
    assert langfuse.prompt_writes() == []


def test_the_command_pushes_with_the_environments_keys(langfuse, prompt_files):
    runner = CliRunner()

    result = runner.invoke(prompts_app, ["push"], env=langfuse.env())
    again = runner.invoke(prompts_app, ["push"], env=langfuse.env())

    assert result.exit_code == 0, result.output
    count = len(prompts.file_prompts())
    assert f"{count} of {count} prompts changed." in result.output
    assert f"0 of {count} prompts changed." in again.output
    assert len(langfuse.prompt_writes()) == count


def test_the_command_says_what_to_set_without_keys():
    env = {"LANGFUSE_PUBLIC_KEY": "", "LANGFUSE_SECRET_KEY": "", "LANGFUSE_BASE_URL": ""}

    result = CliRunner().invoke(prompts_app, ["push"], env=env)

    assert result.exit_code == 2
    assert "LANGFUSE_PUBLIC_KEY" in result.output
