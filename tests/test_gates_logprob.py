"""logprob_confidence: its statistics and reasons directly, the tiers it refuses, and
end to end in JSON schema mode through the real OpenAI SDK."""

from __future__ import annotations

import math
from typing import Any

import instructor
import pytest

from escalate import ConfigurationError, Tier, receipt_of
from escalate.gates import Rejected, logprob_confidence
from escalate.gates._logprob import logprob_refusal
from escalate.testing._server import ProviderServer, Reply
from tests._gates_helpers import (
    STRONG,
    Summary,
    answer,
    anthropic_message,
    cheap_and_strong,
    ctx,
    openai_completion,
    reason_of,
)

# --- logprob_confidence -------------------------------------------------------------------

LOGPROBS = [math.log(p) for p in (0.99, 0.98, 0.97, 0.6, 0.95, 0.3, 0.99, 0.99, 0.9, 0.99)]


def test_logprob_confidence_statistics() -> None:
    probabilities = sorted(math.exp(lp) for lp in LOGPROBS)
    completion = ctx(openai_completion(LOGPROBS))
    mean = logprob_confidence(0.5, statistic="mean")(answer(), completion)
    assert mean == pytest.approx(sum(probabilities) / 10)
    assert logprob_confidence(0.2, statistic="min")(answer(), completion) == pytest.approx(0.3)
    # p10 of 10 values: 0.9 of the way from the smallest (0.3) to the next (0.6).
    p10 = logprob_confidence(0.2)(answer(), completion)
    assert p10 == pytest.approx(0.3 + 0.9 * (0.6 - 0.3))
    p50 = logprob_confidence(0.2, quantile=0.5)(answer(), completion)
    assert p50 == pytest.approx((0.97 + 0.98) / 2)


def test_logprob_confidence_rejects_below_threshold_with_its_score() -> None:
    gate = logprob_confidence(0.8)
    with pytest.raises(Rejected) as caught:
        gate(answer(), ctx(openai_completion(LOGPROBS)))
    assert caught.value.reason == "confidence 0.57 (p10 of 10 tokens) < 0.80"
    assert caught.value.score == pytest.approx(0.57)
    assert (
        reason_of(
            logprob_confidence(0.8, statistic="mean"),
            answer(),
            ctx(openai_completion([math.log(0.5)] * 4)),
        )
        == "confidence 0.50 (mean of 4 tokens) < 0.80"
    )


def test_the_mean_hides_a_guess_that_the_quantile_catches() -> None:
    # 57 tokens: confident JSON boilerplate around seven guessed ones.
    logprobs = [math.log(0.999)] * 50 + [math.log(0.35)] * 7
    completion = ctx(openai_completion(logprobs))
    assert logprob_confidence(0.8, statistic="mean")(answer(), completion) > 0.9
    assert reason_of(logprob_confidence(0.8), answer(), completion) == (
        "confidence 0.35 (p10 of 57 tokens) < 0.80"
    )


@pytest.mark.parametrize(
    "completion",
    [None, openai_completion(None), openai_completion([]), anthropic_message("end_turn")],
)
def test_logprob_confidence_without_logprobs_rejects_saying_why(completion: Any) -> None:
    assert reason_of(logprob_confidence(0.5), answer(), ctx(completion)).startswith(
        "the completion carries no logprobs"
    )


def test_logprob_confidence_asks_for_logprobs_and_refuses_tiers_without_them() -> None:
    gate = logprob_confidence(0.8)
    assert dict(gate.request_kwargs) == {"logprobs": True, "top_logprobs": 1}
    json_schema = instructor.Mode.JSON_SCHEMA
    gate.check_tier(Tier("openai/gpt-4o-mini", mode=json_schema))
    gate.check_tier(Tier("openai/gpt-4o-mini", mode=instructor.Mode.JSON))
    gate.check_tier(Tier("compatible/llama3", base_url="http://x", mode=instructor.Mode.MD_JSON))
    with pytest.raises(ConfigurationError, match="Anthropic's API returns no logprobs"):
        gate.check_tier(Tier("anthropic/claude-haiku-4-5"))
    with pytest.raises(ConfigurationError) as caught:
        gate.check_tier(Tier("openai/gpt-4o-mini"))
    assert "OpenAI returns no logprobs for tool-call arguments: use Tier(..., " in str(caught.value)
    assert "mode=instructor.Mode.JSON_SCHEMA)" in str(caught.value)
    with pytest.raises(ConfigurationError, match="Anthropic"):  # a fallback counts too
        gate.check_tier(
            Tier("openai/gpt-4o-mini", mode=json_schema, fallbacks=["anthropic/claude-haiku-4-5"])
        )


