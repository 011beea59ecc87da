"""The audit trail: hash chain + anchor outside the chain. An attacker who can rewrite
the store's rows (they hold the data key) changes, removes or reorders entries, and
verification names the first bad one."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from enclave.audit import MIGRATIONS, AuditTrail
from enclave.store import TenantStore

Open = Callable[[], AuditTrail]


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "store.duckdb", tmp_path / "audit.anchor.json"


@pytest.fixture
def opener(paths: tuple[Path, Path]) -> Iterator[Open]:
    data_key, audit_key = secrets.token_bytes(32), secrets.token_bytes(32)
    stores: list[TenantStore] = []

    def open_() -> AuditTrail:
        for s in stores:
            s.close()
        stores.append(TenantStore(paths[0], data_key, MIGRATIONS))
        return AuditTrail(stores[-1], audit_key, paths[1])
    yield open_
    for s in stores:
        s.close()


@pytest.fixture
def trail(opener: Open) -> AuditTrail:
    t = opener()
    for i in range(1, 6):
        t.append(f"user{i}@acme.example", "ui", "logs.view", f"turn:{i}", {"i": i})
    return t


def tamper(trail: AuditTrail, sql: str, *params: object) -> None:
    """What an attacker with the data key does: rewrite rows directly."""
    trail.store.write((sql, list(params)))
    trail.store.flush()


def test_an_intact_trail_verifies(trail: AuditTrail, opener: Open) -> None:
    result = trail.verify()
    assert result.ok and result.entries == 5 and str(result).startswith("ok: 5 entries")
    assert [e.seq for e in trail.entries()] == [1, 2, 3, 4, 5]
    assert [e.seq for e in trail.entries(limit=2)] == [4, 5]
    assert trail.entries()[1].prev_hash == trail.entries()[0].hash
    reopened = opener()
    reopened.append("x@acme.example", "cli", "export", "turn_log")
    assert reopened.verify().ok and reopened.verify().entries == 6


def test_a_changed_entry_is_named(trail: AuditTrail) -> None:
    tamper(trail, "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 3")
    result = trail.verify()
    assert not result.ok and result.first_bad == 3 and "changed" in str(result)
    assert str(result).startswith("TAMPERED: entry 3")


def test_a_rehashed_entry_is_still_caught(trail: AuditTrail) -> None:
    """Without the audit key the attacker cannot recompute the chain: a plain SHA-256 of
    the changed entry does not pass."""
    import hashlib
    e = trail.entries()[1]
    forged = hashlib.sha256(f"{e.prev_hash}\nforged".encode()).hexdigest()
    tamper(trail, "UPDATE audit_log SET target = 'forged', hash = ? WHERE seq = 2", forged)
    assert trail.verify().first_bad == 2


def test_a_removed_entry_is_named(trail: AuditTrail) -> None:
    tamper(trail, "DELETE FROM audit_log WHERE seq = 2")
    result = trail.verify()
    assert result.first_bad == 2 and "missing" in str(result)


def test_renumbered_entries_after_a_removal_are_caught(trail: AuditTrail) -> None:
    tamper(trail, "DELETE FROM audit_log WHERE seq = 2")
    tamper(trail, "UPDATE audit_log SET seq = seq - 1 WHERE seq > 2")
    result = trail.verify()
    assert result.first_bad == 2 and not result.ok


def test_reordered_entries_are_named(trail: AuditTrail) -> None:
    tamper(trail, "UPDATE audit_log SET seq = CASE seq WHEN 2 THEN 4 WHEN 4 THEN 2 END "
                  "WHERE seq IN (2, 4)")
    result = trail.verify()
    assert result.first_bad == 2 and not result.ok


def test_removing_the_last_entries_is_caught_by_the_anchor(trail: AuditTrail) -> None:
    tamper(trail, "DELETE FROM audit_log WHERE seq >= 4")
    result = trail.verify()
    assert result.first_bad == 4 and "the anchor records 5 entries" in str(result)


def test_removing_everything_is_caught(trail: AuditTrail) -> None:
    tamper(trail, "DELETE FROM audit_log")
    assert trail.verify().first_bad == 1


def test_a_forged_anchor_is_caught(trail: AuditTrail, paths: tuple[Path, Path]) -> None:
    tamper(trail, "DELETE FROM audit_log WHERE seq = 5")
    doc = json.loads(paths[1].read_text())
    paths[1].write_text(json.dumps(doc | {"count": 4, "head": trail.entries()[-1].hash}))
    assert "anchor audit.anchor.json was altered" in str(trail.verify())
    paths[1].unlink()
    assert "anchor audit.anchor.json is missing" in str(trail.verify())


def test_a_tampered_trail_stays_reported_after_new_entries(trail: AuditTrail,
                                                           opener: Open) -> None:
    tamper(trail, "DELETE FROM audit_log WHERE seq = 5")
    reopened = opener()  # a restart: appending goes on from entry 4 ...
    reopened.append("admin@acme.example", "ui", "logs.view", "turn_log")
    reopened.append("admin@acme.example", "ui", "logs.view", "turn_log")
    result = reopened.verify()  # ... but the anchor still holds the old head
    assert not result.ok and result.first_bad == 5


def test_a_crash_between_commit_and_anchor_is_not_tampering(
        trail: AuditTrail, paths: tuple[Path, Path], opener: Open) -> None:
    before = paths[1].read_text()
    trail.append("a@acme.example", "ui", "export", "turn_log")
    paths[1].write_text(before)  # the anchor write was lost
    assert trail.verify().ok
    reopened = opener()
    reopened.append("b@acme.example", "ui", "export", "turn_log")
    assert reopened.verify().ok and json.loads(paths[1].read_text())["count"] == 7
