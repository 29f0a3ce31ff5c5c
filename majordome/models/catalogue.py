"""The model catalogue: what each model slot is, costs, can do and where it is deployed.

The packaged ``catalogue.toml`` holds the platform's seven entries. A user file (TOML or JSON)
is merged over it field by field (a new id adds a model), then the environment overrides single
fields with ``MAJORDOME_MODEL__<ID>__<FIELD>=value`` (``<ID>`` upper-cased, ``-``/``.`` as ``_``).
Every layer is validated; errors name the file, the model and the field.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator, Mapping
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from majordome._errors import ConfigurationError, UnknownModelError
from majordome._validation import configuration_error, did_you_mean
from majordome.models.messages import Modality

__all__ = ["Capability", "Catalogue", "ModelSpec"]

ENV_PREFIX = "MAJORDOME_MODEL__"


class Capability(StrEnum):
    """What a model can do; the router filters candidates on these."""

    TEXT = "text"
    IMAGE_INPUT = "image_input"
    AUDIO_INPUT = "audio_input"
    REASONING_TRACE = "reasoning_trace"
    JSON_MODE = "json_mode"
    TOOL_CALLS = "tool_calls"


MODALITY_CAPABILITY = {
    Modality.TEXT: Capability.TEXT,
    Modality.IMAGE: Capability.IMAGE_INPUT,
    Modality.AUDIO: Capability.AUDIO_INPUT,
}

Api = Literal["azure-ai-inference", "openai", "azure-openai", "local", "azure-speech-batch"]


class ModelSpec(BaseModel):
    """One catalogue entry. Prices in USD per million tokens (per audio hour for transcription)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    display_name: str
    kind: Literal["chat", "transcription"] = "chat"
    api: Api
    deployment: str = Field(min_length=1)
    enabled: bool = True
    endpoint: str | None = None
    endpoint_env: str | None = None
    api_key_env: str | None = None
    auth: Literal["auto", "key", "entra", "none"] = "auto"
    api_version: str | None = None
    price_input_per_mtok: float = Field(default=0.0, ge=0)
    price_output_per_mtok: float = Field(default=0.0, ge=0)
    price_per_audio_hour: float = Field(default=0.0, ge=0)
    context_window: int | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    expected_output_tokens: int = Field(default=512, gt=0)
    capabilities: frozenset[Capability] = frozenset({Capability.TEXT})
    ttft_ms: float = Field(default=1000.0, ge=0)
    output_tokens_per_s: float = Field(default=30.0, gt=0)
    timeout_s: float = Field(default=60.0, gt=0)
    fallbacks: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _check_kind(self) -> ModelSpec:
        if self.kind == "chat":
            for name in ("context_window", "max_output_tokens"):
                if getattr(self, name) is None:
                    raise ValueError(f"a chat model needs {name}")
            if Capability.TEXT not in self.capabilities:
                raise ValueError("a chat model needs the 'text' capability")
        return self

    @property
    def window(self) -> int:
        """The context window in tokens (0 for non-chat entries)."""
        return self.context_window or 0

    @property
    def output_cap(self) -> int:
        """The most output tokens one call may ask for (0 for non-chat entries)."""
        return self.max_output_tokens or 0

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        """The cost of a call at this entry's prices."""
        return (input_tokens * self.price_input_per_mtok + output_tokens * self.price_output_per_mtok) / 1e6

    def expected_latency_s(self, output_tokens: int) -> float:
        """Typical wall time of a call producing ``output_tokens`` tokens."""
        return self.ttft_ms / 1000 + output_tokens / self.output_tokens_per_s


