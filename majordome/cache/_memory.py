"""The cache interface and its in-process back end."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from majordome.cache._entry import CachedAnswer, CorruptEntry
from majordome.cache._key import CacheKey

__all__ = ["CacheStats", "InProcessCache", "ResponseCache", "SemanticHit"]

Clock = Callable[[], float]
Partition = tuple[str, str, str, str]


def partition_of(tenant: str, intent: str, language: str | None, scope: str = "") -> Partition:
    return (tenant, intent, language or "", scope)


@dataclass
class CacheStats:
    """Counters a back end keeps (read them for metrics)."""

    hits: int = 0
    semantic_hits: int = 0
    misses: int = 0
    puts: int = 0
    corrupt: int = 0
    errors: int = 0


@dataclass(frozen=True, slots=True)
class SemanticHit:
    """A cached answer to a similar request, with the cosine similarity of the two."""

    answer: CachedAnswer
    score: float
    key: CacheKey


class ResponseCache(ABC):
    """Answers kept by exact key, and by embedding within a (tenant, intent, language) partition.

    Every method is safe to call on the request path: a back end that fails answers a miss
    (and ``put`` does nothing); nothing here raises into a request. Lookups never cross tenants.
    """

    stats: CacheStats

    @abstractmethod
    async def get(self, key: CacheKey) -> CachedAnswer | None:
        """The answer stored under ``key``, unless expired."""

    @abstractmethod
    async def put(
        self,
        key: CacheKey,
        answer: CachedAnswer,
        ttl_s: float,
        *,
        embedding: np.ndarray | None = None,
        fingerprint: tuple[str, ...] = (),
        scope: str = "",
    ) -> None:
        """Keep ``answer`` under ``key`` for ``ttl_s`` seconds; with ``embedding`` (L2-normalised)
        also for semantic lookup in the answer's (tenant, intent, language, scope) partition.
        ``fingerprint``: the prompt's guard fingerprint (:func:`numbers_of` or :func:`guard_of`);
        ``scope``: what a similar request must share exactly (:meth:`CachePolicy.semantic_scope`)."""

    @abstractmethod
    async def get_similar(
        self,
        tenant: str,
        intent: str,
        language: str | None,
        embedding: np.ndarray,
        threshold: float,
        *,
        fingerprint: tuple[str, ...] | None = None,
        scope: str = "",
    ) -> SemanticHit | None:
        """The most similar live entry of the partition with cosine ≥ ``threshold``; with
        ``fingerprint``, only among entries whose fingerprint is equal (the guard)."""

    async def aclose(self) -> None:  # noqa: B027 - a no-op default, overridden where needed
        """Release connections (nothing for in-process)."""


@dataclass
class _Entry:
    raw: str
    expires_at: float


_FIT_AT = 4096  # rows before a partition gets its projection
_REFIT_GROWTH = 4  # refit when the partition has grown this many times since the last fit
_PROJECTED_DIMS = 64


@dataclass
class _Index:
    """One partition's vectors: a growing matrix, with rows marked dead by expiry 0.

    From :data:`_FIT_AT` rows a search first reads a projection of the rows on the partition's
    own principal directions (``k`` of ``dim`` columns, fitted on the rows), and only the rows it
    cannot rule out are compared in full. The filter is exact, never a guess: for unit vectors,
    ``cos(x, q) <= <Px, Pq> + |x - Px| * |q - Pq|`` (Cauchy-Schwarz on the residuals), so a row
    whose bound is under the threshold cannot be a hit. A search then reads ``k / dim`` of the
    memory it would otherwise (the full product is memory-bound at 100k rows)."""

    dim: int
    vectors: np.ndarray = field(init=False)
    expires: np.ndarray = field(init=False)
    digests: list[str] = field(default_factory=list)
    numbers: list[tuple[str, ...]] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    size: int = 0
    basis: np.ndarray | None = None  # (dim, k), orthonormal columns
    projected: np.ndarray = field(init=False)
    residuals: np.ndarray = field(init=False)
    fitted_size: int = 0

    def __post_init__(self) -> None:
        self.vectors = np.zeros((16, self.dim), dtype=np.float32)
        self.expires = np.zeros(16, dtype=np.float64)
        self.projected = np.zeros((16, 0), dtype=np.float32)
        self.residuals = np.zeros(16, dtype=np.float32)

    def add(self, digest: str, vector: np.ndarray, expires_at: float, numbers: tuple[str, ...]) -> None:
        row = self.rows.get(digest)
        if row is None:
            if self.size == len(self.expires):
                self._grow()
            row = self.size
            self.size += 1
            self.digests.append(digest)
            self.numbers.append(numbers)
            self.rows[digest] = row
        self.vectors[row] = vector
        self.expires[row] = expires_at
        self.numbers[row] = numbers
        if self.basis is not None:
            self._project(row, row + 1)
        if self.size >= _FIT_AT and self.size >= _REFIT_GROWTH * self.fitted_size:
            self._fit()

    def _grow(self) -> None:
        capacity = len(self.expires) * 2
        vectors = np.zeros((capacity, self.dim), dtype=np.float32)
        vectors[: self.size] = self.vectors[: self.size]
        expires = np.zeros(capacity, dtype=np.float64)
        expires[: self.size] = self.expires[: self.size]
        projected = np.zeros((capacity, self.projected.shape[1]), dtype=np.float32)
        projected[: self.size] = self.projected[: self.size]
        residuals = np.zeros(capacity, dtype=np.float32)
        residuals[: self.size] = self.residuals[: self.size]
        self.vectors, self.expires, self.projected, self.residuals = vectors, expires, projected, residuals

    def _fit(self) -> None:
        """The partition's principal directions, from (a sample of) its rows; every row projected."""
        k = min(_PROJECTED_DIMS, self.dim // 2)
        if k < 1:
            return
        rows = self.vectors[: self.size]
        sample = rows[np.random.default_rng(self.size).choice(self.size, min(self.size, 8192), replace=False)]
        _, _, vt = np.linalg.svd(sample.astype(np.float64), full_matrices=False)
        self.basis = np.ascontiguousarray(vt[:k].T, dtype=np.float32)
        self.projected = np.zeros((len(self.expires), k), dtype=np.float32)
        self.fitted_size = self.size
        self._project(0, self.size)

    def _project(self, start: int, stop: int) -> None:
        assert self.basis is not None
        part = self.vectors[start:stop] @ self.basis
        self.projected[start:stop] = part
        left = 1.0 - np.einsum("ij,ij->i", part, part)
        # a little above the true residual: float32 rounding must never make the bound too tight
        self.residuals[start:stop] = np.sqrt(np.maximum(left, 0.0)) + 1e-4

    def search(
        self, vector: np.ndarray, threshold: float, now: float, numbers: tuple[str, ...] | None
    ) -> list[tuple[str, float]]:
        """Live rows at or above ``threshold``, best first (numbers-guarded when asked)."""
        if self.size == 0:
            return []
        if self.basis is None:
            scores = self.vectors[: self.size] @ vector
            candidates = np.flatnonzero((scores >= threshold) & (self.expires[: self.size] > now))
            found = scores[candidates]
        else:
            q = vector @ self.basis
            q_left = float(np.sqrt(max(0.0, 1.0 - float(q @ q)))) + 1e-4
            bound = self.projected[: self.size] @ q
            bound += self.residuals[: self.size] * q_left
            maybe = np.flatnonzero(bound >= threshold)
            maybe = maybe[self.expires[maybe] > now]
            exact = self.vectors[maybe] @ vector
            keep = exact >= threshold
            candidates, found = maybe[keep], exact[keep]
        if candidates.size == 0:
            return []
        order = np.argsort(-found, kind="stable")
        return [
            (self.digests[row], float(score))
            for row, score in zip(candidates[order].tolist(), found[order].tolist(), strict=True)
            if numbers is None or self.numbers[row] == numbers
        ]

    def compact(self, now: float) -> None:
        live = np.flatnonzero(self.expires[: self.size] > now)
        if live.size * 2 > self.size:
            return
        self.vectors[: live.size] = self.vectors[live]
        self.expires[: live.size] = self.expires[live]
        self.projected[: live.size] = self.projected[live]
        self.residuals[: live.size] = self.residuals[live]
        self.expires[live.size : self.size] = 0
        self.digests = [self.digests[row] for row in live.tolist()]
        self.numbers = [self.numbers[row] for row in live.tolist()]
        self.rows = {digest: row for row, digest in enumerate(self.digests)}
        self.size = int(live.size)


def as_vector(embedding: np.ndarray) -> np.ndarray:
    vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
    norm = float(np.sqrt(vector @ vector))
    return vector / norm if norm > 0 else vector


class InProcessCache(ResponseCache):
    """One process's cache: an LRU of at most ``max_entries`` entries, each with its TTL, and one
    vector matrix per (tenant, intent, language) for semantic lookup. Thread-safe.

    Entries are kept in their JSON form, so both back ends decode (and drop corrupt entries) the
    same way."""

    def __init__(self, *, max_entries: int = 10_000, clock: Clock = time.time) -> None:
        self.max_entries = max_entries
        self.stats = CacheStats()
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._indexes: dict[Partition, _Index] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def _read(self, slot: tuple[str, str], now: float) -> CachedAnswer | None:
        entry = self._entries.get(slot)
        if entry is None:
            return None
        if entry.expires_at <= now:
            del self._entries[slot]
            return None
        try:
            answer = CachedAnswer.from_json(entry.raw)
        except CorruptEntry:
            del self._entries[slot]
            self.stats.corrupt += 1
            return None
        if answer.tenant != slot[0]:  # never possible through put(); checked all the same
            del self._entries[slot]
            self.stats.corrupt += 1
            return None
        self._entries.move_to_end(slot)
        return answer

    async def get(self, key: CacheKey) -> CachedAnswer | None:
        with self._lock:
            answer = self._read((key.tenant, key.digest), self._clock())
            if answer is None:
                self.stats.misses += 1
            else:
                self.stats.hits += 1
            return answer

    async def put(
        self,
        key: CacheKey,
        answer: CachedAnswer,
        ttl_s: float,
        *,
        embedding: np.ndarray | None = None,
        fingerprint: tuple[str, ...] = (),
        scope: str = "",
    ) -> None:
        if ttl_s <= 0 or answer.tenant != key.tenant:
            return
        self.put_raw(key, answer.to_json(), ttl_s)
        if embedding is not None:
            vector = as_vector(embedding)
            expires_at = self._clock() + ttl_s
            with self._lock:
                partition = partition_of(answer.tenant, answer.intent, answer.language, scope)
                index = self._indexes.get(partition)
                if index is None or index.dim != vector.shape[0]:
                    index = self._indexes[partition] = _Index(vector.shape[0])
                index.add(key.digest, vector, expires_at, fingerprint)

    def put_raw(self, key: CacheKey, raw: str, ttl_s: float) -> None:
        """Store an already encoded entry (the tests' way to plant a corrupt one)."""
        with self._lock:
            slot = (key.tenant, key.digest)
            self._entries[slot] = _Entry(raw, self._clock() + ttl_s)
            self._entries.move_to_end(slot)
            self.stats.puts += 1
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    async def get_similar(
        self,
        tenant: str,
        intent: str,
        language: str | None,
        embedding: np.ndarray,
        threshold: float,
        *,
        fingerprint: tuple[str, ...] | None = None,
        scope: str = "",
    ) -> SemanticHit | None:
        vector = as_vector(embedding)
        with self._lock:
            now = self._clock()
            index = self._indexes.get(partition_of(tenant, intent, language, scope))
            if index is None or index.dim != vector.shape[0]:
                self.stats.misses += 1
                return None
            for digest, score in index.search(vector, threshold, now, fingerprint):
                answer = self._read((tenant, digest), now)
                if answer is not None:
                    self.stats.semantic_hits += 1
                    return SemanticHit(answer, score, CacheKey(tenant, intent, digest))
                index.expires[index.rows[digest]] = 0  # evicted or corrupt: a dead row from now on
            index.compact(now)
            self.stats.misses += 1
            return None
