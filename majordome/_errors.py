"""The exception tree of majordome.

Every error majordome raises on purpose derives from :class:`MajordomeError`; third-party
errors (SDKs, HTTP clients, pydantic) are translated at the boundary, the original kept as
``__cause__``::

    MajordomeError
    ├── ConfigurationError          bad or missing configuration; names the field or variable
    ├── BadRequestError             the request cannot be served as given (also a ValueError)
    │   ├── UnknownModelError       a model name outside the catalogue; lists the known ones
    │   ├── CapabilityError         e.g. an image sent to a text-only model; refused before any call
    │   └── ContextWindowExceeded   prompt + expected output larger than every candidate's window
    ├── ProviderError               one call to one deployment failed
    │   ├── ProviderHTTPError       a non-2xx answer (``status_code``)
    │   │   └── ProviderRateLimited 429, with ``retry_after`` seconds when the server said
    │   ├── ProviderTimeout         no (complete) answer within the attempt's timeout
    │   ├── ProviderConnectionError connection refused, reset or broken
    │   ├── ProviderResponseError   an answer that is not what the wire format promises
    │   ├── CircuitOpenError        the deployment's circuit breaker is open; no call was made
    │   ├── DeploymentAtQuota       the client-side quota (deployment_quotas) had no room in time; no call was made
    │   └── StreamInterrupted       a stream broke after its first token; carries the partial text
    ├── AllCandidatesFailed         every candidate model failed; ``causes`` holds each failure
    ├── DeadlineExceeded            the request's deadline passed; ``causes`` holds what failed so far
    └── BudgetExceeded              the tenant's budget cannot pay for the request

The feedback package adds its own, under the same base (``majordome.feedback``):
``BudgetUnavailable`` (a budget check that could not be made: fails closed), ``StoreError`` with
``StoreUnavailable`` / ``StoreRejected`` (the event store), ``EventDecodeError`` (a bad spilled
or serialised event), ``WriterClosed``, and ``UnknownTrace`` (a ``BadRequestError``: feedback
for a trace never recorded).

Messages never contain API keys or endpoint URLs: providers build them from status codes,
deployment names and error classes only.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AllCandidatesFailed",
    "BadRequestError",
    "BudgetExceeded",
    "CapabilityError",
    "CircuitOpenError",
    "ConfigurationError",
    "ContextWindowExceeded",
    "DeadlineExceeded",
    "DeploymentAtQuota",
    "MajordomeError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderRateLimited",
    "ProviderResponseError",
    "ProviderTimeout",
    "StreamInterrupted",
    "UnknownModelError",
]


class MajordomeError(Exception):
    """Base class of every error majordome raises."""


class ConfigurationError(MajordomeError):
    """The configuration (arguments, environment, files) is invalid or incomplete."""


class BadRequestError(MajordomeError, ValueError):
    """The request is invalid; retrying it unchanged will fail the same way."""


class UnknownModelError(BadRequestError):
    """A model name that is not in the catalogue."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = tuple(known)
        super().__init__(f"unknown model {name!r}; known models: {', '.join(self.known)}")


class CapabilityError(BadRequestError):
    """The request needs a capability (image input, audio input, JSON mode...) no candidate has."""


class ContextWindowExceeded(BadRequestError):
    """The prompt plus the expected output do not fit any candidate's context window."""

    def __init__(self, message: str, *, prompt_tokens: int, output_tokens: int, largest_window: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.output_tokens = output_tokens
        self.largest_window = largest_window
        super().__init__(message)


class ProviderError(MajordomeError):
    """One call to one model deployment failed.

    ``model`` is the catalogue id, ``deployment`` the deployment name; ``retryable`` says whether
    the same call may succeed if repeated (429, 5xx, timeouts, connection errors).
    """

    retryable: bool = False

    def __init__(self, message: str, *, model: str = "", deployment: str = "") -> None:
        self.model = model
        self.deployment = deployment
        super().__init__(message)


class ProviderHTTPError(ProviderError):
    """The provider answered with a non-2xx status."""

    def __init__(self, message: str, *, status_code: int, model: str = "", deployment: str = "") -> None:
        self.status_code = status_code
        self.retryable = status_code >= 500 or status_code in (408, 409, 429)
        super().__init__(message, model=model, deployment=deployment)


class ProviderRateLimited(ProviderHTTPError):
    """429: the deployment is over its quota. ``retry_after`` in seconds when the server said."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, model: str = "", deployment: str = ""
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status_code=429, model=model, deployment=deployment)


class DeploymentAtQuota(ProviderError):
    """The deployment's quota (``deployment_quotas``, this library's own throttle) had no room for
    the call within the wait allowed: no request was sent, and the fallback chain moves on. Not a
    429 from the provider (``status_code`` is absent on the attempt). ``retry_after``: seconds
    until it would have had room."""

    def __init__(self, message: str, *, retry_after: float, model: str = "", deployment: str = "") -> None:
        self.retry_after = retry_after
        super().__init__(message, model=model, deployment=deployment)


class ProviderTimeout(ProviderError):
    """The attempt's timeout passed before a (complete) answer arrived."""

    retryable = True


class ProviderConnectionError(ProviderError):
    """The connection could not be made, or broke before the answer was complete."""

    retryable = True


class ProviderResponseError(ProviderError):
    """The provider answered 2xx with something the wire format does not allow (broken JSON, no choices)."""


class CircuitOpenError(ProviderError):
    """The deployment's circuit breaker is open: recent calls failed, so none was made."""

    def __init__(self, message: str, *, reopens_in: float, model: str = "", deployment: str = "") -> None:
        self.reopens_in = reopens_in
        super().__init__(message, model=model, deployment=deployment)


class StreamInterrupted(ProviderError):
    """A stream failed after its first token; ``partial_text`` is what had been received."""

    def __init__(self, message: str, *, partial_text: str, model: str = "", deployment: str = "") -> None:
        self.partial_text = partial_text
        super().__init__(message, model=model, deployment=deployment)


def _summarise(causes: Sequence[tuple[str, MajordomeError]]) -> str:
    return "; ".join(f"{model}: {type(err).__name__}: {err}" for model, err in causes) or "no candidate was tried"


class AllCandidatesFailed(MajordomeError):
    """Every candidate model failed. ``causes`` lists ``(model, error)`` in the order tried."""

    def __init__(self, causes: Sequence[tuple[str, MajordomeError]]) -> None:
        self.causes = tuple(causes)
        super().__init__(f"all {len(self.causes)} candidate model(s) failed: {_summarise(self.causes)}")


class DeadlineExceeded(MajordomeError):
    """The request's deadline passed. ``causes`` lists the failures seen before it did."""

    def __init__(self, deadline_s: float, causes: Sequence[tuple[str, MajordomeError]] = ()) -> None:
        self.deadline_s = deadline_s
        self.causes = tuple(causes)
        detail = f"; before that: {_summarise(self.causes)}" if self.causes else ""
        super().__init__(f"deadline of {deadline_s:g} s exceeded{detail}")


class BudgetExceeded(MajordomeError):
    """The tenant's remaining budget cannot pay for the request."""

    def __init__(self, message: str, *, tenant: str = "", remaining_usd: float | None = None) -> None:
        self.tenant = tenant
        self.remaining_usd = remaining_usd
        super().__init__(message)
