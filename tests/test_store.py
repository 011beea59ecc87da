"""The tenant store: encrypted DuckDB file, named migrations, batched background writer."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from enclave.store import Migration, StoreError, TenantStore
from tests.conftest import plaintext_hits

MARKER = "quokka-plaintext-marker-7c1e"
INSERT = "INSERT INTO notes (id, body) VALUES (?, ?)"


class Recorder:
    """Migrations that record each time they run."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def migration(self, name: str, *sql: str) -> Migration:
        def apply(con: duckdb.DuckDBPyConnection) -> None:
            self.calls.append(name)
            for statement in sql:
                con.execute(statement)
        return name, apply

    def base(self) -> list[Migration]:
        return [self.migration("001_notes", "CREATE TABLE notes (id INTEGER, body VARCHAR)"),
                self.migration("002_tags", "ALTER TABLE notes ADD COLUMN tag VARCHAR")]


@pytest.fixture
def key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "tenants" / "acme" / "store.duckdb"  # parent does not exist yet


@pytest.fixture
def opened() -> Iterator[list[TenantStore]]:
    """Stores opened by a test; closed at the end even if the test fails."""
    stores: list[TenantStore] = []
    yield stores
    for s in stores:
        if s._writer.is_alive():
            s.close()


@pytest.fixture
def open_store(path: Path, key: bytes, opened: list[TenantStore]
               ) -> Callable[..., TenantStore]:
    def open_(migrations: list[Migration] | None = None, data_key: bytes | None = None
              ) -> TenantStore:
        store = TenantStore(path, data_key or key,
                            Recorder().base() if migrations is None else migrations)
        opened.append(store)
        return store
    return open_


@pytest.fixture
def store(open_store: Callable[..., TenantStore]) -> TenantStore:
    return open_store()


def bodies(store: TenantStore) -> list[str]:
    return [r[0] for r in store.query("SELECT body FROM notes ORDER BY id")]


def run_with_timeout(fn: Callable[[], object], seconds: float) -> BaseException | None:
    """Run ``fn`` in a daemon thread; return what it raised. Fails if it hangs."""
    raised: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            raised.append(e)
    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still running after {seconds} s"
    return raised[0] if raised else None


# -- migrations ------------------------------------------------------------------------


def test_migrations_apply_once(open_store: Callable[..., TenantStore]) -> None:
    rec = Recorder()
    store = open_store(rec.base())
    assert rec.calls == ["001_notes", "002_tags"]
    assert [r[0] for r in store.query("SELECT name FROM _migrations ORDER BY name")] == [
        "001_notes", "002_tags"]
    store.close()

    store = open_store(rec.base())
    assert rec.calls == ["001_notes", "002_tags"]  # not run again
    store.close()

    store = open_store([*rec.base(), rec.migration("003_index",
                                                   "CREATE INDEX notes_id ON notes (id)")])
    assert rec.calls == ["001_notes", "002_tags", "003_index"]
    assert len(store.query("SELECT * FROM _migrations")) == 3


def test_failed_migration_is_rolled_back(open_store: Callable[..., TenantStore]) -> None:
    rec = Recorder()
    broken = rec.migration("002_broken", "CREATE TABLE half (x INTEGER)",
                           "THIS IS NOT SQL")
    with pytest.raises(duckdb.Error):
        open_store([*rec.base()[:1], broken])
    store = open_store(rec.base())  # fixed release: 002 is a different migration now
    assert rec.calls == ["001_notes", "002_broken", "002_tags"]
    names = [r[0] for r in store.query("SELECT name FROM _migrations ORDER BY name")]
    assert names == ["001_notes", "002_tags"]
    assert store.query("SELECT count(*) FROM information_schema.tables "
                       "WHERE table_name = 'half'") == [(0,)]


# -- the batched writer ----------------------------------------------------------------


def test_read_your_writes(store: TenantStore) -> None:
    store.write((INSERT, [1, "first"]))
    assert bodies(store) == ["first"]
    store.write((INSERT, [2, "second"]))
    store.write(("UPDATE notes SET tag = ? WHERE id = ?", ["t", 1]))
    store.write((INSERT, [3, "third"]))
    assert bodies(store) == ["first", "second", "third"]
    assert store.query("SELECT tag FROM notes WHERE id = 1") == [("t",)]


