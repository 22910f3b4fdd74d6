"""The pytest plugin's cassettes, through pytester: record against a local provider server,
replay offline with the server stopped and no keys, and check what reaches the YAML."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from escalate.testing import Fault, ProviderServer, Reply
from tests.cassette_support import DEAD_URL, INI, KEY, ROOT, cassettes, failure_text, run

pytest_plugins = ("pytester", "tests.cassette_fixtures")


# Here, not in tests.cassette_fixtures: a plugin's fixture loses to tests/conftest.py's
# ``server``, and these tests need one that wants the key.
@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer(tokens="approx", require_api_key=KEY) as running:
        yield running


# --- record, replay, miss --------------------------------------------------------------------

FLOW = """
import os
import pathlib

import pytest
from pydantic import BaseModel

from escalate import Retry, Tier, escalating, receipt_of

URL = os.environ["KIT_URL"]
OUT = pathlib.Path(os.environ["KIT_OUT"])
TIERS = [
    Tier("openai/gpt-4o-mini", base_url=URL + "/v1"),
    Tier("anthropic/claude-haiku-4-5", base_url=URL),
]
FAST = Retry(attempts=3, initial=0, max=0, jitter=0)


class Invoice(BaseModel):
    total: int


@escalating(tiers=TIERS, response_model=Invoice, retry=FAST)
def extract(text: str) -> str:
    return "PROMPT: " + text


@escalating(tiers=TIERS, response_model=Invoice, retry=FAST)
async def extract_async(text: str) -> str:
    return "PROMPT: " + text


@pytest.mark.vcr
def test_sync():
    invoice = extract("invoice one")
    assert invoice == Invoice(total=12)
    (OUT / "sync.json").write_text(receipt_of(invoice).to_json())


@pytest.mark.vcr
async def test_async():
    invoice = await extract_async("invoice two")
    assert invoice == Invoice(total=12)
    (OUT / "async.json").write_text(receipt_of(invoice).to_json())
