"""The OpenAI wire format, through the real openai SDK and instructor."""

from __future__ import annotations

import json
import math
from typing import Any

import instructor
import openai
import pytest
from instructor.core import InstructorRetryException

from escalate.testing._server import Choice, ProviderServer, Reply
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


# --------------------------------------------------------------------------------------------
# n: several choices in one response
# --------------------------------------------------------------------------------------------

TOOLS: Any = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


def test_n_copies_a_plain_reply_and_bills_the_prompt_once(
    server: ProviderServer, oai: openai.OpenAI
) -> None:
    server.script(GPT, Reply(text="same answer"), Reply(text="same answer"))
    one = oai.chat.completions.create(model=GPT, messages=USER)
    three = oai.chat.completions.create(model=GPT, messages=USER, n=3)
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert {c.message.content for c in three.choices} == {"same answer"}
    assert one.usage is not None and three.usage is not None
    assert three.usage.prompt_tokens == one.usage.prompt_tokens
    assert three.usage.completion_tokens == 3 * one.usage.completion_tokens
    assert three.usage.total_tokens == three.usage.prompt_tokens + three.usage.completion_tokens
    assert server.requests[1].n == 3


def test_n_choices_differ_per_choice(server: ProviderServer, oai: openai.OpenAI) -> None:
    enc = cl100k()
    answers = ["12", "12", "thirteen"]
    server.script(
        GPT,
        Reply(choices=[Choice(text=a) for a in answers]),
        Reply(choices=[Choice(data={"a": 1}), Choice(data={"b": 2}, tool_name="g")]),
        Reply(choices=[Choice(data=ADA), Choice(refusal="no"), Choice(data={}, output_tokens=50)]),
    )
    texts = oai.chat.completions.create(model=GPT, messages=USER, n=3)
    assert [c.message.content for c in texts.choices] == answers
    assert texts.usage is not None
    assert texts.usage.completion_tokens == sum(len(enc.encode(a)) for a in answers)
    calls = oai.chat.completions.create(model=GPT, messages=USER, tools=TOOLS, n=2)
    first, second = (c.message.tool_calls[0] for c in calls.choices)  # type: ignore[index]
    assert (first.function.name, json.loads(first.function.arguments)) == ("f", {"a": 1})  # type: ignore[union-attr]
    assert (second.function.name, json.loads(second.function.arguments)) == ("g", {"b": 2})  # type: ignore[union-attr]
    assert first.id != second.id
    assert [c.finish_reason for c in calls.choices] == ["tool_calls", "tool_calls"]
    json_mode = oai.chat.completions.create(
        model=GPT, messages=USER, n=3, response_format={"type": "json_object"}
    )
    assert json.loads(json_mode.choices[0].message.content or "") == ADA
    assert (json_mode.choices[1].message.content, json_mode.choices[1].message.refusal) == (
        None,
        "no",
    )
    assert json_mode.usage is not None
    assert json_mode.usage.completion_tokens == len(enc.encode(json.dumps(ADA))) + 1 + 50


def test_n_through_instructor_parses_the_first_choice(
    server: ProviderServer, oai: openai.OpenAI
) -> None:
    server.script(GPT, Reply(choices=[Choice(data=ADA), Choice(data={"name": "Grace", "age": 85})]))
    person, raw = instructor.from_openai(oai).chat.completions.create_with_completion(
        model=GPT, response_model=Person, messages=USER, n=2
    )
    assert (person.name, person.age) == ("Ada", 36)
    assert server.requests[0].body["n"] == 2
    names = [json.loads(c.message.tool_calls[0].function.arguments)["name"] for c in raw.choices]
    assert names == ["Ada", "Grace"]


def test_a_responder_builds_choices_from_request_n(
    server: ProviderServer, oai: openai.OpenAI
) -> None:
    server.respond(GPT, lambda req: Reply(choices=[Choice(text=str(i)) for i in range(req.n)]))
    assert [
        c.message.content
        for c in oai.chat.completions.create(model=GPT, messages=USER, n=4).choices
    ] == ["0", "1", "2", "3"]
    assert [
        c.message.content for c in oai.chat.completions.create(model=GPT, messages=USER).choices
    ] == ["0"]


