"""Providers (escalate._providers): capabilities as data, a user's client told apart without
importing an SDK, and a process that uses one provider's tiers loading that SDK only.

The import tests run in a fresh interpreter (``sys.executable -c``): this one has loaded
every SDK long ago. The provider server runs here, in the test process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import instructor
import pytest

from escalate import Tier
from escalate._config import logprob_support, provider_of
from escalate._providers import PROVIDERS, client_flavour
from escalate.exceptions import ConfigurationError
from escalate.testing._server import Fault, ProviderServer, Reply

GOOD = {"text": "fine"}


def _run(code: str, *args: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it prints one JSON line last."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- capabilities -------------------------------------------------------------------------


def test_capabilities_are_data_on_each_provider() -> None:
    assert {name: p.supports_n for name, p in PROVIDERS.items()} == {
        "openai": True,
        "anthropic": False,
        "google": False,
        "compatible": True,
    }
    json_modes = {"json_mode", "json_schema_mode", "markdown_json_mode"}
    assert PROVIDERS["openai"].logprob_modes == json_modes
    assert PROVIDERS["compatible"].logprob_modes == json_modes
    assert PROVIDERS["anthropic"].logprob_modes == frozenset()
    assert PROVIDERS["google"].logprob_modes == frozenset()
    assert provider_of("compatible/llama3") is PROVIDERS["compatible"]
    assert provider_of(Tier("mistral/large")) is None


@pytest.mark.parametrize(
    "mode", [instructor.Mode.JSON, instructor.Mode.JSON_SCHEMA, instructor.Mode.MD_JSON]
)
def test_logprobs_are_supported_for_openai_json_modes(mode: instructor.Mode) -> None:
    assert logprob_support(Tier("openai/gpt-4o-mini", mode=mode)) is None
    compatible = Tier("compatible/llama3", base_url="http://127.0.0.1:9", mode=mode)
    assert logprob_support(compatible) is None


@pytest.mark.parametrize(
    ("tier", "reason"),
    [
        (
            Tier("openai/gpt-4o-mini"),
            "tier 'openai/gpt-4o-mini' in instructor mode tool_call: OpenAI returns no "
            "logprobs for tool-call arguments: use Tier(..., mode=instructor.Mode.JSON_SCHEMA)",
        ),
        ("anthropic/claude-haiku-4-5", "tier 'anthropic/claude-haiku-4-5': Anthropic's API"),
        (
            Tier(
                "openai/gpt-4o-mini",
                mode=instructor.Mode.JSON_SCHEMA,
                fallbacks=["anthropic/claude-haiku-4-5"],
            ),
            "tier 'anthropic/claude-haiku-4-5': Anthropic's API returns no logprobs",
        ),
        (
            Tier("compatible/llama3", base_url="http://x", mode=instructor.Mode.TOOLS),
            "OpenAI-compatible server returns no logprobs for tool-call arguments",
        ),
    ],
)
def test_logprob_support_names_the_provider_and_mode_that_lack_them(
    tier: Tier | str, reason: str
) -> None:
    found = logprob_support(tier)
    assert found is not None and reason in found


# --- a user's client -------------------------------------------------------------------


def test_a_users_client_is_told_apart_by_the_sdks_already_loaded() -> None:
    import anthropic
    import openai

    assert client_flavour(openai.OpenAI(api_key="k")) == ("openai", False)
    assert client_flavour(openai.AsyncOpenAI(api_key="k")) == ("openai", True)
    assert client_flavour(anthropic.Anthropic(api_key="k")) == ("anthropic", False)
    assert client_flavour(anthropic.AsyncAnthropic(api_key="k")) == ("anthropic", True)
    with pytest.raises(ConfigurationError, match="an openai or anthropic SDK client, got dict"):
        client_flavour({})


def test_telling_a_client_apart_imports_no_other_sdk() -> None:
    result = _run(
        """
        import json, sys
        import openai
        from escalate import Tier, escalating
        from pydantic import BaseModel

        class Answer(BaseModel):
            text: str

        tier = Tier("openai/gpt-4o-mini", client=openai.OpenAI(api_key="k"))
        escalating(tiers=[tier], response_model=Answer)(lambda q: q)
        print(json.dumps({"anthropic": "anthropic" in sys.modules}))
        """
    )
    assert result == {"anthropic": False}


# --- one provider, one SDK -------------------------------------------------------------

_ONE_PROVIDER = """
import asyncio, importlib.abc, json, sys, traceback

