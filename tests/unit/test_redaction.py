"""Registered secrets are masked in text, JSON and log records; everything else is kept."""

from __future__ import annotations

import logging

import pytest

from tools.redaction import MASK, install_log_redaction, redact, redact_json, register

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
