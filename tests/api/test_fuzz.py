"""Schema-based fuzzing of the live API, plus hand-written negative cases.

Schemathesis reads the server's own ``/openapi.json`` and sends every operation generated
inputs, valid and invalid; no answer may be a 5xx, and the server may log no unhandled
exception while answering (a crash inside an SSE stream comes after its 200 status line).
Generated path ids would only ever meet 404, so ids of real resources (a thread at its
first gate with its run, checkpoint and approval, a project, another user's thread) are
mixed into the generated ones, and run bodies sometimes name a real assistant.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from api.app import create_app
from api.settings import SAMPLE_INPUT, Settings
from api.wire import assistant_id_of
from tests.api.conftest import KEYS

ALICE = {"Authorization": "Bearer alice-key"}
BOB = {"Authorization": "Bearer bob-key"}
WORKFLOW = "full_video"

# SSE streams never end on their own while their run or queue is live: schemathesis reads
# them for ``SHORT_TIMEOUT_S`` and then cuts them short, which is an answer like any other.
STREAMING = {
    "GET /approvals/stream",
    "POST /threads/{thread_id}/runs/stream",
    "GET /threads/{thread_id}/runs/{run_id}/stream",
}
# These hold a plain JSON answer until the run ends; a real run may take longer than the
# fuzzer should wait, so a read timeout is accepted for them (and only for them). The SDK
# tests (test_sdk.py) cover what they answer once the run ends.
WAITING = {
    "POST /threads/{thread_id}/runs/wait",
    "GET /threads/{thread_id}/runs/{run_id}/join",
    "POST /threads/{thread_id}/runs/{run_id}/cancel",  # ``?wait=true`` waits like ``join``
}
SHORT_TIMEOUT_S = 2.0
PROJECT_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 30.0


class _ErrorLog(logging.Handler):
    """What uvicorn logs at ERROR (an unhandled exception in the app), kept for the report."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self, wait_s: float = 0.0) -> str:
        """The errors logged so far (waiting up to ``wait_s`` for one), trimmed, then forgotten.

        Starlette sends a 500 before it re-raises the exception for uvicorn to log, so
        the record can arrive just after the response does.
        """
        deadline = time.monotonic() + wait_s
        while not self.records and time.monotonic() < deadline:
            time.sleep(0.02)
        records, self.records = self.records, []
        return "\n".join(_trimmed(record) for record in records)


def _trimmed(record: logging.LogRecord) -> str:
    """A logged exception with only the project's own frames (not the ASGI stack's)."""
    lines = [record.getMessage()]
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        frames = [
            frame
            for frame in traceback.extract_tb(error.__traceback__)
            if str(PROJECT_ROOT) in frame.filename and "site-packages" not in frame.filename
        ]
        lines += traceback.format_list(frames)
        lines += traceback.format_exception_only(error)
    return "".join(line if line.endswith("\n") else f"{line}\n" for line in lines).rstrip()


@pytest.fixture(scope="module")
def server_errors(api_url: str) -> Iterator[_ErrorLog]:
    handler = _ErrorLog()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def _ok(response: httpx.Response) -> Any:
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


@pytest.fixture(scope="module")
def seeded(api_url: str) -> dict[str, list[str]]:
    """Real resources whose ids the fuzzer mixes into generated path parameters."""
    with httpx.Client(base_url=api_url, headers=ALICE, timeout=120) as alice:
        project = _ok(alice.post("/projects", json={"name": "fuzzed"}))
        empty = _ok(alice.post("/threads", json={}))
        gated = _ok(alice.post("/threads", json={"metadata": {"fuzz": True}}))
        sample = json.loads(SAMPLE_INPUT.read_text())
        values = _ok(
            alice.post(
                f"/threads/{gated['thread_id']}/runs/wait",
                json={"assistant_id": WORKFLOW, "input": sample},
            )
        )
        assert "__interrupt__" in values, values
        runs = _ok(alice.get(f"/threads/{gated['thread_id']}/runs"))
        history = _ok(alice.get(f"/threads/{gated['thread_id']}/history", params={"limit": 2}))
        approvals = _ok(alice.get("/approvals"))["items"]
        approval = next(a for a in approvals if a["thread_id"] == gated["thread_id"])
    with httpx.Client(base_url=api_url, headers=BOB, timeout=30) as bob:
        foreign = _ok(bob.post("/threads", json={}))
    return {
        "thread_id": [gated["thread_id"], empty["thread_id"], foreign["thread_id"]],
        "run_id": [runs[0]["run_id"]],
        "checkpoint_id": [state["checkpoint"]["checkpoint_id"] for state in history],
        "approval_id": [approval["approval_id"]],
        "project_id": [project["project_id"]],
        "assistant_id": [WORKFLOW, assistant_id_of(WORKFLOW)],
        "key": [f"{'0' * 64}.png"],
    }


@pytest.fixture(scope="module")
def api_schema(api_url: str, seeded: dict[str, list[str]]) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json", timeout=30)

    @schema.hook
    def flatmap_path_parameters(
        context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
    ) -> st.SearchStrategy:
        # Keep the seeded resources alive: a DELETE gets generated ids only.
        if not path_parameters or context.operation.method.upper() == "DELETE":
            return st.just(path_parameters)
        return st.fixed_dictionaries(
            {
                name: st.sampled_from([value, *seeded[name]]) if name in seeded else st.just(value)
                for name, value in path_parameters.items()
            }
        )

    @schema.hook
    def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy:
        if isinstance(body, dict) and "assistant_id" in body:
            return st.sampled_from([body, {**body, "assistant_id": WORKFLOW}])
        return st.just(body)

    return schema


