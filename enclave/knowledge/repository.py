"""Documents and chunks in the tenant's encrypted store, and BM25 over them with DuckDB
fts. Scoped by construction: a repository wraps one tenant's own store file.

The fts index is not incremental: ``rebuild_statements()`` recreates it (and
``kb_postings``, its terms as one row per term and chunk with the BM25 weight already
computed, ordered by term so a query reads only the row groups of its terms).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import duckdb_extension_fts
import numpy as np

from enclave.knowledge.embeddings import DIM
from enclave.store import Migration, Statement, TenantStore

FTS = next(Path(duckdb_extension_fts.__file__).parent.glob("extensions/*/fts.duckdb_extension"))
FTS_SCHEMA = "fts_main_kb_chunks"
K1, B = 1.2, 0.75
_CREATE_FTS = ("PRAGMA create_fts_index('kb_chunks', 'id', 'text', 'heading', "
               "stemmer='porter', stopwords='english', ignore='[^a-z0-9]+', overwrite=1)")
_CREATE_POSTINGS = f"""CREATE OR REPLACE TABLE kb_postings AS
    WITH st AS (SELECT num_docs AS n, avgdl FROM {FTS_SCHEMA}.stats),
    tf AS (SELECT termid, docid, count(*) AS tf FROM {FTS_SCHEMA}.terms GROUP BY ALL)
    SELECT tf.termid::INTEGER AS termid, docs.name AS chunk_id,
        (ln(1 + (st.n - dict.df + 0.5) / (dict.df + 0.5)) * tf.tf * {K1 + 1}
         / (tf.tf + {K1} * (1 - {B} + {B} * docs.len / st.avgdl)))::FLOAT AS weight
    FROM tf JOIN {FTS_SCHEMA}.dict dict USING (termid)
    JOIN {FTS_SCHEMA}.docs docs USING (docid), st
    ORDER BY termid"""
_QUERY_TERMS = (f"SELECT termid FROM {FTS_SCHEMA}.dict WHERE term IN (SELECT stem(unnest("
                "string_split_regex(lower(strip_accents(?)), '[^a-z0-9]+')), 'porter'))")
_DOC_COLUMNS = ("id, name, title, kind, size_bytes, sha256, tags, origin, uploaded_by, "
                "uploaded_at, chunk_count")


def _m001_knowledge(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"LOAD '{FTS}'")
    con.execute("""CREATE TABLE kb_documents (
        id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, title VARCHAR NOT NULL,
        kind VARCHAR NOT NULL, size_bytes BIGINT NOT NULL, sha256 VARCHAR NOT NULL,
        tags VARCHAR[] NOT NULL, origin VARCHAR NOT NULL, uploaded_by VARCHAR NOT NULL,
        uploaded_at TIMESTAMPTZ NOT NULL, chunk_count INTEGER NOT NULL)""")
    con.execute(f"""CREATE TABLE kb_chunks (
        id VARCHAR PRIMARY KEY, document_id VARCHAR NOT NULL, ordinal INTEGER NOT NULL,
        text VARCHAR NOT NULL, page INTEGER, heading VARCHAR, embedding FLOAT[{DIM}] NOT NULL)""")
    con.execute(_CREATE_FTS)
    con.execute(_CREATE_POSTINGS)


MIGRATIONS: list[Migration] = [("001_knowledge", _m001_knowledge)]


@dataclass(frozen=True)
class Document:
    id: str
    name: str
    title: str
    kind: str
    size_bytes: int
    sha256: str
    tags: tuple[str, ...]
    origin: str
    uploaded_by: str
    uploaded_at: datetime
    chunk_count: int


@dataclass(frozen=True)
class ChunkRow:
    id: str
    document_id: str
    title: str
    text: str
    page: int | None
    heading: str | None
    similarity: float


def _document(row: tuple[object, ...]) -> Document:
    values = list(row)
    values[6] = tuple(values[6] or ())  # type: ignore[arg-type]
    return Document(*values)  # type: ignore[arg-type]


def _tag_filter(tags: Sequence[str] | None, alias: str = "d") -> tuple[str, list[object]]:
    if tags is None:
        return "", []
    return f" AND list_has_any({alias}.tags, ?::VARCHAR[])", [list(tags)]


class KnowledgeRepository:
    def __init__(self, store: TenantStore) -> None:
        self.store = store
        store.query(f"LOAD '{FTS}'")  # the fts functions, on this store's connection

    # -- documents -------------------------------------------------------------------
    def documents(self) -> list[Document]:
        rows = self.store.query(f"SELECT {_DOC_COLUMNS} FROM kb_documents "
                                "ORDER BY uploaded_at DESC, name")
        return [_document(r) for r in rows]

    def document(self, doc_id: str) -> Document | None:
        rows = self.store.query(f"SELECT {_DOC_COLUMNS} FROM kb_documents WHERE id = ?",
                                [doc_id])
        return _document(rows[0]) if rows else None

    def by_name(self, name: str) -> Document | None:
        rows = self.store.query(f"SELECT {_DOC_COLUMNS} FROM kb_documents WHERE name = ?",
                                [name])
        return _document(rows[0]) if rows else None

    def by_hash(self, sha256: str) -> Document | None:
        rows = self.store.query(f"SELECT {_DOC_COLUMNS} FROM kb_documents WHERE sha256 = ?",
                                [sha256])
        return _document(rows[0]) if rows else None

    def count(self) -> int:
        return int(self.store.query("SELECT count(*) FROM kb_documents")[0][0])

    def chunk_ids(self, doc_id: str) -> list[str]:
        return [r[0] for r in self.store.query(
            "SELECT id FROM kb_chunks WHERE document_id = ?", [doc_id])]

    # -- write units -----------------------------------------------------------------
    @staticmethod
    def insert_statements(doc: Document, chunks: Sequence[tuple[str, int, str, int | None,
                                                                str | None]],
                          embeddings: np.ndarray) -> list[Statement]:
        """The document row and one row per chunk ``(id, ordinal, text, page, heading)``."""
        out: list[Statement] = [(
            f"INSERT INTO kb_documents ({_DOC_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [doc.id, doc.name, doc.title, doc.kind, doc.size_bytes, doc.sha256, list(doc.tags),
             doc.origin, doc.uploaded_by, doc.uploaded_at, doc.chunk_count])]
        for (chunk_id, ordinal, text, page, heading), vector in zip(chunks, embeddings,
                                                                    strict=True):
            out.append(("INSERT INTO kb_chunks VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [chunk_id, doc.id, ordinal, text, page, heading,
                         [float(x) for x in vector]]))
        return out

    @staticmethod
    def delete_statements(doc_id: str) -> list[Statement]:
        return [("DELETE FROM kb_chunks WHERE document_id = ?", [doc_id]),
                ("DELETE FROM kb_documents WHERE id = ?", [doc_id])]

    @staticmethod
    def retag_statement(doc_id: str, tags: Sequence[str]) -> Statement:
        return ("UPDATE kb_documents SET tags = ?::VARCHAR[] WHERE id = ?", [list(tags), doc_id])

    @staticmethod
    def rebuild_statements() -> list[Statement]:
        return [(_CREATE_FTS, []), (_CREATE_POSTINGS, [])]

    # -- retrieval -------------------------------------------------------------------
    def bm25(self, query: str, n: int, tags: Sequence[str] | None = None
             ) -> list[tuple[str, float]]:
        """The ``n`` best chunk ids by BM25, best first (only documents with one of
        ``tags`` when given)."""
        terms = [int(r[0]) for r in self.store.query(_QUERY_TERMS, [query])]
        if not terms:
            return []
        where, params = _tag_filter(tags)
        restrict = (f" AND p.chunk_id IN (SELECT c.id FROM kb_chunks c JOIN kb_documents d "
                    f"ON d.id = c.document_id WHERE true{where})") if tags is not None else ""
        rows = self.store.query(
            "SELECT p.chunk_id, sum(p.weight) AS score FROM kb_postings p WHERE p.termid IN "
            f"({', '.join(map(str, terms))}){restrict} GROUP BY p.chunk_id "
            "ORDER BY score DESC, p.chunk_id LIMIT ?", [*params, n])
        return [(r[0], float(r[1])) for r in rows]

    def allowed_chunk_ids(self, tags: Sequence[str]) -> list[str]:
        where, params = _tag_filter(tags)
        return [r[0] for r in self.store.query(
            "SELECT c.id FROM kb_chunks c JOIN kb_documents d ON d.id = c.document_id "
            f"WHERE true{where}", params)]

    def chunks(self, ids: Sequence[str], query_vector: np.ndarray,
               tags: Sequence[str] | None = None) -> dict[str, ChunkRow]:
        """Rows of the chunks ``ids`` that exist (and carry one of ``tags``), with their
        cosine similarity to ``query_vector``."""
        if not ids:
            return {}
        where, params = _tag_filter(tags)
        rows = self.store.query(  # the chunks first (a filtered scan), then their documents
            "WITH c AS MATERIALIZED (SELECT id, document_id, text, page, heading, "
            f"array_cosine_similarity(embedding, ?::FLOAT[{DIM}]) AS similarity "
            "FROM kb_chunks WHERE id = ANY(?::VARCHAR[])) "
            "SELECT c.id, c.document_id, d.title, c.text, c.page, c.heading, c.similarity "
            f"FROM c JOIN kb_documents d ON d.id = c.document_id WHERE true{where}",
            [[float(x) for x in query_vector], list(ids), *params])
        return {r[0]: ChunkRow(r[0], r[1], r[2], r[3], r[4], r[5], float(r[6])) for r in rows}

    def all_vectors(self) -> tuple[list[str], np.ndarray]:
        """Every chunk id with its stored embedding (to rebuild the vector index)."""
        rows = self.store.query("SELECT id, embedding FROM kb_chunks ORDER BY id")
        if not rows:
            return [], np.zeros((0, DIM), dtype=np.float32)
        return [r[0] for r in rows], np.array([r[1] for r in rows], dtype=np.float32)
