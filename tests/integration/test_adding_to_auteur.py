"""The owner's requirement, run as the owner would: a new agent (one file and its prompt) and a
new workflow type (one file) dropped into a copy of the project run through their gate with
the project's own commands, and what the gate approved lands in the state and the project.

The three files are the code blocks of the README's "Adding to Auteur", so the README cannot
drift from what works.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from api.settings import SAMPLE_INPUT, SAMPLE_RECORDINGS
from tests.doubles.openai_server import OpenAIServer, replay_recordings
from tests.integration.test_cli import embedded_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"```(?:python|markdown)\n(?:# |<!-- )(\S+?)(?: -->)?\n(.*?)```", re.DOTALL)
CRITIQUE = {"verdict": "It hooks: two eggs and a dare.", "suggestions": ["Name the dare."]}


def readme_files() -> dict[str, str]:
    """The files the README's "Adding to Auteur" shows, by path."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Adding to Auteur", 1)[1].split("\n## ", 1)[0]
    return {path: body for path, body in _BLOCK.findall(section)}


def project_copy(destination: Path) -> Path:
    """The project's files (tracked or not ignored), as a fresh checkout would have them."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def test_a_dropped_in_agent_and_workflow_run_through_their_gate(
    tmp_path: Path, database_url: str, openai_server: OpenAIServer
) -> None:
    files = readme_files()
    assert set(files) == {
        "agents/logline_critic.py",
        "prompts/logline_critic/critique.md",
        "graphs/critique_only.py",
    }
    copy = project_copy(tmp_path / "auteur")
    for path, body in files.items():
        assert not (copy / path).exists()
        (copy / path).parent.mkdir(parents=True, exist_ok=True)
        (copy / path).write_text(body, encoding="utf-8")
    openai_server.responder = replay_recordings(
        SAMPLE_RECORDINGS,
        copy / "prompts",
        override=lambda task, scene, revision: CRITIQUE if task == "critique" else None,
    )
    env = embedded_env() | {
        "PYTHONPATH": str(copy),
        "AUTEUR_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": database_url,
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": openai_server.base_url,
    }
    brief = json.loads(SAMPLE_INPUT.read_text())["brief"]

    def auteur(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "api.cli", *args],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    run = auteur("run", "critique_only", "--brief", brief, "--auto-approve")

    assert run.returncode == 0, run.stdout + run.stderr
    assert "approving critique" in run.stdout
    project = re.search(r"Project: ([0-9a-f-]{36})", run.stdout)
    thread = re.search(r"Thread: ([0-9a-f-]{36})", run.stdout)
    assert project and thread, run.stdout
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        values = conn.execute(
            "SELECT thread_values FROM auteur_threads WHERE thread_id = %s", (thread.group(1),)
        ).fetchone()["thread_values"]
        stored = conn.execute(
            "SELECT version, data, approved_by, approval_id FROM auteur_artifacts"
            " WHERE project_id = %s AND kind = 'critique'",
            (project.group(1),),
        ).fetchall()
    assert values["critique"] == CRITIQUE
    assert [(s["version"], s["data"], s["approved_by"]) for s in stored] == [(1, CRITIQUE, "local")]
    assert stored[0]["approval_id"] is not None
    listed = auteur("artifacts", project.group(1))
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"critique\s+│?\s*1\b", listed.stdout), listed.stdout
