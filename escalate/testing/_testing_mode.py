"""The test mode: retries happen without waiting, so a suite that exercises them runs fast.

Modelled on stamina's ``set_testing``: one process-wide switch, flipped once (in a
``conftest.py`` fixture) or for a ``with`` block. Everything else stays as in production:
the same requests are made, the same attempts are recorded, Retry-After still decides
whether a deployment is retried or left; only the sleeping is skipped (each skipped wait
is noted on the receipt).
"""

from __future__ import annotations

from types import TracebackType

from escalate._switches import TestingMode, set_testing_mode, testing_mode

__all__ = ["is_testing", "set_testing"]


class _Restore:
    """What :func:`set_testing` returns: used as a context manager, it puts the previous
    setting back when the ``with`` block ends."""

    def __init__(self, previous: TestingMode | None) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        set_testing_mode(self._previous)

    def __repr__(self) -> str:
        return f"<escalate test mode; restores {self._previous!r} on exit>"


def set_testing(testing: bool, *, attempts: int | None = None) -> _Restore:
    """Switch the test mode on (``True``) or off (``False``) for the whole process.

    On, provider failures are retried without sleeping between the requests (backoff
    and Retry-After waits are skipped, and noted on the receipt); ``attempts``, when
    given, caps the requests per deployment (``attempts=1``: no retries at all), below
    what each function's ``Retry`` allows. Every other decision is unchanged.

    A plain call leaves it switched; as a context manager it holds for the ``with``
    block and then puts back what was in force before::

        set_testing(True)                  # e.g. in a session fixture of conftest.py

        with set_testing(True, attempts=1):
            ...

    Unlike :func:`override`, it is process-wide, not per thread or task: threads that
    the code under test starts must not sleep either.
    """
    if not isinstance(testing, bool):
        raise TypeError(f"set_testing() takes True or False, got {testing!r}")
    if attempts is not None:
        if not testing:
            raise TypeError("set_testing(False) takes no attempts=")
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
            raise ValueError(f"set_testing(attempts=...) must be an int >= 1, got {attempts!r}")
    return _Restore(set_testing_mode(TestingMode(attempts) if testing else None))


def is_testing() -> bool:
    """Whether the test mode is on (see :func:`set_testing`)."""
    return testing_mode() is not None
