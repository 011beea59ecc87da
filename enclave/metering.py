"""Platform-wide metering: one row per turn (tenant, pseudonymous user, tokens, latency,
outcome; never content), in the platform store, for quotas and analytics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import duckdb

from enclave.store import Migration, TenantStore
from enclave.turns import TurnRecord


def _m001_usage(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""CREATE TABLE usage (
        ts TIMESTAMPTZ NOT NULL, tenant VARCHAR NOT NULL, user_hash VARCHAR NOT NULL,
        channel VARCHAR NOT NULL, assistant VARCHAR NOT NULL, model VARCHAR NOT NULL,
        outcome VARCHAR NOT NULL, prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL, estimated BOOLEAN NOT NULL,
        latency_ms DOUBLE NOT NULL)""")


MIGRATIONS: list[Migration] = [("001_usage", _m001_usage)]
COLUMNS = ("ts", "tenant", "user_hash", "channel", "assistant", "model", "outcome",
           "prompt_tokens", "completion_tokens", "estimated", "latency_ms")


class Metering:
    def __init__(self, store: TenantStore) -> None:
        self.store = store

    def record(self, r: TurnRecord, at: datetime | None = None) -> None:
        """Queue one turn's figures (batched off the hot path)."""
        u = r.usage
        self.store.write((
            f"INSERT INTO usage VALUES ({', '.join('?' * len(COLUMNS))})",
            [at or datetime.now(UTC), r.tenant, r.user_hash, r.channel, r.assistant,
             r.model, r.outcome, u.prompt_tokens if u else 0,
             u.completion_tokens if u else 0, u.estimated if u else False, r.latency_ms]))

    def rows(self, tenant: str | None = None, since: datetime | None = None
             ) -> list[dict[str, Any]]:
        """Usage rows, oldest first, optionally for one tenant and from a time on."""
        where: list[str] = ["true"]
        params: list[Any] = []
        if tenant is not None:
            where.append("tenant = ?")
            params.append(tenant)
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        rows = self.store.query(f"SELECT {', '.join(COLUMNS)} FROM usage WHERE "
                                f"{' AND '.join(where)} ORDER BY ts", params)
        return [dict(zip(COLUMNS, r, strict=True)) for r in rows]
