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