def test_the_provider_knowledge_is_one_function_of_one_deployment() -> None:
    assert logprob_refusal(Tier("openai/gpt-4o-mini", mode=instructor.Mode.JSON_SCHEMA)) is None
    assert logprob_refusal(Tier("anthropic/claude-haiku-4-5")) == (
        "Anthropic's API returns no logprobs"
    )
    why = logprob_refusal(Tier("openai/gpt-4o-mini", mode=instructor.Mode.TOOLS))
    assert why is not None and why.startswith("in instructor mode tool_call, OpenAI returns")
    # One deployment: the fallbacks are the gate's to walk.
    tier = Tier(
        "openai/gpt-4o", mode=instructor.Mode.JSON, fallbacks=["anthropic/claude-haiku-4-5"]
    )
    assert logprob_refusal(tier) is None


def test_a_nan_logprob_rejects_rather_than_scoring_nan() -> None:
    completion = openai_completion([math.log(0.9), math.nan])
    with pytest.raises(Rejected, match="not a number") as caught:
        logprob_confidence(0.5)(answer(), ctx(completion))
    assert caught.value.score is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 1.5}, "threshold is a probability"),
        ({"threshold": "0.8"}, "threshold must be a number"),
        ({"threshold": 0.5, "statistic": "median"}, "statistic must be"),
        ({"threshold": 0.5, "quantile": 2}, "quantile is a probability in"),
    ],
)
def test_logprob_confidence_configuration_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        logprob_confidence(**kwargs)


# --- end to end --------------------------------------------------------------------------


def test_logprob_confidence_end_to_end_in_json_schema_mode(
    build: Any, server: ProviderServer, openai_tier: Any
) -> None:
    gate = logprob_confidence(0.8)
    tiers = cheap_and_strong(openai_tier, mode=instructor.Mode.JSON_SCHEMA, gates=[gate])
    extract = build(tiers=tiers, response_model=Summary)

    server.script("gpt-4o-mini", Reply(data=STRONG, logprobs=math.log(0.95)))
    receipt = receipt_of(extract("doc"))
    assert receipt.answered_by == "openai/gpt-4o-mini"
    assert receipt.attempts[0].scores == {"logprob_confidence": pytest.approx(0.95)}
    (request,) = server.requests_for("gpt-4o-mini")
    assert request.body["logprobs"] is True
    assert "tools" not in request.body  # JSON schema mode: the answer is content
    # Only the gated tier asks for logprobs.
    server.script("gpt-4o-mini", Reply(data=STRONG, logprobs=[math.log(0.99)] * 3 + [-2.0]))
    server.script("gpt-4o", Reply(data=STRONG))
    receipt = receipt_of(extract("doc"))
    cheap, strong = receipt.attempts
    assert cheap.outcome == "rejected" and cheap.trigger == "gate"
    assert cheap.reason is not None
    assert cheap.reason.startswith("logprob_confidence: confidence 0.14 (p10 of ")
    assert cheap.reason.endswith(" tokens) < 0.80")
    assert cheap.scores == {"logprob_confidence": pytest.approx(math.exp(-2.0))}
    assert strong.outcome == "answered" and strong.scores == {}
    assert "logprobs" not in server.requests_for("gpt-4o")[-1].body


def test_logprob_confidence_refuses_tiers_at_decoration_time(
    build: Any, openai_tier: Any, anthropic_tier: Any
) -> None:
    gate = logprob_confidence(0.8)
    with pytest.raises(ConfigurationError, match="tool-call arguments"):
        build(tiers=[openai_tier("gpt-4o-mini")], response_model=Summary, gates=[gate])
    json_tier = openai_tier("gpt-4o-mini", mode=instructor.Mode.JSON_SCHEMA)
    with pytest.raises(ConfigurationError, match="Anthropic's API returns no logprobs"):
        build(tiers=[json_tier, anthropic_tier()], response_model=Summary, gates=[gate])
