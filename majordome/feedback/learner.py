"""The online learner: a bandit posterior on top of the router's quality model.

:class:`BanditQuality` is a :class:`~majordome.router.quality.QualityModel` (the "bandit
posterior" of the architecture). For each model it keeps a Bayesian linear regression of the
*residual* — observed reward minus what the base model (the prior table, or an offline-trained
model) predicted at decision time — on a small context: a bias, the intent probabilities, the
language, the log prompt length, and a fixed projection of the prompt's embedding when there is
one (32 numbers). Its prediction is the base's plus the posterior
mean residual, so with no feedback it *is* the base model (the warm start), and every reward
moves it: a model that keeps failing for an intent sees its quality there fall and loses its
share.

Exploration is Thompson sampling: :meth:`BanditQuality.sample` draws each model's residual
weights from the posterior, ``N(mean, noise² A⁻¹)``. The router explores only where the
Majordome lets it (a bounded share of traffic, never for sensitive intents, never past a budget)
and flags every decision whose sampled choice differs from the greedy one.

**Shared state.** The regression's sufficient statistics (``A = ridge·P + Σ w·x·xᵀ``, with
``P`` a diagonal prior precision, and ``b = Σ w·x·residual`` per model) add up, so worker
processes share one learner by merging:
each keeps the statistics it learned since its last :meth:`BanditQuality.sync` (its *delta*),
and a sync loads the newest saved version, adds the delta, and saves that as the next version
(compare-and-set: a version number is written once, so two workers syncing together both land,
one after the other). Every version is kept: :meth:`rollback` makes an old one current again (as
a new version, so the history stays linear) when an update was bad.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from majordome._errors import ConfigurationError
from majordome.router.intents import INTENTS
from majordome.router.outcomes import OutcomeTable
from majordome.router.quality import LANGUAGES, PriorQuality, QualityInputs, QualityModel

__all__ = ["CONTEXT_DIM", "BanditQuality", "LearnerVersion", "StateBackend", "context_of", "rollback_state"]

PROJECTION_DIM = 16
CONTEXT_DIM = 1 + len(INTENTS) + len(LANGUAGES) + 1 + PROJECTION_DIM
_STATE_FORMAT = 1
_PROJECTION_SEED = 20261204
# Prior precision per coordinate, times ``ridge``: the bias, the language and the length are
# shrunk harder than the intents, so that a residual learnt on one intent is mostly put on that
# intent (quality differs by intent first: the prior table is per intent) and moves the others
# only a little, through the shared coordinates.
_PRECISION = np.array([10.0] + [1.0] * len(INTENTS) + [4.0] * len(LANGUAGES) + [10.0] + [4.0] * PROJECTION_DIM)
_projections: dict[int, np.ndarray] = {}


def _projection(dim: int) -> np.ndarray:
    """A fixed random projection of ``dim``-dimensional embeddings to PROJECTION_DIM (the same in
    every process: seeded by the dimension), scaled so a unit vector maps to about unit length."""
    matrix = _projections.get(dim)
    if matrix is None:
        rng = np.random.default_rng(_PROJECTION_SEED + dim)
        matrix = _projections[dim] = rng.normal(0.0, 1.0 / np.sqrt(PROJECTION_DIM), (dim, PROJECTION_DIM))
    return matrix


def context_of(inputs: QualityInputs) -> np.ndarray:
    """``(n, CONTEXT_DIM)``: bias, intent probabilities, language one-hot, log tokens / 10, and a
    fixed projection of the prompt's embedding (zeros when the request has none), which lets
    the learner tell prompts of one intent apart."""
    out = np.zeros((inputs.rows, CONTEXT_DIM))
    intents, languages = len(INTENTS), len(LANGUAGES)
    out[:, 0] = 1.0
    out[:, 1 : 1 + intents] = inputs.intent_probs
    out[:, 1 + intents : 1 + intents + languages] = inputs.languages
    out[:, 1 + intents + languages] = inputs.log_tokens / 10.0
    if inputs.embeddings is not None:
        out[:, 2 + intents + languages :] = inputs.embeddings @ _projection(inputs.embeddings.shape[1])
    return out


@dataclass(frozen=True)
class LearnerVersion:
    version: int
    created_at: float
    note: str
    state: str  # JSON


class StateBackend(Protocol):
    """Where versions of the learner's state live (the event store implements it)."""

    def load_learner_state(self, version: int | None = None) -> LearnerVersion | None:
        """The given version, or the newest one; None when there is none."""
        ...

    def save_learner_state(self, version: int, state: str, note: str) -> bool:
        """Write ``version``; False (and nothing written) when that version already exists."""
        ...


