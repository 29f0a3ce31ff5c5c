"""The real servers the suite gets from ``scripts/services.sh`` (fixtures in tests/conftest.py):
a test's PostgreSQL schema and Redis key prefix are its own."""

from __future__ import annotations

import psycopg
import redis


def test_a_postgres_test_works_in_a_fresh_schema_of_its_own(postgres_dsn: str, postgres_schema_dsn: str) -> None:
    with psycopg.connect(postgres_schema_dsn, autocommit=True) as connection:
        row = connection.execute("SELECT current_schema()").fetchone()
        assert row is not None and row[0].startswith("test_")
        schema = row[0]
        tables = connection.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s", (schema,)).fetchone()
        assert tables == (0,)
        connection.execute("CREATE TABLE events (id integer)")  # unqualified: lands in the test's schema
    with psycopg.connect(postgres_dsn) as connection:
        assert connection.execute("SELECT to_regclass(%s)", (f"{schema}.events",)).fetchone() != (None,)
        assert connection.execute("SELECT to_regclass('public.events')").fetchone() == (None,)


def test_a_redis_test_has_a_key_prefix_of_its_own(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert not list(client.scan_iter(match=f"{redis_prefix}*"))
        client.set(f"{redis_prefix}k", "v")
        assert client.get(f"{redis_prefix}k") == b"v"
    finally:
        client.close()
