"""What a response says for itself, read before instructor's error is believed.

A body that is not JSON at all is the provider's failure and a refusal is the model's own,
whatever instructor made of them; :meth:`escalate._deployment.Deployment.failed` asks here
first (:func:`_from_response`), and the n-choices reading (:mod:`escalate._choices`) records
its refusals with the same ``__cause__`` (:class:`_Refused`).
"""

from __future__ import annotations

from typing import Any

from escalate._failures import Classified, short
from escalate._recorder import Recorder

__all__ = ["_NotJson", "_Refused", "_from_response", "_mid_stream"]


def _from_response(recorder: Recorder) -> Classified | None:
    """What the last response itself says, where instructor's error would mislead: a body
    that is not JSON at all (a proxy's HTML page, which the SDKs hand over as text) is the
    provider's failure, not a bad answer; a refusal is the model's own quality failure."""
    response = recorder.pending[-1].get("response") if recorder.pending else None
    if isinstance(response, (str, bytes)):
        reason = f"the provider sent a body that is not JSON: {short(str(response), 200)!r}"
        return Classified("provider", "provider_error", "bad_response", reason, _NotJson(reason))
    refusal = _refusal(response)
    if refusal is not None:
        reason = f"the model refused: {short(refusal, 300)}"
        return Classified("quality", "rejected", "refusal", reason, _Refused(reason))
    return None


def _mid_stream(recorder: Recorder) -> bool:
    # A stream's headers arrived (its record has the response) and then its body broke:
    # the failure is that request's, not another one's.
    response = recorder.pending[-1].get("response") if recorder.pending else None
    return hasattr(response, "_iterator")


def _refusal(response: Any) -> str | None:
    choices = getattr(response, "choices", None)
    if not choices:
        return None
    refusal = getattr(getattr(choices[0], "message", None), "refusal", None)
    return refusal if isinstance(refusal, str) and refusal else None


class _NotJson(Exception):
    """The ``__cause__`` recorded for a response body that is not JSON."""


class _Refused(Exception):
    """The ``__cause__`` recorded for a model's refusal."""
