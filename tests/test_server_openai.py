"""The OpenAI wire format, through the real openai SDK and instructor."""

from __future__ import annotations

import json
import math
from typing import Any

import instructor
import openai
import pytest

from escalate.testing._server import ProviderServer, Reply
from tests.server_support import ADA, GPT, STORY, USER, Person, cl100k

# SDK clients on the session server (`oai`, `claude`, `aoai`, `aclaude`), quiet instructor logs.
pytest_plugins = ["tests.server_fixtures"]


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
    enc = cl100k()
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
