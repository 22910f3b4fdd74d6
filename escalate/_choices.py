"""Several choices in one request (``n``), and the prompt cache the samples repeat through.

A deployment whose provider takes ``n`` answers a tier's samples with one request: every
choice is validated here on its own, as instructor validates its first one, so one that
fails is a failed sample rather than a re-ask of the whole request. Where the provider
caches a marked prompt prefix, the samples that repeat a request read it from the cache.
The :class:`~escalate._deployment.Deployment` methods of the same names are thin calls here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from escalate._failures import short, validation_reason
from escalate._outcomes import Answered, Failed, TierCall
from escalate._recorder import Recorder, recording
from escalate._responses import _Refused

if TYPE_CHECKING:
    from escalate._deployment import Deployment
    from escalate._plan import Messages

__all__ = [
    "cache_marked",
    "call_choices_async",
    "call_choices_sync",
    "choices_request",
    "prompt_caching",
    "read_choices",
    "supports_n",
]


# -- prompt caching for repeated requests ------------------------------------------------


def prompt_caching(deployment: Deployment) -> bool:
    """Whether this provider caches a marked prompt prefix (Anthropic)."""
    return deployment.provider.prompt_caching


def cache_marked(deployment: Deployment, messages: Messages) -> Messages:
    """``messages`` with the whole prompt marked for the prompt cache (the last content
    block of the last message gets ``cache_control: ephemeral``), so the samples that
    repeat the request after the first read it from the cache; unchanged where the
    provider has no prompt cache."""
    if not deployment.provider.prompt_caching or not messages:
        return messages
    *head, last = messages
    content = last.get("content")
    if isinstance(content, str):
        blocks: list[Any] = [{"type": "text", "text": content}]
    elif isinstance(content, list) and content and isinstance(content[-1], dict):
        blocks = [*content[:-1], dict(content[-1])]
    else:
        return messages
    blocks[-1] = {**blocks[-1], "cache_control": {"type": "ephemeral"}}
    return [*head, {**last, "content": blocks}]


# -- several choices in one request -------------------------------------------------------


def supports_n(deployment: Deployment) -> bool:
    """Whether one request here can ask for several choices (``n``): the provider takes
    it and the tier does not stream."""
    return deployment.provider.supports_n and not deployment.config.stream


def choices_request(
    deployment: Deployment,
    messages: Messages,
    response_model: type[Any],
    n: int,
    context: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], Recorder]:
    kwargs, recorder = deployment.request(messages, response_model, context)
    # instructor would re-ask the whole request for its first choice alone: each choice
    # is validated here instead, and one that fails is a failed sample.
    kwargs.update(n=n, max_retries=0)
    return kwargs, recorder


def call_choices_sync(
    deployment: Deployment,
    messages: Messages,
    response_model: type[Any],
    n: int,
    *,
    context: Mapping[str, Any] | None = None,
) -> TierCall:
    """One request for ``n`` choices from a sync face: one attempt, every choice
    validated on its own (see :class:`~escalate._plan.ChoicesBackend`)."""
    deployment._refuse_if_blocked()
    kwargs, recorder = choices_request(deployment, messages, response_model, n, context)
    client = deployment.instructor(False)
    token = recording.set(recorder)
    try:
        client.create_with_completion(**kwargs)
    except Exception as error:
        if _with_choices(recorder) is None:
            return deployment.failed(error, recorder)
    finally:
        recording.reset(token)
    return read_choices(deployment, recorder, kwargs["response_model"], n, context)


async def call_choices_async(
    deployment: Deployment,
    messages: Messages,
    response_model: type[Any],
    n: int,
    *,
    context: Mapping[str, Any] | None = None,
) -> TierCall:
    """One request for ``n`` choices from an async face (see :func:`call_choices_sync`)."""
    deployment._refuse_if_blocked()
    kwargs, recorder = choices_request(deployment, messages, response_model, n, context)
    client = await deployment.async_instructor()
    token = recording.set(recorder)
    try:
        await client.create_with_completion(**kwargs)
    except Exception as error:
        if _with_choices(recorder) is None:
            return deployment.failed(error, recorder)
    finally:
        recording.reset(token)
    return read_choices(deployment, recorder, kwargs["response_model"], n, context)


def read_choices(
    deployment: Deployment,
    recorder: Recorder,
    model: Any,
    n: int,
    context: Mapping[str, Any] | None,
) -> TierCall:
    """Every choice of the response, validated as instructor validates its first one
    (tool-call arguments in TOOLS mode, ``message.content`` in the JSON modes)."""
    import instructor

    response = _with_choices(recorder)
    assert response is not None
    record = recorder.pending[-1]
    record.pop("failure", None)  # instructor judged the first choice alone
    mode = deployment.config.mode or instructor.Mode.TOOLS
    outcomes: list[TierCall] = []
    raws: list[str] = []
    for choice in response.choices:
        single = response.model_copy(update={"choices": [choice]})
        raws.append(deployment.provider.raw_output(single) or "")
        outcomes.append(_one_choice(model, single, choice, context, mode, deployment.scrub))
    record["raw_output"] = "\n".join(raws)
    first = next((o for o in outcomes if isinstance(o, Answered)), None)
    if first is None:
        failed = outcomes[0] if outcomes else None
        reason = f"none of the {len(outcomes)} choices validated"
        if isinstance(failed, Failed):
            reason += f"; the first: {failed.reason}"
        error = failed.error if isinstance(failed, Failed) else _NoChoice(reason)
        attempts = recorder.attempts(("rejected", "validation", reason, None))
        attempts = tuple(a.model_copy(update={"choices": n}) for a in attempts)
        return Failed("quality", "validation", reason, error, attempts)
    attempts = tuple(a.model_copy(update={"choices": n}) for a in recorder.attempts(None))
    return Answered(first.value, attempts, response, tuple(outcomes))


def _with_choices(recorder: Recorder) -> Any:
    """The last response if it came back with choices to read, else None."""
    response = recorder.pending[-1].get("response") if recorder.pending else None
    return response if getattr(response, "choices", None) else None


def _one_choice(
    model: Any,
    single: Any,
    choice: Any,
    context: Mapping[str, Any] | None,
    mode: Any,
    scrub_text: Callable[[str], str],
) -> TierCall:
    """One choice (a completion holding it alone) parsed into the response model."""
    from pydantic import ValidationError

    refusal = getattr(getattr(choice, "message", None), "refusal", None)
    if isinstance(refusal, str) and refusal:
        reason = f"the model refused: {short(refusal, 300)}"
        return Failed("quality", "refusal", reason, _Refused(reason), ())
    if getattr(choice, "finish_reason", None) == "length":
        reason = "the output was cut off at the token limit"
        return Failed("quality", "truncated", reason, _NoChoice(reason), ())
    try:
        value = model.from_response(single, validation_context=context, mode=mode)
    except ValidationError as error:
        reason = scrub_text(validation_reason(error))
        return Failed("quality", "validation", reason, error, ())
    except Exception as error:  # no tool call, no JSON: the choice is not an answer
        reason = scrub_text(f"{type(error).__name__}: {short(str(error), 300)}")
        return Failed("quality", "validation", reason, error, ())
    return Answered(value, ())


class _NoChoice(Exception):
    """The ``__cause__`` recorded for a choice that gave no answer."""
