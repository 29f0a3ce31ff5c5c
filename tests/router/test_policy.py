from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from majordome import Catalogue, ConfigurationError
from majordome.router import INTENTS, Policy


def packaged() -> dict[str, Any]:
    return tomllib.loads((Path(__file__).parents[2] / "majordome/router/policy.toml").read_text("utf-8"))


def test_packaged_policy_has_every_intent_and_names_only_catalogue_models() -> None:
    policy = Policy.default()
    assert set(INTENTS) <= set(policy.intents)
    policy.check_models(Catalogue.default())
    assert policy.prior("reasoning", "deepseek-r1") > policy.prior("reasoning", "deepseek-v3")
    assert policy.prior("vision", "deepseek-v3") == policy.prior("_default", "deepseek-v3")  # from _default
    assert policy.prior("vision", "no-such-model") == policy.default_prior


def test_tiers_and_tenant_weights() -> None:
    data = packaged()
    data["tenants"] = {"creator_1": {"tier": "free"}, "creator_2": {"lambda_usd": 0.5}}
    policy = Policy.parse(data)
    assert policy.tier_of("creator_1", None) == "free"
    assert policy.tier_of("creator_1", "premium") == "free"  # the tenant's configured tier wins
    assert policy.tier_of("someone", "premium") == "premium"
    assert policy.tier_of("someone", None) == "standard"
    assert policy.weights("creator_2", "standard") == (0.5, policy.mu_per_s)
    assert policy.weights("someone", "free")[0] == 50.0
    assert policy.allowed("free") == {"phi-4-mini", "phi-4-multimodal", "llama-3.3-70b"}
    assert policy.allowed("standard") is None


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda d: d["intents"].pop("fan_reply"), "fan_reply"),
        (lambda d: d["priors"].__setitem__("fan_replies", {"deepseek-v3": 0.5}), "priors.fan_replies: unknown intent"),
        (lambda d: d["priors"]["reasoning"].__setitem__("deepseek-r1", 1.5), "outside [0, 1]"),
        (lambda d: d.__setitem__("lambda_usd", -1), "lambda_usd"),
        (lambda d: d.__setitem__("lamda_usd", 3), "did you mean 'lambda_usd'"),
        (lambda d: d.__setitem__("default_tier", "gold"), "default_tier"),
        (lambda d: d.__setitem__("tenants", {"c": {"tier": "gold"}}), "tenants.c.tier"),
        (lambda d: d["job_intents"].__setitem__("chat.suggest", "chat"), "job_intents.chat.suggest"),
    ],
)
def test_invalid_policies_name_the_field(change: Any, fragment: str) -> None:
    data = packaged()
    change(data)
    with pytest.raises(ConfigurationError) as info:
        Policy.parse(data, source="my-policy.toml")
    assert fragment in str(info.value) and "my-policy.toml" in str(info.value)


def test_models_outside_the_catalogue_are_refused() -> None:
    data = packaged()
    data["priors"]["reasoning"]["gpt-5"] = 0.9
    with pytest.raises(ConfigurationError, match=r"priors\.reasoning names unknown model 'gpt-5'"):
        Policy.parse(data).check_models(Catalogue.default())


def test_a_policy_file_is_read_and_errors_name_it(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        (Path(__file__).parents[2] / "majordome/router/policy.toml")
        .read_text()
        .replace('version = "seed-priors-v1"', 'version = "mine-v2"')
    )
    assert Policy.load(path).version == "mine-v2"
    path.write_text("version = [")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        Policy.load(path)
    with pytest.raises(ConfigurationError, match="cannot read"):
        Policy.load(tmp_path / "missing.toml")
