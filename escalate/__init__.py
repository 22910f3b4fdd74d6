"""escalate: start every LLM call on the cheapest model that might do, check the answer,
escalate only when it fails, and keep a receipt of what it cost and why.

>>> from escalate import escalating, receipt_of
"""

import importlib.metadata as _metadata

from escalate._adaptive import AdaptiveStart
from escalate._audit import Audit
from escalate._background import aflush as audits_aflush
from escalate._background import flush as audits_flush
from escalate._background import stats as audits_stats
from escalate._breaker import Breaker, set_breakers
from escalate._config import Tier
from escalate._decorator import escalating
from escalate._pricing import Price
from escalate._receipt import (
    SCHEMA_VERSION,
    Adaptive,
    Attempt,
    AuditVerdict,
    Move,
    Receipt,
    Route,
)
from escalate._results import Text, awith_receipt, receipt_of, with_receipt
from escalate._retry import Retry
from escalate._routing import options
from escalate._self_escalation import SelfEscalation, SelfEscalationRequest
from escalate._storing import configure, feedback, flush
from escalate._storing import from_environment as _from_environment
from escalate._storing import stats as store_stats
from escalate.exceptions import (
    AllTiersFailed,
    BreakerOpen,
    BudgetExceeded,
    ConfigurationError,
    EscalateError,
    EscalationFailed,
    ProviderCallBlocked,
    ProviderExhausted,
    SamplingCostWarning,
)

try:
    __version__ = _metadata.version("escalate")
except (
    _metadata.PackageNotFoundError
):  # pragma: no cover - running from a source tree not installed
    __version__ = "0.0.0"

__all__ = [
    "SCHEMA_VERSION",
    "Adaptive",
    "AdaptiveStart",
    "AllTiersFailed",
    "Attempt",
    "Audit",
    "AuditVerdict",
    "Breaker",
    "BreakerOpen",
    "BudgetExceeded",
    "ConfigurationError",
    "EscalateError",
    "EscalationFailed",
    "Move",
    "Price",
    "ProviderCallBlocked",
    "ProviderExhausted",
    "Receipt",
    "Retry",
    "Route",
    "SamplingCostWarning",
    "SelfEscalation",
    "SelfEscalationRequest",
    "Text",
    "Tier",
    "__version__",
    "audits_aflush",
    "audits_flush",
    "audits_stats",
    "awith_receipt",
    "configure",
    "escalating",
    "feedback",
    "flush",
    "options",
    "receipt_of",
    "set_breakers",
    "store_stats",
    "with_receipt",
]

_from_environment()
