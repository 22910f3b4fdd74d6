"""Token counting: cl100k when bpe_openai imports, else the approximation."""

from __future__ import annotations

from typing import Any

import anthropic
import openai

from escalate.testing._server import ProviderServer, Reply
from tests.server_support import CLAUDE, GPT, cl100k

# SDK clients on the session server (`oai`, `claude`, `aoai`, `aclaude`), quiet instructor logs.
pytest_plugins = ["tests.server_fixtures"]


def test_token_counts_match_cl100k(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    enc = cl100k()
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
