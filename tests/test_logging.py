from __future__ import annotations

import json
import logging

import pytest

from majordome._logging import get_logger, redact, register_secret


def test_registered_secrets_are_masked_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    register_secret("sk-test-0123456789abcdef")
    register_secret("https://tenant-secret.services.ai.azure.com/models")
    log = get_logger("majordome.test")
    with caplog.at_level(logging.INFO, logger="majordome.test"):
        log.info(
            "event",
            detail="failed at https://tenant-secret.services.ai.azure.com/models with sk-test-0123456789abcdef",
            nested={"list": ["sk-test-0123456789abcdef"]},
            api_key="anything",
            input_tokens=3,
        )
    event = json.loads(caplog.records[0].getMessage())
    assert "sk-test" not in caplog.text and "tenant-secret" not in caplog.text
    assert event["detail"] == "failed at *** with ***"
    assert "api_key" not in event
    assert event["input_tokens"] == 3  # "token" in a name is a secret, "_tokens" counts are not
    assert redact("key sk-test-0123456789abcdef") == "key ***"


def test_library_is_silent_until_the_application_enables_it(caplog: pytest.LogCaptureFixture) -> None:
    log = get_logger("majordome.quiet")
    with caplog.at_level(logging.WARNING, logger="majordome.quiet"):
        log.info("not shown")
    assert caplog.records == []


def test_an_endpoint_is_masked_with_its_host() -> None:
    from majordome._logging import register_endpoint

    register_endpoint("https://my-resource.services.ai.azure.com:8443/models")
    assert redact("cannot reach my-resource.services.ai.azure.com:8443") == "cannot reach ***"
    assert "my-resource" not in redact("GET https://my-resource.services.ai.azure.com:8443/models/chat/completions")


def test_people_s_contact_details_are_redacted_from_logged_bodies(caplog: pytest.LogCaptureFixture) -> None:
    log = get_logger("majordome.test.pii")
    trace = "0123456789abcdef0123456789abcdef"
    with caplog.at_level(logging.INFO, logger="majordome.test.pii"):
        log.info(
            "request.done",
            trace_id=trace,
            messages=[{"role": "user", "content": "write me at fan@example.com or +33 6 12 34 56 78"}],
            answer_text="card 4111 1111 1111 1111?",
        )
    event = json.loads(caplog.records[0].getMessage())
    assert "fan@example.com" not in caplog.text and "12 34 56 78" not in caplog.text and "4111" not in caplog.text
    assert "[email]" in event["messages"][0]["content"] and "[card]" in event["answer_text"]
    assert event["trace_id"] == trace  # ids are not text: left alone
