"""The tenant's quota book, in its own encrypted store: alerts (open until an admin
clears them; the in-app banner) and the users seen, to name pseudonymous metering rows."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from enclave.errors import NotFound
from enclave.hookspecs import Alert
from enclave.store import Migration, TenantStore


def _m001_alerts(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""CREATE TABLE alerts (
        id VARCHAR PRIMARY KEY, raised_at TIMESTAMPTZ NOT NULL, kind VARCHAR NOT NULL,
        severity VARCHAR NOT NULL, message VARCHAR NOT NULL, figures VARCHAR NOT NULL,
        cleared_at TIMESTAMPTZ, cleared_by VARCHAR)""")
    con.execute("""CREATE TABLE quota_users (
        user_hash VARCHAR PRIMARY KEY, email VARCHAR NOT NULL, first_seen TIMESTAMPTZ)""")


MIGRATIONS: list[Migration] = [("001_alerts", _m001_alerts)]
_seen: set[tuple[str, str]] = set()
_seen_lock = threading.Lock()


@dataclass(frozen=True)
class StoredAlert:
    id: str
    raised_at: datetime
    kind: str
    severity: str
    message: str
    figures: dict[str, Any]
    cleared_at: datetime | None
    cleared_by: str | None


class QuotaBook:
    def __init__(self, store: TenantStore) -> None:
        self.store = store

    def add(self, alert: Alert) -> str:
        """Keep an alert open (queued with the next write batch)."""
        alert_id = uuid.uuid4().hex[:12]
        self.store.write((
            "INSERT INTO alerts (id, raised_at, kind, severity, message, figures) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [alert_id, datetime.now(UTC), alert.kind, alert.severity, alert.message,
             json.dumps(alert.figures, default=str)]))
        return alert_id

    def alerts(self, open_only: bool = True, limit: int = 200, alert_id: str | None = None
               ) -> list[StoredAlert]:
        """Newest first."""
        where = ["cleared_at IS NULL" if open_only else "true", "id = ?" if alert_id else "true"]
        rows = self.store.query(
            "SELECT id, raised_at, kind, severity, message, figures, cleared_at, cleared_by "
            f"FROM alerts WHERE {' AND '.join(where)} ORDER BY raised_at DESC LIMIT ?",
            [*([alert_id] if alert_id else []), limit])
        return [StoredAlert(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7])
                for r in rows]

    def clear(self, alert_id: str, by: str) -> StoredAlert:
        """Close an open alert; returns it as it was."""
        found = self.alerts(alert_id=alert_id)
        if not found:
            raise NotFound(f"no open alert '{alert_id}'")
        self.store.write(("UPDATE alerts SET cleared_at = ?, cleared_by = ? WHERE id = ?",
                          [datetime.now(UTC), by, alert_id]))
        self.store.flush()
        return found[0]

    def remember_user(self, user_hash: str, email: str) -> None:
        """Record who a user hash is, once per process and user."""
        key = (str(self.store.path), user_hash)
        with _seen_lock:
            if key in _seen:
                return
            _seen.add(key)
        self.store.write(("INSERT INTO quota_users VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                          [user_hash, email, datetime.now(UTC)]))

    def users(self) -> dict[str, str]:
        """User hash -> email, for the users this tenant has seen."""
        return {h: e for h, e in self.store.query("SELECT user_hash, email FROM quota_users")}