def test_writes_from_many_threads_all_land(store: TenantStore) -> None:
    threads_n, per_thread = 8, 250

    def writer(t: int) -> None:
        for i in range(per_thread):
            store.write((INSERT, [t * per_thread + i, f"t{t}-{i}"]))
            if i % 50 == 0:
                store.query("SELECT count(*) FROM notes")  # readers interleave

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    total = threads_n * per_thread
    assert store.query("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM notes") == [
        (total, total, 0, total - 1)]


def test_failed_write_surfaces_on_flush(store: TenantStore) -> None:
    store.write(("INSERT INTO missing_table VALUES (?)", [1]))
    with pytest.raises(StoreError, match="missing_table"):
        store.flush()
    store.flush()  # reported once
    store.write((INSERT, [1, "after"]))
    assert bodies(store) == ["after"]


def test_failed_write_surfaces_on_query(store: TenantStore) -> None:
    store.write((INSERT, [1, "kept"]))
    store.flush()
    store.write((INSERT, ["not a number", "bad"]))
    with pytest.raises(StoreError):
        store.query("SELECT count(*) FROM notes")
    assert bodies(store) == ["kept"]
    store.write((INSERT, [2, "later"]))
    assert bodies(store) == ["kept", "later"]


def test_close_flushes_pending_writes(open_store: Callable[..., TenantStore]) -> None:
    store = open_store()
    for i in range(500):
        store.write((INSERT, [i, f"note {i}"]))
    store.close()
    assert len(bodies(open_store())) == 500


def test_write_after_close_fails_fast(store: TenantStore) -> None:
    store.close()

    def write_and_flush() -> None:
        store.write((INSERT, [1, "too late"]))
        store.flush()
    assert isinstance(run_with_timeout(write_and_flush, 2), StoreError)


# -- encryption at rest ----------------------------------------------------------------


def test_no_plaintext_on_disk(store: TenantStore, path: Path) -> None:
    store.write((INSERT, [1, MARKER]))
    store.write((INSERT, [2, MARKER * 2000]))  # large value, spans pages
    assert bodies(store)[0] == MARKER
    assert plaintext_hits(path.parent, MARKER) == []  # open: database and WAL
    store.close()
    assert path.exists()
    assert plaintext_hits(path.parent, MARKER) == []
    assert plaintext_hits(path.parent, "notes") == []  # not even the schema


def test_wrong_key_is_refused_right_key_reads_back(
        store: TenantStore, open_store: Callable[..., TenantStore]) -> None:
    store.write((INSERT, [1, MARKER]))
    store.close()
    with pytest.raises(StoreError, match="store.duckdb"):
        open_store(data_key=secrets.token_bytes(32))
    assert bodies(open_store()) == [MARKER]


def test_not_readable_without_the_key(store: TenantStore, path: Path) -> None:
    store.write((INSERT, [1, MARKER]))
    store.close()
    with pytest.raises(duckdb.Error):
        duckdb.connect(str(path)).execute("SELECT * FROM notes").fetchall()


def test_runs_of_one_insert_commit_as_one_arrow_insert_in_order(store: TenantStore) -> None:
    """Many single-row inserts of one statement coalesce (Arrow) between other statements,
    keeping the order of units; values Arrow cannot type fall back to row binding."""
    for i in range(1000):
        store.write((INSERT, [i, f"n{i}"]))
    store.write(("UPDATE notes SET tag = 'seen' WHERE id < ?", [1000]))
    for i in range(1000, 1500):
        store.write((INSERT, [i, None if i % 2 else f"n{i}"]))
    store.write(("INSERT INTO notes (id, body) VALUES (?, ?)", [1500, 1]),
                ("INSERT INTO notes (id, body) VALUES (?, ?)", [1501, "mixed"]))
    rows = store.query("SELECT count(*), count(tag), count(body), max(id) FROM notes")
    assert rows == [(1502, 1000, 1252, 1501)]
    assert store.query("SELECT body FROM notes WHERE id IN (1500, 1501) ORDER BY id") == [
        ("1",), ("mixed",)]


def test_a_failing_coalesced_run_rolls_back_its_batch(store: TenantStore) -> None:
    store.write((INSERT, [1, "kept"]))
    store.flush()
    for i in range(2, 50):
        store.write((INSERT, [i, "x"]))
    store.write(("INSERT INTO notes (id, body) VALUES (?, ?)", ["not a number", "bad"]),
                ("INSERT INTO notes (id, body) VALUES (?, ?)", [3, "y"]))
    with pytest.raises(StoreError):
        store.flush()
    assert store.query("SELECT count(*) FROM notes") in ([(1,)], [(49,)])
