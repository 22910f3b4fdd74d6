"""The local provider server, driven by the real openai / anthropic SDKs and instructor."""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import instructor
import openai
import pytest
from instructor.core import IncompleteOutputException, InstructorRetryException
from pydantic import BaseModel

from escalate.testing._server import Drop, Fault, Malformed, ProviderServer, Reply, Request

GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
USER: Any = [{"role": "user", "content": "Who wrote the first program?"}]
ADA: Any = {"name": "Ada", "age": 36}


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture(autouse=True)
def _quiet_instructor() -> Iterator[None]:
    # instructor logs at ERROR on every exhausted call; these tests provoke that on purpose.
    logger = logging.getLogger("instructor")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


# `server` (reset around each test) and the session's `_server` come from conftest.py.


@pytest.fixture(scope="module")
def oai(_server: ProviderServer) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(
        base_url=_server.openai_base_url, api_key="test-key", max_retries=0, timeout=5
    )
    yield client
    client.close()


@pytest.fixture(scope="module")
def claude(_server: ProviderServer) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(
        base_url=_server.anthropic_base_url, api_key="test-key", max_retries=0, timeout=5
    )
    yield client
    client.close()


@pytest.fixture
async def aoai(_server: ProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=_server.openai_base_url, api_key="test-key", max_retries=0, timeout=5
    ) as client:
        yield client


@pytest.fixture
async def aclaude(_server: ProviderServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=_server.anthropic_base_url, api_key="test-key", max_retries=0, timeout=5
    ) as client:
        yield client


def _cl100k() -> Any:
    bpe_openai = pytest.importorskip("bpe_openai")
    return bpe_openai.get_encoding("cl100k_base")


# --------------------------------------------------------------------------------------------
# instructor, every mode, both providers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode",
    [
        instructor.Mode.TOOLS,
        instructor.Mode.JSON,
        instructor.Mode.JSON_SCHEMA,
        instructor.Mode.MD_JSON,
    ],
)
def test_instructor_openai_modes(
    server: ProviderServer, oai: openai.OpenAI, mode: instructor.Mode
) -> None:
    server.script(GPT, Reply(data=ADA, served_model="gpt-4o-mini-2024-07-18"))
    client = instructor.from_openai(oai, mode=mode)
    person, raw = client.chat.completions.create_with_completion(
        model=GPT, response_model=Person, messages=USER
    )
    assert isinstance(person, Person)
    assert (person.name, person.age) == ("Ada", 36)
    assert raw.model == "gpt-4o-mini-2024-07-18"
    (request,) = server.requests_for(GPT)
    assert request.provider == "openai"
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer test-key"
    assert raw.usage is not None
    assert raw.usage.prompt_tokens > 3 * len(request.messages) + 3
    if mode is instructor.Mode.TOOLS:
        assert request.body["tool_choice"] == {"type": "function", "function": {"name": "Person"}}
        assert raw.choices[0].finish_reason == "tool_calls"
        call = raw.choices[0].message.tool_calls[0]
        assert call.function.name == "Person"
        assert json.loads(call.function.arguments) == ADA
        assert raw.choices[0].message.content is None
    else:
        assert "tools" not in request.body
        assert json.loads(raw.choices[0].message.content or "") == ADA


def test_instructor_openai_usage_as_scripted(server: ProviderServer, oai: openai.OpenAI) -> None:
    server.script(GPT, Reply(data=ADA, input_tokens=1200, output_tokens=40, cached_tokens=1000))
    _, raw = instructor.from_openai(oai).chat.completions.create_with_completion(
        model=GPT, response_model=Person, messages=USER
    )
    assert raw.usage is not None
    assert raw.usage.prompt_tokens == 1200  # includes the cached ones
    assert raw.usage.completion_tokens == 40
    assert raw.usage.total_tokens == 1240
    assert raw.usage.prompt_tokens_details is not None
    assert raw.usage.prompt_tokens_details.cached_tokens == 1000


