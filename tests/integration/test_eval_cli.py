"""``auteur eval`` end to end: real Postgres, the offline sample model or the LLM test double.

The command runs in-process through typer's runner (``eval_app`` is what ``auteur eval`` is);
each run writes its JSON report into the test's own folder, where the tests read it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.graph import StateGraph
from typer.testing import CliRunner, Result

from api.settings import SAMPLE_INPUT, SAMPLE_RECORDINGS
from evals.cli import eval_app
from graphs.base import WorkflowType, agent_pipeline, load_workflow_types
from prompts import PROMPTS_DIR
from tests.doubles.langfuse_server import run_langfuse_server
from tests.doubles.openai_server import Reply, replay_recordings
from tools import tracing

DATASETS = Path(__file__).resolve().parents[2] / "evals" / "datasets"
EGGS = next(
    item
    for item in map(json.loads, (DATASETS / "gold_scripts.jsonl").read_text().splitlines())
    if item["id"] == "eggs_kite_sample"
)


@pytest.fixture
def env(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Settings from the environment only: the test database, no LLM, no Langfuse."""
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "AUTEUR_", "LANGFUSE_")):
            monkeypatch.delenv(name)
    values = {
        "DATABASE_URL": database_url,
        "AUTEUR_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "220",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def run_eval(tmp_path: Path, *args: str) -> tuple[Result, dict[str, Any] | None]:
    """Run ``auteur eval run``; return the result and the report it wrote (if any)."""
    reports = tmp_path / f"reports-{len(list(tmp_path.glob('reports-*')))}"
    result = CliRunner().invoke(eval_app, ["run", *args, "--report-dir", str(reports)])
    written = sorted(reports.glob("*.json"))
    return result, json.loads(written[0].read_text()) if written else None


def dataset(tmp_path: Path, name: str, *items: dict[str, Any]) -> str:
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return str(path)


def eggs(item_id: str = "eggs_kite_sample", **fields: Any) -> dict[str, Any]:
    return {"id": item_id, "gold": "eggs_kite_sample", "input": str(SAMPLE_INPUT), **fields}


def scores(report: dict[str, Any], item_id: str) -> dict[str, float | None]:
    return next(item for item in report["items"] if item["id"] == item_id)["scores"]


def wrong_gold() -> dict[str, Any]:
    """The sample's gold, labelled wrongly: Pip renamed past recognition, Dora never changes."""
    gold = json.loads(json.dumps(EGGS["assets"]))
    pip = gold["characters"][0]
    pip["id"], pip["name"] = "pipkin", "Pipkin"
    for usage in gold["scene_usage"]:
        if usage["entity"] == "pip":
            usage["entity"] = "pipkin"
        if usage["entity"] == "dora":
            usage["look"] = "gingham apron"
    dora = gold["characters"][1]
    dora["looks"] = dora["looks"][:1]
    return gold


# --- extraction ----------------------------------------------------------------------------


def test_extraction_on_the_gold_offline_prints_precision_recall_and_f1(
    env: dict[str, str], tmp_path: Path
) -> None:
    result, report = run_eval(tmp_path, "--suite", "extraction", "--threshold", "entity_f1=0.8")

    assert result.exit_code == 0, result.output
    for column in ("entity precision", "entity recall", "entity f1", "look f1"):
        assert column in result.output
    assert "0.833" in result.output and "0.889" in result.output
    assert report is not None
    # The recording finds 5 of the 7 gold entities and nothing else, and 8 of the 10 usages.
    assert scores(report, "eggs_kite_sample") == {
        "schema_valid": 1.0,
        "entity_precision": 1.0,
        "entity_recall": pytest.approx(5 / 7),
        "entity_f1": pytest.approx(5 / 6),
        "look_precision": 1.0,
        "look_recall": 0.8,
        "look_f1": pytest.approx(8 / 9),
        "extraction_calls": 1,
    }
    statuses = [item["status"] for item in report["items"]]
    # the offline model knows only the sample: every other gold item is skipped
    assert statuses.count("ok") == 1 and statuses.count("skipped") == len(statuses) - 1 >= 11
    assert "offline sample model only knows the sample brief" in result.output
    assert report["models"] == {"asset_extractor": "auteur-offline-sample"}
    assert list(report["prompts"]) == ["asset_extractor/extract_assets"]
    assert report["cost"]["totals"]["llm_calls"] == 1
    [markdown] = tmp_path.glob("reports-*/*.md")
    assert "| eggs_kite_sample | ok | 1 | 1 | 0.714 | 0.833 |" in markdown.read_text()


def test_a_wrong_gold_lowers_f1_fails_the_threshold_and_compare_shows_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    right = dataset(tmp_path, "right", eggs())
    wrong = dataset(tmp_path, "wrong", eggs(assets=wrong_gold()))

    passed, before = run_eval(
        tmp_path, "--suite", "extraction", "--dataset", right, "--threshold", "entity_f1=0.8"
    )
    failed, after = run_eval(
        tmp_path,
        "--suite",
        "extraction",
        "--dataset",
        wrong,
        "--threshold",
        "entity_f1=0.8",
        "--threshold",
        "extraction_calls=1",
    )

    assert passed.exit_code == 0, passed.output
    assert failed.exit_code == 1, failed.output
    assert "below threshold: entity_f1 = 0.667 misses the minimum 0.8" in failed.output
    assert "extraction_calls" not in failed.output.split("below threshold")[1]
    assert before is not None and after is not None
    # 4 of the 5 extracted entities match the 7 wrong gold ones; Dora's raincoat is now wrong.
    assert scores(after, "eggs_kite_sample")["entity_f1"] == pytest.approx(2 / 3)
    assert scores(after, "eggs_kite_sample")["look_precision"] == pytest.approx(5 / 8)

    reports = sorted(tmp_path.glob("reports-*/*.json"))
    compared = CliRunner().invoke(eval_app, ["compare", str(reports[0]), str(reports[1])])

    assert compared.exit_code == 0, compared.output
    lines = compared.output.splitlines()
    [aggregate] = [line for line in lines if "entity_f1" in line and "eggs" not in line]
    assert "0.833" in aggregate and "0.667" in aggregate and "-0.167" in aggregate
    assert any("eggs_kite_sample" in line and "look_precision" in line for line in lines)


# --- usage errors --------------------------------------------------------------------------


def test_push_without_langfuse_keys_fails_before_running(
    env: dict[str, str], tmp_path: Path
) -> None:
    result, report = run_eval(tmp_path, "--suite", "extraction", "--push")

    assert result.exit_code == 2
    assert "--push needs Langfuse: set LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY" in result.output
    assert report is None


def test_thresholds_must_name_a_metric_of_the_run(env: dict[str, str], tmp_path: Path) -> None:
    unknown, _ = run_eval(tmp_path, "--suite", "shots", "--threshold", "bogus=1")
    judged, _ = run_eval(tmp_path, "--suite", "script", "--threshold", "brief_adherence=0.5")
    malformed, _ = run_eval(tmp_path, "--suite", "shots", "--threshold", "faithfulness")

    assert unknown.exit_code == judged.exit_code == malformed.exit_code == 2
    assert "no metric 'bogus'" in unknown.output
    assert "no metric 'brief_adherence' (needs --judge)" in judged.output
    assert "'faithfulness' is not METRIC=VALUE" in malformed.output


def test_a_judge_needs_an_llm_endpoint(env: dict[str, str], tmp_path: Path) -> None:
    result, report = run_eval(tmp_path, "--suite", "script", "--judge", "gpt-x")

    assert result.exit_code == 2
    assert "--judge gpt-x needs an LLM endpoint" in result.output
    assert report is None


def test_compare_refuses_a_file_that_is_not_a_report(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text("[]")
    result = CliRunner().invoke(eval_app, ["compare", str(other), str(tmp_path / "none.json")])
    assert result.exit_code == 2
    assert "is not an eval report" in result.output


# --- shots, script, pipeline -----------------------------------------------------------------


def test_shots_offline(env: dict[str, str], tmp_path: Path) -> None:
    result, report = run_eval(tmp_path, "--suite", "shots", "--threshold", "faithfulness=1")

    assert result.exit_code == 0, result.output
    assert report is not None
    assert scores(report, "eggs_kite_sample") == {
        "schema_valid": 1.0,
        "shot_rule_pass_rate": 1.0,
        "faithfulness": 1.0,
        "shot_split_f1": pytest.approx(8 / 9),
    }


def test_a_draft_that_never_validates_scores_zero(
    env: dict[str, str], tmp_path: Path, openai_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    openai_server.ignores_response_format = True  # as a proxy that drops it would
    openai_server.replies.extend(["not json", "still not json", "[]"])

    result, report = run_eval(
        tmp_path,
        "--suite",
        "extraction",
        "--dataset",
        dataset(tmp_path, "one", eggs()),
        "--threshold",
        "schema_valid=1",
    )

    assert result.exit_code == 1, result.output
    assert "schema_valid = 0.000 misses the minimum 1" in result.output
    assert report is not None
    [item] = report["items"]
    assert item["note"] == "no valid assets was drafted"
    assert item["scores"]["schema_valid"] == item["scores"]["entity_f1"] == 0.0
    # every call counts, failed or not: the report, the ledger and the double agree
    assert item["model_calls"] == report["cost"]["totals"]["llm_calls"] == 3
    assert len(openai_server.requests) == 3
    assert report["models"] == {"asset_extractor": "gpt-4.1-mini"}
    assert list(report["prompts"]) == ["asset_extractor/extract_assets"]


def test_script_with_feedback_judged_by_the_llm_double(
    env: dict[str, str], tmp_path: Path, openai_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    feedback = [{"stage": "script", "message": "scene 2: make the landing funnier"}]
    replay = replay_recordings(SAMPLE_RECORDINGS, PROMPTS_DIR)

    def respond(body: dict[str, Any]) -> Reply:
        """The sample's recordings (the master script's scenes are asked for at once), then
        the judges' verdicts."""
        if body["model"] != "judge-model":
            return replay(body)
        if "follows the brief" in json.dumps(body["messages"]):
            return {"reasoning": "Pip, Dora, the kite and the hilltop are all there.", "score": 0.9}
        return {"reasoning": "The landing now ends hat over eyes.", "score": True}

    openai_server.responder = respond
    path = dataset(tmp_path, "judged", eggs("eggs_feedback", feedback=feedback))

    result, report = run_eval(
        tmp_path,
        "--suite",
        "script",
        "--dataset",
        path,
        "--judge",
        "judge-model",
        "--threshold",
        "feedback_applied=1",
    )

    assert result.exit_code == 0, result.output
    assert report is not None
    [item] = report["items"]
    assert item["scores"] == {
        "schema_valid": 1.0,
        "gold_mentions": 1.0,
        "brief_adherence": 0.9,
        "feedback_applied": 1.0,
    }
    assert item["comments"] == {
        "brief_adherence": "Pip, Dora, the kite and the hilltop are all there.",
        "feedback_applied": "script: The landing now ends hat over eyes.",
    }
    assert report["judge"] == "judge-model"
    assert {"evals/brief_adherence", "script_writer/revise_scene"} <= set(report["prompts"])
    judged = [r for r in openai_server.requests if r["model"] == "judge-model"]
    assert len(judged) == 2 and len(openai_server.requests) == 7
    assert "make the landing funnier" in json.dumps(judged[1]["messages"])
    assert report["cost"]["totals"]["cost_usd"] > 0  # the agents' calls, at gpt-4.1-mini prices


@pytest.mark.long
def test_the_whole_pipeline_offline(env: dict[str, str], tmp_path: Path) -> None:
    result, report = run_eval(tmp_path, "--suite", "pipeline", "--threshold", "extraction_calls=1")

    assert result.exit_code == 0, result.output
    assert report is not None
    assert scores(report, "eggs_kite_sample") == {
        "schema_valid": 1.0,
        "extraction_calls": 1,
        "shot_rule_pass_rate": 1.0,
        "faithfulness": 1.0,
        "shot_split_f1": pytest.approx(8 / 9),
        "entity_f1": pytest.approx(5 / 6),
        "look_f1": pytest.approx(8 / 9),
        "gold_mentions": 1.0,
    }
    assert report["items"][0]["output"]["file"]["key"].endswith(".mp4")


# --- the suite registry ------------------------------------------------------------------------


@pytest.fixture
def script_only() -> Iterator[str]:
    """A workflow type registered for one test (the registry is restored afterwards)."""
    types = load_workflow_types()
    saved = dict(types._entries)

    class ScriptOnly(WorkflowType):
        name = "eval_test_script_only"
        description = "The script writer alone."

        def build(self) -> StateGraph:
            return agent_pipeline(["script_writer"])

    yield ScriptOnly.name
    types._entries.clear()
    types._entries.update(saved)


def test_list_shows_suites_from_agent_files_and_from_evals_suites() -> None:
    result = CliRunner().invoke(eval_app, ["list"], env={"COLUMNS": "300"})

    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "│" in line}
    assert "agent shot_lister" in rows["shots"] and "agents/shot_lister.py" in rows["shots"]
    assert "workflow full_video" in rows["pipeline"]
    assert "evals/suites/pipeline.py" in rows["pipeline"]
    # both run: test_shots_offline and test_the_whole_pipeline_offline


def test_the_pipeline_suite_runs_any_workflow_type_and_scores_what_it_drafted(
    env: dict[str, str], tmp_path: Path, script_only: str
) -> None:
    path = dataset(tmp_path, "one", eggs())

    result, report = run_eval(
        tmp_path, "--suite", "pipeline", "--workflow", script_only, "--dataset", path
    )

    assert result.exit_code == 0, result.output
    assert report is not None
    assert report["metrics"] == ["schema_valid", "gold_mentions"]
    assert scores(report, "eggs_kite_sample") == {"schema_valid": 1.0, "gold_mentions": 1.0}


def test_unknown_suites_and_workflow_types_are_one_line_errors(
    env: dict[str, str], tmp_path: Path
) -> None:
    suite, _ = run_eval(tmp_path, "--suite", "nope")
    workflow, _ = run_eval(tmp_path, "--suite", "pipeline", "--workflow", "nope")
    agent, _ = run_eval(tmp_path, "--suite", "shots", "--workflow", "full_video")

    assert suite.exit_code == workflow.exit_code == agent.exit_code == 2
    assert (
        suite.output.strip()
        == "error: no suite 'nope'; choose from extraction, pipeline, script, shots"
    )
    assert workflow.output.strip().startswith("error: no workflow type 'nope'; choose from ")
    assert "full_video" in workflow.output
    assert (
        "suite 'shots' runs the agent shot_lister; --workflow is for workflow suites"
        in agent.output
    )


# --- Langfuse ------------------------------------------------------------------------------


def test_push_records_the_experiment_in_langfuse(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with run_langfuse_server() as langfuse:
        for name, value in langfuse.env().items():
            monkeypatch.setenv(name, value)
        try:
            result, report = run_eval(
                tmp_path,
                "--suite",
                "extraction",
                "--dataset",
                dataset(tmp_path, "one", eggs()),
                "--push",
            )
        finally:
            tracing.configure(None)

    assert result.exit_code == 0, result.output
    assert "Pushed to Langfuse" in result.output
    assert report is not None
    pushed = {score["name"]: score for score in langfuse.scores}
    assert pushed["entity_f1"]["value"] == pytest.approx(5 / 6)
    assert pushed["mean entity_f1"]["value"] == pytest.approx(5 / 6)
    assert pushed["extraction_calls"]["value"] == 1
    # Item scores are on the experiment item's trace, the means on the experiment run.
    assert pushed["entity_f1"]["traceId"] and pushed["mean entity_f1"]["datasetRunId"]
    [item_run] = langfuse.spans_named("experiment-item-run")
    assert item_run.trace_id == pushed["entity_f1"]["traceId"]
    # The item's own run is traced too: its thread is the session.
    [root] = langfuse.spans_named("eval extraction eggs_kite_sample")
    assert root.attributes["session.id"] == report["items"][0]["thread_id"]
