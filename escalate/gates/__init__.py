"""Gates: checks on a well-formed answer that decide whether it is good enough.

A gate is any callable, sync or async, taking ``(answer, context)``: it passes by
returning ``None`` or a score (a finite number the receipt keeps under the gate's name),
and rejects by raising :class:`Rejected` with a reason that reaches the receipt verbatim.
The protocol, with the optional capabilities a gate may carry (sampling, a follow-up
question, tier and response-model checks), is in :mod:`escalate.gates._protocol`.

Built in, one room per family (each documented in docs/gates.md):

- mechanical, free: ``min_length``, ``max_length``, ``not_empty`` (``_lengths``);
  ``cites``, ``known_ids`` (``_references``); ``not_refusal``, ``not_hedging``
  (``_phrases``); ``complete`` (``_complete``); the field paths they share (``_fields``);
- confidence: ``logprob_confidence`` (``_logprob``), ``self_reported``
  (``_self_report``), ``asked_confidence`` (``_followup``), ``consistency``
  (``_consistency``).

Gates given to ``@escalating(gates=[...])`` run on every tier; ``Tier(gates=[...])`` adds
gates for one tier.
"""

from escalate.gates._complete import complete
from escalate.gates._consistency import Variant, consistency, vote_key
from escalate.gates._followup import asked_confidence
from escalate.gates._lengths import max_length, min_length, not_empty
from escalate.gates._logprob import logprob_confidence
from escalate.gates._phrases import DEFAULT_HEDGES, DEFAULT_REFUSALS, not_hedging, not_refusal
from escalate.gates._protocol import Gate, GateContext, Rejected, gate_name, is_async_gate
from escalate.gates._references import cites, known_ids
from escalate.gates._self_report import self_reported

__all__ = [
    "DEFAULT_HEDGES",
    "DEFAULT_REFUSALS",
    "Gate",
    "GateContext",
    "Rejected",
    "Variant",
    "asked_confidence",
    "cites",
    "complete",
    "consistency",
    "gate_name",
    "is_async_gate",
    "known_ids",
    "logprob_confidence",
    "max_length",
    "min_length",
    "not_empty",
    "not_hedging",
    "not_refusal",
    "self_reported",
    "vote_key",
]
