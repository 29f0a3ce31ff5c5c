"""Costs from tokens × prices, against values worked out by hand, and price files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from majordome._errors import ConfigurationError
from majordome.bench.cost import (
    DEFAULT_OUTPUT_TOKENS,
    LIST_PRICES,
    PROXIES,
    catalogue_prices,
    default_prices,
    fill_costs,
    load_price_file,
)
from majordome.bench.dataset import Dataset
from majordome.bench.readers import load_dataset
from majordome.models.tokens import count_tokens

FIXTURES = Path(__file__).parent / "fixtures"
NAN = math.nan
PRICES = {"a": (1.0, 2.0), "b": (0.5, 4.0)}  # USD per million input / output tokens

ZEROEVAL_MODELS = [
    "gpt-4o-2024-08-06",
    "claude-3-5-sonnet-20240620",
    "Mistral-Large-2",
    "Meta-Llama-3.1-70B-Instruct",
    "gpt-4o-mini-2024-07-18",
    "deepseek-v2-chat-0628",
    "Qwen2-72B-Instruct",
    "deepseek-v2.5-0908",
    "gemini-1.5-flash",
    "claude-3-haiku-20240307",
    "Yi-1.5-34B-Chat",
    "Phi-3.5-mini-instruct",
    "Meta-Llama-3.1-8B-Instruct",
    "Qwen2-7B-Instruct",
    "Mixtral-8x7B-Instruct-v0.1",
    "gemma-2-2b-it",
]
ROUTELLM_MODELS = ["gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"]


def dataset(
    scores: list[list[float]],
    cost: list[list[float]],
    *,
    models: tuple[str, ...] = ("a", "b"),
    input_tokens: list[list[float]] | None = None,
    output_tokens: list[list[float]] | None = None,
    prompts: list[str] | None = None,
) -> Dataset:
    n = len(scores)
    return Dataset(
        name="tiny",
        prompt_ids=[f"p{i}" for i in range(n)],
        prompts=prompts or [f"prompt {i}" for i in range(n)],
        models=list(models),
        scores=np.array(scores, dtype=float),
        cost_usd=np.array(cost, dtype=float),
        input_tokens=None if input_tokens is None else np.array(input_tokens, dtype=float),
        output_tokens=None if output_tokens is None else np.array(output_tokens, dtype=float),
        problems=["from the reader"],
    )


# -- fill_costs --------------------------------------------------------------------------------


def test_fill_costs_prices_tokens_and_keeps_known_costs() -> None:
    ds = dataset(
        scores=[[1, 0], [1, NAN]],
        cost=[[NAN, 0.123], [NAN, NAN]],
        input_tokens=[[100, 100], [1000, 1000]],
        output_tokens=[[10, 20], [300, 40]],
    )
    filled = fill_costs(ds, PRICES)

    # (100 × 1 + 10 × 2) / 1e6 and (1000 × 1 + 300 × 2) / 1e6; b on p0 was known; b on p1 was not run.
    np.testing.assert_allclose(filled.cost_usd[:, 0], [120e-6, 1600e-6])
    assert filled.cost_usd[0, 1] == 0.123
    assert math.isnan(filled.cost_usd[1, 1])
    assert np.isnan(ds.cost_usd[:, 0]).all()  # the input is not modified
    assert filled.problems == ["from the reader", "costs: 2 calls of a priced at $1/$2 per Mtok (given)"]


def test_fill_costs_returns_the_dataset_itself_when_no_cost_is_missing() -> None:
    ds = dataset(scores=[[1, NAN]], cost=[[0.5, NAN]], models=("unpriced", "never run"))
    assert fill_costs(ds) is ds


def test_fill_costs_estimates_absent_input_tokens_from_the_prompt() -> None:
    assert count_tokens("hello world") == 2
    ds = dataset(scores=[[1, 1]], cost=[[NAN, NAN]], output_tokens=[[10, 0]], prompts=["hello world"])
    filled = fill_costs(ds, PRICES)

    # 2 tokens + 4 of message framing = 6: a = (6 × 1 + 10 × 2) / 1e6, b = 6 × 0.5 / 1e6.
    np.testing.assert_allclose(filled.cost_usd, [[26e-6, 3e-6]])
    assert filled.problems[-1] == "costs: input tokens estimated for 2 calls from the prompt text (cl100k_base + 4)"


def test_fill_costs_estimates_only_the_missing_input_counts() -> None:
    ds = dataset(
        scores=[[1], [1]],
        cost=[[NAN], [NAN]],
        models=("a",),
        input_tokens=[[50], [NAN]],
        output_tokens=[[0], [0]],
        prompts=["ignored", "hello world"],
    )
    filled = fill_costs(ds, PRICES)
    np.testing.assert_allclose(filled.cost_usd[:, 0], [50e-6, 6e-6])
    assert "input tokens estimated for 1 calls" in filled.problems[-1]


def test_output_tokens_default_to_the_models_mean_then_to_the_constant() -> None:
    ds = dataset(
        scores=[[1, 1], [1, 1], [1, 1]],
        cost=[[NAN, NAN]] * 3,
        input_tokens=[[0, 0]] * 3,
        output_tokens=[[10, NAN], [NAN, NAN], [30, NAN]],
    )
    filled = fill_costs(ds, PRICES)

    # a: its mean over known counts (20) for p1; b: none known, DEFAULT_OUTPUT_TOKENS.
    np.testing.assert_allclose(filled.cost_usd[:, 0], [20e-6, 40e-6, 60e-6])
    np.testing.assert_allclose(filled.cost_usd[:, 1], [DEFAULT_OUTPUT_TOKENS * 4e-6] * 3)
    assert filled.problems[1].endswith("output tokens unknown for 1 of them: 20.0 (the model's mean over the dataset)")
    assert filled.problems[2].endswith(
        f"output tokens unknown for 3 of them: {DEFAULT_OUTPUT_TOKENS:.1f} (DEFAULT_OUTPUT_TOKENS)"
    )


def test_output_tokens_given_as_one_number_or_per_model() -> None:
    ds = dataset(scores=[[1, 1]], cost=[[NAN, NAN]], input_tokens=[[0, 0]])
    np.testing.assert_allclose(fill_costs(ds, PRICES, output_tokens=100).cost_usd, [[200e-6, 400e-6]])
    per_model = fill_costs(ds, PRICES, output_tokens={"a": 50})
    np.testing.assert_allclose(per_model.cost_usd, [[100e-6, DEFAULT_OUTPUT_TOKENS * 4e-6]])
    assert "50.0 (the default given)" in per_model.problems[1]
    with pytest.raises(ConfigurationError, match="output_tokens -1 must be a finite number >= 0"):
        fill_costs(ds, PRICES, output_tokens=-1)


def test_an_unpriced_model_with_missing_costs_is_named() -> None:
    ds = dataset(scores=[[1, 1, 1]], cost=[[NAN, NAN, 0.1]], models=("a", "mystery-7b", "known-cost"))
    with pytest.raises(ConfigurationError, match=r"tiny: no price for \['mystery-7b'\]") as error:
        fill_costs(ds, PRICES)
    assert "known-cost" not in str(error.value)  # its cost is recorded: no price needed


# -- where prices come from --------------------------------------------------------------------


def test_proxies_point_at_catalogue_entries_and_take_their_prices() -> None:
    catalogue = catalogue_prices()
    defaults = default_prices()
    assert PROXIES
    for name, model_id in PROXIES.items():
        assert model_id in catalogue, f"{name} stands for {model_id}, not in the catalogue"
        assert defaults[name] == catalogue[model_id]
    for model_id, price in catalogue.items():
        assert defaults[model_id] == price
    for name, price in LIST_PRICES.items():
        assert defaults[name] == price


def test_zeroeval_names_are_priced_as_their_catalogue_proxy() -> None:
    ds = load_dataset("zeroeval/gsm8k", data=FIXTURES)
    assert ds.models == ["Mistral-Large-2", "gemma-2-2b-it"]
    filled = fill_costs(ds)

    for j, model in enumerate(ds.models):
        price_in, price_out = catalogue_prices()[PROXIES[model]]
        assert ds.input_tokens is not None and ds.output_tokens is not None
        expected = (ds.input_tokens[:, j] * price_in + ds.output_tokens[:, j] * price_out) / 1e6
        np.testing.assert_allclose(filled.cost_usd[:, j], expected)
    assert f"(catalogue entry {PROXIES['Mistral-Large-2']} as proxy)" in filled.problems[0]
    assert not any("estimated" in p for p in filled.problems)  # ZeroEval's input tokens are already there


def test_every_benchmark_model_has_a_default_price() -> None:
    defaults = default_prices()
    missing = [m for m in [*ZEROEVAL_MODELS, *ROUTELLM_MODELS] if m not in defaults]
    assert missing == []


def test_user_prices_override_list_catalogue_and_proxy_prices() -> None:
    models = ("gpt-4-1106-preview", "mistral-large", "Mistral-Large-2")
    ds = dataset(scores=[[1, 1, 1]], cost=[[NAN] * 3], models=models, input_tokens=[[1e6] * 3], output_tokens=[[0] * 3])
    assert LIST_PRICES["gpt-4-1106-preview"][0] == 10.0
    np.testing.assert_allclose(fill_costs(ds).cost_usd, [[10.0, 2.0, 2.0]])  # list, catalogue, proxy

    given = {"gpt-4-1106-preview": (3.0, 9.0), "mistral-large": (0.25, 1.0), "Mistral-Large-2": (7, 7)}
    filled = fill_costs(ds, given)
    np.testing.assert_allclose(filled.cost_usd, [[3.0, 0.25, 7.0]])
    assert all(line.endswith("(given)") for line in filled.problems[1:])


# -- price files -------------------------------------------------------------------------------


def test_load_price_file_toml(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '["gpt-4-1106-preview"]\ninput = 10.0\noutput = 30\n\n'
        '["mistralai/Mixtral-8x7B-Instruct-v0.1"]\ninput = 0.6\noutput = 0.6\n',
        "utf-8",
    )
    assert load_price_file(path) == {
        "gpt-4-1106-preview": (10.0, 30.0),
        "mistralai/Mixtral-8x7B-Instruct-v0.1": (0.6, 0.6),
    }


def test_load_price_file_json_and_its_prices_win(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text('{"mistral-large": {"input": 1, "output": 3}}', "utf-8")
    prices = load_price_file(path)
    assert prices == {"mistral-large": (1.0, 3.0)}

    ds = dataset(scores=[[1]], cost=[[NAN]], models=("mistral-large",), input_tokens=[[1e6]], output_tokens=[[1e6]])
    assert fill_costs(ds).cost_usd[0, 0] == pytest.approx(8.0)  # the catalogue's 2 + 6
    assert fill_costs(ds, prices).cost_usd[0, 0] == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("p.toml", "[m]\ninput = -1\noutput = 2\n", "m.input: Input should be greater than or equal to 0"),
        ("p.toml", "[m]\ninput = 1\n", "m.output: Field required"),
        ("p.toml", "[m]\ninput = 1\noutput = 2\ncurrency = 'EUR'\n", "m.currency: unknown key"),
        ("p.toml", "m = 3\n", "m: expected a table with 'input' and 'output'"),
        ("p.toml", "[m\ninput = 1\n", "is not valid TOML"),
        ("p.toml", "", "expected a table of models"),
        ("p.json", '{"m": {"input": 1, "output": "lots"}}', "m.output: Input should be a valid number"),
        ("p.json", '{"m": {"input": 1, "output": 2}', "is not valid JSON"),
        ("p.json", '[{"input": 1, "output": 2}]', "expected a table of models"),
        ("p.json", '{"m": {"input": 1, "output": Infinity}}', "m.output"),
    ],
)
def test_bad_price_file_is_an_error_naming_it(tmp_path: Path, name: str, content: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(content, "utf-8")
    with pytest.raises(ConfigurationError) as error:
        load_price_file(path)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_unreadable_price_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read price file"):
        load_price_file(tmp_path / "absent.toml")
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'["caf\xe9"]\ninput = 1\noutput = 1\n')
    with pytest.raises(ConfigurationError, match="is not valid UTF-8") as error:
        load_price_file(path)
    assert str(path) in str(error.value)