@pytest.mark.filterwarnings("ignore:Mode.ANTHROPIC_:DeprecationWarning")
@pytest.mark.parametrize(
    "mode",
    [
        instructor.Mode.TOOLS,
        instructor.Mode.JSON,
        # instructor 1.17 still takes the old names, with a DeprecationWarning.
        instructor.Mode.ANTHROPIC_TOOLS,
        instructor.Mode.ANTHROPIC_JSON,
    ],
)
def test_instructor_anthropic_modes(
    server: ProviderServer, claude: anthropic.Anthropic, mode: instructor.Mode
) -> None:
    server.script(
        CLAUDE,
        Reply(
            data=ADA, served_model="claude-haiku-4-5-20251001", input_tokens=500, cached_tokens=400
        ),
    )
    client = instructor.from_anthropic(claude, mode=mode)
    person, raw = client.messages.create_with_completion(
        model=CLAUDE, max_tokens=200, response_model=Person, messages=USER
    )
    assert (person.name, person.age) == ("Ada", 36)
    assert raw.model == "claude-haiku-4-5-20251001"
    # Anthropic's input_tokens excludes cache reads.
    assert raw.usage.input_tokens == 100
    assert raw.usage.cache_read_input_tokens == 400
    assert raw.usage.cache_creation_input_tokens == 0
    assert raw.usage.output_tokens > 0
    (request,) = server.requests_for(CLAUDE)
    assert request.provider == "anthropic"
    assert request.path == "/v1/messages"
    # anthropic 2.12 sends the key as a bearer token, not x-api-key.
    assert request.headers["authorization"] == "Bearer test-key"
    assert "anthropic-version" in request.headers
    if mode in (instructor.Mode.TOOLS, instructor.Mode.ANTHROPIC_TOOLS):
        assert request.body["tool_choice"]["name"] == "Person"
        assert raw.stop_reason == "tool_use"
        assert raw.content[0].type == "tool_use"
        assert raw.content[0].input == ADA
    else:
        assert raw.stop_reason == "end_turn"
        assert raw.content[0].type == "text"
        assert json.loads(raw.content[0].text) == ADA


async def test_instructor_async_both_providers(
    server: ProviderServer, aoai: openai.AsyncOpenAI, aclaude: anthropic.AsyncAnthropic
) -> None:
    server.script(GPT, Reply(data=ADA, served_model="gpt-served"))
    server.script(CLAUDE, Reply(data={"name": "Grace", "age": 85}))
    person, raw = await instructor.from_openai(aoai).chat.completions.create_with_completion(
        model=GPT, response_model=Person, messages=USER
    )
    assert (person.name, raw.model) == ("Ada", "gpt-served")
    person2, raw2 = await instructor.from_anthropic(aclaude).messages.create_with_completion(
        model=CLAUDE, max_tokens=100, response_model=Person, messages=USER
    )
    assert (person2.name, person2.age, raw2.model) == ("Grace", 85, CLAUDE)


# --------------------------------------------------------------------------------------------
# Scripts and responders
# --------------------------------------------------------------------------------------------


def test_script_is_fifo_per_model(server: ProviderServer, oai: openai.OpenAI) -> None:
    server.script(GPT, Reply(text="one"), Reply(text="two"))
    server.script("gpt-4o", Reply(text="big"))
    server.script(GPT, Reply(text="three"))

    def ask(model: str) -> str | None:
        return oai.chat.completions.create(model=model, messages=USER).choices[0].message.content

    assert [ask(GPT), ask("gpt-4o"), ask(GPT), ask(GPT)] == ["one", "big", "two", "three"]
    assert [r.model for r in server.requests] == [GPT, "gpt-4o", GPT, GPT]
    assert len(server.requests_for(GPT)) == 3
    assert server.pending(GPT) == 0


def test_responder_after_script_and_callable_items(
    server: ProviderServer, oai: openai.OpenAI
) -> None:
    server.script(GPT, Reply(text="scripted"), lambda req: Reply(text="once:" + req.last_user_text))
    server.respond(GPT, lambda req: Reply(text=req.last_user_text.upper()))

    def ask(question: str) -> str | None:
        messages: Any = [{"role": "user", "content": question}]
        return oai.chat.completions.create(model=GPT, messages=messages).choices[0].message.content

    assert ask("a") == "scripted"
    assert ask("b") == "once:b"
    assert ask("c") == "C"
    assert ask("d") == "D"
    server.respond(GPT, None)
    with pytest.raises(openai.BadRequestError):
        ask("e")


