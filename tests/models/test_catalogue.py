from __future__ import annotations

import json
from pathlib import Path

import pytest

from majordome import Capability, Catalogue, ConfigurationError, UnknownModelError

SEVEN = {
    "deepseek-v3",
    "deepseek-r1",
    "phi-4-multimodal",
    "phi-4-mini",
    "llama-3.3-70b",
    "mistral-large",
    "azure-speech-batch",
}


def test_packaged_catalogue_has_the_seven_entries_with_the_platform_prices() -> None:
    catalogue = Catalogue.default()
    assert set(catalogue) == SEVEN
    assert catalogue["deepseek-r1"].price_input_per_mtok == 1.35
    assert catalogue["deepseek-r1"].price_output_per_mtok == 5.40
    assert catalogue["deepseek-v3"].price_input_per_mtok == 1.14
    assert catalogue["mistral-large"].price_output_per_mtok == 6.0
    assert catalogue["llama-3.3-70b"].price_input_per_mtok == 0.99
    assert catalogue["phi-4-mini"].price_output_per_mtok == 0.10
    assert catalogue["azure-speech-batch"].price_per_audio_hour == 0.18
    assert catalogue["azure-speech-batch"].kind == "transcription"
    assert Capability.IMAGE_INPUT in catalogue["phi-4-multimodal"].capabilities
    assert Capability.AUDIO_INPUT in catalogue["phi-4-multimodal"].capabilities
    assert Capability.REASONING_TRACE in catalogue["deepseek-r1"].capabilities
    for spec in catalogue.values():
        if spec.kind == "chat":
            assert spec.window > 0 and spec.output_cap > 0
            assert spec.endpoint_env and spec.api_key_env
            assert all(f in catalogue for f in spec.fallbacks)


def test_cost_is_computed_from_the_prices() -> None:
    spec = Catalogue.default()["deepseek-r1"]
    assert spec.cost_usd(1_000_000, 0) == pytest.approx(1.35)
    assert spec.cost_usd(2000, 500) == pytest.approx((2000 * 1.35 + 500 * 5.40) / 1e6)


def test_resolve_by_id_or_display_name_and_unknown_lists_known() -> None:
    catalogue = Catalogue.default()
    assert catalogue.resolve("DeepSeek-V3").id == "deepseek-v3"
    assert catalogue.resolve("llama-3.3-70b").id == "llama-3.3-70b"
    with pytest.raises(UnknownModelError) as info:
        catalogue.resolve("gpt-17")
    assert "deepseek-v3" in str(info.value) and "gpt-17" in str(info.value)
    assert info.value.known == tuple(catalogue)


def test_user_file_overrides_fields_and_adds_models(tmp_path: Path) -> None:
    user = tmp_path / "catalogue.toml"
    user.write_text(
        """
[models.deepseek-v3]
price_input_per_mtok = 0.5

[models.my-vllm]
display_name = "My vLLM"
api = "openai"
deployment = "qwen"
endpoint = "http://127.0.0.1:8000/v1"
auth = "none"
context_window = 32000
max_output_tokens = 2048
"""
    )
    catalogue = Catalogue.load(user, env={})
    assert catalogue["deepseek-v3"].price_input_per_mtok == 0.5
    assert catalogue["deepseek-v3"].price_output_per_mtok == 4.56  # untouched fields stay
    assert catalogue["my-vllm"].window == 32000


def test_json_user_file(tmp_path: Path) -> None:
    user = tmp_path / "catalogue.json"
    user.write_text(json.dumps({"models": {"phi-4-mini": {"enabled": False}}}))
    assert Catalogue.load(user, env={})["phi-4-mini"].enabled is False


def test_environment_overrides_single_fields() -> None:
    env = {
        "MAJORDOME_MODEL__DEEPSEEK_V3__PRICE_OUTPUT_PER_MTOK": "9.5",
        "MAJORDOME_MODEL__LLAMA_3_3_70B__FALLBACKS": "phi-4-mini, deepseek-v3",
        "MAJORDOME_MODEL__PHI_4_MINI__ENABLED": "false",
    }
    catalogue = Catalogue.load(None, env)
    assert catalogue["deepseek-v3"].price_output_per_mtok == 9.5
    assert catalogue["llama-3.3-70b"].fallbacks == ("phi-4-mini", "deepseek-v3")
    assert catalogue["phi-4-mini"].enabled is False


def test_a_typo_in_the_catalogue_file_names_the_field_and_suggests(tmp_path: Path) -> None:
    user = tmp_path / "catalogue.toml"
    user.write_text("[models.deepseek-v3]\nprice_imput_per_mtok = 1.0\n")
    with pytest.raises(ConfigurationError) as info:
        Catalogue.load(user, env={})
    message = str(info.value)
    assert "models.deepseek-v3.price_imput_per_mtok" in message
    assert "did you mean 'price_input_per_mtok'" in message
    assert str(user) in message


def test_a_negative_price_is_refused_with_the_field_name(tmp_path: Path) -> None:
    user = tmp_path / "catalogue.toml"
    user.write_text("[models.mistral-large]\nprice_output_per_mtok = -2\n")
    with pytest.raises(
        ConfigurationError, match=r"models\.mistral-large\.price_output_per_mtok: .*greater than or equal to 0"
    ):
        Catalogue.load(user, env={})


def test_env_override_errors_name_the_variable() -> None:
    with pytest.raises(ConfigurationError, match=r"MAJORDOME_MODEL__DEEPSEEK_V3__PRICE.*unknown field 'price'"):
        Catalogue.load(None, {"MAJORDOME_MODEL__DEEPSEEK_V3__PRICE": "1"})
    with pytest.raises(ConfigurationError, match="no catalogue model 'GPT5'"):
        Catalogue.load(None, {"MAJORDOME_MODEL__GPT5__ENABLED": "true"})
    with pytest.raises(ConfigurationError, match="context_window"):
        Catalogue.load(None, {"MAJORDOME_MODEL__DEEPSEEK_V3__CONTEXT_WINDOW": "lots"})


def test_unknown_fallback_and_broken_files_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="fallbacks names unknown model 'gpt-5'"):
        Catalogue.load(None, {"MAJORDOME_MODEL__DEEPSEEK_V3__FALLBACKS": "gpt-5"})
    broken = tmp_path / "broken.toml"
    broken.write_text("[models.deepseek-v3\n")
    with pytest.raises(ConfigurationError, match="not valid"):
        Catalogue.load(broken, env={})
    with pytest.raises(ConfigurationError, match="cannot read"):
        Catalogue.load(tmp_path / "missing.toml", env={})
    wrong_top = tmp_path / "top.toml"
    wrong_top.write_text("[model.deepseek-v3]\nenabled = false\n")
    with pytest.raises(ConfigurationError, match="unknown top-level key"):
        Catalogue.load(wrong_top, env={})


def test_a_chat_model_needs_a_context_window(tmp_path: Path) -> None:
    user = tmp_path / "c.toml"
    user.write_text('[models.x]\ndisplay_name = "X"\napi = "openai"\ndeployment = "x"\nmax_output_tokens = 10\n')
    with pytest.raises(ConfigurationError, match="a chat model needs context_window"):
        Catalogue.load(user, env={})