def _operations() -> list[str]:
    """Every operation the app serves, as ``METHOD /path`` (read offline, for test ids)."""
    app = create_app(Settings(api_keys=KEYS, database_url="postgresql://offline"))
    paths = app.openapi()["paths"]
    return [f"{method.upper()} {path}" for path, methods in paths.items() for method in methods]


OPERATIONS = _operations()


def test_every_served_operation_is_fuzzed(api_schema: schemathesis.BaseSchema) -> None:
    served = {
        f"{result.ok().method.upper()} {result.ok().path}"
        for result in api_schema.get_all_operations()
    }
    assert served == set(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_server_errors(
    label: str, api_schema: schemathesis.BaseSchema, server_errors: _ErrorLog
) -> None:
    method, path = label.split(" ", 1)
    operation = api_schema[path][method]
    waits = label in WAITING
    timeout = SHORT_TIMEOUT_S if label in STREAMING or waits else TIMEOUT_S
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=20,
        derandomize=True,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=strategy)
    def fuzz(case: schemathesis.Case) -> None:
        try:
            response = case.call(headers=ALICE, timeout=timeout)
        except requests.exceptions.ReadTimeout:
            if not waits:
                raise
            response = None
        logged = server_errors.take(wait_s=2.0 if response and response.status_code >= 500 else 0)
        if response is not None:
            try:
                case.validate_response(response, checks=[not_a_server_error])
            except BaseException as failure:
                failure.add_note(f"The server logged:\n{logged}")
                raise
        assert not logged, f"{label} made the server log an error:\n{logged}"

    try:
        fuzz()
    finally:
        # An SSE stream fails after its 200 status line: give its error a moment to arrive.
        logged = server_errors.take(wait_s=0.2)
    assert not logged, f"{label} made the server log an error:\n{logged}"


# -- hand-written negative cases: a 4xx with a JSON ``detail`` string -------------------------

UNKNOWN = str(uuid.uuid4())


def _negative_cases() -> list[Any]:
    run = {"assistant_id": WORKFLOW}
    return [
        pytest.param(
            "POST",
            "/threads",
            {"content": b'{"metadata": ', "headers": {"content-type": "application/json"}},
            422,
            id="malformed-json",
        ),
        pytest.param(
            "POST", "/threads/search", {"json": {"limit": "many"}}, 422, id="wrong-type-limit"
        ),
        pytest.param("POST", "/projects", {"json": {"name": ["x"]}}, 422, id="wrong-type-name"),
        pytest.param("POST", "/threads", {"json": {"if_exists": "clobber"}}, 422, id="wrong-enum"),
        pytest.param("GET", "/assistants/no-such-workflow", {}, 404, id="unknown-assistant"),
        pytest.param(
            "POST",
            "/threads/{gated}/runs",
            {"json": {"assistant_id": "no-such-workflow"}},
            404,
            id="run-of-unknown-assistant",
        ),
        pytest.param("GET", f"/threads/{UNKNOWN}", {}, 404, id="unknown-thread"),
        pytest.param(
            "POST", f"/threads/{UNKNOWN}/runs", {"json": run}, 404, id="run-on-unknown-thread"
        ),
        pytest.param(
            "GET",
            "/threads/{gated}/runs/{run}/stream",
            {"headers": {"Last-Event-ID": "yesterday"}},
            400,
            id="bad-last-event-id",
        ),
        pytest.param("GET", "/threads/{gated}", {"headers": None}, 401, id="missing-auth"),
        pytest.param(
            "GET",
            "/threads/{gated}",
            {"headers": {"Authorization": "Bearer nope"}},
            401,
            id="unknown-key",
        ),
        pytest.param(
            "POST", "/threads/search", {"headers": None, "json": {}}, 401, id="missing-auth-post"
        ),
        pytest.param("GET", "/files/not-a-content-hash.png", {}, 422, id="file-key-not-a-hash"),
        pytest.param("GET", "/files/..%2F..%2Fetc%2Fpasswd", {}, 404, id="file-key-path-traversal"),
        pytest.param("GET", f"/files/{'0' * 64}.png", {}, 404, id="file-key-unknown-hash"),
        pytest.param(
            "POST",
            "/threads/{gated}/runs",
            {"json": {**run, "input": {"nonsense": 1}}},
            422,
            id="invalid-workflow-input",
        ),
        pytest.param(
            "POST",
            "/approvals/{approval}",
            {"json": {"decisions": []}},
            422,
            id="empty-decision",
        ),
    ]


@pytest.mark.parametrize(("method", "path", "request_kwargs", "status"), _negative_cases())
def test_client_errors_have_a_detail(
    api_url: str,
    seeded: dict[str, list[str]],
    server_errors: _ErrorLog,
    method: str,
    path: str,
    request_kwargs: dict[str, Any],
    status: int,
) -> None:
    path = path.format(
        gated=seeded["thread_id"][0], run=seeded["run_id"][0], approval=seeded["approval_id"][0]
    )
    headers = request_kwargs.get("headers", {})
    # ``"headers": None`` sends no credentials at all; other headers come with alice's key.
    kwargs = {**request_kwargs, "headers": {} if headers is None else {**ALICE, **headers}}
    with httpx.Client(base_url=api_url, timeout=TIMEOUT_S) as client:
        response = client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    assert not server_errors.take()
