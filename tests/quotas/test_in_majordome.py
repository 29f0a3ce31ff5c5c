"""Deployment quotas inside a Majordome: a deployment at its quota hands over to the next
candidate instead of queueing into a 429."""

from __future__ import annotations

from majordome import Majordome, MajordomeConfig
from majordome.models.messages import Usage
from majordome.quotas import InProcessThrottle
from majordome.testing import Reply, ScriptedModel


def request(i: int) -> dict[str, object]:
    return {
        "messages": [{"role": "user", "content": f"Give me a post idea number {i}"}],
        "tenant": "creator_1",
        "intent": "content_ideas",
        "max_output_tokens": 50,
    }


async def test_a_deployment_at_its_quota_hands_over_to_the_next_candidate() -> None:
    usage = Usage(input_tokens=20, output_tokens=30)
    first_choice = Majordome(MajordomeConfig(), providers={"*": ScriptedModel(default=Reply("x"))}, env={})
    chosen = (await first_choice.ask(request(0))).model
    spec = first_choice.catalogue.resolve(chosen)
    first_choice.close()
    config = MajordomeConfig(deployment_quotas={chosen: {"rpm": 20}})
    providers = {"*": ScriptedModel(default=Reply("idea", usage=usage))}
    mj = Majordome(config, providers=providers, env={})
    assert isinstance(mj.throttle, InProcessThrottle)
    for deployment in mj._deployments.values():
        deployment.model.quota_wait_s = 0.05
    answered = [(await mj.ask(request(i))) for i in range(6)]
    models = [a.model for a in answered]
    # burst 0.1 of 20 requests a minute: the first two go to the chosen model, then the others answer
    assert models[:2] == [chosen, chosen] and chosen not in models[2:]
    limited = [a for a in answered[2:] if a.attempts and a.attempts[0].model == chosen]
    assert limited and all(a.attempts[0].outcome == "ProviderRateLimited" for a in limited)
    assert await mj.throttle.headroom(spec.deployment) < 0.5  # type: ignore[union-attr]
    await mj.aclose()
