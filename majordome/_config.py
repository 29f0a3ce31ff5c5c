"""Configuration: explicit arguments, then the environment, then a config file.

``MajordomeConfig.from_env()`` reads ``MAJORDOME_CONFIG`` (a TOML file with the fields below),
then the ``MAJORDOME_*`` variables in :data:`ENV_FIELDS`, then the keyword arguments given.
Everything is validated at construction; an error names the field or variable. Unknown
``MAJORDOME_*`` variables are refused (with a suggestion) rather than silently ignored.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from majordome._errors import ConfigurationError
from majordome._validation import configuration_error, did_you_mean
from majordome.models.catalogue import ENV_PREFIX as MODEL_ENV_PREFIX
from majordome.models.resilience import BreakerPolicy, RetryPolicy

__all__ = ["ENV_FIELDS", "MajordomeConfig"]

DEFAULT_DEADLINES_S = {
    "chat.suggest": 90.0,
    "content.suggest": 60.0,
    "content.analyze": 60.0,
    "video.analysis": 120.0,
}


class MajordomeConfig(BaseModel):
    """Everything majordome needs besides the catalogue's endpoints and keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    catalogue_file: Path | None = None
    policy_file: Path | None = None
    """The routing policy (TOML); the packaged one by default."""
    quality_model_file: Path | None = None
    """A trained quality model (``majordome router train``); the policy's priors by default."""
    offline: Literal["auto", "always", "never"] = "auto"
    """``auto``: with no endpoint configured at all, the local model serves every chat slot;
    ``always``: the local model serves every slot; ``never``: every enabled model needs its endpoint."""
    local_model_path: Path | None = None
    local_n_ctx: int = Field(default=4096, ge=512)
    local_threads: int | None = Field(default=None, ge=1)
    default_deadline_s: float = Field(default=60.0, gt=0)
    deadlines_s: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_DEADLINES_S))
    default_max_output_tokens: int = Field(default=1024, gt=0)
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    max_connections: int = Field(default=1000, ge=1)
    log_message_bodies: bool = False
    knowledge_path: Path | None = None
    """An embedded knowledge base (folder) to ground answers in; or pass ``knowledge=`` in code."""
    grounding_intents: tuple[str, ...] = (
        "fan_reply",
        "sales_message",
        "content_ideas",
        "caption_writing",
        "content_analysis",
        "general_help",
    )
    """Intents whose answers are grounded by default (a request's ``ground`` overrides)."""
    grounding_k: int = Field(default=6, ge=1, le=50)
    grounding_budget_tokens: int = Field(default=1500, ge=100)
    grounding_diversity: float = Field(default=0.0, ge=0.0, le=1.0)
    """MMR diversity of the grounding chunks (0: by relevance alone)."""
    grounding_boost: float = Field(default=0.0, ge=0.0)
    """Weight of the performance boost (conversions, revenue, score) on grounding chunks; 0 = off."""
    feedback_store: str | None = None
    """Where decisions, calls, costs and feedback are recorded: an SQLite file path or a
    PostgreSQL DSN; or pass ``feedback=`` in code. None: nothing is recorded."""
    redis_url: str | None = None
    """Budgets shared by every worker (Redis); in-process budgets without it."""
    budget_daily_usd: float | None = Field(default=None, ge=0)
    budget_monthly_usd: float | None = Field(default=None, ge=0)
    """Default caps per tenant (USD); ``budgets`` sets them per tenant."""
    budgets: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Per-tenant caps: ``{tenant: {daily_usd: …, monthly_usd: …}}``."""
    budget_free_model: str | None = None
    """A catalogue model that costs nothing here (a self-hosted one): served when a tenant's
    budget is spent, instead of refusing with BudgetExceeded."""
    learn_from_feedback: bool = True
    explore_share: float = Field(default=0.25, ge=0.0, le=1.0)
    """Largest share of requests routed by a posterior sample (exploration) rather than the mean."""
    sensitive_intents: tuple[str, ...] = ()
    """Intents never explored."""
    record_prompts: bool = True
    """Keep prompts and answers in the feedback store (the outcome export and edit feedback need them)."""
    response_cache: Literal["off", "memory", "redis"] = "off"
    """Serve identical requests again from a cache (TTL per intent; never across tenants): in this
    process, or shared through ``redis_url``. Off by default: a repeated request calls a model."""
    semantic_cache_threshold: float | None = Field(default=None, gt=0, le=1)
    """With ``response_cache`` on, also answer a request from the cache when an earlier one of the
    same tenant, intent, language and context (everything but the last user message) had a last
    message at least this similar (cosine) and passes the guard (:func:`~majordome.cache.strict_guard_of`:
    the same content words in the same order, numbers, dates, negations and names; only filler,
    politeness and spelling may differ). None (default): exact matches only. Measured on the 700
    labelled pairs of ``benchmarks/data/semantic_pairs.jsonl`` (docs/BENCHMARKS.md §12): 0.5
    (chosen on one half) served 8 % of the other half's paraphrases and none of its 174 hard
    negatives, with either embedder; without the content-word guard no threshold kept false
    hits under 1 %."""
    semantic_cache_embedder: str = "router"
    """What embeds messages for semantic lookup: ``router`` (the router's own embedding of the
    message, no extra cost), ``default`` (the offline all-MiniLM-L6-v2), or a
    sentence-transformers model name."""
    deployment_quotas: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Per catalogue model: ``{"rpm": …, "tpm": …}`` requests and tokens a minute its deployment
    allows; a call waits briefly for room, else the next candidate answers (shared through
    ``redis_url``)."""
    quota_window_s: float = Field(default=60.0, gt=0)
    """The window of ``deployment_quotas`` (a minute; shorter only to test or benchmark them)."""
    rate_limit_per_user_per_minute: int | None = Field(default=None, ge=1)
    rate_limit_per_tenant_per_minute: int | None = Field(default=None, ge=1)
    """Library-level rate limits (``RateLimited`` with the retry time); shared through ``redis_url``."""

    def deadline_for(self, job_type: str | None) -> float:
        if job_type is None:
            return self.default_deadline_s
        return self.deadlines_s.get(job_type, self.default_deadline_s)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> MajordomeConfig:
        """Config file (``MAJORDOME_CONFIG``), then environment, then ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        config_file = env.get("MAJORDOME_CONFIG")
        if config_file:
            values.update(_read_toml(Path(config_file)))
        values.update(_from_variables(env))
        values.update(overrides)
        return cls.checked(values, source=f"configuration ({config_file or 'environment'})")

    @classmethod
    def checked(cls, values: Mapping[str, Any], *, source: str = "configuration") -> MajordomeConfig:
        """Validate ``values``, turning pydantic's errors into one :class:`ConfigurationError`."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            raise configuration_error(exc, cls.model_fields, source) from exc


