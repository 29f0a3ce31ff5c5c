"""The response cache: answers served again, without a model call, to identical requests (exact
key) and, where the intent allows it, to requests of the same meaning (embedding similarity within
a tenant's (intent, language) partition, guarded by equal numbers and dates).

- :class:`CachePolicy` / :class:`CacheKey`: what a request's key is made of, TTL per intent, which
  intents are personal; :class:`Uncacheable` when a request must skip the cache.
- :class:`CachedAnswer`: what is stored (versioned JSON; corrupt entries are dropped and counted).
- :class:`ResponseCache` with :class:`InProcessCache` and :class:`RedisCache`. No lookup crosses
  tenants; a failing back end answers a miss and never raises into a request.
- :func:`numbers_of` / :func:`guard_of`: a prompt's fingerprint (numbers and dates; plus negations
  and names) that a semantic hit must share.
- :data:`DEFAULT_SEMANTIC_THRESHOLD`: the cosine threshold measured by ``benchmarks/cache.py``.
"""

from majordome.cache._entry import ENTRY_FORMAT, CachedAnswer, CorruptEntry
from majordome.cache._guard import guard_of, numbers_of
from majordome.cache._key import DEFAULT_TTL_S, KEY_VERSION, CacheKey, CachePolicy, Uncacheable, normalise_text
from majordome.cache._memory import CacheStats, InProcessCache, ResponseCache, SemanticHit
from majordome.cache._redis import RedisCache

__all__ = [
    "DEFAULT_SEMANTIC_THRESHOLD",
    "DEFAULT_TTL_S",
    "ENTRY_FORMAT",
    "KEY_VERSION",
    "CacheKey",
    "CachePolicy",
    "CacheStats",
    "CachedAnswer",
    "CorruptEntry",
    "InProcessCache",
    "RedisCache",
    "ResponseCache",
    "SemanticHit",
    "Uncacheable",
    "guard_of",
    "normalise_text",
    "numbers_of",
]

DEFAULT_SEMANTIC_THRESHOLD = 0.975
"""Cosine threshold for a semantic hit with :class:`~majordome.knowledge.StaticEmbedder` and the
full guard (:func:`guard_of`): the lowest giving no false hit on the tuning half of
``benchmarks/data/semantic_pairs.jsonl``. It still serves few paraphrases (about 6 % held out):
semantic lookup is worth enabling only with a transformer embedder (see ``benchmarks/cache.py``)."""
