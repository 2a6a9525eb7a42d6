"""Scene-parallel writing: master script and shot list stage time over one model call.

The OpenAI test double answers every request after a fixed delay (``--delay``), which
stands for the time a model takes to write one scene. Each stage (the script writer's
master-script step, the shot lister) runs as its agent's own subgraph, in process, on an
in-memory checkpointer and with no store (so nothing is memoised), from the approved
inputs to its gate, for scripts of N scenes made by repeating the sample's scenes.

- **before**: ``concurrency=1`` (``AUTEUR_LLM_CONCURRENCY=1``): the scenes one after
  another. The stage's critical path is the total LLM time, as it was when one call wrote
  the whole document (its answer is N scenes long, so it takes N scenes' time).
- **after**: the default concurrency: every scene at once.

It prints each stage's median time over the median time of one call to the same double
(measured in the same run): ~N before, ~1 after.

    python benchmarks/scene_parallel.py            # --scenes 2 4 8 --delay 0.5 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import re
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import _servers  # noqa: F401  (puts the repository, whose tests/ it drives, on sys.path)
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import BaseModel

from agents.base import Context, load_agents
from agents.script_writer import ScriptWriter
from agents.shot_lister import ShotLister
from api.settings import SAMPLE_RECORDINGS, Settings
from tests.doubles.openai_server import Reply, run_openai_server
from tools.draft_renderer import DraftBackend
from tools.llm import ModelProvider, generate_structured
from tools.storage import LocalFileStore

RECORDED: dict[str, Any] = json.loads(SAMPLE_RECORDINGS.read_text())["responses"]
SAMPLE_SCENES = len(RECORDED["draft_script"][0]["scenes"])
_ASKED = re.compile(r"(?:Write scene|List the shots of scene) (\d+)")


def _source(number: int) -> str:
    """The sample scene that scene ``number`` of a longer script repeats."""
    return str((number - 1) % SAMPLE_SCENES + 1)


def _inputs(scenes: int) -> dict[str, Any]:
    """The approved state before the master script: the sample script, N scenes long."""
    script = copy.deepcopy(RECORDED["draft_script"][0])
    script["scenes"] = [
        {**copy.deepcopy(script["scenes"][int(_source(n)) - 1]), "number": n}
        for n in range(1, scenes + 1)
    ]
    master = {
        "title": script["title"],
        "scenes": [_master_scene(n) for n in range(1, scenes + 1)],
    }
    return {
        "project": {"brief": f"benchmark {uuid.uuid4()}"},
        "script": script,
        "master_script": master,
        "assets": RECORDED["extract_assets"][0],
    }


def _master_scene(number: int) -> dict[str, Any]:
    return {**RECORDED["write_master_scene"][0][_source(number)], "number": number}


def _scene_shots(number: int) -> dict[str, Any]:
    shots = copy.deepcopy(RECORDED["list_scene_shots"][0][_source(number)]["shots"])
    for shot in shots:
        shot["scene"] = number
        shot["id"] = f"{number}{shot['id'].lstrip('0123456789')}"
    return {"shots": shots}


def _respond(body: dict[str, Any]) -> Reply:
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    if user.startswith("Benchmark"):
        return {"title": "one call"}
    last = user.splitlines()[-1]
    number = int(_ASKED.match(last).group(1))  # type: ignore[union-attr]
    return _master_scene(number) if last.startswith("Write") else _scene_shots(number)


class _Title(BaseModel):
    title: str


async def _one_call(models: ModelProvider) -> float:
    started = time.perf_counter()
    await generate_structured(
        models.chat_model(agent="script_writer", task="benchmark"),
        _Title,
        [HumanMessage("Benchmark: answer with a title.")],
        slots=models.slots(),
    )
    return time.perf_counter() - started


async def _stage(stage: str, scenes: int, context: Context) -> float:
    """Seconds from the stage's approved inputs to its gate."""
    agent = ScriptWriter() if stage == "master_script" else ShotLister()
    graph = agent.build().compile(checkpointer=InMemorySaver())
    state = _inputs(scenes)
    if stage == "master_script":
        del state["master_script"], state["assets"]
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    started = time.perf_counter()
    await graph.ainvoke(state, config, context=context)
    elapsed = time.perf_counter() - started
    gate = (await graph.aget_state(config)).interrupts[0].value
    assert gate["stage"] == stage and gate["draft_error"] is None, gate
    assert gate["problems"] == [], gate["problems"]
    return elapsed


async def main(scene_counts: list[int], delay_s: float, repeat: int) -> None:
    """Print the table: each stage and scene count, before and after, over one call."""
    load_agents()  # every agent's artifact gets a channel: the shot lister reads the assets
    concurrency = Settings().llm_concurrency
    with run_openai_server() as server, tempfile.TemporaryDirectory() as files:
        server.responder = _respond
        server.delay_s = delay_s

        def context(slots: int) -> Context:
            models = ModelProvider(
                api_key="benchmark",
                base_url=server.base_url,
                recordings=SAMPLE_RECORDINGS,
                concurrency=slots,
            )
            return Context(models=models, backend=DraftBackend(), files=LocalFileStore(Path(files)))

        before, after = context(1), context(concurrency)
        await _one_call(after.models)  # warm-up: the client's first connection
        single = statistics.median([await _one_call(after.models) for _ in range(repeat)])
        print(f"double delay {delay_s:.2f} s; one call {single:.3f} s (median of {repeat})")
        print(f"before: concurrency 1; after: concurrency {concurrency} (AUTEUR_LLM_CONCURRENCY)")
        print(
            f"{'stage':<14}{'scenes':>7}{'before s':>10}{'after s':>9}{'before/call':>13}"
            f"{'after/call':>12}{'peak':>6}"
        )
        for stage in ("master_script", "shots"):
            for scenes in scene_counts:
                times: dict[str, list[float]] = {"before": [], "after": []}
                peak = 0
                for _ in range(repeat):  # interleaved, so drift hits both alike
                    times["before"].append(await _stage(stage, scenes, before))
                    server.peak_in_flight = 0
                    times["after"].append(await _stage(stage, scenes, after))
                    peak = max(peak, server.peak_in_flight)
                b, a = (statistics.median(times[k]) for k in ("before", "after"))
                print(
                    f"{stage:<14}{scenes:>7}{b:>10.3f}{a:>9.3f}{b / single:>13.2f}"
                    f"{a / single:>12.2f}{peak:>6}"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--delay", type=float, default=0.5, help="seconds per model answer")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.scenes, args.delay, args.repeat))
