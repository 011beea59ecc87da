"""The audit trail: append-only and tamper-evident, one per tenant, in the tenant's store.

Each entry carries the hash of the previous one: ``hash = HMAC-SHA256(audit key,
prev_hash + entry)``. The audit key is the tenant's own, wrapped by the master key and
kept apart from the data key, so whoever can rewrite the store's rows (with the data
key) still cannot forge a valid chain. After every append the head of the chain
(count and last hash, MAC'd) is written to ``audit.anchor.json`` next to the store,
outside the chain: removing the last entries shows as a count below the anchor's.
:meth:`AuditTrail.verify` names the first entry that was changed, removed or reordered.
A trail found tampered when opened is never re-anchored, so the finding sticks.
Limits: an attacker who also holds the master key, or who deletes the store, the anchor
and the audit key together, is out of reach of a local trail.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from enclave.keys import write_private
from enclave.store import Migration, TenantStore

GENESIS = "0" * 64
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
COLUMNS = ("seq", "ts", "actor", "channel", "action", "target", "detail", "prev_hash",
           "hash")


def _m001_audit(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""CREATE TABLE audit_log (
        seq BIGINT NOT NULL, ts TIMESTAMPTZ NOT NULL, actor VARCHAR NOT NULL,
        channel VARCHAR NOT NULL, action VARCHAR NOT NULL, target VARCHAR NOT NULL,
        detail VARCHAR NOT NULL, prev_hash VARCHAR NOT NULL, hash VARCHAR NOT NULL)""")


MIGRATIONS: list[Migration] = [("001_audit", _m001_audit)]


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    ts: datetime
    actor: str
    channel: str
    action: str
    target: str
    detail: str  # canonical JSON
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "ts": self.ts.isoformat(), "actor": self.actor,
                "channel": self.channel, "action": self.action, "target": self.target,
                "detail": json.loads(self.detail), "hash": self.hash}


@dataclass(frozen=True)
class Verification:
    """The result of checking a trail: ``first_bad`` is the seq of the first bad entry."""

    entries: int
    first_bad: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def __str__(self) -> str:
        if self.ok:
            return f"ok: {self.entries} entries, chain and anchor intact"
        where = f"entry {self.first_bad}: " if self.first_bad is not None else ""
        return f"TAMPERED: {where}{self.problem}"


def _micros(ts: datetime) -> int:
    return (ts - EPOCH) // timedelta(microseconds=1)


class AuditTrail:
    def __init__(self, store: TenantStore, key: bytes, anchor: Path) -> None:
        self.store, self.anchor = store, anchor
        self._key = key
        self._lock = threading.Lock()
        last = store.query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        self._seq, self._head = last[0] if last else (0, GENESIS)
        if not last and not anchor.exists():
            self._write_anchor()  # a new trail: anchored empty
        # a tampered trail stays reported: new entries are appended, never re-anchored
        self._tampered = not self.verify().ok

    def _mac(self, prev_hash: str, seq: int, ts: datetime, actor: str, channel: str,
             action: str, target: str, detail: str) -> str:
        body = json.dumps([seq, _micros(ts), actor, channel, action, target, detail],
                          ensure_ascii=False, separators=(",", ":"))
        return hmac.new(self._key, f"{prev_hash}\n{body}".encode(), hashlib.sha256).hexdigest()

    def _anchor_mac(self, count: int, head: str) -> str:
        return hmac.new(self._key, f"anchor\n{count}\n{head}".encode(),
                        hashlib.sha256).hexdigest()

    def _write_anchor(self) -> None:
        write_private(self.anchor, json.dumps({
            "count": self._seq, "head": self._head,
            "mac": self._anchor_mac(self._seq, self._head)}).encode())

    def append(self, actor: str, channel: str, action: str, target: str,
               detail: dict[str, Any] | None = None) -> AuditEntry:
        """Record one entry, committed (and anchored) before this returns."""
        text = json.dumps(detail or {}, sort_keys=True, ensure_ascii=False,
                          separators=(",", ":"), default=str)
        with self._lock:
            seq, ts = self._seq + 1, datetime.now(UTC)
            h = self._mac(self._head, seq, ts, actor, channel, action, target, text)
            entry = AuditEntry(seq, ts, actor, channel, action, target, text, self._head, h)
            self.store.write((f"INSERT INTO audit_log VALUES ({', '.join('?' * 9)})",
                              [seq, ts, actor, channel, action, target, text, self._head, h]))
            self.store.flush()
            self._seq, self._head = seq, h
            if not self._tampered:
                self._write_anchor()
        return entry

    def entries(self, limit: int | None = None) -> list[AuditEntry]:
        """Entries in chain order (oldest first); with ``limit``, the newest ones."""
        rows = self.store.query(f"SELECT {', '.join(COLUMNS)} FROM audit_log ORDER BY seq")
        return [AuditEntry(*r) for r in (rows[-limit:] if limit else rows)]

    def _read_anchor(self) -> tuple[int, str] | str:
        try:
            doc = json.loads(self.anchor.read_text())
            count, head, mac = int(doc["count"]), str(doc["head"]), str(doc["mac"])
        except FileNotFoundError:
            return f"the anchor {self.anchor.name} is missing"
        except (ValueError, KeyError, TypeError):
            return f"the anchor {self.anchor.name} is corrupt"
        if not hmac.compare_digest(mac, self._anchor_mac(count, head)):
            return f"the anchor {self.anchor.name} was altered"
        return count, head

    def verify(self) -> Verification:
        """Check every link of the chain, then the chain's head against the anchor."""
        with self._lock:
            rows = self.entries()
            anchor = self._read_anchor()
        prev = GENESIS
        for expected, e in enumerate(rows, start=1):
            if e.seq != expected:
                problem = (f"missing (the next entry found is {e.seq})" if e.seq > expected
                           else f"out of order (found entry {e.seq} here)")
                return Verification(len(rows), expected, problem)
            if e.prev_hash != prev:
                return Verification(len(rows), e.seq, "does not follow the previous entry "
                                    "(an entry was removed or reordered)")
            if not hmac.compare_digest(e.hash, self._mac(prev, e.seq, e.ts, e.actor, e.channel,
                                                         e.action, e.target, e.detail)):
                return Verification(len(rows), e.seq, "its content was changed")
            prev = e.hash
        if isinstance(anchor, str):
            return Verification(len(rows), None, anchor)
        count, head = anchor
        if len(rows) < count:
            return Verification(len(rows), len(rows) + 1,
                                f"missing: the anchor records {count} entries, the trail "
                                f"has {len(rows)} (the last entries were removed)")
        if (rows[count - 1].hash if count else GENESIS) != head:
            return Verification(len(rows), count or None,
                                "does not match the anchored head of the chain")
        return Verification(len(rows))
