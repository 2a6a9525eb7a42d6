"""Registered secrets are masked in text, JSON, log records and exported spans; the rest is kept."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from langfuse.types import MaskOtelSpansParams, OtelSpanData, OtelSpanPatch

from tools import tracing
from tools.redaction import MASK, in_json, install_log_redaction, redact, redact_json, register

SECRET = "unit-secret-7f3a9c"


@pytest.fixture(autouse=True)
def _registered() -> None:
    register(SECRET, None, "")
    install_log_redaction()


def test_text_and_json_lose_the_secret_and_keep_the_rest() -> None:
    assert redact(f"401: Bearer {SECRET}!") == f"401: Bearer {MASK}!"
    assert redact("") == ""
    value = {"error": [f"key {SECRET}", 3, None], SECRET: {"ok": True}}
    assert redact_json(value) == {"error": [f"key {MASK}", 3, None], MASK: {"ok": True}}


def test_a_secret_is_found_in_json_text_even_where_json_escapes_it() -> None:
    quoted = 'q"uo\\te\u00e9-4d1c'
    register(quoted)
    assert in_json(json.dumps({"error": f"key {SECRET}"}))
    assert in_json(json.dumps([f"<{quoted}>"]))  # written as q\"uo\\te\u00e9-4d1c
    assert in_json(json.dumps([f"<{quoted}>"], ensure_ascii=False))
    assert not in_json(json.dumps({"error": "key unit-secret", "other": SECRET[:-1]}))


def test_a_log_record_loses_the_secret_in_its_message_and_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("tests.redaction")
    try:
        raise RuntimeError(f"upstream said {SECRET}")
    except RuntimeError:
        log.exception("call with %s failed", SECRET)
    log.warning("nothing secret: %s", "plain")

    assert SECRET not in caplog.text
    assert f"call with {MASK} failed" in caplog.text and f"upstream said {MASK}" in caplog.text
    clean = caplog.records[-1]
    assert clean.args == ("plain",)  # a record without a secret keeps its args for formatters


def test_spans_exported_to_langfuse_lose_the_secret_in_every_attribute() -> None:
    def span(attributes: dict[str, Any]) -> OtelSpanData:
        return OtelSpanData("0" * 32, "1" * 16, None, "draft", None, None, attributes, {})

    params = MaskOtelSpansParams(
        spans={
            ("0" * 32, "1" * 16): span({"out": f'"{SECRET}"', "tags": (SECRET, "ok"), "n": 1}),
            ("0" * 32, "2" * 16): span({"out": '"clean"'}),
        }
    )

    result = tracing._redact_spans(params=params)

    assert result is not None
    assert dict(result.span_patches) == {
        ("0" * 32, "1" * 16): OtelSpanPatch(
            set_attributes={"out": f'"{MASK}"', "tags": (MASK, "ok")}
        )
    }
