"""Re-encrypting a tenant's store under a new data key, safe to interrupt at any point.

1. copy: ``ATTACH`` the store (old key) and ``store.next.duckdb`` (new key), ``COPY FROM
   DATABASE``, checkpoint, compare row counts. Interrupted here: the copy is discarded.
2. stage: write the new key, wrapped, to ``datakey.next.json``.
3. swap: rename ``store.next.duckdb`` over ``store.duckdb`` (atomic).
4. commit: rename ``datakey.next.json`` over ``datakey.json`` (atomic).

:func:`recover` runs before every open of a store: after step 2 it finishes the rotation
(the copy is complete once the key is staged), before it it discards the copy. Either
way the store opens, readable, under exactly one key. The store must be closed while
this runs (the workspace pauses the tenant).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from enclave.keys import KeyProvider, KeyRing
from enclave.store import FTS, StoreError, attach, connect

NEXT = "store.next.duckdb"


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _copy(src: Path, src_key: bytes, dest: Path, dest_key: bytes) -> None:
    con = connect()
    con.execute(f"LOAD '{FTS}'")  # full-text indexes are copied with their macros
    try:
        attach(con, src, src_key, "old")
        attach(con, dest, dest_key, "new")
        con.execute("COPY FROM DATABASE old TO new")
        con.execute("CHECKPOINT new")
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                             "WHERE database_name = 'old'").fetchall()
        for schema, t in tables:
            before, after = (con.execute(f'SELECT count(*) FROM {db}."{schema}"."{t}"')
                             .fetchone() for db in ("old", "new"))
            if before != after:
                raise StoreError(f"rotation copy of table {t} is incomplete "
                                 f"({after} of {before} rows); nothing was changed")
        con.execute("DETACH new")
        con.execute("DETACH old")
    finally:
        con.close()
    if _wal(dest).exists():
        raise StoreError(f"rotation copy {dest.name} was not checkpointed; nothing was changed")


def rotate(keys: KeyRing, slug: str, path: Path, provider: KeyProvider | None) -> None:
    """Re-encrypt the (closed) store at ``path`` under a fresh data key."""
    recover(keys, slug, path, provider)
    if not path.exists():
        raise StoreError(f"tenant '{slug}' has no store to rotate yet")
    nxt = path.with_name(NEXT)
    new_key = secrets.token_bytes(32)
    _copy(path, keys.data_key(slug, provider), nxt, new_key)
    keys.stage_data_key(slug, new_key, provider)
    _swap(path, nxt)
    keys.commit_data_key(slug)


def _swap(path: Path, nxt: Path) -> None:
    # the old WAL, if any, is already in the copy: it must not be replayed on the new file
    _wal(path).unlink(missing_ok=True)
    os.replace(nxt, path)


def recover(keys: KeyRing, slug: str, path: Path, provider: KeyProvider | None
            ) -> str | None:
    """Finish or undo an interrupted rotation; says which, or None if there was none."""
    nxt = path.with_name(NEXT)
    if keys.staged_data_key(slug, provider) is None:  # (also checks the staged key unwraps)
        if not (nxt.exists() or _wal(nxt).exists()):
            return None
        nxt.unlink(missing_ok=True)
        _wal(nxt).unlink(missing_ok=True)
        return "discarded an unfinished rotation copy"
    if nxt.exists():
        _swap(path, nxt)
    keys.commit_data_key(slug)
    return "finished an interrupted rotation"
