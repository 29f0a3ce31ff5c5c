from __future__ import annotations

from pathlib import Path

import pytest

from majordome import ConfigurationError, Majordome, MajordomeConfig
from majordome.testing import ScriptedModel


def test_from_env_reads_file_then_variables_then_arguments(tmp_path: Path) -> None:
    config_file = tmp_path / "majordome.toml"
    config_file.write_text('default_deadline_s = 45\noffline = "never"\n[deadlines_s]\n"chat.suggest" = 80\n')
    env = {"MAJORDOME_CONFIG": str(config_file), "MAJORDOME_OFFLINE": "always"}
    config = MajordomeConfig.from_env(env, default_max_output_tokens=256)
    assert config.default_deadline_s == 45  # file
    assert config.offline == "always"  # environment over file
    assert config.default_max_output_tokens == 256  # argument
    assert config.deadline_for("chat.suggest") == 80
    assert config.deadline_for(None) == 45


def test_invalid_values_name_the_field() -> None:
    with pytest.raises(ConfigurationError, match="offline: Input should be 'auto', 'always' or 'never'"):
        MajordomeConfig.from_env({"MAJORDOME_OFFLINE": "sometimes"})
    with pytest.raises(ConfigurationError, match="default_deadline_s"):
        MajordomeConfig.from_env({"MAJORDOME_DEFAULT_DEADLINE_S": "-1"})


def test_unknown_variables_and_keys_are_refused_with_a_suggestion(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"MAJORDOME_OFLINE.*did you mean 'MAJORDOME_OFFLINE'"):
        MajordomeConfig.from_env({"MAJORDOME_OFLINE": "always"})
    config_file = tmp_path / "c.toml"
    config_file.write_text("default_deadlin_s = 3\n")
    with pytest.raises(ConfigurationError, match=r"default_deadlin_s: unknown key.*default_deadline_s"):
        MajordomeConfig.from_env({"MAJORDOME_CONFIG": str(config_file)})
    with pytest.raises(ConfigurationError, match="cannot read"):
        MajordomeConfig.from_env({"MAJORDOME_CONFIG": str(tmp_path / "nope.toml")})


def test_enabled_model_without_endpoint_names_the_variable() -> None:
    env = {
        "AZURE_DEEPSEEK_V3_ENDPOINT": "https://example.services.ai.azure.com/models",
        "AZURE_DEEPSEEK_V3_KEY": "k" * 32,
    }
    with pytest.raises(ConfigurationError) as info:
        Majordome(env=env)
    message = str(info.value)
    assert "AZURE_MISTRAL_LARGE_ENDPOINT" in message and "AZURE_PHI4_MINI_ENDPOINT" in message
    assert "AZURE_DEEPSEEK_V3_ENDPOINT" not in message
    assert "MAJORDOME_MODEL__<ID>__ENABLED=false" in message


def test_offline_never_requires_every_endpoint() -> None:
    with pytest.raises(ConfigurationError, match="AZURE_DEEPSEEK_V3_ENDPOINT"):
        Majordome(MajordomeConfig(offline="never"), env={})


def test_a_missing_key_names_its_variable() -> None:
    env = {"MAJORDOME_MODEL__DEEPSEEK_V3__AUTH": "key", "AZURE_DEEPSEEK_V3_ENDPOINT": "https://x.example/models"}
    env.update(
        {
            f"MAJORDOME_MODEL__{m}__ENABLED": "false"
            for m in (
                "DEEPSEEK_R1",
                "PHI_4_MULTIMODAL",
                "PHI_4_MINI",
                "LLAMA_3_3_70B",
                "MISTRAL_LARGE",
                "AZURE_SPEECH_BATCH",
            )
        }
    )
    with pytest.raises(ConfigurationError, match="no API key; set AZURE_DEEPSEEK_V3_KEY"):
        Majordome(env=env)


def test_providers_for_unknown_models_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown model"):
        Majordome(providers={"gpt-5": ScriptedModel()}, env={})


def test_no_endpoint_anywhere_serves_every_chat_slot_locally() -> None:
    mj = Majordome(env={})
    rows = {row.id: row for row in mj.models()}
    assert all(rows[m].substituted for m in rows if rows[m].kind == "chat")
    assert all("SmolLM2" in (rows[m].served_by or "") for m in rows if rows[m].kind == "chat")