ENV_FIELDS: dict[str, str] = {
    "MAJORDOME_CATALOGUE": "catalogue_file",
    "MAJORDOME_POLICY": "policy_file",
    "MAJORDOME_QUALITY_MODEL": "quality_model_file",
    "MAJORDOME_OFFLINE": "offline",
    "MAJORDOME_LOCAL_MODEL_PATH": "local_model_path",
    "MAJORDOME_LOCAL_N_CTX": "local_n_ctx",
    "MAJORDOME_LOCAL_THREADS": "local_threads",
    "MAJORDOME_DEFAULT_DEADLINE_S": "default_deadline_s",
    "MAJORDOME_DEFAULT_MAX_OUTPUT_TOKENS": "default_max_output_tokens",
    "MAJORDOME_MAX_CONNECTIONS": "max_connections",
    "MAJORDOME_LOG_MESSAGE_BODIES": "log_message_bodies",
    "MAJORDOME_KB_PATH": "knowledge_path",
    "MAJORDOME_FEEDBACK_STORE": "feedback_store",
    "MAJORDOME_REDIS_URL": "redis_url",
    "MAJORDOME_BUDGET_DAILY_USD": "budget_daily_usd",
    "MAJORDOME_BUDGET_MONTHLY_USD": "budget_monthly_usd",
    "MAJORDOME_EXPLORE_SHARE": "explore_share",
    "MAJORDOME_RESPONSE_CACHE": "response_cache",
}
# Read elsewhere (not configuration of a Majordome): accepted, not refused as typos.
_OTHER_VARIABLES = {
    "MAJORDOME_CONFIG",
    "MAJORDOME_DATA_DIR",
    "MAJORDOME_CACHE_DIR",
    "MAJORDOME_QDRANT_URL",
    "MAJORDOME_QDRANT_API_KEY",
    "MAJORDOME_KB_EMBEDDER",
    "MAJORDOME_TEST_POSTGRES_DSN",
    "MAJORDOME_TEST_REDIS_URL",
}


def _from_variables(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    known = set(ENV_FIELDS) | _OTHER_VARIABLES
    for name, value in env.items():
        if not name.startswith("MAJORDOME_") or name.startswith(MODEL_ENV_PREFIX):
            continue
        if name in ENV_FIELDS:
            values[ENV_FIELDS[name]] = value
        elif name not in known:
            raise ConfigurationError(f"unknown environment variable {name}{did_you_mean(name, known)}")
    return values


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"MAJORDOME_CONFIG: cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"MAJORDOME_CONFIG: {path} is not valid TOML: {exc}") from exc
