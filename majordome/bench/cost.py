"""Costs for datasets that record none: tokens × prices.

RouteLLM and ZeroEval give correctness and (some) token counts, never a cost. :func:`fill_costs`
prices every call whose cost is NaN as ``input_tokens × input price + output_tokens × output
price`` (USD per million tokens). Prices come, in this order, from the ``prices`` argument (e.g.
:func:`load_price_file`), the public list prices of :data:`LIST_PRICES`, the catalogue entry a
public model stands for in :data:`PROXIES`, and the catalogue itself (a dataset whose models are
catalogue ids). A model priced by none of them is an error that lists it.

Tokens: the dataset's own counts where it has them; otherwise input tokens are estimated from
the prompt (``cl100k_base`` count + 4 tokens of message framing) and output tokens are, in this
order, the ``output_tokens`` default given for the model, the model's mean over the dataset's
known counts, or :data:`DEFAULT_OUTPUT_TOKENS`. What was estimated, and how, is added to
``Dataset.problems``.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from majordome._errors import ConfigurationError
from majordome._validation import configuration_error
from majordome.bench._parsing import PROMPT_FRAMING_TOKENS, estimate_input_tokens
from majordome.bench.dataset import Dataset
from majordome.models.catalogue import Catalogue

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "LIST_PRICES",
    "PROXIES",
    "Prices",
    "catalogue_prices",
    "default_prices",
    "fill_costs",
    "load_price_file",
]

Prices = Mapping[str, tuple[float, float]]
"""Model name -> (input, output) price in USD per million tokens."""

PROXIES: Mapping[str, str] = MappingProxyType(
    {
        # ZeroEval models priced as the catalogue entry of the same maker and size class.
        "Mistral-Large-2": "mistral-large",
        "Meta-Llama-3.1-70B-Instruct": "llama-3.3-70b",
        "Phi-3.5-mini-instruct": "phi-4-mini",
        "deepseek-v2-chat-0628": "deepseek-v3",
        "deepseek-v2.5-0908": "deepseek-v3",
        # Size-class stand-ins for the open-weight ZeroEval models that no maker sells through an
        # API of its own: small models as the catalogue's small model, large ones as its 70B.
        "Meta-Llama-3.1-8B-Instruct": "phi-4-mini",
        "Qwen2-7B-Instruct": "phi-4-mini",
        "gemma-2-2b-it": "phi-4-mini",
        "Yi-1.5-34B-Chat": "llama-3.3-70b",
        "Qwen2-72B-Instruct": "llama-3.3-70b",
    }
)
"""Public model name -> catalogue id whose prices stand for it."""

LIST_PRICES: Prices = MappingProxyType(
    {
        # Public list prices of the makers' own APIs (USD per million input / output tokens) as
        # published in 2024, for the benchmark models that no catalogue entry stands for. They are
        # a stated assumption, not measurements: override them with a price file.
        "gpt-4-1106-preview": (10.00, 30.00),  # OpenAI, GPT-4 Turbo
        "mistralai/Mixtral-8x7B-Instruct-v0.1": (0.70, 0.70),  # Mistral AI, open-mixtral-8x7b
        "Mixtral-8x7B-Instruct-v0.1": (0.70, 0.70),  # the same model under ZeroEval's name
        "gpt-4o-2024-08-06": (2.50, 10.00),  # OpenAI
        "gpt-4o-mini-2024-07-18": (0.15, 0.60),  # OpenAI
        "claude-3-5-sonnet-20240620": (3.00, 15.00),  # Anthropic
        "claude-3-haiku-20240307": (0.25, 1.25),  # Anthropic
        "gemini-1.5-flash": (0.075, 0.30),  # Google, prompts up to 128k tokens, from August 2024
    }
)
"""Public list prices (USD per million input/output tokens) of benchmark models outside the catalogue."""

DEFAULT_OUTPUT_TOKENS = 256
"""Output length assumed for a model whose dataset records none and for which no default was given."""


def catalogue_prices(catalogue: Catalogue | None = None) -> dict[str, tuple[float, float]]:
    """Catalogue id -> (input, output) USD per million tokens, for the chat models."""
    catalogue = catalogue if catalogue is not None else Catalogue.default()
    return {
        spec.id: (spec.price_input_per_mtok, spec.price_output_per_mtok)
        for spec in catalogue.values()
        if spec.kind == "chat"
    }


def _sources(prices: Prices | None, catalogue: Catalogue | None) -> dict[str, tuple[tuple[float, float], str]]:
    """Every known price with where it comes from; earlier sources win."""
    known = catalogue_prices(catalogue)
    table = {model: (price, "catalogue") for model, price in known.items()}
    for name, model_id in PROXIES.items():
        if model_id in known:
            table[name] = (known[model_id], f"catalogue entry {model_id} as proxy")
    table.update({name: (price, "public list price") for name, price in LIST_PRICES.items()})
    if prices is not None:
        table.update({name: ((float(p[0]), float(p[1])), "given") for name, p in prices.items()})
    return table


def default_prices(catalogue: Catalogue | None = None) -> dict[str, tuple[float, float]]:
    """The prices :func:`fill_costs` uses when none are given: catalogue, proxies, list prices."""
    return {name: price for name, (price, _) in _sources(None, catalogue).items()}


class _Price(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0, allow_inf_nan=False)
    output: float = Field(ge=0, allow_inf_nan=False)


def load_price_file(path: str | Path) -> dict[str, tuple[float, float]]:
    """Prices from a TOML or JSON file shaped ``{model: {input: x, output: y}}`` (USD per
    million tokens); in TOML, quote names with ``/`` or ``.``: ``["gpt-4-1106-preview"]``."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read price file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"price file {path} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        data: Any = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise ConfigurationError(f"price file {path} is not valid {kind}: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise ConfigurationError(f"price file {path}: expected a table of models, each with 'input' and 'output'")
    prices: dict[str, tuple[float, float]] = {}
    for model, fields in data.items():
        if not isinstance(fields, dict):
            raise ConfigurationError(f"price file {path}: {model}: expected a table with 'input' and 'output'")
        try:
            price = _Price.model_validate(fields)
        except ValidationError as exc:
            raise configuration_error(exc, _Price.model_fields, f"price file {path}", prefix=f"{model}.") from exc
        prices[str(model)] = (price.input, price.output)
    return prices


def _output_default(dataset: Dataset, j: int, output_tokens: Mapping[str, float] | float | None) -> tuple[float, str]:
    model = dataset.models[j]
    if isinstance(output_tokens, int | float):
        return float(output_tokens), "the default given"
    if output_tokens is not None and model in output_tokens:
        return float(output_tokens[model]), "the default given"
    if dataset.output_tokens is not None:
        known = dataset.output_tokens[:, j]
        known = known[np.isfinite(known)]
        if known.size:
            return float(known.mean()), "the model's mean over the dataset"
    return float(DEFAULT_OUTPUT_TOKENS), "DEFAULT_OUTPUT_TOKENS"


def fill_costs(
    dataset: Dataset,
    prices: Prices | None = None,
    *,
    output_tokens: Mapping[str, float] | float | None = None,
    catalogue: Catalogue | None = None,
) -> Dataset:
    """``dataset`` with each unknown cost of a call that has a score priced from tokens × prices.

    Known costs are kept. ``output_tokens`` (one number, or one per model) stands in where the
    dataset has no output length. Returns the dataset itself when no cost is missing.
    """
    todo = np.isnan(dataset.cost_usd) & ~np.isnan(dataset.scores)
    if not todo.any():
        return dataset
    if isinstance(output_tokens, int | float) and (not math.isfinite(output_tokens) or output_tokens < 0):
        raise ConfigurationError(f"output_tokens {output_tokens} must be a finite number >= 0")
    table = _sources(prices, catalogue)
    columns = [j for j in range(len(dataset.models)) if todo[:, j].any()]
    unpriced = [dataset.models[j] for j in columns if dataset.models[j] not in table]
    if unpriced:
        raise ConfigurationError(
            f"{dataset.name}: no price for {unpriced}; give them in a price file "
            "({model: {input: x, output: y}}, USD per million tokens) or map them in PROXIES"
        )
    cost = dataset.cost_usd.copy()
    notes: list[str] = []
    estimated_inputs: dict[int, int] = {}
    inputs_estimated = 0
    for j in columns:
        model = dataset.models[j]
        (price_in, price_out), source = table[model]
        default, default_source = _output_default(dataset, j, output_tokens)
        defaulted = 0
        for i in (int(row) for row in np.flatnonzero(todo[:, j])):
            tokens_in = math.nan if dataset.input_tokens is None else float(dataset.input_tokens[i, j])
            if not math.isfinite(tokens_in):
                if i not in estimated_inputs:
                    estimated_inputs[i] = estimate_input_tokens(dataset.prompts[i])
                tokens_in = estimated_inputs[i]
                inputs_estimated += 1
            tokens_out = math.nan if dataset.output_tokens is None else float(dataset.output_tokens[i, j])
            if not math.isfinite(tokens_out):
                tokens_out = default
                defaulted += 1
            cost[i, j] = (tokens_in * price_in + tokens_out * price_out) / 1e6
        line = f"costs: {int(todo[:, j].sum())} calls of {model} priced at ${price_in:g}/${price_out:g} per Mtok"
        line += f" ({source})"
        if defaulted:
            line += f"; output tokens unknown for {defaulted} of them: {default:.1f} ({default_source})"
        notes.append(line)
    if inputs_estimated:
        notes.append(
            f"costs: input tokens estimated for {inputs_estimated} calls from the prompt text "
            f"(cl100k_base + {PROMPT_FRAMING_TOKENS})"
        )
    return replace(dataset, cost_usd=cost, problems=[*dataset.problems, *notes])
