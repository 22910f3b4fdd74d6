"""A provider error that is really a bad request is not retried.

4xx errors other than 408/409/429 were never retried. Some OpenAI-compatible servers answer
an invalid request with a 500 (llama.cpp's, through llama-cpp-python, wraps FastAPI's request
validation error in an ``internal_server_error``): a 5xx whose body clearly says the request
was invalid passes through unretried, unmoved, unchanged, like a 400. Over real HTTP, through
the openai SDK and instructor, both faces.
"""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest
from pydantic import BaseModel

from escalate import Tier, receipt_of
from escalate._failures import is_bad_request_body as _is_bad_request_body
from escalate.testing._server import Fault, ProviderServer, Reply

from .conftest import KEY


class Capital(BaseModel):
    country: str
    capital: str


PARIS = {"country": "France", "capital": "Paris"}

# What llama-cpp-python's server sends for response_format={"type": "json_schema", ...}:
# FastAPI's RequestValidationError, str()-ed into an OpenAI-style 500.
LLAMA_CPP_VALIDATION = (
    "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
    "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema', "
    "'ctx': {'expected': \"'text' or 'json_object'\"}}]"
)


def _tiers(server: ProviderServer, **cheap: Any) -> list[Tier]:
    return [
        Tier("compatible/local", base_url=server.openai_base_url, api_key=KEY, **cheap),
        Tier("openai/gpt-4o", base_url=server.openai_base_url, api_key=KEY),
    ]


def test_a_500_whose_body_is_a_request_validation_error_is_not_retried(
    build: Any, server: ProviderServer
) -> None:
    server.script("local", Fault(500, message=LLAMA_CPP_VALIDATION), Reply(data=PARIS))
    server.script("gpt-4o", Reply(data=PARIS))
    ask = build(tiers=_tiers(server), response_model=Capital)

    with pytest.raises(openai.InternalServerError) as raised:
        ask("France?")

    assert raised.value.status_code == 500
    assert len(server.requests_for("local")) == 1  # not retried
    assert server.requests_for("gpt-4o") == []  # not moved up either: it would fail there too
    assert server.pending("local") == 1


def test_a_500_with_a_plain_server_error_body_is_still_retried(
    build: Any, server: ProviderServer
) -> None:
    server.script("local", Fault(500, message="CUDA out of memory"), Reply(data=PARIS))
    ask = build(tiers=_tiers(server), response_model=Capital)

    receipt = receipt_of(ask("France?"))

    assert len(server.requests_for("local")) == 2
    first, second = receipt.attempts
    assert (first.outcome, first.trigger) == ("provider_error", "server_error")
    assert first.status_code == 500
    assert second.outcome == "answered"


def test_a_500_bad_request_can_still_be_escalated_with_on(
    build: Any, server: ProviderServer
) -> None:
    # A user who knows the cheap server cannot take the request may send it up instead.
    server.script("local", Fault(500, message=LLAMA_CPP_VALIDATION))
    server.script("gpt-4o", Reply(data=PARIS))
    ask = build(tiers=_tiers(server), response_model=Capital, on=openai.InternalServerError)

    receipt = receipt_of(ask("France?"))

    assert len(server.requests_for("local")) == 1
    assert receipt.answered_by == "openai/gpt-4o"
    assert receipt.attempts[0].status_code == 500 and receipt.attempts[0].trigger == "on"


@pytest.mark.parametrize("status", [400, 404, 422])
def test_bad_request_statuses_are_not_retried(
    build: Any, server: ProviderServer, status: int
) -> None:
    server.script("local", Fault(status), Reply(data=PARIS))
    ask = build(tiers=_tiers(server), response_model=Capital)
    with pytest.raises(openai.APIStatusError) as raised:
        ask("France?")
    assert raised.value.status_code == status
    assert len(server.requests_for("local")) == 1 and server.requests_for("gpt-4o") == []


@pytest.mark.parametrize(
    "body",
    [
        {"message": LLAMA_CPP_VALIDATION, "type": "internal_server_error"},
        {"error": {"message": LLAMA_CPP_VALIDATION, "type": "internal_server_error"}},
        {"detail": [{"loc": ["body", "response_format"], "msg": "bad", "type": "literal_error"}]},
        {"message": "unsupported parameter: n", "type": "invalid_request_error"},
        {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}},
        {"message": '[{"loc": ["body", "messages", 0], "msg": "Field required"}]'},
    ],
)
def test_what_counts_as_a_bad_request_body(body: object) -> None:
    assert _is_bad_request_body(body)


@pytest.mark.parametrize(
    "body",
    [
        None,
        "Internal Server Error",
        {"message": "The server had an error processing your request.", "type": "server_error"},
        {"detail": "Internal Server Error"},
        {"detail": []},
        {"message": "model crashed: 'loc' unknown", "type": "internal_server_error"},
        # a validation error about something other than the request body is the server's own
        {"message": "[{'loc': ('response', 'choices'), 'msg': 'x'}]", "type": "server_error"},
    ],
)
def test_what_stays_a_server_error(body: object) -> None:
    assert not _is_bad_request_body(body)


def test_the_sdk_error_body_is_what_the_rule_reads() -> None:
    """The openai SDK hands ``body["error"]`` on as ``error.body``; the rule reads either."""
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx2.Response(
        500,
        json={"error": {"message": LLAMA_CPP_VALIDATION, "type": "internal_server_error"}},
        request=request,
    )
    client = openai.OpenAI(api_key="k", base_url="http://127.0.0.1/v1")
    error = client._make_status_error_from_response(response)
    assert isinstance(error, openai.InternalServerError)
    assert _is_bad_request_body(error.body)