"""


def _script_flow(server: ProviderServer) -> None:
    for _ in ("sync", "async"):
        # A rate limit, then an answer that fails validation: a retry and an escalation.
        server.script("gpt-4o-mini", Fault(429, retry_after=0), Reply(data={"total": "twelve"}))
        server.script("claude-haiku-4-5", Reply(data={"total": 12}))


def _stable(receipt_json: str) -> dict[str, Any]:
    """A receipt without what differs between runs: its id, timestamps and latencies."""
    receipt = json.loads(receipt_json)
    del receipt["started_at"], receipt["finished_at"], receipt["latency_s"], receipt["id"]
    for attempt in receipt["attempts"]:
        del attempt["started_at"], attempt["latency_s"]
    return dict(receipt)


@pytest.fixture
def recorded(
    kit: pytest.Pytester, server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> dict[str, dict[str, Any]]:
    """FLOW recorded against the server; returns the receipts of the recording run."""
    kit.makepyfile(test_flow=FLOW)
    (kit.path / "record").mkdir()
    _script_flow(server)
    with monkeypatch.context() as env:
        env.setenv("KIT_URL", server.url)
        env.setenv("KIT_OUT", str(kit.path / "record"))
        env.setenv("OPENAI_API_KEY", KEY)
        env.setenv("ANTHROPIC_API_KEY", KEY)
        run(kit, "--record-mode=once").assert_outcomes(passed=2)
    assert len(server.requests) == 6 and server.pending("gpt-4o-mini") == 0
    server.stop()
    (kit.path / "replay").mkdir()
    monkeypatch.setenv("KIT_URL", DEAD_URL)
    monkeypatch.setenv("KIT_OUT", str(kit.path / "replay"))
    return {
        face: _stable((kit.path / "record" / f"{face}.json").read_text())
        for face in ("sync", "async")
    }


def test_a_recorded_cassette_replays_offline_with_the_same_receipts(
    kit: pytest.Pytester, recorded: dict[str, dict[str, Any]]
) -> None:
    run(kit).assert_outcomes(passed=2)  # no server, no key, no --record-mode

    for face in ("sync", "async"):
        replayed = _stable((kit.path / "replay" / f"{face}.json").read_text())
        assert replayed == recorded[face]
        assert [a["outcome"] for a in replayed["attempts"]] == [
            "provider_error",
            "rejected",
            "answered",
        ]
        assert [m["kind"] for m in replayed["moves"]] == ["up"]
        assert replayed["cost_usd"] is not None and float(replayed["cost_usd"]) > 0
    assert set(cassettes(kit)) == {
        "cassettes/test_flow/test_sync.yaml",
        "cassettes/test_flow/test_async.yaml",
    }


def test_a_changed_prompt_misses_with_vcrpys_explanation_first(
    kit: pytest.Pytester, recorded: dict[str, dict[str, Any]]
) -> None:
    flow = kit.path / "test_flow.py"
    flow.write_text(flow.read_text().replace('"PROMPT: "', '"A CHANGED PROMPT: "'))

    result = run(kit)

    result.assert_outcomes(failed=2)
    for test, text in (("test_sync", "invoice one"), ("test_async", "invoice two")):
        lines = failure_text(result, test)
        assert lines[0].startswith("Can't play back this request: no recorded interaction")
        report = "\n".join(lines)
        assert "record_mode 'none' doesn't record new requests." in report
        assert "messages[0] differs:" in report
        assert f'\'{{"role": "user", "content": "PROMPT: {text}"}}\'' in report
        tail = report[report.index("escalate: the request that missed the cassette") :]
        assert "  request: POST /v1/chat/completions" in tail
        assert "  model: gpt-4o-mini" in tail
        assert f"  last user message: 'A CHANGED PROMPT: {text}'" in tail
        # A miss is neither a provider failure nor an escalation, and it shows no traceback.
        for absent in ("AllTiersFailed", "APIConnectionError", "Traceback", "claude", KEY):
            assert absent not in report
    assert "Failed: Can't play back this request" in result.stdout.str()


def test_a_replayed_cassette_is_not_replayed_twice(
    kit: pytest.Pytester, recorded: dict[str, dict[str, Any]]
) -> None:
    flow = kit.path / "test_flow.py"
    flow.write_text(
        flow.read_text().replace(
            '    invoice = extract("invoice one")\n',
            '    invoice = extract("invoice one")\n    extract("invoice one")\n',
        )
    )

    result = run(kit, "-k", "test_sync")

    result.assert_outcomes(failed=1)
    lines = failure_text(result, "test_sync")
    assert lines[0].startswith(
        "Can't play back this request: it matches 2 recorded interactions, but they have all "
        "been played back."
    )


def test_replaying_with_the_plugins_cassettes_switched_off_matches_on_the_url(
    kit: pytest.Pytester, recorded: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    kit.makeini(INI + "escalate_cassettes = false\n")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # no placeholder keys either

    result = run(kit, "-k", "test_sync")

    # vcrpy's own matching: the recording's port is not the replay's.
    result.assert_outcomes(failed=1)
    assert "the closest differ in port" in result.stdout.str()


# --- CI, keys and compression -------------------------------------------------------------

ONE_CALL = """
import os

import pytest
from pydantic import BaseModel

from escalate import Tier, escalating


class Invoice(BaseModel):
    total: int


@escalating(
    tiers=[Tier("openai/gpt-4o-mini", base_url=os.environ["KIT_URL"] + "/v1")],
    response_model=Invoice,
)
def extract(text: str) -> str:
    return text


@pytest.mark.vcr(record_mode="once")
def test_one():
    assert extract("the invoice").total == 3
