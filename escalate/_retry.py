"""How provider failures are retried on one deployment: tenacity's own decision machine.

The engine feeds tenacity the outcomes and turns its ``DoSleep`` into a ``Sleep`` step, so
backoff, jitter, stop conditions and ``Retry-After`` are tenacity's while the sleeping
stays with the face that performs the steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import tenacity

from escalate._outcomes import Failed
from escalate.exceptions import ConfigurationError

__all__ = ["Retry", "Transient", "asked_too_long"]


@dataclass(frozen=True, kw_only=True)
class Retry:
    """How provider failures are retried on one deployment before moving sideways.

    ``attempts`` counts requests, the first included. Waits grow exponentially from
    ``initial`` to ``max`` seconds with up to ``jitter`` seconds of jitter; a Retry-After
    from the provider is honoured instead, unless it asks for more than
    ``max_retry_after`` seconds, in which case the deployment is left at once.
    """

    attempts: int = 3
    initial: float = 0.5
    max: float = 8.0
    jitter: float = 0.5
    max_retry_after: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ConfigurationError(f"Retry.attempts must be an int >= 1, got {self.attempts!r}")
        for name in ("initial", "max", "jitter", "max_retry_after"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ConfigurationError(f"Retry.{name} must be a number >= 0, got {value!r}")

    def retrying(self, *, cap: int | None = None) -> tenacity.Retrying:
        """A fresh tenacity state machine (they hold per-run state, so one per run);
        ``cap`` lowers ``attempts`` (the test mode's ``attempts=``)."""
        attempts = self.attempts if cap is None else min(self.attempts, cap)
        fallback = tenacity.wait_exponential_jitter(
            multiplier=self.initial, max=self.max, jitter=self.jitter
        )
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts) | _RetryAfterTooLong(self),
            wait=_WaitRetryAfter(fallback),
            retry=tenacity.retry_if_exception_type(Transient),
            reraise=True,
        )


def asked_too_long(failed: Failed, policy: Retry) -> bool:
    """Whether the provider's Retry-After asks for longer than the policy waits."""
    return failed.retry_after is not None and failed.retry_after > policy.max_retry_after


class Transient(Exception):
    """Carries a provider failure through tenacity's machinery."""

    def __init__(self, failed: Failed) -> None:
        super().__init__(failed.reason)
        self.failed = failed


def _retry_after_of(state: tenacity.RetryCallState) -> float | None:
    error = state.outcome.exception() if state.outcome is not None else None
    return error.failed.retry_after if isinstance(error, Transient) else None


@dataclass(frozen=True)
class _WaitRetryAfter(tenacity.wait.wait_base):
    fallback: tenacity.wait.wait_base

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        asked = _retry_after_of(retry_state)
        return asked if asked is not None else self.fallback(retry_state)


@dataclass(frozen=True)
class _RetryAfterTooLong(tenacity.stop.stop_base):
    policy: Retry

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        asked = _retry_after_of(retry_state)
        return asked is not None and asked > self.policy.max_retry_after
