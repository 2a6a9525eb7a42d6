"""``auteur workflows``: search, list and run from the command line (real database, model)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from api.cli_workflows import workflows_app
from tests.doubles.comfy_server import ComfyServer, run_comfy_server
from tools.workflows import COMFY_WORKFLOWS


@pytest.fixture(scope="module")
def comfy() -> Iterator[ComfyServer]:
    with run_comfy_server() as server:
        yield server


@pytest.fixture
def cli(monkeypatch, tmp_path, database_url, comfy):
    """Invoke ``auteur workflows ...`` as a user would, configured through the environment."""
    monkeypatch.setenv("AUTEUR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTEUR_COMFYUI_URLS", comfy.url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(workflows_app, list(args), catch_exceptions=False)

    return invoke


def _rows(output: str) -> list[list[str]]:
    """The cells of a rich table's body rows (a wrapped cell's next lines are left out)."""
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in output.splitlines()
        if line.startswith("│")
    ]
    return [row for row in rows if row[0]]


def test_search_prints_ranked_workflows_with_scores(cli):
    result = cli("search", "make it 4k", "--limit", "3")

    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert rows[0][1] == "upscale_image"
    scores = [float(row[2]) for row in rows]
    assert scores == sorted(scores, reverse=True)


def test_list_shows_every_workflow_with_its_inputs(cli):
    result = cli("list")

    assert result.exit_code == 0, result.output
    names = [row[0] for row in _rows(result.output)]
    assert names == sorted(path.stem for path in COMFY_WORKFLOWS.glob("*.yaml"))
    assert "image: image" in result.output


def test_run_uploads_a_local_image_and_prints_where_outputs_are(cli, comfy, tmp_path):
    source = tmp_path / "frame.png"
    Image.new("RGB", (40, 30), (30, 120, 220)).save(source)
    jobs = comfy.jobs

    result = cli("run", "upscale_image", "--set", f"image={source}", "--set", "scale_by=0.25")

    assert result.exit_code == 0, result.output
    assert comfy.jobs == jobs + 1
    [stored] = re.findall(r"\S+/files/[0-9a-f]{64}\.png", result.output)
    with Image.open(Path(stored)) as upscaled:
        assert upscaled.size == (40, 30)  # 4x, then 0.25


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "no_such_workflow"], "no workflow 'no_such_workflow'"),
        (["run", "upscale_image", "--set", "colour=red"], "has no input 'colour'"),
        (["run", "upscale_image", "--set", "scale_by=big"], "input 'scale_by'"),
        (["run", "upscale_image", "--set", "scale_by"], "key=value"),
        (["run", "upscale_image", "--set", "image=/no/such/file.png"], "neither a file"),
        (["search", "   "], "empty"),
    ],
)
def test_mistakes_are_explained_with_exit_code_1(cli, args, message):
    result = cli(*args)

    assert result.exit_code == 1
    assert message in result.output


def test_a_missing_required_input_is_refused_before_anything_runs(cli, comfy):
    jobs = comfy.jobs

    result = cli("run", "upscale_image", "--set", "scale_by=0.5")

    assert result.exit_code == 1
    assert "image" in result.output
    assert comfy.jobs == jobs