"""


def test_in_ci_cassettes_are_replay_only_unless_the_command_line_says_otherwise(
    kit: pytest.Pytester, server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit.makepyfile(test_one=ONE_CALL)
    server.respond("gpt-4o-mini", lambda request: Reply(data={"total": 3}))
    monkeypatch.setenv("KIT_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("CI", "true")

    # The marker asks for record_mode="once", but CI wins: no request leaves the test.
    missed = run(kit)
    missed.assert_outcomes(failed=1)
    lines = failure_text(missed, "test_one")
    assert lines[0].startswith("Can't play back this request: the cassette doesn't exist")
    assert "  CI is set: cassettes are replay-only unless --record-mode is given." in lines
    assert server.requests == []

    run(kit, "--record-mode=once").assert_outcomes(passed=1)
    assert len(server.requests) == 1
    run(kit).assert_outcomes(passed=1)  # and now it replays
    assert len(server.requests) == 1


# --- blocking providers ----------------------------------------------------------------------

BLOCKING = """
import os

import pytest
from pydantic import BaseModel

from escalate import Tier, escalating
from escalate.testing import ScriptedTier, override


class Invoice(BaseModel):
    total: int


@escalating(
    tiers=[Tier("openai/gpt-4o-mini", base_url=os.environ["KIT_URL"] + "/v1")],
    response_model=Invoice,
)
def extract(text: str) -> str:
    return text


def test_real():
    extract("the invoice")


def test_fake():
    with override(extract, tiers=[ScriptedTier("fake", {"total": 1})]):
        assert extract("the invoice").total == 1


@pytest.mark.vcr
def test_cassette():
    assert extract("the invoice").total == 3
"""


@pytest.mark.parametrize("switch", ["option", "ini"])
def test_blocking_providers_suite_wide_spares_fakes_and_cassettes(
    kit: pytest.Pytester, server: ProviderServer, monkeypatch: pytest.MonkeyPatch, switch: str
) -> None:
    kit.makepyfile(test_blocking=BLOCKING)
    server.respond("gpt-4o-mini", lambda request: Reply(data={"total": 3}))
    monkeypatch.setenv("KIT_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    run(kit, "--record-mode=once", "-k", "test_cassette").assert_outcomes(passed=1)
    server.reset()
    server.respond("gpt-4o-mini", lambda request: Reply(data={"total": 3}))
    if switch == "ini":
        kit.makeini(INI + "escalate_block_providers = true\n")
        args: tuple[str, ...] = ()
    else:
        args = ("--escalate-block-providers",)

    result = run(kit, *args)

    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_real*ProviderCallBlocked*"])
    assert "blocks provider calls: fake the tier or replay a cassette" in result.stdout.str()
    assert server.requests == []  # the block held, and the cassette replayed


def test_without_the_switch_real_calls_go_through(
    kit: pytest.Pytester, server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit.makepyfile(test_blocking=BLOCKING)
    server.respond("gpt-4o-mini", lambda request: Reply(data={"total": 3}))
    monkeypatch.setenv("KIT_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    run(kit, "-k", "test_real").assert_outcomes(passed=1)

    assert len(server.requests) == 1


# --- the example -----------------------------------------------------------------------------


@pytest.fixture
def example(kit: pytest.Pytester) -> Path:
    for name in ("test_invoice_offline.py", "conftest.py"):
        shutil.copy(ROOT / "examples" / name, kit.path / name)
    shutil.copytree(ROOT / "examples" / "cassettes", kit.path / "cassettes")
    return kit.path / "test_invoice_offline.py"


def test_the_example_passes_offline_from_its_cassettes(kit: pytest.Pytester, example: Path) -> None:
    run(kit).assert_outcomes(passed=2)

    # It was recorded against the local provider server with a key of its own.
    written = "\n".join(cassettes(kit).values())
    assert "127.0.0.1" in written
    assert "sk-example-recording-key" not in written and "authorization" not in written


def test_a_changed_prompt_in_the_example_misses_its_cassette(
    kit: pytest.Pytester, example: Path
) -> None:
    example.write_text(
        example.read_text().replace("Extract the vendor,", "Extract the vendor name,")
    )

    result = run(kit)

    result.assert_outcomes(failed=2)
    lines = failure_text(result, "test_a_plain_invoice_stays_on_the_cheap_tier")
    assert lines[0].startswith("Can't play back this request: no recorded interaction matches")
    assert "  model: gpt-4o-mini" in lines
    assert any(
        line.startswith("  last user message: 'Extract the vendor name, the total")
        for line in lines
    )
