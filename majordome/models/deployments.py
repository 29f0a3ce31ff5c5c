"""Turn the catalogue and the environment into callable deployments, one per chat slot.

Each enabled chat model gets a provider for its ``api`` with the endpoint and key read from the
variables its entry names, wrapped in a :class:`ResilientModel` with its own circuit breaker.
When no endpoint is configured at all (``offline="auto"``) or when asked (``offline="always"``),
the local llama.cpp model serves every chat slot instead; the deployment then says so
(``substituted``), costs nothing, and offers only what the local model can do.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import util as importlib_util
from pathlib import Path
from typing import Any, Literal

from majordome._errors import ConfigurationError
from majordome._logging import register_endpoint, register_secret
from majordome.models.base import Model
from majordome.models.catalogue import Capability, Catalogue, ModelSpec
from majordome.models.resilience import BreakerPolicy, CircuitBreaker, ResilientModel, RetryPolicy

__all__ = ["Deployment", "DeploymentSettings", "build_deployments"]

_LOCAL_CAPABILITIES = frozenset({Capability.TEXT, Capability.JSON_MODE})


@dataclass(frozen=True)
class DeploymentSettings:
    """The parts of the configuration that shape deployments."""

    offline: Literal["auto", "always", "never"] = "auto"
    local_model_path: Path | None = None
    local_n_ctx: int = 4096
    local_threads: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    max_connections: int = 1000
    throttle: Any = None  # a majordome.quotas.Throttle shared by every deployment, or None


@dataclass(frozen=True)
class Deployment:
    """A chat slot ready to call. ``spec`` is what this deployment really is (prices,
    capabilities, window); ``slot`` is the catalogue entry it serves."""

    slot: ModelSpec
    spec: ModelSpec
    model: ResilientModel
    substituted: bool
    remote: bool = False  # served by its own endpoint (not the local model, not a provider given in code)

    @property
    def id(self) -> str:
        return self.slot.id


def build_deployments(
    catalogue: Catalogue,
    settings: DeploymentSettings,
    env: Mapping[str, str],
    overrides: Mapping[str, Model] | None = None,
    rng: random.Random | None = None,
) -> dict[str, Deployment]:
    """One :class:`Deployment` per enabled chat slot; raises :class:`ConfigurationError` when a
    slot cannot be served (missing endpoint or key, missing local model)."""
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(catalogue) - {"*"}
    if unknown:
        raise ConfigurationError(f"providers given for unknown model(s) {sorted(unknown)}; known: {list(catalogue)}")
    enabled = [spec for spec in catalogue.values() if spec.enabled]
    endpoints = {spec.id: _endpoint(spec, env) for spec in enabled}
    for spec in enabled:
        register_endpoint(endpoints[spec.id])
    # Providers given in code (tests, custom models) take their slots first; "auto" means: no
    # endpoint anywhere, so this is the embedded default and the local model serves the rest.
    local_everywhere = settings.offline == "always" or (settings.offline == "auto" and not any(endpoints.values()))
    if not local_everywhere:
        missing = [
            spec
            for spec in enabled
            if not endpoints[spec.id] and spec.api != "local" and spec.id not in overrides and "*" not in overrides
        ]
        if missing:
            raise ConfigurationError(
                "enabled model(s) without endpoint: "
                + "; ".join(f"{s.id} (set {s.endpoint_env or f'models.{s.id}.endpoint'})" for s in missing)
                + ". Disable a model with MAJORDOME_MODEL__<ID>__ENABLED=false, or serve every slot with the "
                "local model with MAJORDOME_OFFLINE=always"
            )
    breakers: dict[str, CircuitBreaker] = {}

    def breaker(key: str) -> CircuitBreaker:
        if key not in breakers:
            breakers[key] = CircuitBreaker(settings.breaker)
        return breakers[key]

    engine: Any = None
    deployments: dict[str, Deployment] = {}
    for slot in enabled:
        if slot.kind != "chat":
            continue  # transcription is not a chat deployment
        provider = overrides.get(slot.id) or overrides.get("*")
        spec, substituted, remote = slot, False, False
        if provider is not None:
            key = f"override:{slot.id}"
        elif local_everywhere or slot.api == "local":
            if engine is None:
                engine = _local_engine(settings)
            from majordome.models.local import LocalModel

            provider, key = LocalModel(engine), "local"
            substituted = slot.api != "local"
            spec = _as_local(slot, engine.n_ctx) if substituted else slot
        else:
            endpoint = endpoints[slot.id]
            assert endpoint is not None
            provider = _remote_provider(slot, endpoint, env, settings.max_connections)
            key = f"{slot.api}:{endpoint}:{slot.deployment}"
            remote = True
        model = ResilientModel(
            provider, spec, retry=settings.retry, breaker=breaker(key), rng=rng, throttle=settings.throttle
        )
        deployments[slot.id] = Deployment(slot=slot, spec=spec, model=model, substituted=substituted, remote=remote)
    return deployments


def _endpoint(spec: ModelSpec, env: Mapping[str, str]) -> str | None:
    if spec.endpoint:
        return spec.endpoint
    if spec.endpoint_env:
        return env.get(spec.endpoint_env) or None
    return None


def _local_engine(settings: DeploymentSettings) -> Any:
    from majordome.models.local import LocalEngine

    return LocalEngine(settings.local_model_path, n_ctx=settings.local_n_ctx, n_threads=settings.local_threads)


def _as_local(slot: ModelSpec, n_ctx: int) -> ModelSpec:
    window = min(slot.window, n_ctx)
    return slot.model_copy(
        update={
            "price_input_per_mtok": 0.0,
            "price_output_per_mtok": 0.0,
            "context_window": window,
            "max_output_tokens": min(slot.output_cap, window // 2),
            "expected_output_tokens": min(slot.expected_output_tokens, window // 4),
            "capabilities": slot.capabilities & _LOCAL_CAPABILITIES,
        }
    )


def _api_key(spec: ModelSpec, env: Mapping[str, str]) -> str | None:
    key = env.get(spec.api_key_env) if spec.api_key_env else None
    register_secret(key)
    return key or None


def _entra_available() -> bool:
    return importlib_util.find_spec("azure.identity") is not None


def _credential_factory(spec: ModelSpec, env: Mapping[str, str]) -> Callable[[], Any]:
    """Key credential, or Entra ID (managed identity, workload identity, CLI...) without a key."""
    key = _api_key(spec, env)
    wants_key = spec.auth == "key" or (spec.auth == "auto" and (key or not _entra_available()))
    if wants_key:
        if not key:
            raise ConfigurationError(
                f"model {spec.id}: no API key; set {spec.api_key_env or f'models.{spec.id}.api_key_env'}"
                + ("" if _entra_available() else " (or install azure-identity to use Entra ID)")
            )
        from azure.core.credentials import AzureKeyCredential

        return lambda: AzureKeyCredential(key)
    if spec.auth == "none":
        raise ConfigurationError(f"model {spec.id}: auth 'none' is not possible with {spec.api}")
    if not _entra_available():
        raise ConfigurationError(f"model {spec.id}: auth 'entra' needs azure-identity (pip install azure-identity)")

    def entra() -> Any:
        from azure.identity.aio import DefaultAzureCredential

        return DefaultAzureCredential()

    return entra


def _remote_provider(spec: ModelSpec, endpoint: str, env: Mapping[str, str], max_connections: int) -> Model:
    if spec.api == "azure-ai-inference":
        from majordome.models.azure import AzureAIInferenceModel

        return AzureAIInferenceModel(
            model_id=spec.id,
            deployment=spec.deployment,
            endpoint=endpoint,
            credential_factory=_credential_factory(spec, env),
            api_version=spec.api_version,
            max_connections=max_connections,
        )
    from majordome.models.openai_compat import OpenAICompatibleModel

    if spec.api == "azure-openai":
        key = _api_key(spec, env)
        token_provider = None
        if not key or spec.auth == "entra":
            token_provider = _entra_token_provider(spec, endpoint)
        return OpenAICompatibleModel(
            model_id=spec.id,
            deployment=spec.deployment,
            base_url=endpoint,
            api_key=None if token_provider else key,
            azure_api_version=spec.api_version or "2024-10-21",
            token_provider=token_provider,
            max_connections=max_connections,
        )
    if spec.api == "openai":
        key = _api_key(spec, env)
        if spec.auth == "key" and not key:
            raise ConfigurationError(f"model {spec.id}: no API key; set {spec.api_key_env}")
        return OpenAICompatibleModel(
            model_id=spec.id,
            deployment=spec.deployment,
            base_url=endpoint,
            api_key=key,
            max_connections=max_connections,
        )
    raise ConfigurationError(f"model {spec.id}: api {spec.api!r} is not a chat API")


def _entra_token_provider(spec: ModelSpec, endpoint: str) -> Callable[[], Any]:
    if spec.auth == "key" or not _entra_available():
        raise ConfigurationError(
            f"model {spec.id}: no API key; set {spec.api_key_env or f'models.{spec.id}.api_key_env'}"
            " or use Entra ID (auth = 'entra', with azure-identity installed)"
        )
    from majordome.models._wire import PerLoop
    from majordome.models.azure import default_entra_scope

    scope = default_entra_scope(endpoint)

    def make() -> Any:
        from azure.identity.aio import DefaultAzureCredential

        return DefaultAzureCredential()

    credentials: PerLoop[Any] = PerLoop(make)

    async def token() -> str:
        access = await credentials.get().get_token(scope)
        return str(access.token)

    return token
