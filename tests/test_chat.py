"""The chat runner, driven through its input and output streams against the local
provider server, for both providers."""

from __future__ import annotations

import io

import pytest

from escalate.chat import offline_server, run_chat, tiers_for


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_chat_shows_who_talks_and_why_it_switched(provider: str) -> None:
    server, tiers = offline_server(provider)
    out = io.StringIO()
    try:
        history = run_chat(
            tiers,
            input=io.StringIO("hello there\nexplain quantum tunnelling\n\n/quit\nignored\n"),
            output=out,
        )
    finally:
        server.stop()

    transcript = out.getvalue()
    lines = transcript.splitlines()
    assert "you> hello there" in lines[0]
    assert lines[1].startswith("cheap> (offline ") and "You said: hello there" in lines[1]
    assert "[cheap -> strong] this needs expertise beyond a small model" in transcript
    assert "strong> (offline " in transcript and "explain quantum tunnelling" in transcript
    assert "ignored" not in transcript  # /quit ended the session
    assert [m["role"] for m in history] == ["system", "user", "assistant", "user", "assistant"]
    # Each turn starts on the cheap tier: its second request carries the whole conversation.
    cheap_model = tiers[0].model.partition("/")[2]
    second = server.requests_for(cheap_model)[1].body["messages"]
    assert any("hello there" in str(m) for m in second)


def test_tiers_for_names_the_mistakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="set OPENAI_API_KEY, pass --api-key, or try it with"):
        tiers_for("openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert [t.model for t in tiers_for("openai")] == ["openai/gpt-4o-mini", "openai/gpt-4o"]
    assert {t.api_key for t in tiers_for("openai", api_key="sk-given")} == {"sk-given"}
    local = tiers_for("openai", base_url="http://127.0.0.1:8000/v1")
    assert {t.api_key for t in local} == {"sk-from-env"}
    compatible = tiers_for("vllm", base_url="http://127.0.0.1:8000/v1", cheap="a", strong="b")
    assert [t.model for t in compatible] == ["compatible/a", "compatible/b"]
    with pytest.raises(ValueError, match="--cheap MODEL --strong MODEL"):
        tiers_for("vllm", base_url="http://127.0.0.1:8000/v1")
    with pytest.raises(ValueError, match="unknown provider 'mistral'"):
        tiers_for("mistral")


def test_the_chat_command_runs_offline() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "escalate", "chat", "--offline", "--provider", "openai"],
        input="hi\nexplain the tax rules for this\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "cheap> (offline gpt-4o-mini) You said: hi" in done.stdout
    assert "[cheap -> strong]" in done.stdout and "strong> (offline gpt-4o)" in done.stdout


def test_the_chat_command_without_a_key_says_what_to_do() -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    done = subprocess.run(
        [sys.executable, "-m", "escalate", "chat", "--provider", "anthropic"],
        input="hi\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "set ANTHROPIC_API_KEY, pass --api-key" in done.stderr
