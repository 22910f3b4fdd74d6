"""instructor over both wire formats: async, partial and iterable streams, incomplete output,
refusals, other tools."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import instructor
import openai
import pytest
from instructor.core import IncompleteOutputException, InstructorRetryException

from escalate.testing._server import ProviderServer, Reply
from tests.server_support import ADA, CLAUDE, GPT, USER, Person

# SDK clients on the session server (`oai`, `claude`, `aoai`, `aclaude`), quiet instructor logs.
pytest_plugins = ["tests.server_fixtures"]


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
