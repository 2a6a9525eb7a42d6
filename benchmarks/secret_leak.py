"""Does a model key quoted back by the model endpoint leak anywhere? Run by hand.

Starts the OpenAI test double in a mode that answers every completion with an error
quoting the request's ``Authorization`` header whole (as some OpenAI-compatible proxies
do), and a real ``auteur serve`` subprocess pointed at it with a model key and an API key.
Two productions run into it: one the endpoint rejects (401, no retry), one it keeps
failing (503, retried until the run stops). Then every log line of the server, every
event streamed or replayed, and every API answer about those runs is searched for the
secrets; the script prints how many it found and exits 1 if any::

    python benchmarks/secret_leak.py
    # 0 occurrences of the secret in 12 log lines, 18 events, 16 API answers
"""

from __future__ import annotations

import json
import sys
import uuid

import httpx
from _servers import SAMPLE, STREAM_MODES, auteur_server, stream_events

from tests.doubles.openai_server import ErrorReply, run_openai_server

MODEL_KEY = f"sk-leak-{uuid.uuid4().hex}"
API_KEY = f"auteur-{uuid.uuid4().hex}"
MASK = "[redacted]"


def _production(http: httpx.Client, events: list[str], answers: list[str]) -> None:
    """One production from a fresh thread to its failure; collect what the client sees."""
    thread = http.post("/threads", json={}).json()["thread_id"]
    body = {"assistant_id": "full_video", "input": SAMPLE, "stream_mode": STREAM_MODES}
    streamed = list(stream_events(http, f"/threads/{thread}/runs/stream", body))
    events += [f"{event.event} {event.data}" for event in streamed]
    run_id = http.get(f"/threads/{thread}/runs").json()[0]["run_id"]
    replay = http.get(
        f"/threads/{thread}/runs/{run_id}/stream", headers={"Last-Event-ID": "-1"}
    ).text
    events += [block for block in replay.split("\n\n") if block.startswith(("event:", "id:"))]
    for path in (
        f"/threads/{thread}/runs/{run_id}",
        f"/threads/{thread}/runs",
        f"/threads/{thread}",
        f"/threads/{thread}/state",
        f"/threads/{thread}/history",
        "/approvals",
        f"/threads/{thread}/runs/{run_id}/join",
    ):
        answers.append(http.get(path).text)
    answers.append(http.post("/threads/search", json={"ids": [thread]}).text)


def main() -> int:
    """Run the productions and print the count; 1 if a secret was found anywhere."""
    events: list[str] = []
    answers: list[str] = []
    with run_openai_server() as llm:
        # Per run: a 401 is final at once; a 503 is retried (3 retries, 4 requests).
        llm.replies += [ErrorReply(401, echo_authorization=True)]
        llm.replies += [ErrorReply(503, echo_authorization=True)] * 4
        env = {
            "OPENAI_API_KEY": MODEL_KEY,
            "OPENAI_BASE_URL": llm.base_url,
            "AUTEUR_API_KEYS": json.dumps({API_KEY: "bench"}),
        }
        with auteur_server(env=env) as server:
            headers = {"Authorization": f"Bearer {API_KEY}"}
            with httpx.Client(base_url=server.url, headers=headers, timeout=300) as http:
                for _ in range(2):
                    _production(http, events, answers)
            log_lines = server.log.read_text(errors="replace").splitlines()
        requests = len(llm.requests)
    seen = [*log_lines, *events, *answers]
    found = sum(text.count(secret) for text in seen for secret in (MODEL_KEY, API_KEY))
    masked = sum(text.count(MASK) for text in seen)
    print(f"the model endpoint quoted the key in {requests} answers; {masked} masks seen")
    print(
        f"{found} occurrences of the secret in {len(log_lines)} log lines, {len(events)} events, "
        f"{len(answers)} API answers"
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
