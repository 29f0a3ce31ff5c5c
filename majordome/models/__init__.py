"""Models: the catalogue, the providers behind one interface, and robust calls.

Providers: :mod:`~majordome.models.azure` (Azure AI Inference), :mod:`~majordome.models.openai_compat`
(any OpenAI-compatible endpoint, Azure OpenAI included), :mod:`~majordome.models.local`
(llama.cpp, the offline default). :mod:`~majordome.models.resilience` and
:mod:`~majordome.models.fallback` wrap them behind the same :class:`Model` interface.
"""

from majordome.models.base import Attempt, CallContext, Model, ModelRequest, ModelResponse, StreamChunk
from majordome.models.catalogue import Capability, Catalogue, ModelSpec
from majordome.models.fallback import FallbackModel
from majordome.models.messages import Message, Usage
from majordome.models.resilience import BreakerPolicy, CircuitBreaker, ResilientModel, RetryPolicy

__all__ = [
    "Attempt",
    "BreakerPolicy",
    "CallContext",
    "Capability",
    "Catalogue",
    "CircuitBreaker",
    "FallbackModel",
    "Message",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "ModelSpec",
    "ResilientModel",
    "RetryPolicy",
    "StreamChunk",
    "Usage",
]