class BanditQuality(QualityModel):
    """Base quality + a per-model Bayesian linear residual (see the module's docstring)."""

    kind = "bandit"
    reads_embedding = True

    def __init__(
        self,
        base: QualityModel,
        models: Sequence[str],
        *,
        ridge: float = 1.0,
        noise: float = 0.5,
        seed: int | None = None,
    ) -> None:
        if ridge <= 0 or noise <= 0:
            raise ConfigurationError(f"ridge and noise must be > 0, got {ridge} and {noise}")
        self.base = base
        self.needs_embedding = base.needs_embedding
        self.models = list(models)
        self.ridge = ridge
        self.noise = noise
        self.version: int | None = None  # the saved version this state was loaded from
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(seed)
        d = CONTEXT_DIM
        self._a = {m: np.diag(_PRECISION) * ridge for m in self.models}  # synced statistics + own delta
        self._b = {m: np.zeros(d) for m in self.models}
        self._n = dict.fromkeys(self.models, 0.0)
        self._delta_a = {m: np.zeros((d, d)) for m in self.models}
        self._delta_b = {m: np.zeros(d) for m in self.models}
        self._delta_n = dict.fromkeys(self.models, 0.0)
        self._theta: dict[str, np.ndarray] = {}  # posterior means, recomputed after updates
        self._chol: dict[str, np.ndarray] = {}  # Cholesky factors of A⁻¹, for sampling

    # -- prediction ----------------------------------------------------------------------------

    def _mean(self, model: str) -> np.ndarray | None:
        theta = self._theta.get(model)
        if theta is None and model in self._a:
            theta = self._theta[model] = np.linalg.solve(self._a[model], self._b[model])
        return theta

    def _base(self, inputs: QualityInputs, models: Sequence[str]) -> np.ndarray:
        """The base model's predictions, as a fresh array (one request on a prior table: its
        fast path, the request path's case)."""
        base = self.base
        if inputs.rows == 1 and isinstance(base, PriorQuality):
            language = LANGUAGES[int(np.argmax(inputs.languages[0]))]
            row = base.predict_one("general_help", language, models, inputs.intent_probs[0])
            return np.array([row], dtype=np.float64)
        return np.array(base.predict(inputs, models), dtype=np.float64)

    def predict(self, inputs: QualityInputs, models: Sequence[str]) -> np.ndarray:
        base = self._base(inputs, models)
        x = context_of(inputs)
        with self._lock:
            thetas = [self._mean(model) for model in models]
        for k, theta in enumerate(thetas):
            if theta is not None and self._n.get(models[k], 0.0) > 0:
                base[:, k] += x @ theta
        result: np.ndarray = np.clip(base, 0.0, 1.0)
        return result

    def sample(self, inputs: QualityInputs, models: Sequence[str]) -> np.ndarray:
        """Quality with each model's residual weights drawn from the posterior (Thompson)."""
        base = self._base(inputs, models)
        x = context_of(inputs)
        with self._lock:
            for k, model in enumerate(models):
                theta = self._mean(model)
                if theta is None:
                    continue
                chol = self._chol.get(model)
                if chol is None:
                    inverse = np.linalg.inv(self._a[model])
                    chol = self._chol[model] = np.linalg.cholesky((inverse + inverse.T) / 2)
                draw = theta + self.noise * (chol @ self._rng.standard_normal(CONTEXT_DIM))
                base[:, k] += x @ draw
        result: np.ndarray = np.clip(base, 0.0, 1.0)
        return result

    def observations(self, model: str) -> float:
        """The weight of the rewards seen for ``model`` (all workers, as of the last sync)."""
        return self._n.get(model, 0.0)

    # -- learning ------------------------------------------------------------------------------

    def update(
        self, model: str, context: Sequence[float], reward: float, base_quality: float, weight: float = 1.0
    ) -> None:
        """One reward for ``model`` chosen in ``context`` when the base model predicted
        ``base_quality``. Unknown models are added (a catalogue can grow)."""
        x = np.asarray(context, dtype=np.float64)
        if x.shape != (CONTEXT_DIM,):
            raise ValueError(f"a learner context has {CONTEXT_DIM} values, got shape {x.shape}")
        if not (0.0 <= reward <= 1.0) or weight < 0:
            raise ValueError(f"reward must be in [0, 1] and weight >= 0, got {reward} and {weight}")
        residual = float(reward) - float(base_quality)
        with self._lock:
            if model not in self._a:
                self._add_model(model)
            outer = weight * np.outer(x, x)
            self._a[model] += outer
            self._b[model] += weight * residual * x
            self._n[model] += weight
            self._delta_a[model] += outer
            self._delta_b[model] += weight * residual * x
            self._delta_n[model] += weight
            self._theta.pop(model, None)
            self._chol.pop(model, None)

    def _add_model(self, model: str) -> None:
        d = CONTEXT_DIM
        self.models.append(model)
        self._a[model], self._b[model], self._n[model] = np.diag(_PRECISION) * self.ridge, np.zeros(d), 0.0
        self._delta_a[model], self._delta_b[model], self._delta_n[model] = np.zeros((d, d)), np.zeros(d), 0.0

    def fit(self, inputs: QualityInputs, table: OutcomeTable) -> BanditQuality:
        """Every recorded (prompt, model) score as one observation (the offline warm start)."""
        base = self.base.predict(inputs, table.models)
        x = context_of(inputs)
        for j, model in enumerate(table.models):
            for i in np.flatnonzero(~np.isnan(table.scores[:, j])):
                self.update(model, x[i], float(table.scores[i, j]), float(base[i, j]))
        return self

    # -- state, sharing and rollback -----------------------------------------------------------

    def to_json(self) -> str:
        """The synced-plus-own statistics (what a save writes)."""
        with self._lock:
            return self._dump(self._a, self._b, self._n)

    def _dump(self, a: dict[str, np.ndarray], b: dict[str, np.ndarray], n: dict[str, float]) -> str:
        return json.dumps(
            {
                "format": _STATE_FORMAT,
                "context_dim": CONTEXT_DIM,
                "ridge": self.ridge,
                "models": {m: {"a": a[m].tolist(), "b": b[m].tolist(), "n": n[m]} for m in a},
            }
        )

    @staticmethod
    def _parse(state: str) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
        try:
            data: dict[str, Any] = json.loads(state)
            if data.get("format") != _STATE_FORMAT or data.get("context_dim") != CONTEXT_DIM:
                raise ConfigurationError(
                    f"learner state of format {data.get('format')} / context {data.get('context_dim')}; "
                    f"this code reads format {_STATE_FORMAT} / context {CONTEXT_DIM}"
                )
            out = {}
            for model, stats in data["models"].items():
                a = np.asarray(stats["a"], dtype=np.float64)
                b = np.asarray(stats["b"], dtype=np.float64)
                if a.shape != (CONTEXT_DIM, CONTEXT_DIM) or b.shape != (CONTEXT_DIM,):
                    raise ValueError(f"statistics of {model} have shapes {a.shape} and {b.shape}")
                out[str(model)] = (a, b, float(stats["n"]))
            return out
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(f"unreadable learner state: {exc}") from exc

    def load(self, version: LearnerVersion) -> None:
        """Replace the synced statistics by ``version``'s, keeping this worker's delta on top."""
        parsed = self._parse(version.state)
        with self._lock:
            for model in parsed:
                if model not in self._a:
                    self._add_model(model)
            for model in self.models:
                a, b, n = parsed.get(model, (np.diag(_PRECISION) * self.ridge, np.zeros(CONTEXT_DIM), 0.0))
                self._a[model] = a + self._delta_a[model]
                self._b[model] = b + self._delta_b[model]
                self._n[model] = n + self._delta_n[model]
            self._theta.clear()
            self._chol.clear()
            self.version = version.version

    def sync(self, backend: StateBackend, *, note: str = "sync", attempts: int = 20) -> int:
        """Merge this worker's delta into the newest saved state and save it as the next version;
        returns that version. Other workers' updates come in with it."""
        for _ in range(attempts):
            latest = backend.load_learner_state()
            with self._lock:
                has_delta = any(self._delta_n[m] > 0 for m in self.models)
            if latest is not None and not has_delta:
                if latest.version != self.version:
                    self.load(latest)
                return latest.version
            if latest is not None:
                self.load(latest)  # synced = latest, plus the delta on top
            with self._lock:
                state = self._dump(self._a, self._b, self._n)
                saved_delta = (
                    {m: v.copy() for m, v in self._delta_a.items()},
                    {m: v.copy() for m, v in self._delta_b.items()},
                    dict(self._delta_n),
                )
            version = (latest.version if latest is not None else 0) + 1
            if backend.save_learner_state(version, state, note):
                with self._lock:  # what was saved is synced now; keep only what came in since
                    for m in self.models:
                        if m in saved_delta[0]:
                            self._delta_a[m] -= saved_delta[0][m]
                            self._delta_b[m] -= saved_delta[1][m]
                            self._delta_n[m] -= saved_delta[2][m]
                    self.version = version
                return version
        raise ConfigurationError(f"could not save the learner state after {attempts} attempts (too much contention)")

    def rollback(self, backend: StateBackend, version: int) -> int:
        """Make saved ``version`` current again (saved as a new version); this worker's unsynced
        delta is dropped. Returns the new version."""
        with self._lock:
            for m in self.models:
                self._delta_a[m][:] = 0.0
                self._delta_b[m][:] = 0.0
                self._delta_n[m] = 0.0
        new = rollback_state(backend, version)
        restored = backend.load_learner_state(new)
        assert restored is not None
        self.load(restored)
        return new

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"base_kind": self.base.kind, "state": self.to_json()}, {}


def rollback_state(backend: StateBackend, version: int, *, attempts: int = 20) -> int:
    """Save a copy of learner state ``version`` as the newest version (workers pick it up at their
    next sync); returns the new version number."""
    old = backend.load_learner_state(version)
    if old is None:
        raise ConfigurationError(f"there is no learner state version {version}")
    BanditQuality._parse(old.state)  # refuse an unreadable one before anything changes
    for _ in range(attempts):
        latest = backend.load_learner_state()
        new = (latest.version if latest is not None else 0) + 1
        if backend.save_learner_state(new, old.state, f"rollback to version {version}"):
            return new
    raise ConfigurationError("could not save the rolled-back learner state (too much contention)")
