"""Deployment quotas inside a Majordome: a deployment at its quota hands over to the next
candidate instead of queueing into a 429."""

from __future__ import annotations

import time

import pytest

from majordome import DeploymentAtQuota, Majordome, MajordomeConfig, ProviderRateLimited
from majordome.models.messages import Usage
from majordome.quotas import InProcessThrottle, QuotaExhausted
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
    # 20 requests a minute, burst 0.1 less 0.5 s of refill: 1.85 requests at once. The first goes
    # to the chosen model; then the router sees its deployment cannot take another and routes to
    # the next candidate without trying it
    assert models[0] == chosen and chosen not in models[1:]
    for later in answered[1:]:
        assert later.decision.rejected[chosen].startswith("deployment at its quota")
        assert all(a.model != chosen for a in later.attempts)
    assert await mj.throttle.headroom(spec.deployment) < 0.5  # type: ignore[union-attr]
    await mj.aclose()


def every_model_limited(rpm: int, window_s: float, **config: object) -> Majordome:
    usage = Usage(input_tokens=20, output_tokens=30)
    models = Majordome(MajordomeConfig(), providers={"*": ScriptedModel(default=Reply("x"))}, env={})
    ids = list(models._specs)
    models.close()
    quotas = {model: {"rpm": rpm} for model in ids}
    return Majordome(
        MajordomeConfig(deployment_quotas=quotas, quota_window_s=window_s, **config),  # type: ignore[arg-type]
        providers={"*": ScriptedModel(default=Reply("idea", usage=usage))},
        env={},
    )


async def test_when_every_deployment_is_at_its_quota_the_call_waits_for_room() -> None:
    # 2 requests per 0.5 s window: capacity 1, refill 2 a second -> room again within 0.5 s
    mj = every_model_limited(2, 0.5)
    for _ in range(len(mj._specs)):  # drain every deployment
        await mj.ask(request(0) | {"messages": [{"role": "user", "content": "drain"}]})
    answer = await mj.ask(request(1) | {"deadline_s": 5.0})
    assert answer.text == "idea"
    assert answer.decision.quota_wait_s > 0 and "at its quota" in answer.decision.reason
    assert [a.outcome for a in answer.attempts] == ["ok"]  # it waited; it did not hand over
    await mj.aclose()


async def test_when_no_deployment_has_room_before_the_deadline_the_error_is_typed() -> None:
    # 2 requests a minute: no room again for about 30 s, far past the 0.3 s deadline
    mj = every_model_limited(2, 60.0)
    for _ in range(len(mj._specs)):
        await mj.ask(request(0))
    started = time.monotonic()
    with pytest.raises(QuotaExhausted) as caught:
        await mj.ask(request(1) | {"deadline_s": 0.3})
    assert time.monotonic() - started < 0.3  # refused at once: waiting could not succeed
    assert caught.value.retry_after_s > 1.0 and "every candidate deployment is at its quota" in str(caught.value)
    await mj.aclose()


async def test_a_provider_429_with_a_long_retry_after_hands_over_and_the_deployment_cools_down() -> None:
    first = Majordome(MajordomeConfig(), providers={"*": ScriptedModel(default=Reply("x"))}, env={})
    chosen = (await first.ask(request(0))).model
    first.close()
    busy = ScriptedModel(
        ProviderRateLimited("slow down", retry_after=5.0, model=chosen, deployment=chosen), default=Reply("late")
    )
    mj = Majordome(MajordomeConfig(), providers={"*": ScriptedModel(default=Reply("idea")), chosen: busy}, env={})
    started = time.monotonic()
    answer = await mj.ask(request(1))
    assert time.monotonic() - started < 1.0  # did not wait out the 5 s on the same deployment
    assert answer.model != chosen and answer.attempts[0].status_code == 429
    later = await mj.ask(request(2))  # the router avoids it until its Retry-After
    assert later.model != chosen and later.decision.rejected[chosen].startswith("deployment at its quota")
    assert all(a.model != chosen for a in later.attempts)
    await mj.aclose()


async def test_a_quota_hand_over_is_not_recorded_as_a_provider_429() -> None:
    mj = every_model_limited(2, 60.0)
    for _ in range(len(mj._specs)):
        await mj.ask(request(0))
    with pytest.raises(QuotaExhausted) as caught:
        await mj.ask(request(1) | {"deadline_s": 0.3})
    cause = caught.value.__cause__
    assert cause is not None and all(isinstance(c, DeploymentAtQuota) for _, c in cause.causes)  # type: ignore[attr-defined]
    await mj.aclose()
