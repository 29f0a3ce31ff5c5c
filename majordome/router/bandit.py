"""An online learner for routing: a contextual bandit over the catalogue's models.

Disjoint LinUCB (Li et al., 2010): for each model, a ridge regression of the reward on the
request's context, and the choice maximises the predicted reward plus an exploration bonus
``alpha * sqrt(xᵀ A⁻¹ x)`` minus the cost weight. Only the chosen model's outcome is observed
(that is the bandit setting). The prior can warm-start it: the regressions start at a given mean
reward per model, with ``prior_strength`` pseudo-observations.

The context is small on purpose (intent probabilities, language, log length, and a fixed random
projection of the embedding): with a few hundred observations per model, a 400-dimensional
regression would only explore.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from majordome.router.quality import QualityInputs

__all__ = ["LinUCB", "bandit_context"]


def bandit_context(inputs: QualityInputs, *, projection_dim: int = 16, seed: int = 0) -> np.ndarray:
    """``(n, d)`` contexts: a bias, intent probabilities, language, log length and a fixed
    (seeded) random projection of the embedding."""
    parts = [np.ones((inputs.rows, 1)), inputs.intent_probs, inputs.languages, (inputs.log_tokens / 10.0)[:, None]]
    if inputs.embeddings is not None and projection_dim:
        rng = np.random.default_rng(seed)
        projection = rng.normal(0, 1 / np.sqrt(projection_dim), (inputs.embeddings.shape[1], projection_dim))
        parts.append(inputs.embeddings @ projection)
    return np.hstack(parts)


class LinUCB:
    """Disjoint LinUCB over ``models`` with ``dim``-dimensional contexts."""

    def __init__(
        self,
        models: Sequence[str],
        dim: int,
        *,
        alpha: float = 0.5,
        ridge: float = 1.0,
        prior_mean: Sequence[float] | None = None,
        prior_strength: float = 5.0,
    ) -> None:
        self.models = list(models)
        self.alpha = alpha
        self.a_inv = np.stack([np.eye(dim) / ridge for _ in self.models])  # (m, d, d)
        self.b = np.zeros((len(self.models), dim))
        if prior_mean is not None:
            # the bias coordinate (index 0) starts at the prior: as if seen prior_strength times
            for j, mean in enumerate(prior_mean):
                self._observe(j, np.eye(dim)[0] * np.sqrt(prior_strength), float(mean) * np.sqrt(prior_strength))
        self.pulls = np.zeros(len(self.models), dtype=np.int64)

    def estimates(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted reward and exploration bonus of every model for context ``x``."""
        theta = np.einsum("mij,mj->mi", self.a_inv, self.b)
        mean = theta @ x
        spread = np.sqrt(np.maximum(np.einsum("i,mij,j->m", x, self.a_inv, x), 0.0))
        return mean, self.alpha * spread

    def choose(self, x: np.ndarray, costs: np.ndarray, lam: float, available: np.ndarray | None = None) -> int:
        """The model with the best optimistic utility (reward + bonus − λ·cost)."""
        mean, bonus = self.estimates(x)
        utility = mean + bonus - lam * costs
        if available is not None:
            utility = np.where(available, utility, -np.inf)
        return int(np.argmax(utility))

    def update(self, model: int, x: np.ndarray, reward: float) -> None:
        self._observe(model, x, reward)
        self.pulls[model] += 1

    def _observe(self, model: int, x: np.ndarray, reward: float) -> None:
        a_inv = self.a_inv[model]
        ax = a_inv @ x
        self.a_inv[model] = a_inv - np.outer(ax, ax) / (1.0 + x @ ax)  # Sherman-Morrison
        self.b[model] += reward * x
