"""escalate: start every LLM call on the cheapest model that might do, check the answer,
escalate only when it fails, and keep a receipt of what it cost and why.

>>> from escalate import escalating, receipt_of
"""

from escalate._decorator import escalating
from escalate._engine import Retry
from escalate._option import DEFAULT_POLICY, EscalationOption, EscalationRequest
from escalate._pricing import Price
from escalate._receipt import Attempt, Move, Receipt, receipt_of
from escalate._routing import options
from escalate._tiers import Tier
from escalate.exceptions import (
    AllTiersFailed,
    BudgetExceeded,
    ConfigurationError,
    EscalateError,
    EscalationFailed,
    ProviderCallBlocked,
    ProviderExhausted,
)

__all__ = [
    "DEFAULT_POLICY",
    "AllTiersFailed",
    "Attempt",
    "BudgetExceeded",
    "ConfigurationError",
    "EscalateError",
    "EscalationFailed",
    "EscalationOption",
    "EscalationRequest",
    "Move",
    "Price",
    "ProviderCallBlocked",
    "ProviderExhausted",
    "Receipt",
    "Retry",
    "Tier",
    "escalating",
    "options",
    "receipt_of",
]
