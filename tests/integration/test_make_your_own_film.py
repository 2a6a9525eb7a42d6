"""The README's "Make your own film", followed as written: the terminal command it shows, with
the settings it gives for an OpenAI-compatible endpoint. Only the endpoint's address is the
test double's, a model that follows a schema only when the request sends one."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import psycopg
import pytest

from tests.doubles.openai_server import replay_recordings, run_openai_server
from tests.integration.test_cli import assembled_video, auteur, cli_env

__all__ = ["cli_env"]

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SECOND_BRIEF = ROOT / "tests" / "doubles" / "second_brief.json"
THREAD = re.compile(r"Thread: ([0-9a-f-]{36})")


def _section(title: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _exports(section: str, comment: str) -> dict[str, str]:
    """The ``export NAME=value`` lines under ``# comment`` in the section's shell block."""
    lines = section.split(f"# {comment}\n", 1)[1].split("\n\n", 1)[0].splitlines()
    exports = [line.split("#", 1)[0].removeprefix("export ").strip() for line in lines]
    return dict(export.split("=", 1) for export in exports)


@pytest.mark.long
def test_your_own_brief_from_the_terminal_through_an_openai_compatible_endpoint(
    cli_env: dict[str, str], database_url: str
) -> None:
    section = _section("Make your own film")
    command = re.search(r"\*\*Terminal\*\*: `(auteur run [^`]+)`", section).group(1)
    settings = _exports(section, "any OpenAI-compatible endpoint (a gateway, a hosted open model)")
    assert set(settings) == {"OPENAI_API_KEY", "OPENAI_BASE_URL", "AUTEUR_DEFAULT_MODEL"}
    second = json.loads(SECOND_BRIEF.read_text(encoding="utf-8"))

    with run_openai_server() as model:
        model.responder = replay_recordings(SECOND_BRIEF, ROOT / "prompts")
        model.unconstrained = "Sure! Here is a lovely story about a lighthouse keeper."
        env = cli_env | settings | {"OPENAI_BASE_URL": model.base_url}
        made = auteur(*shlex.split(command)[1:], "--auto-approve", env=env)
        requests = list(model.requests)

    assert made.returncode == 0, made.stdout + made.stderr
    assert "offline sample model" not in made.stdout
    assembled_video(made.stdout)
    assert requests
    assert {request["model"] for request in requests} == {settings["AUTEUR_DEFAULT_MODEL"]}
    assert {request["response_format"]["type"] for request in requests} == {"json_schema"}
    with psycopg.connect(database_url) as conn:
        (values,) = conn.execute(
            "SELECT thread_values FROM auteur_threads WHERE thread_id = %s",
            (THREAD.search(made.stdout).group(1),),
        ).fetchone()
    assert values["brief"] == shlex.split(command)[-1]
    assert values["script"]["title"] == second["responses"]["draft_script"][0]["title"]
    assert all(g["outcome"] == "valid" for g in values["generations"])
