"""The Redis back end of the response cache, shared by every worker.

* Exact entries: one string per key, ``{prefix}e:{tenant}:{digest}``, with ``EX`` = the TTL.
* Semantic lookup: one stream per (tenant, intent, language) partition,
  ``{prefix}s:{tenant}:{intent}:{language}:{scope}``, whose records carry the digest, the float32 vector,
  the expiry time and the number fingerprint (never the prompt's text). Each worker keeps a local
  mirror of the partitions it searches and reads only the records added since its last read
  (``XRANGE`` from its last id), so a lookup costs one round trip plus a numpy product over the
  partition, and a hit one ``GET`` of the exact entry (whose own TTL is the truth). Streams are
  capped (``MAXLEN ~``) and expire with their newest entry.

An outage (connection refused, timeout, any Redis error) is a miss, and ``put`` does nothing; it
is logged once when it starts (``cache.unavailable``) and once when Redis answers again
(``cache.recovered``), never per request.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np

from majordome._errors import ConfigurationError
from majordome._logging import get_logger
from majordome.cache._entry import CachedAnswer, CorruptEntry
from majordome.cache._key import CacheKey
from majordome.cache._memory import (
    CacheStats,
    Clock,
    Partition,
    ResponseCache,
    SemanticHit,
    _Index,
    as_vector,
    partition_of,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisCache"]

_log = get_logger("majordome.cache")
_BATCH = 5_000
_MAX_CANDIDATES = 4


class RedisCache(ResponseCache):
    """The response cache in Redis (give ``url`` or a ``client``). ``timeout_s`` bounds every
    command (a cache slower than that is worse than none); ``max_partition_entries`` caps each
    semantic partition's stream."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Redis | None = None,
        prefix: str = "majordome:cache:",
        timeout_s: float = 0.25,
        max_partition_entries: int = 200_000,
        clock: Clock = time.time,
    ) -> None:
        try:
            from redis.asyncio import Redis
            from redis.exceptions import RedisError
        except ImportError as error:
            raise ConfigurationError("RedisCache needs the redis package: pip install 'majordome[redis]'") from error
        if (url is None) == (client is None):
            raise ConfigurationError("RedisCache needs exactly one of url= and client=")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not timeout_s > 0:
            raise ConfigurationError(f"RedisCache timeout_s must be a number > 0, got {timeout_s!r}")
        if client is None:
            if not isinstance(url, str) or not url:
                raise ConfigurationError("RedisCache url must be a non-empty string")
            try:
                client = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
            except ValueError as error:
                raise ConfigurationError(f"RedisCache: invalid Redis URL: {error}") from None
            self._owns_client = True
        else:
            self._owns_client = False
        self._client: Redis = client
        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
        self._prefix = prefix
        self._clock = clock
        self._max_partition = max_partition_entries
        self._mirrors: dict[Partition, tuple[_Index, str]] = {}
        self._down = False
        self.stats = CacheStats()

    # -- keys and failure handling -----------------------------------------------------------

    def _entry_key(self, tenant: str, digest: str) -> str:
        return f"{self._prefix}e:{quote(tenant, safe='')}:{digest}"

    def _stream_key(self, partition: Partition) -> str:
        return f"{self._prefix}s:" + ":".join(quote(part, safe="") for part in partition)

    def _failed(self, error: BaseException) -> None:
        self.stats.errors += 1
        if not self._down:
            self._down = True
            _log.warning("cache.unavailable", backend="redis", error=type(error).__name__)

    def _succeeded(self) -> None:
        if self._down:
            self._down = False
            _log.info("cache.recovered", backend="redis")

    def _decode(self, tenant: str, raw: Any) -> CachedAnswer | None:
        try:
            answer = CachedAnswer.from_json(raw)
        except CorruptEntry:
            self.stats.corrupt += 1
            return None
        if answer.tenant != tenant:
            self.stats.corrupt += 1
            return None
        return answer

    # -- exact ---------------------------------------------------------------------------------

    async def get(self, key: CacheKey) -> CachedAnswer | None:
        entry_key = self._entry_key(key.tenant, key.digest)
        try:
            raw = await self._client.get(entry_key)
            answer = None if raw is None else self._decode(key.tenant, raw)
            if raw is not None and answer is None:
                await self._client.delete(entry_key)
        except self._errors as error:
            self._failed(error)
            self.stats.misses += 1
            return None
        self._succeeded()
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
        ttl_ms = max(1, int(ttl_s * 1000))
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.set(self._entry_key(key.tenant, key.digest), answer.to_json(), px=ttl_ms)
                if embedding is not None:
                    stream = self._stream_key(partition_of(answer.tenant, answer.intent, answer.language, scope))
                    record: dict[Any, Any] = {
                        "d": key.digest,
                        "v": as_vector(embedding).tobytes(),
                        "x": repr(self._clock() + ttl_s),
                        "n": json.dumps(fingerprint),
                    }
                    pipe.xadd(stream, record, maxlen=self._max_partition, approximate=True)
                    pipe.pexpire(stream, ttl_ms, nx=True)
                    pipe.pexpire(stream, ttl_ms, gt=True)
                await pipe.execute()
        except self._errors as error:
            self._failed(error)
            return
        self._succeeded()
        self.stats.puts += 1

    # -- semantic ------------------------------------------------------------------------------

    async def _refresh(self, partition: Partition, dim: int) -> _Index:
        index, last = self._mirrors.get(partition, (None, "-"))
        if index is None or index.dim != dim:
            index, last = _Index(dim), "-"
        stream = self._stream_key(partition)
        while True:
            start = last if last == "-" else f"({last}"
            records: list[Any] = list(await self._client.xrange(stream, min=start, max="+", count=_BATCH) or [])
            for record_id, raw_fields in records:
                fields: dict[Any, Any] = raw_fields or {}
                last = record_id.decode() if isinstance(record_id, bytes) else str(record_id)
                try:
                    vector = np.frombuffer(fields[b"v"], dtype=np.float32)
                    numbers = tuple(json.loads(fields[b"n"]))
                    expires_at = float(fields[b"x"])
                    digest = fields[b"d"].decode()
                except (KeyError, ValueError, TypeError, UnicodeDecodeError):
                    self.stats.corrupt += 1
                    continue
                if vector.shape[0] != dim:
                    continue  # written with another embedder: not comparable
                index.add(digest, vector, expires_at, numbers)
            if len(records) < _BATCH:
                break
        self._mirrors[partition] = (index, last)
        return index

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
        partition = partition_of(tenant, intent, language, scope)
        try:
            index = await self._refresh(partition, vector.shape[0])
            now = self._clock()
            for digest, score in index.search(vector, threshold, now, fingerprint)[:_MAX_CANDIDATES]:
                raw = await self._client.get(self._entry_key(tenant, digest))
                answer = None if raw is None else self._decode(tenant, raw)
                if answer is not None and answer.intent == intent:
                    self._succeeded()
                    self.stats.semantic_hits += 1
                    return SemanticHit(answer, score, CacheKey(tenant, intent, digest))
                index.expires[index.rows[digest]] = 0
            index.compact(now)
        except self._errors as error:
            self._failed(error)
            self.stats.misses += 1
            return None
        self._succeeded()
        self.stats.misses += 1
        return None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
