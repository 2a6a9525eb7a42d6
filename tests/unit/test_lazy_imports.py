"""What a command's process imports: each library only where a command needs it.

``auteur --help`` reads the CLI alone; every command reads the settings; ``auteur workflows
search`` opens discovery alone. None of them needs the LLM clients, Langfuse, LangChain,
LangGraph or the plugins, which cost seconds to import, and a search needs no ComfyUI
client (``benchmarks/startup.py`` times the commands; no test does). Each check runs in a
fresh interpreter and reads ``sys.modules``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNS_ONLY = {"openai", "langchain_openai", "langchain_core", "langfuse", "langgraph", "agents"}


def _imported(code: str, **env: str) -> set[str]:
    """The top-level packages (and ``graphs.*`` modules) imported after running ``code``."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(*sys.modules, sep='\\n')"],
        cwd=ROOT,
        env=os.environ | env,
        capture_output=True,
        text=True,
        check=True,
    )
    names = done.stdout.split()
    return {name.split(".")[0] for name in names} | {n for n in names if n.startswith("graphs.")}


def test_the_cli_loads_only_typer_and_rich():
    imported = _imported("import api.cli")

    assert imported & (RUNS_ONLY | {"asyncio", "pydantic_settings", "psycopg", "numpy"}) == set()


def test_the_settings_load_none_of_what_only_runs_need():
    assert _imported("import api.settings") & RUNS_ONLY == set()


def test_a_workflow_search_loads_no_plugin_and_no_langgraph(tmp_path, database_url):
    search = (
        "from typer.testing import CliRunner\n"
        "from api.cli_workflows import workflows_app\n"
        "result = CliRunner().invoke(workflows_app, ['search', 'make it 4k'])\n"
        "assert result.exit_code == 0, result.output"
    )

    imported = _imported(search, AUTEUR_DATA_DIR=str(tmp_path), DATABASE_URL=database_url)

    assert "onnxruntime" in imported  # it did embed the intent
    assert imported & (RUNS_ONLY | {"graphs.base", "httpx", "websockets"}) == set()


def test_a_process_on_the_offline_model_loads_no_openai_client_and_untraced_no_langfuse():
    offline = (
        "import asyncio\n"
        "import api.app, api.launch\n"
        "from graphs.base import load_workflow_types\n"
        "from agents.artifacts import Script\n"
        "from api.settings import SAMPLE_RECORDINGS\n"
        "from langchain_core.messages import HumanMessage\n"
        "from tools.llm import ModelProvider, NoModelConfiguredError, generate_structured\n"
        "load_workflow_types()\n"
        "models = ModelProvider(api_key=None, recordings=SAMPLE_RECORDINGS)\n"
        "model = models.chat_model(agent='script_writer', task='draft_script')\n"
        "ask = generate_structured(model, Script, [HumanMessage('a brief of my own')])\n"
        "try:\n"
        "    asyncio.run(ask)\n"
        "except NoModelConfiguredError:\n"  # through the call's error handling
        "    pass\n"
    )

    assert _imported(offline) & {"openai", "langchain_openai", "langfuse"} == set()


def test_an_openai_voice_loads_the_sdk_with_its_first_line_not_before():
    configured = (
        "from tools.speech import OpenAISpeech\n"
        "voice = OpenAISpeech(api_key='sk-test', model='tts-1', base_url='http://127.0.0.1:9')\n"
        "voice.describe(), voice.voices()\n"
    )

    assert "openai" not in _imported(configured)
    assert "openai" in _imported(configured + "voice._client\n")
