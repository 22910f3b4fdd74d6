"""Scripting the provider server: FIFO scripts, responders, the values, recorded requests."""

from __future__ import annotations

from typing import Any

import anthropic
import instructor
import openai
import pytest

from escalate.testing._server import ProviderServer, Reply, Request
from tests.server_support import CLAUDE, GPT, USER, Person

# SDK clients on the session server (`oai`, `claude`, `aoai`, `aclaude`), quiet instructor logs.
pytest_plugins = ["tests.server_fixtures"]


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


def test_reply_data_may_be_a_pydantic_model(server: ProviderServer, oai: openai.OpenAI) -> None:
    server.script(GPT, Reply(data=Person(name="Ada", age=36)), Reply(data={"when": object()}))
    person = instructor.from_openai(oai).chat.completions.create(
        model=GPT, response_model=Person, messages=USER
    )
    assert (person.name, person.age) == ("Ada", 36)
    with pytest.raises(openai.BadRequestError, match="cannot serve"):
        oai.chat.completions.create(model=GPT, messages=USER)
