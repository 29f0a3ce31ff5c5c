"""majordome, "Le Majordome": understand each request, route it to the best model of a
catalogue, call it robustly, and account for what it cost.

    from majordome import Majordome, Request

    mj = Majordome.from_env()
    answer = mj.ask_sync(Request(messages=[{"role": "user", "content": "Hi!"}], tenant="creator_42"))
    print(answer.text, answer.model, answer.cost_usd)
"""

from majordome._client import Majordome, ModelInfo
from majordome._config import MajordomeConfig
from majordome._errors import (
    AllCandidatesFailed,
    BadRequestError,
    BudgetExceeded,
    CapabilityError,
    CircuitOpenError,
    ConfigurationError,
    ContextWindowExceeded,
    DeadlineExceeded,
    DeploymentAtQuota,
    MajordomeError,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
    StreamInterrupted,
    UnknownModelError,
)
from majordome._types import Answer, Completed, ReasoningDelta, Request, StreamEvent, TextDelta
from majordome.models.base import Attempt, Model, ModelRequest, ModelResponse, StreamChunk
from majordome.models.catalogue import Capability, Catalogue, ModelSpec
from majordome.models.messages import AudioPart, ImagePart, Message, TextPart, Usage
from majordome.models.resilience import BreakerPolicy, RetryPolicy
from majordome.router.decision import RoutingDecision

__version__ = "0.1.0"

__all__ = [
    "AllCandidatesFailed",
    "Answer",
    "Attempt",
    "AudioPart",
    "BadRequestError",
    "BreakerPolicy",
    "BudgetExceeded",
    "Capability",
    "CapabilityError",
    "Catalogue",
    "CircuitOpenError",
    "Completed",
    "ConfigurationError",
    "ContextWindowExceeded",
    "DeadlineExceeded",
    "DeploymentAtQuota",
    "ImagePart",
    "Majordome",
    "MajordomeConfig",
    "MajordomeError",
    "Message",
    "Model",
    "ModelInfo",
    "ModelRequest",
    "ModelResponse",
    "ModelSpec",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderRateLimited",
    "ProviderResponseError",
    "ProviderTimeout",
    "ReasoningDelta",
    "Request",
    "RetryPolicy",
    "RoutingDecision",
    "StreamChunk",
    "StreamEvent",
    "StreamInterrupted",
    "TextDelta",
    "TextPart",
    "UnknownModelError",
    "Usage",
    "__version__",
]
