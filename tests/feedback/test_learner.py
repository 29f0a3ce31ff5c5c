from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest

from majordome import Catalogue, Message
from majordome._errors import ConfigurationError
from majordome.feedback.learner import CONTEXT_DIM, BanditQuality, LearnerVersion, context_of
from majordome.router import Router
from majordome.router.quality import PriorQuality

SPECS = {k: v for k, v in Catalogue.default().items() if v.kind == "chat"}


class MemoryBackend:
    """Versions in a dict, with the compare-and-set the event store gives."""

    def __init__(self) -> None:
        self.versions: dict[int, LearnerVersion] = {}

    def load_learner_state(self, version: int | None = None) -> LearnerVersion | None:
        if version is None:
            return self.versions[max(self.versions)] if self.versions else None
        return self.versions.get(version)

    def save_learner_state(self, version: int, state: str, note: str) -> bool:
        if version in self.versions:
            return False
        self.versions[version] = LearnerVersion(version, time.time(), note, state)
        return True


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(models=list(SPECS))


def learner_for(router: Router, seed: int = 0) -> BanditQuality:
    return BanditQuality(PriorQuality(router.policy, list(SPECS)), list(SPECS), seed=seed)


def fan_reply(router: Router, text: str = "hey babe, how was your day?") -> object:
    return router.features([Message(role="user", content=text)], intent="fan_reply", language="en")


def test_without_feedback_it_is_the_base_model(router: Router) -> None:
    learner = learner_for(router)
    inputs = router.inputs([fan_reply(router)])  # type: ignore[list-item]
    assert np.allclose(learner.predict(inputs, list(SPECS)), learner.base.predict(inputs, list(SPECS)))
    assert context_of(inputs).shape == (1, CONTEXT_DIM)


def test_a_model_that_keeps_failing_for_an_intent_loses_its_share(router: Router) -> None:
    learner = learner_for(router)
    router = Router(router.policy, components=router.components, models=list(SPECS), quality=learner)
    texts = [f"hey, message number {i} for you" for i in range(40)]
    before = Counter(router.decide(fan_reply(router, t), SPECS).chosen for t in texts)  # type: ignore[arg-type]
    favourite = before.most_common(1)[0][0]
    for step in range(120):
        features = fan_reply(router, texts[step % len(texts)])
        decision = router.decide(features, SPECS, explore=True)  # type: ignore[arg-type]
        inputs = router.inputs([features])  # type: ignore[list-item]
        base = learner.base.predict(inputs, [decision.chosen])[0, 0]
        reward = 0.0 if decision.chosen == favourite else 0.9
        learner.update(decision.chosen, context_of(inputs)[0], reward, float(base))
    after = Counter(router.decide(fan_reply(router, t), SPECS).chosen for t in texts)  # type: ignore[arg-type]
    assert before[favourite] == len(texts) and after[favourite] == 0
    # another intent is barely touched: the residual is per context, and the context holds the intent
    analysis = router.features([Message(role="user", content="analyse my stats")], intent="content_analysis")
    q = learner.predict(router.inputs([analysis]), [favourite])[0, 0]
    q0 = learner.base.predict(router.inputs([analysis]), [favourite])[0, 0]
    assert q0 - q < 0.5 * (
        learner.base.predict(router.inputs([fan_reply(router)]), [favourite])[0, 0]  # type: ignore[list-item]
        - learner.predict(router.inputs([fan_reply(router)]), [favourite])[0, 0]  # type: ignore[list-item]
    )


def test_exploration_is_flagged_and_only_when_asked(router: Router) -> None:
    learner = learner_for(router, seed=1)
    learner.noise = 2.0  # a wide posterior: sampled choices often differ from the greedy one
    router = Router(router.policy, components=router.components, models=list(SPECS), quality=learner)
    greedy = [router.decide(fan_reply(router), SPECS) for _ in range(30)]  # type: ignore[arg-type]
    assert not any(d.explored for d in greedy) and len({d.chosen for d in greedy}) == 1
    explored = [router.decide(fan_reply(router), SPECS, explore=True) for _ in range(60)]  # type: ignore[arg-type]
    flagged = [d for d in explored if d.explored]
    assert flagged and all(d.chosen != greedy[0].chosen for d in flagged)
    assert all(d.chosen == greedy[0].chosen for d in explored if not d.explored)
    assert all(d.chain[0] == d.chosen for d in explored)


def test_workers_share_updates_through_versions_and_can_roll_back(router: Router) -> None:
    backend = MemoryBackend()
    one, two = learner_for(router), learner_for(router)
    x = context_of(router.inputs([fan_reply(router)]))[0]  # type: ignore[list-item]
    model = next(iter(SPECS))
    for _ in range(10):
        one.update(model, x, 0.0, 0.8)
    assert one.sync(backend) == 1
    for _ in range(10):
        two.update(model, x, 0.0, 0.8)
    assert two.sync(backend) == 2  # merged: version 2 holds both workers' rewards
    assert two.observations(model) == 20
    assert one.sync(backend) == 2 and one.observations(model) == 20
    low = one.predict(router.inputs([fan_reply(router)]), [model])[0, 0]  # type: ignore[list-item]
    assert one.rollback(backend, 1) == 3
    assert one.observations(model) == 10
    assert one.predict(router.inputs([fan_reply(router)]), [model])[0, 0] > low  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="no learner state version 9"):
        one.rollback(backend, 9)


def test_bad_state_and_bad_updates_are_refused(router: Router) -> None:
    learner = learner_for(router)
    with pytest.raises(ConfigurationError, match="unreadable"):
        learner.load(LearnerVersion(1, 0.0, "", "{not json"))
    with pytest.raises(ConfigurationError, match="format"):
        learner.load(LearnerVersion(1, 0.0, "", '{"format": 99, "context_dim": 16, "models": {}}'))
    with pytest.raises(ValueError, match="context"):
        learner.update("phi-4-mini", [1.0, 2.0], 0.5, 0.5)
    with pytest.raises(ValueError, match="reward"):
        learner.update("phi-4-mini", np.zeros(CONTEXT_DIM), 1.5, 0.5)