def test_exhausted_script_is_a_400_naming_the_model(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    with pytest.raises(openai.BadRequestError) as oerr:
        oai.chat.completions.create(model=GPT, messages=USER)
    assert oerr.value.status_code == 400
    assert "no scripted reply left for model 'gpt-4o-mini'" in str(oerr.value)
    assert "server.script" in str(oerr.value)
    with pytest.raises(anthropic.BadRequestError) as aerr:
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=USER)
    assert aerr.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert f"no scripted reply left for model {CLAUDE!r}" in str(aerr.value)


def test_broken_responders_are_a_400(server: ProviderServer, oai: openai.OpenAI) -> None:
    def boom(request: Request) -> Reply:
        raise RuntimeError("kaboom")

    server.script(GPT, boom, lambda req: "not an outcome")  # type: ignore[arg-type,return-value]
    with pytest.raises(openai.BadRequestError, match="kaboom"):
        oai.chat.completions.create(model=GPT, messages=USER)
    with pytest.raises(openai.BadRequestError, match="not an outcome"):
        oai.chat.completions.create(model=GPT, messages=USER)
    with pytest.raises(TypeError):
        server.script(GPT, "nope")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------


def test_rate_limit_with_retry_after(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    server.script(GPT, Fault(429, retry_after=0.25))
    server.script(CLAUDE, Fault(429, retry_after=2, message="slow down"))
    with pytest.raises(openai.RateLimitError) as oerr:
        oai.chat.completions.create(model=GPT, messages=USER)
    assert oerr.value.response.headers["retry-after"] == "0.25"
    assert oerr.value.response.headers["retry-after-ms"] == "250"
    assert oerr.value.body == {
        "message": "Rate limit reached; please try again later.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    with pytest.raises(anthropic.RateLimitError) as aerr:
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=USER)
    assert aerr.value.response.headers["retry-after"] == "2"
    body = aerr.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"] == {"type": "rate_limit_error", "message": "slow down"}


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic, status: int
) -> None:
    server.script(GPT, Fault(status))
    server.script(CLAUDE, Fault(status))
    with pytest.raises(openai.InternalServerError) as oerr:
        oai.chat.completions.create(model=GPT, messages=USER)
    assert oerr.value.status_code == status
    expected = anthropic.ServiceUnavailableError if status == 503 else anthropic.InternalServerError
    with pytest.raises(expected) as aerr:
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=USER)
    assert aerr.value.body["error"]["type"] == "api_error"  # type: ignore[index]


def test_anthropic_overloaded(server: ProviderServer, claude: anthropic.Anthropic) -> None:
    server.script(CLAUDE, Fault(529))
    with pytest.raises(anthropic.OverloadedError) as err:
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=USER)
    assert isinstance(err.value, anthropic.InternalServerError)
    assert err.value.status_code == 529
    assert err.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_drop_is_a_connection_error_and_the_client_recovers(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    server.script(GPT, Drop(), Reply(text="back"))
    server.script(CLAUDE, Drop())
    with pytest.raises(openai.APIConnectionError) as err:
        oai.chat.completions.create(model=GPT, messages=USER)
    assert not isinstance(err.value, openai.APITimeoutError)
    assert (
        oai.chat.completions.create(model=GPT, messages=USER).choices[0].message.content == "back"
    )
    with pytest.raises(anthropic.APIConnectionError):
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=USER)
    assert len(server.requests) == 3  # a dropped request is still recorded


