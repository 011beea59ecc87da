"""The tenant store: one encrypted DuckDB file per tenant, with named migrations and a
batched background writer that keeps inserts off the chat's hot path.

Writes are queued (microseconds) as units that commit together, in batches of units;
every read first waits for the queue to drain, so a reader always sees its own writes.
The writer commits continuously: a batch is whatever queued while the previous one
committed, and runs of the same single-row INSERT become one Arrow insert, so a batch
takes milliseconds. ``close()`` (also at exit) commits everything queued; a crash
(kill -9, power loss) loses only what was queued and not yet committed: at most the last
second of writes, in practice the last few milliseconds.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import duckdb_extension_fts
import duckdb_extension_httpfs
import pyarrow as pa

from enclave.errors import EnclaveError

log = logging.getLogger(__name__)
HTTPFS = next(Path(duckdb_extension_httpfs.__file__).parent.glob(
    "extensions/*/httpfs.duckdb_extension"))
FTS = next(Path(duckdb_extension_fts.__file__).parent.glob(
    "extensions/*/fts.duckdb_extension"))

Migration = tuple[str, Callable[[duckdb.DuckDBPyConnection], None]]
Statement = tuple[str, Sequence[Any]]
SINGLE_ROW_INSERT = re.compile(
    r"^\s*INSERT\s+INTO\s+(?P<target>[\w.]+\s*(?:\([\w\s,]*\))?)\s*"
    r"VALUES\s*\(\s*\?(?:\s*,\s*\?)*\s*\)\s*$", re.IGNORECASE)


class StoreError(EnclaveError):
    status = 500


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection able to attach encrypted stores (nothing autoloads,
    temporary files are encrypted too)."""
    # one thread: a tenant store is small, and parallel commits cost twice the CPU
    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False, "threads": 1})
    con.execute(f"LOAD '{HTTPFS}'")
    con.execute("SET temp_file_encryption = true")
    return con


def attach(con: duckdb.DuckDBPyConnection, path: Path, key: bytes, alias: str) -> None:
    """Attach the encrypted store file ``path`` as ``alias``; StoreError if it won't open."""
    try:
        con.execute(f"ATTACH '{path}' AS {alias} (ENCRYPTION_KEY '{key.hex()}')")
    except duckdb.Error as e:
        raise StoreError(f"cannot open the store {path.name}: {e}") from None


class TenantStore:
    def __init__(self, path: Path, data_key: bytes, migrations: Sequence[Migration]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._con = connect()
        try:
            attach(self._con, path, data_key, "store")
        except StoreError:
            self._con.close()
            raise
        self._con.execute("USE store")
        self._lock = threading.RLock()
        self._migrate(migrations)
        self._queue: queue.Queue[list[Statement] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                        name=f"store-writer-{path.parent.name}")
        self._writer.start()

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        with self._lock:
            self._con.execute("CREATE TABLE IF NOT EXISTS _migrations "
                              "(name VARCHAR PRIMARY KEY, applied_at TIMESTAMP DEFAULT now())")
            done = {r[0] for r in self._con.execute("SELECT name FROM _migrations").fetchall()}
            for name, apply in migrations:
                if name in done:
                    continue
                self._con.execute("BEGIN")
                try:
                    apply(self._con)
                    self._con.execute("INSERT INTO _migrations (name) VALUES (?)", [name])
                    self._con.execute("COMMIT")
                except Exception:
                    self._con.execute("ROLLBACK")
                    raise

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store {self.path.name} is closed")

    def write(self, *statements: Statement) -> None:
        """Queue ``(sql, params)`` statements as one unit; they commit together, in order,
        with the next batch."""
        self._check_open()
        self._queue.put(list(statements))

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._queue.task_done()
                return
            units = [first]
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    self._queue.task_done()
                    break
                units.append(item)
            batch = [statement for unit in units for statement in unit]
            try:
                self._commit(batch)
            except Exception as e:  # surfaced on the next read or flush
                log.exception("store %s: batch of %d writes failed", self.path, len(batch))
                self._error = e
            finally:
                for _ in units:
                    self._queue.task_done()

    def _commit(self, batch: list[Statement]) -> None:
        with self._lock:
            self._con.execute("BEGIN")
            try:
                i = 0
                while i < len(batch):  # consecutive identical statements run as one
                    j = i
                    while j + 1 < len(batch) and batch[j + 1][0] == batch[i][0]:
                        j += 1
                    if j == i:
                        self._con.execute(batch[i][0], batch[i][1])
                    else:
                        self._run_many(batch[i][0], [b[1] for b in batch[i:j + 1]])
                    i = j + 1
                self._con.execute("COMMIT")
            except Exception:
                self._con.execute("ROLLBACK")
                raise

    def _run_many(self, sql: str, rows: list[Sequence[Any]]) -> None:
        """One statement, many parameter rows: a single-row ``INSERT ... VALUES (?, ...)``
        becomes one Arrow insert (columnar, ~100x faster); anything else, executemany."""
        insert = SINGLE_ROW_INSERT.match(sql)
        if insert is not None:
            try:
                columns = list(zip(*rows, strict=True))
                batch = pa.table({f"c{n}": pa.array(c) for n, c in enumerate(columns)})
            except (pa.ArrowException, ValueError):
                batch = None  # values Arrow cannot type: let DuckDB bind them one by one
            if batch is not None:
                self._con.register("_enclave_batch", batch)
                try:
                    self._con.execute(f"INSERT INTO {insert['target']} "
                                      "SELECT * FROM _enclave_batch")
                finally:
                    self._con.unregister("_enclave_batch")
                return
        self._con.executemany(sql, rows)

    def flush(self) -> None:
        """Wait until every queued write is committed; raise if a batch failed."""
        self._check_open()
        self._queue.join()
        if self._error is not None:
            err, self._error = self._error, None
            raise StoreError(f"a write to the store failed: {err}") from err

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read, after the pending writes."""
        self.flush()
        with self._lock:
            return self._con.execute(sql, params).fetchall()

    def close(self) -> None:
        """Commit what is queued, then close; raises if a last batch failed."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._writer.join()
        with self._lock:
            self._con.close()
        if self._error is not None:
            raise StoreError(f"a write to the store failed: {self._error}") from self._error