provider, base_url, stream, watched = sys.argv[1], sys.argv[2], sys.argv[3] == "stream", sys.argv[4]
first_importer = []


class Watch(importlib.abc.MetaPathFinder):
    \"\"\"Notes the file that first imports the watched SDK; imports nothing itself.\"\"\"

    def find_spec(self, name, path=None, target=None):
        stack = traceback.extract_stack()[:-1]
        # An import, not a lookup (instructor's __init__ asks find_spec what is installed).
        if name == watched and not first_importer and len(stack) > 1:
            if stack[-2].name == "_find_and_load_unlocked":
                # The innermost real file, past importlib's own frames.
                files = [f.filename for f in stack if not f.filename.startswith("<")]
                first_importer.append(files[-1])
        return None


sys.meta_path.insert(0, Watch())

from pydantic import BaseModel
from escalate import Tier, escalating, receipt_of

light = not {"openai", "anthropic", "instructor"} & set(sys.modules)


class Answer(BaseModel):
    text: str


def tier(model):
    return Tier(f"{provider}/{provider}-{model}", base_url=base_url, api_key="k", stream=stream)


tiers = [tier("cheap"), tier("strong")]
gates = [lambda answer, context=None: None]


@escalating(tiers=tiers, response_model=Answer, gates=gates)
def ask(q: str) -> str:
    return q


@escalating(tiers=tiers, response_model=Answer, gates=gates)
async def aask(q: str) -> str:
    return q


sync_receipt = receipt_of(ask("hello"))
async_receipt = receipt_of(asyncio.run(aask("hello")))
print(json.dumps({
    "light": light,
    "paths": [[a.tier for a in r.attempts] for r in (sync_receipt, async_receipt)],
    "loaded": sorted(m for m in ("openai", "anthropic") if m in sys.modules),
    "first_importer": first_importer[0] if first_importer else None,
}))
"""


def _one_provider(server: ProviderServer, provider: str, stream: str, watched: str) -> Any:
    """Two calls (sync, async), each: the cheap tier fails at the provider, then answers
    badly; the strong one answers. So failures are classified and instructor's error paths
    run, not only its happy one."""
    for _ in range(2):
        server.script(f"{provider}-cheap", Fault(503), Reply(data={"wrong": 1}))
        server.script(f"{provider}-strong", Reply(data=GOOD))
    base_url = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    result = _run(_ONE_PROVIDER, provider, base_url, stream, watched)
    assert result["light"], "import escalate loaded an SDK or instructor"
    cheap, strong = f"{provider}/{provider}-cheap", f"{provider}/{provider}-strong"
    assert result["paths"] == [[cheap, cheap, strong]] * 2
    return result


def test_an_openai_only_process_never_loads_the_anthropic_sdk(server: ProviderServer) -> None:
    result = _one_provider(server, "openai", "whole", "anthropic")
    assert result["loaded"] == ["openai"]


def test_a_streaming_openai_process_loads_anthropic_only_through_instructor(
    server: ProviderServer,
) -> None:
    """instructor's retry loop asks ``has_compatible_usage`` of every response
    (instructor/v2/core/usage.py); for one whose usage is not OpenAI's (an SDK stream has
    none) it tries ``from anthropic.types import Usage``, which loads the anthropic SDK if
    it is installed. escalate itself never imports it."""
    result = _one_provider(server, "openai", "stream", "anthropic")
    if "anthropic" in result["loaded"]:
        assert result["first_importer"].endswith("/instructor/v2/core/usage.py"), result


def test_an_anthropic_only_process_loads_openai_only_through_instructor(
    server: ProviderServer,
) -> None:
    """instructor's core imports openai's types at module level
    (instructor/v2/core/function_calls.py and response.py: ``from openai.types.chat import
    ChatCompletion``), so the openai SDK is loaded whatever the provider. escalate itself
    is never what imports it."""
    result = _one_provider(server, "anthropic", "whole", "openai")
    assert result["loaded"] == ["anthropic", "openai"]
    importer = result["first_importer"]
    assert "/instructor/" in importer and "/escalate/" not in importer, importer