def test_n_mismatch_and_bad_choices_are_errors(server: ProviderServer, oai: openai.OpenAI) -> None:
    server.script(GPT, Reply(choices=[Choice(text="a"), Choice(text="b")]), Reply(text="x"))
    with pytest.raises(openai.BadRequestError, match="scripts 2 choices, the request asks n=3"):
        oai.chat.completions.create(model=GPT, messages=USER, n=3)
    with pytest.raises(openai.BadRequestError, match="n must be between 1 and 128"):
        oai.chat.completions.create(model=GPT, messages=USER, n=0)
    with pytest.raises(ValueError, match="set it per Choice"):
        Reply(data=ADA, choices=[Choice(data=ADA)])
    with pytest.raises(TypeError):
        Reply(choices=[])
    with pytest.raises(TypeError):
        Reply(choices=[Reply(text="a")])  # type: ignore[list-item]


def test_n_streams_every_choice(server: ProviderServer, oai: openai.OpenAI) -> None:
    server.script(
        GPT,
        Reply(choices=[Choice(text=STORY), Choice(text="short", logprobs=-0.5)]),
        Reply(choices=[Choice(data={"a": 1}), Choice(data={"b": 2})]),
    )
    chunks = list(
        oai.chat.completions.create(
            model=GPT,
            messages=USER,
            n=2,
            stream=True,
            logprobs=True,
            stream_options={"include_usage": True},
        )
    )
    texts = ["", ""]
    logprobs: list[float] = []
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.index == 1 and choice.logprobs is not None:
                logprobs += [t.logprob for t in choice.logprobs.content or []]
    assert texts == [STORY, "short"]
    assert logprobs and set(logprobs) == {-0.5}
    finishes = [(c.index, c.finish_reason) for k in chunks for c in k.choices if c.finish_reason]
    assert finishes == [(0, "stop"), (1, "stop")]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 2
    args = ["", ""]
    for chunk in oai.chat.completions.create(
        model=GPT, messages=USER, tools=TOOLS, n=2, stream=True
    ):
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                args[choice.index] += (call.function and call.function.arguments) or ""
    assert [json.loads(a) for a in args] == [{"a": 1}, {"b": 2}]


# --------------------------------------------------------------------------------------------
# Refusals and scripted usage
# --------------------------------------------------------------------------------------------


def test_refusal_through_instructor(server: ProviderServer, oai: openai.OpenAI) -> None:
    server.script(GPT, Reply(refusal="I can't help with that."), Reply(refusal="No."))
    raw = oai.chat.completions.with_raw_response.create(model=GPT, messages=USER, tools=TOOLS)
    message = json.loads(raw.text)["choices"][0]["message"]
    assert (message["content"], message["refusal"]) == (None, "I can't help with that.")
    assert "tool_calls" not in message
    # Surprise worth pinning: in TOOLS mode instructor raises an AssertionError on a refusal, and
    # wraps it with no failed attempts, the way it wraps provider errors.
    with pytest.raises(InstructorRetryException) as err:
        instructor.from_openai(oai).chat.completions.create(
            model=GPT, response_model=Person, messages=USER, max_retries=2
        )
    assert isinstance(err.value.__cause__, AssertionError)
    assert "No." in str(err.value)
    assert err.value.failed_attempts == []
    assert len(server.requests) == 2  # not re-asked


def test_scripted_usage_fields(server: ProviderServer, oai: openai.OpenAI) -> None:
    server.script(
        GPT,
        Reply(text="hi", input_tokens=100, usage={"completion_tokens": 7}),
        Reply(text="hi", usage={"prompt_tokens_details": {"cached_tokens": 64}, "total_tokens": 1}),
        Reply(text="hi", usage={"completion_tokens": None}),
    )
    usage = oai.chat.completions.create(model=GPT, messages=USER).usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (100, 7, 107)
    usage = oai.chat.completions.create(model=GPT, messages=USER).usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 64
    assert usage.prompt_tokens_details.audio_tokens == 0  # merged, not replaced
    assert usage.total_tokens == 1  # as scripted, even if wrong
    raw = oai.chat.completions.with_raw_response.create(model=GPT, messages=USER)
    body = json.loads(raw.text)["usage"]
    assert body["completion_tokens"] is None
    assert body["total_tokens"] == body["prompt_tokens"] + 1  # the computed total is kept
