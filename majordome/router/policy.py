"""The routing policy: intents, quality priors, the cost and latency weights, tiers and tenants.

Loaded from the packaged ``policy.toml`` or a user file (``MAJORDOME_POLICY``), validated with
errors that name the file and the field; checked against the catalogue when a router is built.
A policy is immutable: swapping it (``Router.set_policy``) replaces one reference, so requests
in flight finish with the policy they started with.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from majordome._errors import ConfigurationError
from majordome._validation import configuration_error, did_you_mean
from majordome.router.intents import INTENTS

__all__ = ["IntentSpec", "Policy", "TenantSpec", "TierSpec"]

_DEFAULT_KEY = "_default"


class IntentSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    description: str = Field(min_length=1)
    expected_output_tokens: int = Field(default=300, gt=0)
    sensitive: bool = False


class TierSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    allowed: tuple[str, ...] | None = None
    lambda_usd: float | None = Field(default=None, ge=0)
    mu_per_s: float | None = Field(default=None, ge=0)


class TenantSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    tier: str | None = None
    lambda_usd: float | None = Field(default=None, ge=0)


class Policy(BaseModel):
    """See ``policy.toml`` for the meaning of each field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(min_length=1)
    lambda_usd: float = Field(ge=0)
    mu_per_s: float = Field(ge=0)
    max_fallbacks: int = Field(default=2, ge=0)
    default_tier: str = "standard"
    default_prior: float = Field(default=0.6, ge=0, le=1)
    intent_threshold: float | None = Field(default=None, ge=0, le=1)
    llm_classifier: Literal["auto", "on", "off"] = "auto"
    priors: dict[str, dict[str, float]] = Field(default_factory=dict)
    language_bonus: dict[str, dict[str, float]] = Field(default_factory=dict)
    intents: dict[str, IntentSpec]
    job_intents: dict[str, str] = Field(default_factory=dict)
    tiers: dict[str, TierSpec] = Field(default_factory=lambda: {"standard": TierSpec()})
    tenants: dict[str, TenantSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        missing = [i for i in INTENTS if i not in self.intents]
        if missing:
            raise ValueError(f"intents: the platform's intents {missing} are missing (ids may be added, never removed)")
        for intent, table in self.priors.items():
            if intent != _DEFAULT_KEY and intent not in self.intents:
                raise ValueError(f"priors.{intent}: unknown intent{did_you_mean(intent, self.intents)}")
            for model, value in table.items():
                if not 0 <= value <= 1:
                    raise ValueError(f"priors.{intent}.{model}: {value} is outside [0, 1]")
        for language, table in self.language_bonus.items():
            for model, value in table.items():
                if not -1 <= value <= 1:
                    raise ValueError(f"language_bonus.{language}.{model}: {value} is outside [-1, 1]")
        for job, intent in self.job_intents.items():
            if intent not in self.intents:
                raise ValueError(f"job_intents.{job}: unknown intent {intent!r}{did_you_mean(intent, self.intents)}")
        if self.default_tier not in self.tiers:
            raise ValueError(f"default_tier: {self.default_tier!r} is not a tier ({sorted(self.tiers)})")
        for tenant, spec in self.tenants.items():
            if spec.tier is not None and spec.tier not in self.tiers:
                raise ValueError(
                    f"tenants.{tenant}.tier: unknown tier {spec.tier!r}{did_you_mean(spec.tier, self.tiers)}"
                )
        return self

    # -- reading ---------------------------------------------------------------------------------

    def prior(self, intent: str, model: str) -> float:
        table = self.priors.get(intent, {})
        if model in table:
            return table[model]
        return self.priors.get(_DEFAULT_KEY, {}).get(model, self.default_prior)

    def tier_of(self, tenant: str, hinted: str | None) -> str:
        """The tier of a request: the tenant's configured tier, else the worker's hint, else the default."""
        spec = self.tenants.get(tenant)
        if spec is not None and spec.tier is not None:
            return spec.tier
        if hinted is not None:
            if hinted not in self.tiers:
                raise ConfigurationError(f"unknown tier {hinted!r}; tiers: {sorted(self.tiers)}")
            return hinted
        return self.default_tier

    def weights(self, tenant: str, tier: str) -> tuple[float, float]:
        """``(lambda_usd, mu_per_s)``: the tenant's own lambda, else its tier's, else the policy's."""
        tier_spec = self.tiers[tier]
        lam = tier_spec.lambda_usd if tier_spec.lambda_usd is not None else self.lambda_usd
        tenant_spec = self.tenants.get(tenant)
        if tenant_spec is not None and tenant_spec.lambda_usd is not None:
            lam = tenant_spec.lambda_usd
        mu = tier_spec.mu_per_s if tier_spec.mu_per_s is not None else self.mu_per_s
        return lam, mu

    def allowed(self, tier: str) -> frozenset[str] | None:
        allowed = self.tiers[tier].allowed
        return frozenset(allowed) if allowed is not None else None

    def check_models(self, known: Iterable[str]) -> None:
        """Every model the policy names must be in the catalogue."""
        known = set(known)
        named: list[tuple[str, str]] = []
        for intent, table in self.priors.items():
            named += [(f"priors.{intent}", m) for m in table]
        for language, table in self.language_bonus.items():
            named += [(f"language_bonus.{language}", m) for m in table]
        for tier, spec in self.tiers.items():
            named += [(f"tiers.{tier}.allowed", m) for m in spec.allowed or ()]
        for where, model in named:
            if model not in known:
                raise ConfigurationError(
                    f"policy {self.version}: {where} names unknown model {model!r}{did_you_mean(model, known)}"
                )

    # -- loading ---------------------------------------------------------------------------------

    @classmethod
    def default(cls) -> Policy:
        text = resources.files("majordome.router").joinpath("policy.toml").read_text("utf-8")
        return cls.parse(tomllib.loads(text), source="packaged policy.toml")

    @classmethod
    def load(cls, path: str | Path | None = None) -> Policy:
        """The policy in ``path`` (TOML), or the packaged one."""
        if path is None:
            return cls.default()
        try:
            data = tomllib.loads(Path(path).read_text("utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"cannot read policy file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"policy file {path} is not valid TOML: {exc}") from exc
        return cls.parse(data, source=str(path))

    @classmethod
    def parse(cls, data: Mapping[str, Any], *, source: str = "policy") -> Policy:
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise configuration_error(exc, cls.model_fields, source) from exc
