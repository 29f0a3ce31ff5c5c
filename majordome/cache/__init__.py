"""The response cache: answers served again, without a model call, to identical requests (exact
key) and, where the intent allows it, to requests of the same meaning (embedding similarity within
a tenant's (intent, language) partition, guarded by equal numbers and dates).

- :class:`CachePolicy` / :class:`CacheKey`: what a request's key is made of, TTL per intent, which
  intents are personal; :class:`Uncacheable` when a request must skip the cache.
- :class:`CachedAnswer`: what is stored (versioned JSON; corrupt entries are dropped and counted).
- :class:`ResponseCache` with :class:`InProcessCache` and :class:`RedisCache`. No lookup crosses
  tenants; a failing back end answers a miss and never raises into a request.
- :func:`numbers_of` / :func:`guard_of` / :func:`strict_guard_of`: a prompt's fingerprint
  (numbers and dates; plus negations and names; plus its content words) that a semantic hit
  must share.

Semantic lookup is opt-in (``semantic_cache_threshold``). On the 700 labelled pairs of
``benchmarks/data/semantic_pairs.jsonl`` similarity alone, with the offline embedders, keeps
false hits under 1 % at no useful threshold; with :func:`strict_guard_of` it served 8 % of the
held-out paraphrases and none of the held-out hard negatives (``benchmarks/cache.py``;
docs/BENCHMARKS.md §12).
"""

from majordome.cache._entry import ENTRY_FORMAT, CachedAnswer, CorruptEntry
from majordome.cache._guard import content_of, guard_of, numbers_of, strict_guard_of
from majordome.cache._key import DEFAULT_TTL_S, KEY_VERSION, CacheKey, CachePolicy, Uncacheable, normalise_text
from majordome.cache._memory import CacheStats, InProcessCache, ResponseCache, SemanticHit
from majordome.cache._redis import RedisCache

__all__ = [
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
    "content_of",
    "guard_of",
    "normalise_text",
    "numbers_of",
    "strict_guard_of",
]