class Catalogue(Mapping[str, ModelSpec]):
    """An immutable, validated mapping of model id to :class:`ModelSpec`."""

    def __init__(self, specs: Mapping[str, ModelSpec]) -> None:
        self._specs = dict(specs)
        for spec in self._specs.values():
            for name in spec.fallbacks:
                if name not in self._specs:
                    raise ConfigurationError(
                        f"catalogue: models.{spec.id}.fallbacks names unknown model {name!r}"
                        f"{did_you_mean(name, self._specs)}"
                    )

    def __getitem__(self, key: str) -> ModelSpec:
        return self._specs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def resolve(self, name: str) -> ModelSpec:
        """Find a model by id or display name (case-insensitive); else :class:`UnknownModelError`."""
        spec = self._specs.get(name)
        if spec is not None:
            return spec
        folded = name.casefold()
        for spec in self._specs.values():
            if folded in (spec.id.casefold(), spec.display_name.casefold()):
                return spec
        raise UnknownModelError(name, list(self._specs))

    @classmethod
    def default(cls) -> Catalogue:
        """The packaged catalogue, without user file or environment."""
        return cls.load(user_file=None, env={})

    @classmethod
    def load(cls, user_file: str | Path | None = None, env: Mapping[str, str] | None = None) -> Catalogue:
        """The packaged catalogue, merged with ``user_file`` and then ``env`` overrides."""
        text = resources.files("majordome.models").joinpath("catalogue.toml").read_text("utf-8")
        raw = _models_table(tomllib.loads(text), "packaged catalogue.toml")
        if user_file is not None:
            raw = _merge(raw, _models_table(_read_file(Path(user_file)), str(user_file)))
        source = str(user_file) if user_file is not None else "catalogue"
        if env:
            raw = _merge(raw, _env_overrides(env, raw))
            source += " + environment"
        specs: dict[str, ModelSpec] = {}
        for model_id, fields in raw.items():
            specs[model_id] = _validate(model_id, fields, source)
        return cls(specs)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read catalogue file {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"catalogue file {path} is not valid {path.suffix[1:] or 'TOML'}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"catalogue file {path}: the top level must be a table")
    return data


def _models_table(data: dict[str, Any], source: str) -> dict[str, dict[str, Any]]:
    unknown = set(data) - {"models"}
    if unknown:
        raise ConfigurationError(f"{source}: unknown top-level key(s) {sorted(unknown)}; expected 'models'")
    models = data.get("models", {})
    if not isinstance(models, dict) or not all(isinstance(v, dict) for v in models.values()):
        raise ConfigurationError(f"{source}: 'models' must be a table of tables, one per model id")
    return {str(k): dict(v) for k, v in models.items()}


def _merge(base: dict[str, dict[str, Any]], over: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    merged = {k: dict(v) for k, v in base.items()}
    for model_id, fields in over.items():
        merged.setdefault(model_id, {}).update(fields)
    return merged


_LIST_FIELDS = {"capabilities", "fallbacks"}


def _env_overrides(env: Mapping[str, str], known: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    by_env_key = {model_id.upper().replace("-", "_").replace(".", "_"): model_id for model_id in known}
    fields = set(ModelSpec.model_fields) - {"id"}
    overrides: dict[str, dict[str, Any]] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        model_key, sep, field = rest.partition("__")
        field = field.lower()
        if not sep or model_key not in by_env_key:
            raise ConfigurationError(
                f"environment variable {name}: no catalogue model {model_key!r}; expected one of {sorted(by_env_key)}"
            )
        if field not in fields:
            raise ConfigurationError(
                f"environment variable {name}: unknown field {field!r}{did_you_mean(field, fields)}"
            )
        parsed: Any = [item.strip() for item in value.split(",") if item.strip()] if field in _LIST_FIELDS else value
        overrides.setdefault(by_env_key[model_key], {})[field] = parsed
    return overrides


def _validate(model_id: str, fields: dict[str, Any], source: str) -> ModelSpec:
    if "id" in fields and fields["id"] != model_id:
        raise ConfigurationError(f"{source}: models.{model_id}.id is {fields['id']!r}; leave it out")
    try:
        return ModelSpec.model_validate({**fields, "id": model_id})
    except ValidationError as exc:
        raise configuration_error(exc, ModelSpec.model_fields, source, prefix=f"models.{model_id}.") from exc
