"""Cassette scrubbing through pytester: a key sent in any header, in the query, or echoed
in a (gzipped) response body never reaches the YAML, and replays still work without it."""

from __future__ import annotations

import re
import textwrap
import uuid

import pytest

from escalate.testing import ProviderServer, Reply
from tests.cassette_support import DEAD_URL, cassettes, run

pytest_plugins = ("pytester", "tests.cassette_fixtures")


def _keys_file(secrets: dict[str, str]) -> str:
    """Tests that each send a secret in one header (or the query) and record a cassette."""
    return textwrap.dedent(
        f"""
        import gzip
        import json
        import os

        import anthropic
        import httpx2
        import openai
        import pytest
        from pydantic import BaseModel

        from escalate import Tier, escalating

        URL = os.environ["KIT_URL"]
        SECRETS = {secrets!r}


        class Invoice(BaseModel):
            total: int


        def ask(client):
            provider = "anthropic" if isinstance(client, anthropic.Anthropic) else "openai"
            model = "claude-haiku-4-5" if provider == "anthropic" else "gpt-4o-mini"

            @escalating(tiers=[Tier(provider + "/" + model, client=client)], response_model=Invoice)
            def extract(text):
                return text

            assert extract("the invoice").total == 3


        def oai(api_key, **kwargs):
            return openai.OpenAI(base_url=URL + "/v1", api_key=api_key, **kwargs)


        @pytest.mark.vcr
        def test_authorization():
            ask(oai(SECRETS["authorization"]))


        @pytest.mark.vcr
        def test_x_api_key():
            headers = {{"x-api-key": SECRETS["x-api-key"]}}
            ask(anthropic.Anthropic(base_url=URL, api_key="unused", default_headers=headers))


        @pytest.mark.vcr
        def test_api_key():
            ask(oai("unused", default_headers={{"api-key": SECRETS["api-key"]}}))


        @pytest.mark.vcr
        def test_cookie_and_proxy_authorization():
            headers = {{
                "cookie": "session=" + SECRETS["cookie"],
                "proxy-authorization": "Basic " + SECRETS["proxy-authorization"],
                "x-goog-api-key": SECRETS["x-goog-api-key"],
            }}
            ask(oai("unused", default_headers=headers))


        @pytest.mark.vcr
        def test_any_header_holding_a_key_sent_as_auth():
            secret = SECRETS["any header, known key"]
            ask(oai(secret, default_headers={{"x-trace-context": secret}}))


        @pytest.mark.vcr
        def test_any_header_holding_a_key_shaped_value():
            headers = {{"x-trace-context": SECRETS["any header, key shape"]}}
            ask(oai("unused", default_headers=headers))


        @pytest.mark.vcr
        def test_query():
            ask(oai("unused", default_query={{"key": SECRETS["query"]}}))


        def _gzipped_answer(request):
            secret = request.headers["authorization"].removeprefix("Bearer ")
            completion = {{
                "id": "chatcmpl-" + secret,
                "object": "chat.completion",
                "created": 0,
                "model": "gpt-4o-mini",
                "choices": [{{
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {{
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{{
                            "id": "call_1",
                            "type": "function",
                            "function": {{"name": "Invoice", "arguments": '{{"total": 3}}'}},
                        }}],
                    }},
                }}],
                "usage": {{"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}},
            }}
            return httpx2.Response(
                200,
                content=gzip.compress(json.dumps(completion).encode()),
                headers={{
                    "content-type": "application/json",
                    "content-encoding": "gzip",
                    "set-cookie": "session=" + secret,
                    "x-echo": secret,
                    "openai-organization": "org-of-the-recording",
                }},
            )


        @pytest.mark.vcr
        def test_response_echoing_the_key_gzipped():
            transport = httpx2.MockTransport(_gzipped_answer)
            client = oai(
                SECRETS["response"], http_client=httpx2.Client(transport=transport)
            )
            ask(client)
        """
    )


def test_no_key_reaches_a_cassette_whichever_header_carried_it(
    kit: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each case its own secret, not shaped like a key unless the case says so, and in no
    # environment variable: only what the plugin sees in the request can give it away.
    token = uuid.uuid4().hex
    cases = [
        "authorization",
        "x-api-key",
        "api-key",
        "cookie",
        "proxy-authorization",
        "x-goog-api-key",
        "any header, known key",
        "query",
        "response",
    ]
    secrets = {case: f"kit{index}{token}" for index, case in enumerate(cases)}
    secrets["any header, key shape"] = f"sk-proj-{token}"
    kit.makepyfile(test_keys=_keys_file(secrets))
    with ProviderServer(tokens="approx") as server:
        for model in ("gpt-4o-mini", "claude-haiku-4-5"):
            server.respond(model, lambda request: Reply(data={"total": 3}))
        monkeypatch.setenv("KIT_URL", server.url)
        run(kit, "--record-mode=once").assert_outcomes(passed=8)
        sent = [request.headers for request in server.requests]
    # The secrets did travel: this test would prove nothing otherwise.
    assert any(h.get("authorization") == f"Bearer {secrets['authorization']}" for h in sent)
    assert any(h.get("x-api-key") == secrets["x-api-key"] for h in sent)
    assert any(h.get("x-trace-context") == secrets["any header, key shape"] for h in sent)

    written = cassettes(kit)
    assert len(written) == 8
    everything = "\n".join(written.values())
    assert token not in everything
    for header in ("authorization", "x-api-key", "api-key", "cookie", "openai-organization"):
        assert not re.search(rf"^\s+{header}:", everything, re.MULTILINE), header
    # The gzipped response is stored as readable text, and its key-free headers are kept.
    gzipped = written["cassettes/test_keys/test_response_echoing_the_key_gzipped.yaml"]
    assert "!!binary" not in gzipped and "content-encoding" not in gzipped
    assert '"object": "chat.completion"' in gzipped and '"id": "chatcmpl-[redacted]"' in gzipped
    assert "x-echo" not in gzipped

    # And every one of them replays offline.
    monkeypatch.setenv("KIT_URL", DEAD_URL)
    run(kit).assert_outcomes(passed=8)


def test_a_key_the_core_knows_is_scrubbed_though_no_recorded_request_sent_it() -> None:
    # One notion of "a key escalate knows": a deployment's key (from any source) is cleaned
    # from cassettes as it is from receipts, even where no header or query carried it.
    from types import SimpleNamespace

    from escalate._secrets import remember_secrets
    from escalate.testing._scrubbing import scrub_request, scrub_response

    key = f"core-known-{uuid.uuid4().hex}"
    remember_secrets([key])
    request = SimpleNamespace(
        headers={"content-type": "application/json"},
        uri=f"http://127.0.0.1/v1/chat?note={key}",
        body=f'{{"messages": [{{"role": "user", "content": "{key}"}}]}}',
    )
    scrub_request(request)
    response = {"status": {"code": 200}, "headers": {}, "body": {"string": f"echo {key}"}}
    scrubbed = scrub_response(response)
    assert key not in request.uri and key not in request.body
    assert key not in scrubbed["body"]["string"]
