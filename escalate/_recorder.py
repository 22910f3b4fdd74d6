"""The per-request recorder: instructor's request hooks turned into one attempt record each.

One instructor ``Hooks`` object serves every call of a deployment; its handlers find the
call's :class:`Recorder` in the :data:`recording` context variable (each thread and task
has its own), so concurrent calls never mix their attempts and no hooks are built per call.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from escalate._failures import validation_reason
from escalate._providers import Provider
from escalate._receipt import Attempt, AttemptOutcome, Trigger

__all__ = ["AttemptBuilder", "Last", "Recorder", "recording", "shared_hooks"]

Last = tuple[AttemptOutcome, Trigger | None, str | None, int | None]
"""(outcome, trigger, reason, status) that stamps a call's final attempt."""

AttemptBuilder = Callable[
    [Mapping[str, Any], int, Any, Trigger | None, str | None, int | None], Attempt
]
"""(record, re-ask index, outcome, trigger, reason, status) -> the Attempt on the receipt."""

recording: contextvars.ContextVar[Recorder] = contextvars.ContextVar("escalate_recording")
"""The recorder of the tier call in progress in this thread or task (if any)."""

_ANSWERED = ("answered", None, None)
# A request that got no parsed response yet did not end the call: instructor retried it
# because the SDK raised a JSON error on a garbled body.
_GARBLED = ("provider_error", "bad_response", "the provider sent a body that does not parse")


def shared_hooks() -> Any:
    """One instructor ``Hooks`` whose handlers feed the recorder in :data:`recording`."""
    from instructor.core.hooks import Hooks

    hooks = Hooks()
    hooks.on("completion:kwargs", lambda *a, **k: recording.get().on_request())
    hooks.on("completion:response", lambda r, *a, **k: recording.get().on_response(r))
    hooks.on("parse:error", lambda e, *a, **k: recording.get().on_parse_error(e))
    return hooks


class Recorder:
    """Turns instructor's per-request hooks into one Attempt each.

    instructor turns ``response.usage`` into a running total in place, so usage is copied
    the moment each response arrives.
    """

    def __init__(self, provider: Provider, build_attempt: AttemptBuilder) -> None:
        self.provider = provider
        self.build_attempt = build_attempt
        self.pending: list[dict[str, Any]] = []

    @property
    def awaits_response(self) -> bool:
        """Whether the last request sent is still without a response."""
        return bool(self.pending) and self.pending[-1]["response"] is None

    def on_request(self, *args: Any, **kwargs: Any) -> None:
        """A request is about to go out."""
        self.pending.append(
            {"started": time.perf_counter(), "started_at": datetime.now(UTC), "response": None}
        )

    def on_response(self, response: Any, *args: Any, **kwargs: Any) -> None:
        """The raw response of the last request arrived."""
        record = self.pending[-1]
        record["latency"] = time.perf_counter() - record["started"]
        record["response"] = response
        # An SDK stream has an _iterator and no usage; its chunks carry model and usage.
        if hasattr(response, "_iterator") and not hasattr(response, "usage"):
            self._tap(record, response)
            return
        record["served_model"] = getattr(response, "model", None)
        record["usage"] = self.provider.usage(response)
        record["raw_output"] = self.provider.raw_output(response)

    def _tap(self, record: dict[str, Any], stream: Any) -> None:
        """Watch an SDK stream's chunks go by (instructor consumes them) for the served
        model and the usage; the latency is the time to the last chunk."""
        observe = self.provider.observe_chunk
        source = stream._iterator

        def timed() -> None:
            record["latency"] = time.perf_counter() - record["started"]

        if hasattr(source, "__anext__"):

            async def tapped_async() -> Any:
                async for chunk in source:
                    observe(record, chunk)
                    yield chunk
                timed()

            stream._iterator = tapped_async()
        else:

            def tapped() -> Any:
                for chunk in source:
                    observe(record, chunk)
                    yield chunk
                timed()

            stream._iterator = tapped()

    def on_parse_error(self, error: BaseException, *args: Any, **kwargs: Any) -> None:
        """The last response did not validate: instructor may re-ask."""
        self.pending[-1]["failure"] = ("rejected", "validation", validation_reason(error))

    def attempts(self, last: Last | None) -> tuple[Attempt, ...]:
        """The attempts so far; ``last`` stamps the final one when the call ended in an
        exception."""
        built = []
        for index, record in enumerate(self.pending):
            default = _ANSWERED if record["response"] is not None else _GARBLED
            outcome, trigger, reason = record.get("failure", default)
            status = None
            if index == len(self.pending) - 1 and last is not None:
                outcome, trigger, reason, status = last
            built.append(self.build_attempt(record, index, outcome, trigger, reason, status))
        return tuple(built)
