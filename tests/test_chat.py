"""The chat runner, driven through its input and output streams against the local
provider server, for both providers."""

from __future__ import annotations

import io
from typing import Any

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


SCRIPT = (
    "We need to redesign our billing schema for multi-currency invoices\n"
    "Amounts must stay exact decimals\n"
    "Add a column for the exchange rate\n"
    "Is storing card tokens there a security risk?\n"
    "Now add an index on currency\n"
    "Can you prove the rounding never loses a cent?\n"
    "Rename the column to fx_rate\n"
)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "google"])
def test_a_ladder_chat_shows_the_tier_the_switches_and_the_handoffs(provider: str) -> None:
    from escalate.conversation._terminal import offline_ladder_server, run_ladder_chat

    server, tiers = offline_ladder_server(provider)
    out = io.StringIO()
    try:
        chat = run_ladder_chat(tiers, input=io.StringIO(SCRIPT), output=out)
    finally:
        server.stop()
    text = out.getvalue()
    assert "[turn 1: strong] " in text and "[turn 2: strong] schedule: strong for turns 1-2" in text
    assert "[memory v1 written by strong after turn 2: the framing turns are done" in text
    assert "[turn 3: strong -> cheap] schedule: cheap from turn 3 on +memory handed over" in text
    assert "[turn 4: cheap -> strong] high_stakes: high stakes: 'secur' +memory handed over" in text
    assert "[within the turn: cheap -> strong] this needs expertise beyond a small model" in text
    assert [t.answered_by for t in chat.receipt.turns] == [
        "strong", "strong", "cheap", "strong", "cheap", "strong", "cheap",
    ]  # fmt: skip
    assert chat.receipt.metrics().triggers_fired == {
        "deep_work": 1,
        "high_stakes": 1,
        "low_confidence": 1,
    }


def test_the_ladder_chat_command_runs_offline_and_writes_its_receipt(tmp_path: Any) -> None:
    import subprocess
    import sys

    from escalate.conversation import ConversationReceipt

    receipt = tmp_path / "conversation.json"
    done = subprocess.run(
        [sys.executable, "-m", "escalate", "chat", "--ladder", "--offline", "--provider",
         "google", "--receipt", str(receipt)],
        input=SCRIPT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )  # fmt: skip
    assert "strong> (offline gemini-2.5-pro)" in done.stdout
    assert "cheap> (offline gemini-2.5-flash)" in done.stdout
    assert "7 turns, 4 handoffs" in done.stdout
    read = ConversationReceipt.from_json(receipt.read_text())
    assert len(read.turns) == 7 and read.turns[0].receipt.attempts[0].provider == "google"


def test_tiers_for_google_reads_either_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", "from-gemini")
    tiers = tiers_for("google")
    assert [t.model for t in tiers] == ["google/gemini-2.5-flash", "google/gemini-2.5-pro"]
    assert {t.api_key for t in tiers} == {"from-gemini"}
