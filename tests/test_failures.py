"""Failure classification (escalate._failures): one cassette-miss rule for the deployments and
the pytest plugin, SDK errors read without importing an SDK, and the helpers the fake tiers
share with the real ones."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from decimal import Decimal
from typing import Any

import httpx2
import openai
import pytest
from pydantic import BaseModel, ValidationError
from vcr.errors import CannotOverwriteExistingCassetteException

from escalate import Tier, escalating
from escalate._failures import (
    TRANSIENT_STATUS,
    cassette_miss,
    classify,
    retry_after,
    unanswered_cost,
    validation_reason,
)


def _miss(cls: type[BaseException] = CannotOverwriteExistingCassetteException) -> BaseException:
    # vcrpy's __init__ needs a cassette; the rule only looks at the class.
    return cls.__new__(cls, "Can't overwrite existing cassette")


class _OurMiss(CannotOverwriteExistingCassetteException):
    """A subclass, as a plugin or a test helper might raise."""


class CannotOverwriteExistingCassetteException_(Exception):
    """Not a miss: the name must match a class in the MRO exactly."""


def _chained(inner: BaseException, *, implicit: bool = False) -> BaseException:
    """``inner`` behind an APIConnectionError-like error behind an instructor-like one."""
    try:
        try:
            raise inner
        except BaseException as error:
            if implicit:
                raise ConnectionError("Connection error.")  # noqa: B904 - __context__ only
            raise ConnectionError("Connection error.") from error
    except ConnectionError as connection:
        try:
            raise RuntimeError("InstructorRetryException") from connection
        except RuntimeError as outer:
            return outer


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: _miss(), id="bare"),
        pytest.param(lambda: _chained(_miss()), id="behind __cause__"),
        pytest.param(lambda: _chained(_miss(), implicit=True), id="behind __context__"),
        pytest.param(lambda: _miss(_OurMiss), id="subclassed"),
        pytest.param(lambda: _chained(_miss(_OurMiss)), id="subclassed and wrapped"),
        pytest.param(lambda: ExceptionGroup("tasks", [ValueError(), _miss()]), id="grouped"),
        pytest.param(
            lambda: _chained(
                ExceptionGroup("outer", [ExceptionGroup("inner", [_chained(_miss())])])
            ),
            id="wrapped, grouped twice, wrapped",
        ),
    ],
)
def test_a_cassette_miss_is_found_wrapped_subclassed_and_grouped(make: Any) -> None:
    found = cassette_miss(make())
    assert found is not None
    assert any(
        c.__name__ == "CannotOverwriteExistingCassetteException" for c in type(found).__mro__
    )


def test_other_errors_are_not_misses_and_cycles_end() -> None:
    assert cassette_miss(ValueError("no")) is None
    assert cassette_miss(CannotOverwriteExistingCassetteException_()) is None
    looped = ValueError("a")
    other = ValueError("b")
    looped.__cause__, other.__cause__ = other, looped
    assert cassette_miss(looped) is None


def test_the_plugin_and_the_deployments_share_the_one_rule() -> None:
    from escalate.testing import _plugin

    assert _plugin.cassette_miss is cassette_miss


@pytest.mark.parametrize("face", ["sync", "async"])
@pytest.mark.parametrize("cls", [CannotOverwriteExistingCassetteException, _OurMiss])
def test_a_miss_behind_a_real_sdk_call_reaches_the_caller_unescalated(
    face: str, cls: type[BaseException]
) -> None:
    """What vcrpy does: the miss raised inside the SDK's transport, so it arrives wrapped in
    APIConnectionError wrapped in InstructorRetryException. It is neither retried nor
    escalated: the strong tier is never asked."""
    asked: list[str] = []

    def transport(request: httpx2.Request) -> httpx2.Response:
        asked.append(request.read().decode())
        raise _miss(cls)

    def tier(model: str) -> Tier:
        if face == "sync":
            client: Any = openai.OpenAI(
                api_key="k", http_client=httpx2.Client(transport=httpx2.MockTransport(transport))
            )
        else:
            client = openai.AsyncOpenAI(
                api_key="k",
                http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(transport)),
            )
        return Tier(f"openai/{model}", client=client)

    class Answer(BaseModel):
        text: str

    tiers = [tier("gpt-4o-mini"), tier("gpt-4o")]
    if face == "sync":

        @escalating(tiers=tiers, response_model=Answer)
        def ask(q: str) -> str:
            return q

        with pytest.raises(cls):
            ask("hi")
    else:

        @escalating(tiers=tiers, response_model=Answer)
        async def aask(q: str) -> str:
            return q

        with pytest.raises(cls):
            asyncio.run(aask("hi"))
    assert len(asked) == 1 and "gpt-4o-mini" in asked[0]


def test_sdk_errors_are_read_without_importing_an_sdk_nobody_loaded() -> None:
    code = textwrap.dedent(
        """
        import sys
        from escalate._failures import classify
        assert classify(ValueError("boom")).kind == "error"
        assert not {"openai", "anthropic", "instructor"} & set(sys.modules), sys.modules.keys()

        import httpx2, openai
        request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
        found = classify(openai.APIConnectionError(request=request))
        assert (found.kind, found.trigger) == ("provider", "connection"), found
        response = httpx2.Response(503, request=request, headers={"retry-after": "2"})
        found = classify(openai.APIStatusError("down", response=response, body=None))
        assert (found.trigger, found.status, found.retry_after) == ("server_error", 503, 2.0)
        assert "anthropic" not in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_validation_errors_and_statuses_read_as_receipts_say_them() -> None:
    class Invoice(BaseModel):
        total: int

    with pytest.raises(ValidationError) as caught:
        Invoice.model_validate({"total": "x"})
    assert validation_reason(caught.value).startswith("total: Input should be a valid integer")
    assert validation_reason(KeyError("k")) == "KeyError: 'k'"
    found = classify(caught.value)
    assert (found.kind, found.outcome, found.trigger) == ("quality", "rejected", "validation")
    assert TRANSIENT_STATUS[429] == "rate_limit"
    assert unanswered_cost("timeout")[0] is None
    assert unanswered_cost("connection")[0] == Decimal(0)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "-1"}, 0.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_the_providers_headers(headers: dict[str, str], seconds: Any) -> None:
    request = httpx2.Request("POST", "http://127.0.0.1:9/")
    error = openai.APIStatusError(
        "slow down", response=httpx2.Response(429, request=request, headers=headers), body=None
    )
    assert retry_after(error) == seconds


class _Short(BaseModel):
    total: int


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_stream_cut_off_halfway_is_a_connection_failure_and_retried(
    build: Any, server: Any, provider: str
) -> None:
    # Reading a streamed body, the SDKs let httpx2's RemoteProtocolError through unwrapped:
    # it is still the provider's failure (the fault suite found it passing through).
    from escalate.testing._server import Drop, Reply

    url = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    model = "gpt-4o-mini" if provider == "openai" else "claude-haiku-4-5"
    tier = Tier(f"{provider}/{model}", base_url=url, api_key="k", stream=True)
    server.script(
        model, Drop(halfway=True, reply=Reply(data={"total": 1})), Reply(data={"total": 2})
    )

    answer = build(tiers=[tier], response_model=_Short)("x")

    attempts = answer._receipt.attempts
    assert [(a.outcome, a.trigger) for a in attempts] == [
        ("provider_error", "connection"),
        ("answered", None),
    ]
    assert answer.total == 2
