"""API keys: each key belongs to one tenant and is kept only as its SHA-256 digest."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from majordome._errors import ConfigurationError

__all__ = ["ApiKeys", "hash_key"]

_HEX64 = re.compile(r"[0-9a-f]{64}")


def hash_key(key: str) -> str:
    """The SHA-256 hex digest of ``key``: what a keys file holds."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeys:
    """Which tenant each API key belongs to.

    Keys are stored hashed (SHA-256); a presented key is hashed and compared with every stored
    digest in constant time (no early exit), so neither the key nor how much of it matched shows
    in the timing. A digest belongs to exactly one tenant. Load a file with :meth:`load`
    (JSON or TOML: ``{tenant: ["<sha256 hex>", ...]}``) or add keys with :meth:`add`.
    """

    def __init__(self, hashes: Mapping[str, Iterable[str]] | None = None) -> None:
        self._entries: list[tuple[bytes, str]] = []
        self._owner: dict[str, str] = {}
        for tenant, digests in (hashes or {}).items():
            if isinstance(digests, str):
                raise ConfigurationError(f"API keys of tenant {tenant!r} must be a list of SHA-256 hex digests")
            for digest in digests:
                self.add_hash(tenant, digest)

    @classmethod
    def load(cls, path: str | Path) -> ApiKeys:
        """Keys from a JSON or TOML file (by its suffix; JSON otherwise)."""
        path = Path(path)
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ConfigurationError(f"API keys file {path}: cannot read it ({exc.strerror})") from exc
        try:
            data: Any = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise ConfigurationError(
                f"API keys file {path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}"
            ) from exc
        if not isinstance(data, dict):
            raise ConfigurationError(f"API keys file {path} must map each tenant to a list of SHA-256 digests")
        return cls(data)

    def add(self, tenant: str, key: str) -> None:
        """Accept ``key`` (kept hashed) for ``tenant``."""
        if not key:
            raise ConfigurationError("an API key cannot be empty")
        self.add_hash(tenant, hash_key(key))

    def add_hash(self, tenant: str, digest: str) -> None:
        """Accept the key whose SHA-256 hex digest is ``digest`` for ``tenant``."""
        if not isinstance(tenant, str) or not tenant or len(tenant) > 200:
            raise ConfigurationError(
                f"API key tenant must be a non-empty string of at most 200 characters, got {tenant!r}"
            )
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest.lower()):
            raise ConfigurationError(
                f"API keys of tenant {tenant!r}: each entry must be a SHA-256 hex digest (64 hex digits)"
            )
        digest = digest.lower()
        owner = self._owner.get(digest)
        if owner is not None and owner != tenant:
            raise ConfigurationError(f"one API key is given to two tenants ({owner!r} and {tenant!r})")
        if owner is None:
            self._owner[digest] = tenant
            self._entries.append((bytes.fromhex(digest), tenant))

    def tenant_for(self, key: str) -> str | None:
        """The tenant of ``key``; None when it is not a known key."""
        presented = hashlib.sha256(key.encode("utf-8")).digest()
        found: str | None = None
        for digest, tenant in self._entries:  # no early exit: the time does not depend on the match
            if hmac.compare_digest(presented, digest):
                found = tenant
        return found

    @property
    def tenants(self) -> frozenset[str]:
        return frozenset(self._owner.values())

    def __len__(self) -> int:
        return len(self._entries)
