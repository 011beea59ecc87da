"""The turn log: one row per chat turn in the tenant's own encrypted store.

Written from the workspace after every turn (ok, refused, model error) through the
store's batched writer: the chat only pays for a queue put. With the tenant setting
``[logging] content = "metadata"`` prompt and response are not kept. Rows older than
``retention_days`` are removed by :meth:`TurnLog.prune`.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

import duckdb

from enclave.errors import BadInput, NotFound
from enclave.store import Migration, TenantStore
from enclave.turns import TurnRecord

OUTCOMES = ("ok", "refused", "model_error", "error")
MAX_ROWS = 10_000


def _m001_turnlog(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""CREATE TABLE turn_log (
        id VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL, tenant VARCHAR NOT NULL,
        user_id VARCHAR NOT NULL, channel VARCHAR NOT NULL, assistant VARCHAR NOT NULL,
        conversation_id VARCHAR NOT NULL, prompt VARCHAR, response VARCHAR,
        chunk_ids VARCHAR[] NOT NULL, model VARCHAR NOT NULL, prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL, tokens_estimated BOOLEAN NOT NULL,
        latency_ms DOUBLE NOT NULL, outcome VARCHAR NOT NULL, error VARCHAR)""")


MIGRATIONS: list[Migration] = [("001_turnlog", _m001_turnlog)]


@dataclass(frozen=True)
class LogEntry:
    id: str
    ts: datetime
    tenant: str
    user_id: str
    channel: str
    assistant: str
    conversation_id: str
    prompt: str | None
    response: str | None
    chunk_ids: tuple[str, ...]
    model: str
    prompt_tokens: int
    completion_tokens: int
    tokens_estimated: bool
    latency_ms: float
    outcome: str
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ISO timestamp, list of chunk ids."""
        return asdict(self) | {"ts": self.ts.isoformat(), "chunk_ids": list(self.chunk_ids)}


COLUMNS = tuple(f.name for f in fields(LogEntry))
INSERT = f"INSERT INTO turn_log VALUES ({', '.join('?' * len(COLUMNS))})"


@dataclass(frozen=True)
class LogFilter:
    """Which turns to read; every field optional. ``until`` is exclusive."""

    user: str | None = None
    assistant: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 500

    def __post_init__(self) -> None:
        if self.outcome is not None and self.outcome not in OUTCOMES:
            raise BadInput(f"unknown outcome '{self.outcome}' (one of {', '.join(OUTCOMES)})")
        if not 1 <= self.limit <= MAX_ROWS:
            raise BadInput(f"limit must be between 1 and {MAX_ROWS:,}, got {self.limit}")
        if self.since and self.until and self.since >= self.until:
            raise BadInput("'since' must be before 'until'")

    def describe(self) -> dict[str, Any]:
        """The filter as audit detail."""
        return {k: (v.isoformat() if isinstance(v, datetime) else v)
                for k, v in asdict(self).items() if v is not None}


class TurnLog:
    def __init__(self, store: TenantStore) -> None:
        self.store = store

    def record(self, r: TurnRecord, user_id: str, chunk_ids: tuple[str, ...],
               keep_content: bool, at: datetime | None = None) -> None:
        """Queue one turn (batched off the hot path)."""
        u = r.usage
        self.store.write((INSERT, [
            secrets.token_hex(16), at or datetime.now(UTC), r.tenant, user_id, r.channel,
            r.assistant, r.conversation_id, r.prompt if keep_content else None,
            r.response if keep_content else None, list(chunk_ids), r.model,
            u.prompt_tokens if u else 0, u.completion_tokens if u else 0,
            u.estimated if u else False, r.latency_ms, r.outcome, r.error]))

    def rows(self, f: LogFilter) -> list[LogEntry]:
        """Turns matching ``f``, newest first."""
        where, params = ["true"], []
        for column, value, op in (("user_id", f.user, "="), ("assistant", f.assistant, "="),
                                  ("outcome", f.outcome, "="), ("ts", f.since, ">="),
                                  ("ts", f.until, "<")):
            if value is not None:
                where.append(f"{column} {op} ?")
                params.append(value)
        rows = self.store.query(f"SELECT {', '.join(COLUMNS)} FROM turn_log WHERE "
                                f"{' AND '.join(where)} ORDER BY ts DESC LIMIT {f.limit}",
                                params)
        return [_entry(r) for r in rows]

    def get(self, entry_id: str) -> LogEntry:
        rows = self.store.query(f"SELECT {', '.join(COLUMNS)} FROM turn_log WHERE id = ?",
                                [entry_id])
        if not rows:
            raise NotFound(f"no logged turn '{entry_id}'")
        return _entry(rows[0])

    def prune(self, before: datetime) -> int:
        """Delete the turns logged before ``before``; returns how many."""
        n = self.store.query("SELECT count(*) FROM turn_log WHERE ts < ?", [before])[0][0]
        if n:
            self.store.write(("DELETE FROM turn_log WHERE ts < ?", [before]))
            self.store.flush()
        return int(n)


def _entry(row: tuple[Any, ...]) -> LogEntry:
    values = dict(zip(COLUMNS, row, strict=True))
    return LogEntry(**values | {"chunk_ids": tuple(values["chunk_ids"] or ())})


def export(entries: list[LogEntry], fmt: str) -> str:
    """The entries as ``csv`` or ``json`` text."""
    if fmt == "json":
        return json.dumps([e.as_dict() for e in entries], indent=2, ensure_ascii=False)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        for e in entries:
            row = e.as_dict() | {"chunk_ids": " ".join(e.chunk_ids)}
            writer.writerow({k: _cell(v) for k, v in row.items()})
        return out.getvalue()
    raise BadInput(f"unknown export format '{fmt}' (csv or json)")


def _cell(value: Any) -> Any:
    """Defuse spreadsheet formulas: text starting with = + - @ gets a leading quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
