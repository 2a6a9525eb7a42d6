"""Every workflow type from the command line, on one project: the writing, the assets from the
approved master script (again: incrementally, nothing to extract), the whole production,
one scene of it made again — and the project's versions of it all."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from api.settings import SAMPLE_INPUT
from tests.integration.test_cli import assembled_video, auteur, cli_env

__all__ = ["cli_env"]

pytestmark = pytest.mark.slow

SAMPLE_BRIEF = json.loads(SAMPLE_INPUT.read_text())["brief"]
PROJECT = re.compile(r"Project: ([0-9a-f-]{36})")
THREAD = re.compile(r"Thread: ([0-9a-f-]{36})")


def _values(database_url: str, output: str) -> dict:
    thread = THREAD.search(output)
    assert thread, output
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        row = conn.execute(
            "SELECT thread_values FROM auteur_threads WHERE thread_id = %s", (thread.group(1),)
        ).fetchone()
    return row["thread_values"]


def _versions(database_url: str, project: str) -> dict[str, int]:
    """The project's latest version of each artifact kind."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT kind, max(version) AS version FROM auteur_artifacts WHERE project_id = %s"
            " GROUP BY kind",
            (project,),
        ).fetchall()
    return {row["kind"]: row["version"] for row in rows}


@pytest.mark.long
def test_every_workflow_type_on_one_project(
    cli_env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    written = auteur("run", "script_only", "--brief", SAMPLE_BRIEF, "--auto-approve", env=cli_env)
    assert written.returncode == 0, written.stdout + written.stderr
    project = PROJECT.search(written.stdout).group(1)
    for stage in ("treatment", "script", "master_script"):
        assert f"approving {stage}" in written.stdout
    assert "approving assets" not in written.stdout

    extracted = auteur("run", "extract_assets", "--project", project, "--auto-approve", env=cli_env)
    assert extracted.returncode == 0, extracted.stdout + extracted.stderr
    first = _values(database_url, extracted.stdout)
    again = auteur("run", "extract_assets", "--project", project, "--auto-approve", env=cli_env)
    assert again.returncode == 0, again.stdout + again.stderr
    second = _values(database_url, again.stdout)

    assert first["master_script"]["scenes"]  # taken from the project, not written again
    assert first["asset_extraction"]["calls"] == 1
    assert "no new or changed scenes" in again.stdout
    assert second["asset_extraction"]["calls"] == 1  # incremental: nothing new, no model call
    assert second["assets"] == first["assets"]
    listed = auteur("artifacts", project, env=cli_env)
    assert listed.returncode == 0, listed.stderr
    for kind in ("treatment", "script", "master_script", "assets"):
        assert re.search(rf"{kind}\s+│?\s*1\b", listed.stdout), listed.stdout

    produced = auteur(
        "run",
        "full_video",
        "--project",
        project,
        "--brief",
        SAMPLE_BRIEF,
        "--auto-approve",
        env=cli_env,
    )
    assert produced.returncode == 0, produced.stdout + produced.stderr
    assembled_video(produced.stdout)
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        thread = conn.execute(
            "SELECT project_id, owner, status FROM auteur_threads WHERE thread_id = %s",
            (THREAD.search(produced.stdout).group(1),),
        ).fetchone()
    assert thread == {"project_id": project, "owner": "local", "status": "idle"}
    produced_versions = _versions(database_url, project)
    notes = tmp_path / "scene.json"
    notes.write_text(json.dumps({"scene": 2, "notes": "make the landing a bouncy triumph"}))
    regenerated = auteur(
        "run",
        "regenerate_scene",
        "--project",
        project,
        "--input",
        str(notes),
        "--auto-approve",
        env=cli_env,
    )
    assert regenerated.returncode == 0, regenerated.stdout + regenerated.stderr
    assert "approving treatment" not in regenerated.stdout  # the writing is kept
    final = auteur("artifacts", project, env=cli_env).stdout
    for kind in ("treatment", "script"):
        assert re.search(rf"{kind}\s+│?\s*1\b", final), final
    # what the scene touches has one version more than the production left it at (the
    # scene-by-scene artifacts were versioned at each scene's approval there)
    for kind in ("master_script", "instances", "shots", "dialogue", "frames", "clips", "video"):
        version = produced_versions[kind] + 1
        assert re.search(rf"{kind}\s+│?\s*{version}\b", final), final


def test_a_workflow_that_needs_a_project_says_so_in_one_line(cli_env: dict[str, str]) -> None:
    alone = auteur("run", "extract_assets", "--auto-approve", env=cli_env)

    assert alone.returncode == 1
    assert "master_script" in alone.stdout
    assert "Traceback" not in alone.stdout + alone.stderr
