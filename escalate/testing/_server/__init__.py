"""A local LLM provider server for tests, demos and benchmarks.

`ProviderServer` listens on 127.0.0.1 and speaks enough of the OpenAI chat-completions
(`POST /v1/chat/completions`) and Anthropic messages (`POST /v1/messages`) wire formats that the
real `openai` and `anthropic` SDKs, and `instructor` on top of them, work against it over real
HTTP. Each model has a FIFO script of outcomes (`Reply`, `Fault`, `Drop`, `Malformed`, or a
callable producing one) and an optional responder used once its script is empty::

    with ProviderServer() as server:
        server.script("gpt-4o-mini", Fault(429, retry_after=0.01), Reply(data={"name": "Ada"}))
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
        ...
        assert len(server.requests_for("gpt-4o-mini")) == 2
        assert server.request_counts == {"/v1/chat/completions": 2}

One scripted item answers one request. An OpenAI request with `n` gets `n` choices: copies of
a plain `Reply`, or one `Choice` each from `Reply(choices=[Choice(...), ...])`; the prompt is
counted once, the completion tokens summed. Anthropic requests marking blocks with
`cache_control` read and write a prompt cache kept per server (`cache_read_input_tokens`,
`cache_creation_input_tokens`). `Reply(usage={...})` sets any wire usage field, null included.

Token counts: when the optional `bpe_openai` package imports, usage and logprob tokens are
counted with its `cl100k_base` encoding (for every model, Anthropic ones included, so Claude
counts are an approximation). Without it, a deterministic approximation is used: a text of
`n` characters counts `max(1, round(n / 4))` tokens (0 for the empty string), and texts are split
into tokens on whitespace, keeping each run of whitespace with the word after it.

The modules, one concept each, imported in this order (no cycles): `_values` (what tests script
and read), `_tokens` (counting), `_cache` (Anthropic prompt caching), `_answers` (a Reply
resolved against its request), `_openai` and `_anthropic` (the wire formats), `_http` (the
HTTP server), `_provider_server` (`ProviderServer`). Only the standard library is used.
"""

from __future__ import annotations

from escalate.testing._server._provider_server import ProviderServer
from escalate.testing._server._values import (
    Choice,
    Drop,
    Fault,
    Malformed,
    Outcome,
    Provider,
    Reply,
    Request,
    Responder,
    ScriptItem,
)

__all__ = [
    "Choice",
    "Drop",
    "Fault",
    "Malformed",
    "Outcome",
    "Provider",
    "ProviderServer",
    "Reply",
    "Request",
    "Responder",
    "ScriptItem",
]