def test_delay_beyond_client_timeout_is_a_timeout(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    server.script(GPT, Reply(text="late", delay=0.3))
    server.script(CLAUDE, Fault(500, delay=0.3))
    with pytest.raises(openai.APITimeoutError):
        oai.with_options(timeout=0.05).chat.completions.create(model=GPT, messages=USER)
    with pytest.raises(anthropic.APITimeoutError):
        claude.with_options(timeout=0.05).messages.create(
            model=CLAUDE, max_tokens=10, messages=USER
        )


def test_small_delay_is_served(server: ProviderServer, oai: openai.OpenAI) -> None:
    server.script(GPT, Reply(text="slow tier", delay=0.05))
    reply = oai.with_options(timeout=2).chat.completions.create(model=GPT, messages=USER)
    assert reply.choices[0].message.content == "slow tier"


def test_malformed_body(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    server.script(GPT, Malformed())
    server.script(CLAUDE, Malformed("<html>bad gateway</html>"))
    # Both SDKs let the json.JSONDecodeError of the 200 body escape as is.
    with pytest.raises(json.JSONDecodeError):
        oai.chat.completions.create(model=GPT, messages=USER)
    with pytest.raises(json.JSONDecodeError):
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=USER)


def test_instructor_reasks_after_a_malformed_body(
    server: ProviderServer, oai: openai.OpenAI
) -> None:
    # Surprise worth pinning: instructor counts the SDK's JSONDecodeError as a parse error and
    # re-asks, so a broken provider response looks like bad model output.
    server.script(GPT, Malformed(), Reply(data=ADA))
    person = instructor.from_openai(oai).chat.completions.create(
        model=GPT, response_model=Person, messages=USER, max_retries=1
    )
    assert person.name == "Ada"
    assert len(server.requests) == 2


def test_instructor_wraps_provider_errors(server: ProviderServer, oai: openai.OpenAI) -> None:
    server.script(GPT, Fault(429))
    with pytest.raises(InstructorRetryException) as err:
        instructor.from_openai(oai).chat.completions.create(
            model=GPT, response_model=Person, messages=USER, max_retries=2
        )
    assert isinstance(err.value.__cause__, openai.RateLimitError)
    assert err.value.failed_attempts == []
    assert len(server.requests) == 1


def test_unknown_path_is_a_404_in_provider_format(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    with pytest.raises(openai.NotFoundError) as oerr:
        oai.embeddings.create(model="text-embedding-3-small", input="x")
    assert oerr.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError) as aerr:
        claude.models.list()
    assert aerr.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert server.requests == []


# --------------------------------------------------------------------------------------------
# Re-asks, incomplete output, refusals, other tools
# --------------------------------------------------------------------------------------------


def test_openai_tools_reask(server: ProviderServer, oai: openai.OpenAI) -> None:
    server.script(GPT, Reply(data={"name": "Ada", "age": "thirty-six"}), Reply(data=ADA))
    person = instructor.from_openai(oai).chat.completions.create(
        model=GPT, response_model=Person, messages=USER, max_retries=1
    )
    assert person.age == 36
    first, second = server.requests_for(GPT)
    assert len(first.messages) == 1
    assistant, tool = second.messages[1], second.messages[2]
    assert assistant["role"] == "assistant"
    assert assistant["tool_calls"][0]["function"]["name"] == "Person"
    assert tool["role"] == "tool"
    assert tool["tool_call_id"] == assistant["tool_calls"][0]["id"]
    assert "Validation Error" in tool["content"]


def test_openai_json_reask_after_prose(server: ProviderServer, oai: openai.OpenAI) -> None:
    server.script(GPT, Reply(text="Sure! Ada was 36."), Reply(data=ADA))
    person = instructor.from_openai(oai, mode=instructor.Mode.JSON).chat.completions.create(
        model=GPT, response_model=Person, messages=USER, max_retries=1
    )
    assert person.name == "Ada"
    second = server.requests_for(GPT)[1]
    assert second.messages[-2] == {"role": "assistant", "content": "Sure! Ada was 36."}
    assert second.messages[-1]["role"] == "user"
    assert second.last_user_text.startswith("Correct your JSON ONLY RESPONSE")


def test_anthropic_tools_reask(server: ProviderServer, claude: anthropic.Anthropic) -> None:
    server.script(CLAUDE, Reply(data={"name": "Ada"}), Reply(data=ADA))
    person = instructor.from_anthropic(claude).messages.create(
        model=CLAUDE, max_tokens=100, response_model=Person, messages=USER, max_retries=1
    )
    assert person.age == 36
    second = server.requests_for(CLAUDE)[1]
    assistant, result = second.messages[1], second.messages[2]
    assert assistant["role"] == "assistant"
    assert assistant["content"][0]["type"] == "tool_use"
    block = result["content"][0]
    assert result["role"] == "user"
    assert block["type"] == "tool_result"
    assert block["is_error"] is True
    assert block["tool_use_id"] == assistant["content"][0]["id"]


def test_length_is_incomplete_output(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    server.script(GPT, Reply(data=ADA, finish_reason="length"))
    server.script(CLAUDE, Reply(data=ADA, finish_reason="length"))
    with pytest.raises(IncompleteOutputException):
        instructor.from_openai(oai).chat.completions.create(
            model=GPT, response_model=Person, messages=USER, max_retries=2
        )
    with pytest.raises(IncompleteOutputException):
        instructor.from_anthropic(claude).messages.create(
            model=CLAUDE, max_tokens=5, response_model=Person, messages=USER, max_retries=2
        )
    assert len(server.requests) == 2  # not retried


def test_refusal(server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    server.script(GPT, Reply(refusal="I can't help with that."))
    server.script(CLAUDE, Reply(refusal="I can't help with that."))
    message = oai.chat.completions.create(model=GPT, messages=USER).choices[0].message
    assert (message.content, message.refusal) == (None, "I can't help with that.")
    reply = claude.messages.create(model=CLAUDE, max_tokens=10, messages=USER)
    assert reply.stop_reason == "refusal"
    server.script(GPT, Reply(data=ADA, refusal="no"))
    with pytest.raises(InstructorRetryException):
        instructor.from_openai(oai).chat.completions.create(
            model=GPT, response_model=Person, messages=USER, max_retries=0
        )


def test_tool_name_calls_another_tool(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    tools: Any = [
        {"type": "function", "function": {"name": "answer", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "escalate", "parameters": {"type": "object"}}},
    ]
    server.script(GPT, Reply(data={"a": 1}), Reply(data={"why": "hard"}, tool_name="escalate"))
    first = oai.chat.completions.create(model=GPT, messages=USER, tools=tools)
    second = oai.chat.completions.create(
        model=GPT,
        messages=USER,
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "answer"}},
    )
    assert first.choices[0].message.tool_calls[0].function.name == "answer"  # type: ignore[index,union-attr]
    call = second.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "escalate"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"why": "hard"}  # type: ignore[union-attr]

    atools: Any = [
        {"name": "answer", "input_schema": {"type": "object"}},
        {"name": "escalate", "input_schema": {"type": "object"}},
    ]
    server.script(CLAUDE, Reply(data={"b": 2}), Reply(data={"why": "x"}, tool_name="escalate"))
    reply = claude.messages.create(
        model=CLAUDE,
        max_tokens=10,
        messages=USER,
        tools=atools,
        tool_choice={"type": "tool", "name": "escalate"},
    )
    assert (reply.content[0].type, reply.content[0].name) == ("tool_use", "escalate")  # type: ignore[union-attr]
    assert reply.content[0].input == {"b": 2}  # type: ignore[union-attr]
    reply = claude.messages.create(model=CLAUDE, max_tokens=10, messages=USER, tools=atools)
    assert reply.content[0].name == "escalate"  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------------
# Tokens and logprobs
# --------------------------------------------------------------------------------------------


def test_token_counts_match_cl100k(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    enc = _cl100k()
    question, answer = "Hello world, how are you?", "Fine, thanks for asking."
    server.script(GPT, Reply(text=answer))
    server.script(CLAUDE, Reply(text=answer))
    messages: Any = [{"role": "user", "content": question}]
    usage = oai.chat.completions.create(model=GPT, messages=messages).usage
    assert usage is not None
    assert usage.prompt_tokens == len(enc.encode(question)) + 3 + 3
    assert usage.completion_tokens == len(enc.encode(answer))
    reply = claude.messages.create(
        model=CLAUDE,
        max_tokens=10,
        system="Be brief.",
        messages=messages,
    )
    assert reply.usage.input_tokens == len(enc.encode(question)) + len(enc.encode("Be brief.")) + 6
    assert reply.usage.output_tokens == len(enc.encode(answer))


def test_approximate_token_counts() -> None:
    with ProviderServer(tokens="approx") as approx:
        approx.script(GPT, Reply(text="Fine, thanks for asking."))  # 24 characters
        client = openai.OpenAI(base_url=approx.openai_base_url, api_key="k", max_retries=0)
        with client:
            usage = client.chat.completions.create(
                model=GPT,
                messages=[{"role": "user", "content": "Hello world"}],  # 11 characters
                logprobs=True,
            )
    assert usage.usage is not None
    assert usage.usage.prompt_tokens == 3 + 6
    assert usage.usage.completion_tokens == 6
    content = usage.choices[0].logprobs.content  # type: ignore[union-attr]
    assert [t.token for t in content or []] == ["Fine,", " thanks", " for", " asking."]


def test_logprobs_in_json_mode(server: ProviderServer, oai: openai.OpenAI) -> None:
    server.script(GPT, Reply(data=ADA, logprobs=[-0.5, -0.25]))
    person, raw = instructor.from_openai(
        oai, mode=instructor.Mode.JSON
    ).chat.completions.create_with_completion(
        model=GPT, response_model=Person, messages=USER, logprobs=True, top_logprobs=2
    )
    assert person.name == "Ada"
    assert server.requests[0].body["logprobs"] is True
    logprobs = raw.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    tokens = logprobs.content
    assert "".join(t.token for t in tokens) == raw.choices[0].message.content
    assert [t.logprob for t in tokens] == [-0.5] + [-0.25] * (len(tokens) - 1)
    enc = _cl100k()
    assert len(tokens) == len(enc.encode(raw.choices[0].message.content or ""))
    first = tokens[0]
    assert bytes(first.bytes or []).decode() == first.token
    assert len(first.top_logprobs) == 2
    assert first.top_logprobs[0].token == first.token
    assert math.isclose(sum(math.exp(t.logprob) for t in first.top_logprobs), 1.0)


def test_logprobs_defaults_and_tool_calls(server: ProviderServer, oai: openai.OpenAI) -> None:
    server.script(GPT, Reply(text="a b c"), Reply(data=ADA), Reply(text="no logprobs"))
    plain = oai.chat.completions.create(model=GPT, messages=USER, logprobs=True)
    assert {t.logprob for t in plain.choices[0].logprobs.content or []} == {0.0}  # type: ignore[union-attr]
    assert plain.choices[0].logprobs.content[0].top_logprobs == []  # type: ignore[index,union-attr]
    tools: Any = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    call = oai.chat.completions.create(model=GPT, messages=USER, logprobs=True, tools=tools)
    assert call.choices[0].logprobs is not None
    assert call.choices[0].logprobs.content is None
    none = oai.chat.completions.create(model=GPT, messages=USER)
    assert none.choices[0].logprobs is None


# --------------------------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------------------------

STORY = "Once upon a time, a cheap model answered correctly and nobody had to escalate."


def test_openai_stream(server: ProviderServer, oai: openai.OpenAI) -> None:
    server.script(GPT, Reply(text=STORY, served_model="gpt-streamed"), Reply(text="after"))
    stream = oai.chat.completions.create(
        model=GPT, messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert "".join(pieces) == STORY
    assert len(pieces) > 5
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert {c.model for c in chunks} == {"gpt-streamed"}
    assert server.requests[0].stream is True
    # The connection stays usable after a stream.
    assert (
        oai.chat.completions.create(model=GPT, messages=USER).choices[0].message.content == "after"
    )


def test_openai_stream_tool_call_and_logprobs(server: ProviderServer, oai: openai.OpenAI) -> None:
    tools: Any = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    server.script(GPT, Reply(data=ADA), Reply(text="x y", logprobs=-1.0))
    chunks = list(oai.chat.completions.create(model=GPT, messages=USER, tools=tools, stream=True))
    calls = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices[0].delta.tool_calls]
    assert calls[0].id and calls[0].function and calls[0].function.name == "f"
    assert len(calls) > 2
    assert json.loads("".join(c.function.arguments or "" for c in calls if c.function)) == ADA
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    chunks = list(oai.chat.completions.create(model=GPT, messages=USER, stream=True, logprobs=True))
    logprobs = [
        t for c in chunks if c.choices[0].logprobs for t in c.choices[0].logprobs.content or []
    ]
    assert [(t.token, t.logprob) for t in logprobs] == [("x", -1.0), (" y", -1.0)]


def test_anthropic_stream(server: ProviderServer, claude: anthropic.Anthropic) -> None:
    server.script(CLAUDE, Reply(text=STORY, cached_tokens=2), Reply(data=ADA))
    with claude.messages.stream(model=CLAUDE, max_tokens=100, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == STORY
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 1
    assert final.usage.cache_read_input_tokens == 2
    tools: Any = [{"name": "f", "input_schema": {"type": "object"}}]
    events = list(
        claude.messages.create(
            model=CLAUDE, max_tokens=100, messages=USER, tools=tools, stream=True
        )
    )
    kinds = [e.type for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    partial = "".join(e.delta.partial_json for e in events if e.type == "content_block_delta")  # type: ignore[union-attr]
    assert json.loads(partial) == ADA
    assert kinds.count("content_block_delta") > 2


def test_fault_before_stream(server: ProviderServer, claude: anthropic.Anthropic) -> None:
    server.script(CLAUDE, Fault(529))
    with (
        pytest.raises(anthropic.OverloadedError),
        claude.messages.stream(model=CLAUDE, max_tokens=100, messages=USER) as stream,
    ):
        stream.get_final_text()


def _assert_growing(partials: list[Person]) -> None:
    assert len(partials) > 3
    assert partials[0].name in (None, "")
    assert (partials[-1].name, partials[-1].age) == ("Ada Lovelace", 36)
    assert any(p.name and p.age is None for p in partials)


def test_instructor_create_partial_sync(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    answer = {"name": "Ada Lovelace", "age": 36}
    server.script(GPT, Reply(data=answer))
    server.script(CLAUDE, Reply(data=answer))
    partials = list(
        instructor.from_openai(oai).chat.completions.create_partial(
            model=GPT, response_model=Person, messages=USER
        )
    )
    _assert_growing(partials)
    partials = list(
        instructor.from_anthropic(claude).messages.create_partial(
            model=CLAUDE, max_tokens=100, response_model=Person, messages=USER
        )
    )
    _assert_growing(partials)


async def test_instructor_create_partial_async(
    server: ProviderServer, aoai: openai.AsyncOpenAI, aclaude: anthropic.AsyncAnthropic
) -> None:
    answer = {"name": "Ada Lovelace", "age": 36}
    server.script(GPT, Reply(data=answer))
    server.script(CLAUDE, Reply(data=answer))
    stream = instructor.from_openai(aoai).chat.completions.create_partial(
        model=GPT, response_model=Person, messages=USER
    )
    _assert_growing([p async for p in stream])
    astream = instructor.from_anthropic(aclaude).messages.create_partial(
        model=CLAUDE, max_tokens=100, response_model=Person, messages=USER
    )
    _assert_growing([p async for p in astream])


def test_instructor_create_iterable(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    tasks = {"tasks": [ADA, {"name": "Grace", "age": 85}]}
    server.script(GPT, Reply(data=tasks))
    server.script(CLAUDE, Reply(data=tasks))
    people = list(
        instructor.from_openai(oai).chat.completions.create_iterable(
            model=GPT, response_model=Person, messages=USER
        )
    )
    assert [p.name for p in people] == ["Ada", "Grace"]
    people = list(
        instructor.from_anthropic(claude).messages.create_iterable(
            model=CLAUDE, max_tokens=100, response_model=Person, messages=USER
        )
    )
    assert [p.name for p in people] == ["Ada", "Grace"]


# --------------------------------------------------------------------------------------------
# Auth, requests, lifecycle, concurrency
# --------------------------------------------------------------------------------------------


def test_require_api_key() -> None:
    secret = "sk-sekrit-0123456789"
    with ProviderServer(require_api_key=secret) as locked:
        locked.respond(GPT, lambda req: Reply(text="ok"))
        locked.respond(CLAUDE, lambda req: Reply(text="ok"))
        for key in ("wrong-key-999", secret):
            oai = openai.OpenAI(base_url=locked.openai_base_url, api_key=key, max_retries=0)
            claude = anthropic.Anthropic(
                base_url=locked.anthropic_base_url, api_key=key, max_retries=0
            )
            with oai, claude:
                if key == secret:
                    assert oai.chat.completions.create(model=GPT, messages=USER).choices
                    assert claude.messages.create(model=CLAUDE, max_tokens=5, messages=USER)
                    continue
                with pytest.raises(openai.AuthenticationError) as oerr:
                    oai.chat.completions.create(model=GPT, messages=USER)
                with pytest.raises(anthropic.AuthenticationError) as aerr:
                    claude.messages.create(model=CLAUDE, max_tokens=5, messages=USER)
                for err in (oerr.value, aerr.value):
                    assert err.status_code == 401
                    assert secret not in str(err) and key not in str(err)
                    assert secret not in err.response.text and key not in err.response.text
                assert aerr.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


def test_request_properties() -> None:
    openai_request = Request(
        provider="openai",
        path="/v1/chat/completions",
        model=GPT,
        headers={},
        body={
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "second"},
                        {"type": "image_url", "image_url": {"url": "x"}},
                        {"type": "text", "text": "part"},
                    ],
                },
            ]
        },
        stream=False,
    )
    assert openai_request.system == "Be terse."
    assert openai_request.last_user_text == "second\npart"
    assert len(openai_request.messages) == 4
    anthropic_request = Request(
        provider="anthropic",
        path="/v1/messages",
        model=CLAUDE,
        headers={},
        body={
            "system": [{"type": "text", "text": "Sys."}],
            "messages": [{"role": "user", "content": "q"}],
        },
        stream=False,
    )
    assert anthropic_request.system == "Sys."
    assert anthropic_request.last_user_text == "q"
    empty = Request(provider="openai", path="/", model="", headers={}, body={}, stream=False)
    assert (empty.system, empty.last_user_text, empty.messages) == (None, "", [])


def test_requests_are_recorded_with_headers_and_snapshots(
    server: ProviderServer, claude: anthropic.Anthropic
) -> None:
    server.script(CLAUDE, Reply(text="hi"))
    claude.messages.create(
        model=CLAUDE,
        max_tokens=7,
        system="Be kind.",
        messages=USER,
        extra_headers={"X-Trace-Id": "abc"},
    )
    snapshot = server.requests
    (request,) = snapshot
    assert request.headers["x-trace-id"] == "abc"
    assert request.body["max_tokens"] == 7
    assert request.system == "Be kind."
    assert request.last_user_text == USER[0]["content"]
    assert request.stream is False
    snapshot.clear()
    assert len(server.requests) == 1
    server.reset()
    assert server.requests == []


def test_lifecycle() -> None:
    server = ProviderServer(tokens="approx")
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert server.openai_base_url == server.url + "/v1"
    assert server.anthropic_base_url == server.url
    with server:
        server.start()  # idempotent while running
        server.respond(GPT, lambda req: Reply(text="ok"))
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
        with client:
            assert client.chat.completions.create(model=GPT, messages=USER).choices
    server.stop()  # idempotent
    with pytest.raises(RuntimeError):
        server.start()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=1):
        pass


def test_stop_closes_keep_alive_connections() -> None:
    server = ProviderServer(tokens="approx").start()
    server.respond(GPT, lambda req: Reply(text="ok"))
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
    with client:
        client.chat.completions.create(model=GPT, messages=USER)
        done = threading.Event()

        def stop() -> None:
            server.stop()
            done.set()

        threading.Thread(target=stop, daemon=True).start()
        assert done.wait(2)
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model=GPT, messages=USER)


