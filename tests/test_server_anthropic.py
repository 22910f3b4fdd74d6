"""The Anthropic wire format, through the real anthropic SDK and instructor."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import instructor
import pytest

from escalate.testing._server import Fault, ProviderServer, Reply
from tests.server_support import ADA, CLAUDE, STORY, USER, Person

# SDK clients on the session server (`oai`, `claude`, `aoai`, `aclaude`), quiet instructor logs.
pytest_plugins = ["tests.server_fixtures"]


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


def test_anthropic_overloaded(server: ProviderServer, claude: anthropic.Anthropic) -> None:
    server.script(CLAUDE, Fault(529))
    with pytest.raises(anthropic.OverloadedError) as err:
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=USER)
    assert isinstance(err.value, anthropic.InternalServerError)
    assert err.value.status_code == 529
    assert err.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


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


# --------------------------------------------------------------------------------------------
# Prompt caching and scripted usage
# --------------------------------------------------------------------------------------------

LONG_SYSTEM = "You extract invoices. " * 40
EPHEMERAL: Any = {"type": "ephemeral"}


def _system(marked: bool) -> Any:
    block: dict[str, Any] = {"type": "text", "text": LONG_SYSTEM}
    if marked:
        block["cache_control"] = EPHEMERAL
    return [block]


def test_prompt_cache_writes_then_reads_a_marked_system(
    server: ProviderServer, claude: anthropic.Anthropic
) -> None:
    server.respond(CLAUDE, lambda req: Reply(text="ok"))

    def usage(system: Any, question: str = "q1") -> Any:
        messages: Any = [{"role": "user", "content": question}]
        reply = claude.messages.create(
            model=CLAUDE, max_tokens=10, system=system, messages=messages
        )
        return reply.usage

    plain = usage(_system(False))
    assert (plain.cache_creation_input_tokens, plain.cache_read_input_tokens) == (0, 0)
    first = usage(_system(True))
    assert first.cache_read_input_tokens == 0
    assert first.cache_creation_input_tokens > 0
    # input_tokens excludes the cached prefix, as the real API's does.
    assert first.input_tokens > 0
    assert first.input_tokens + first.cache_creation_input_tokens == plain.input_tokens
    second = usage(_system(True), "another question")
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    assert second.input_tokens > 0
    again_plain = usage(_system(False))
    assert (again_plain.cache_creation_input_tokens, again_plain.cache_read_input_tokens) == (0, 0)
    # Another prefix, another model: written again.
    other = usage([{"type": "text", "text": "Other rules.", "cache_control": EPHEMERAL}])
    assert other.cache_creation_input_tokens > 0 and other.cache_read_input_tokens == 0
    server.respond("claude-sonnet-4-5", lambda req: Reply(text="ok"))
    sonnet = claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=10, system=_system(True), messages=USER
    )
    assert sonnet.usage.cache_creation_input_tokens == first.cache_creation_input_tokens
    # reset() empties the cache.
    server.reset()
    server.respond(CLAUDE, lambda req: Reply(text="ok"))
    assert usage(_system(True)).cache_creation_input_tokens == first.cache_creation_input_tokens


def test_prompt_cache_on_message_blocks_reads_the_longest_prefix(
    server: ProviderServer, claude: anthropic.Anthropic
) -> None:
    server.respond(CLAUDE, lambda req: Reply(text="ok"))
    document = {"type": "text", "text": "A long document. " * 50, "cache_control": EPHEMERAL}

    def ask(*turns: Any) -> Any:
        return claude.messages.create(
            model=CLAUDE, max_tokens=10, system=_system(True), messages=list(turns)
        ).usage

    first_turn: Any = {"role": "user", "content": [document, {"type": "text", "text": "Sum?"}]}
    first = ask(first_turn)
    system_only = ask({"role": "user", "content": "no document"})
    assert system_only.cache_read_input_tokens > 0
    assert first.cache_creation_input_tokens > system_only.cache_read_input_tokens
    assert first.cache_read_input_tokens == 0
    follow_up: Any = [
        first_turn,
        {"role": "assistant", "content": "12."},
        {"role": "user", "content": "And the tax?"},
    ]
    later = ask(*follow_up)
    assert later.cache_read_input_tokens == first.cache_creation_input_tokens
    assert later.cache_creation_input_tokens == 0


def test_prompt_cache_in_streams_and_scripted_cache_wins(
    server: ProviderServer, claude: anthropic.Anthropic
) -> None:
    server.script(CLAUDE, Reply(text=STORY), Reply(text=STORY), Reply(text="x", cached_tokens=5))
    finals = []
    for _ in range(2):
        with claude.messages.stream(
            model=CLAUDE, max_tokens=100, system=_system(True), messages=USER
        ) as stream:
            finals.append(stream.get_final_message().usage)
    assert (finals[0].cache_creation_input_tokens or 0) > 0
    assert finals[1].cache_read_input_tokens == finals[0].cache_creation_input_tokens
    scripted = claude.messages.create(
        model=CLAUDE, max_tokens=10, system=_system(True), messages=USER
    ).usage
    assert (scripted.cache_read_input_tokens, scripted.cache_creation_input_tokens) == (5, 0)


def test_scripted_usage_with_null_input_tokens(
    server: ProviderServer, claude: anthropic.Anthropic
) -> None:
    server.script(
        CLAUDE,
        Reply(data=ADA, usage={"input_tokens": None}),
        Reply(text=STORY, usage={"input_tokens": None, "output_tokens": 3}),
        Reply(data=ADA, usage={"input_tokens": None}),
    )
    reply = claude.messages.create(model=CLAUDE, max_tokens=10, messages=USER)
    assert reply.usage.input_tokens is None
    assert reply.usage.output_tokens > 0
    assert reply.usage.cache_read_input_tokens == 0
    with claude.messages.stream(model=CLAUDE, max_tokens=100, messages=USER) as stream:
        final = stream.get_final_message()
    assert (final.usage.input_tokens, final.usage.output_tokens) == (None, 3)
    # instructor sums usage over attempts and turns the null into 0.
    person, raw = instructor.from_anthropic(claude).messages.create_with_completion(
        model=CLAUDE, max_tokens=100, response_model=Person, messages=USER
    )
    assert person.name == "Ada"
    assert raw.usage.input_tokens == 0


def test_prompt_cache_on_tools(server: ProviderServer, claude: anthropic.Anthropic) -> None:
    server.respond(CLAUDE, lambda req: Reply(text="ok"))
    schema = {"type": "object", "properties": {"total": {"type": "number"}}}
    tools: Any = [{"name": "invoice", "input_schema": schema, "cache_control": EPHEMERAL}]
    first, second = (
        claude.messages.create(model=CLAUDE, max_tokens=10, tools=tools, messages=USER).usage
        for _ in range(2)
    )
    assert (first.cache_creation_input_tokens or 0) > 0 and first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.input_tokens == first.input_tokens > 0