def test_concurrent_calls(server: ProviderServer, oai: openai.OpenAI) -> None:
    server.respond(GPT, lambda req: Reply(text="echo:" + req.last_user_text, delay=0.01))

    def ask(i: int) -> str | None:
        messages: Any = [{"role": "user", "content": str(i)}]
        return oai.chat.completions.create(model=GPT, messages=messages).choices[0].message.content

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, range(64)))
    assert answers == [f"echo:{i}" for i in range(64)]
    assert len(server.requests_for(GPT)) == 64


def test_reply_data_may_be_a_pydantic_model(server: ProviderServer, oai: openai.OpenAI) -> None:
    server.script(GPT, Reply(data=Person(name="Ada", age=36)), Reply(data={"when": object()}))
    person = instructor.from_openai(oai).chat.completions.create(
        model=GPT, response_model=Person, messages=USER
    )
    assert (person.name, person.age) == ("Ada", 36)
    with pytest.raises(openai.BadRequestError, match="cannot serve"):
        oai.chat.completions.create(model=GPT, messages=USER)


def test_non_ascii_streams_reassemble(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    text = "café 日本語 🎉 ok"
    server.script(GPT, Reply(text=text), Reply(text=text))
    server.script(CLAUDE, Reply(text=text))
    for logprobs in (False, True):
        chunks = oai.chat.completions.create(
            model=GPT, messages=USER, stream=True, logprobs=logprobs
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    with claude.messages.stream(model=CLAUDE, max_tokens=10, messages=USER) as stream:
        assert stream.get_final_text() == text
