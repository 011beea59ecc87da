"""One tenant's knowledge base: ingestion (atomic per file), removal, re-tagging, sync of
seed folders, reindex, and hybrid search. Built by the workspace over the tenant's own
store and Chroma tenant, so nothing here can reach another tenant's data.

Ingestion of a file: parse and chunk, embed, add the vectors (new ids), then write the
document and its chunks in one store unit (replacing the previous version in the same
unit), then drop the old version's vectors. A failure at any step removes what that
file added, so the store and the index stay as they were.

Upload, removal and re-tag take the acting principal, so the audit trail can hook in.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

from enclave.errors import BadInput, EnclaveError, NotFound, UploadRejected
from enclave.identity import Principal
from enclave.knowledge import embeddings
from enclave.knowledge.chunking import Chunk, chunk
from enclave.knowledge.index import IndexUnavailable, TenantVectors
from enclave.knowledge.loaders import Parsed, clean_name, load
from enclave.knowledge.repository import Document, KnowledgeRepository
from enclave.knowledge.retrieval import Hit, fuse
from enclave.store import StoreError, TenantStore
from enclave.tenants import TAG_RE, Assistant, Tenant
from enclave.turns import Citation

log = logging.getLogger(__name__)
MAX_QUERY_CHARS = 2000
SNIPPET_CHARS = 300
EMBED_GROUP = 128  # chunks embedded in one model call (sorted by length: little padding)
_TAG = re.compile(TAG_RE)
_query_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kb-query")

Status = Literal["added", "replaced", "unchanged", "duplicate", "removed", "rejected"]
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes


@dataclass(frozen=True)
class _Prepared:
    """A parsed and chunked file, not stored yet."""

    name: str
    size: int
    sha256: str
    tags: tuple[str, ...]
    origin: str
    parsed: Parsed
    chunks: list[Chunk]
    texts: list[str]  # what is embedded: title, heading and chunk text


@dataclass(frozen=True)
class IngestResult:
    name: str
    status: Status
    message: str
    document_id: str | None = None
    chunks: int = 0

    @property
    def ok(self) -> bool:
        return self.status != "rejected"


def normalize_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Lower-cased, de-duplicated tags; BadInput naming a malformed one."""
    out: list[str] = []
    for raw in tags:
        tag = raw.strip().lower()
        if not tag:
            continue
        if not _TAG.match(tag):
            raise BadInput(f"The tag {raw!r} is not valid: use up to 40 letters, digits, "
                           "'-', '_' or '/'.")
        if tag not in out:
            out.append(tag)
    return tuple(out)


def _embedding_text(parsed: Parsed, heading: str | None, text: str) -> str:
    return "\n".join(p for p in (parsed.title, heading, text) if p)


# records one audit entry: (actor, action, target, detail)
Audit = Callable[[Principal, str, str, dict[str, Any]], object]


class KnowledgeBase:
    def __init__(self, tenant: Tenant, store: TenantStore,
                 vectors: Callable[[], TenantVectors], audit: Audit) -> None:
        self.tenant = tenant
        self.store = store
        self._audit = audit
        self.repo = KnowledgeRepository(store)
        self._open_vectors = vectors
        self._vectors: TenantVectors | None = None
        self._count: int | None = None
        self._lock = threading.Lock()  # one change at a time per tenant

    @property
    def vectors(self) -> TenantVectors:
        """The tenant's Chroma collection, opened on first use."""
        if self._vectors is None:
            self._vectors = self._open_vectors()
        return self._vectors

    # -- reading ---------------------------------------------------------------------
    def is_empty(self) -> bool:
        if self._count is None:
            self._count = self.repo.count()
        return self._count == 0

    def documents(self) -> list[Document]:
        return self.repo.documents()

    def search(self, query: str, k: int | None = None,
               tags: Sequence[str] | None = None) -> list[Hit]:
        """Hybrid search: the query embedding and BM25 run side by side, then the vector
        search; fused by reciprocal rank. ``tags`` limits it to documents with one of
        them (checked in every query)."""
        query = " ".join(query.split())
        if not query:
            raise BadInput("The search text is empty.")
        if len(query) > MAX_QUERY_CHARS:
            raise BadInput(f"The search text is longer than {MAX_QUERY_CHARS} characters.")
        if k is not None and not 1 <= k <= 50:
            raise BadInput("k must be between 1 and 50.")
        if self.is_empty():
            return []
        settings = self.tenant.knowledge
        k = k or settings.top_k
        n = max(4 * k, 20)
        allowed = None if tags is None else self.repo.allowed_chunk_ids(tags)
        if allowed is not None and not allowed:
            return []
        vector_future = _query_pool.submit(lambda: embeddings.embedder().embed([query])[0])
        keyword = [i for i, _ in self.repo.bm25(query, n, tags)]
        query_vector = vector_future.result()
        try:
            nearest = self.vectors.query(query_vector, min(n, len(allowed or ()) or n), allowed)
        except EnclaveError:
            raise
        except Exception as e:
            raise IndexUnavailable(f"the vector index of {self.tenant.name} failed: {e}"
                                   ) from None
        vector = [i for i, _ in nearest]
        rows = self.repo.chunks(list(dict.fromkeys([*vector, *keyword])), query_vector, tags)
        return fuse(vector, keyword, rows, k, settings.min_similarity)

    def grounding(self, query: str, assistant: Assistant) -> tuple[str | None, list[Hit]]:
        """The knowledge paragraph of a turn's system prompt and its hits; ``(None, [])``
        when the tenant has no documents (the embedding model is then not loaded)."""
        if self.is_empty():
            return None, []
        hits = self.search(query[:MAX_QUERY_CHARS], tags=assistant.knowledge_tags)
        name = self.tenant.name
        if not hits:
            return (f"## Knowledge\n\nNothing in {name}'s documents matches this message. "
                    "If it asks about information from the documents, say that you found "
                    "nothing about it in them; do not guess."), []
        sources = "\n\n".join(
            f"[{n}] {hit.title}{f' ({hit.where})' if hit.where else ''} · chunk "
            f"{hit.chunk_id}\n{hit.text}" for n, hit in enumerate(hits, 1))
        return (f"## Knowledge\n\nExcerpts of {name}'s documents that may answer the "
                "message. Use them, and cite each one you use by its number in square "
                "brackets, like [1]. If they do not contain the answer, say so instead of "
                f"guessing.\n\n{sources}"), hits

    @staticmethod
    def citations(hits: Sequence[Hit], answer: str) -> tuple[Citation, ...]:
        """The hits the answer cites as ``[n]``; all of them when it cites none."""
        cited = {int(m) for m in re.findall(r"\[(\d{1,2})\]", answer)}
        numbered = list(enumerate(hits, 1))
        chosen = [(n, h) for n, h in numbered if n in cited] or numbered
        return tuple(Citation(n, h.chunk_id, h.title, h.page, h.heading,
                              h.text[:SNIPPET_CHARS], round(h.score, 5)) for n, h in chosen)

    # -- changing --------------------------------------------------------------------
    def add(self, principal: Principal, uploads: Sequence[Upload],
            tags: Iterable[str] = (), progress: Progress | None = None) -> list[IngestResult]:
        """Ingest uploaded files; each is refused or stored on its own (``rejected``
        results carry the reason), the rest of the batch goes in."""
        clean_tags = normalize_tags(tags)
        with self._lock:
            results = self._ingest(principal, [(u.name, u.data, clean_tags, "upload")
                                               for u in uploads], progress)
            self._rebuild_if(results)
        self._audit_changes(principal, results)
        return results

    def _audit_changes(self, principal: Principal, results: Sequence[IngestResult]) -> None:
        """One audit entry per document stored, replaced or removed."""
        for r in results:
            if r.status in ("added", "replaced", "removed"):
                action = "knowledge.delete" if r.status == "removed" else "knowledge.upload"
                self._audit(principal, action, f"document:{r.document_id}",
                            {"name": r.name, "status": r.status, "chunks": r.chunks})

    def remove(self, principal: Principal, doc_id: str) -> Document:
        with self._lock:
            doc = self.repo.document(doc_id)
            if doc is None:
                raise NotFound(f"No document '{doc_id}' in {self.tenant.name}'s knowledge.")
            self._remove(doc)
        self._audit(principal, "knowledge.delete", f"document:{doc.id}", {"name": doc.name})
        return doc

    def retag(self, principal: Principal, doc_id: str, tags: Iterable[str]) -> Document:
        clean_tags = normalize_tags(tags)
        with self._lock:
            if self.repo.document(doc_id) is None:
                raise NotFound(f"No document '{doc_id}' in {self.tenant.name}'s knowledge.")
            self.store.write(self.repo.retag_statement(doc_id, clean_tags))
            doc = self.repo.document(doc_id)
            assert doc is not None
        self._audit(principal, "knowledge.retag", f"document:{doc_id}",
                    {"tags": list(clean_tags)})
        return doc

    def sync(self, principal: Principal, folder: Path,
             progress: Progress | None = None) -> list[IngestResult]:
        """Make the seed documents (``origin = seed``) match ``folder``: new and changed
        files ingested (sub-folders become tags), unchanged ones skipped, removed ones
        removed."""
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(folder).parts)) \
            if folder.is_dir() else []
        results: list[IngestResult] = []
        with self._lock:
            names, changed = set(), []
            for path in files:
                rel = path.relative_to(folder)
                try:
                    name = "/".join(clean_name(part) for part in rel.parts)
                    tags = normalize_tags(rel.parts[:-1])
                except EnclaveError as e:
                    results.append(IngestResult(rel.as_posix(), "rejected", str(e)))
                    continue
                names.add(name)
                data = path.read_bytes()
                current = self.repo.by_name(name)
                if current and current.sha256 == hashlib.sha256(data).hexdigest():
                    results.append(IngestResult(name, "unchanged", f"{name}: unchanged.",
                                                current.id, current.chunk_count))
                else:
                    changed.append((name, data, tags, "seed"))
            results += self._ingest(principal, changed, progress)
            for doc in self.repo.documents():
                if doc.origin == "seed" and doc.name not in names:
                    self._remove(doc, rebuild=False)
                    results.append(IngestResult(doc.name, "removed", f"{doc.name}: removed "
                                                "(no longer in the folder).", doc.id))
            self._rebuild_if(results)
        self._audit_changes(principal, results)
        return results

    def reindex(self) -> int:
        """Rebuild the vector index and the BM25 index from the store; returns the
        number of chunks indexed."""
        with self._lock:
            ids, vectors = self.repo.all_vectors()
            stale = self.vectors.ids()
            self.vectors.delete(stale)
            self.vectors.add(ids, vectors)
            self.store.write(*self.repo.rebuild_statements())
            self.store.flush()
            return len(ids)

    # -- internals -------------------------------------------------------------------
    def _ingest(self, principal: Principal,
                items: Sequence[tuple[str, bytes, tuple[str, ...], str]],
                progress: Progress | None) -> list[IngestResult]:
        """Ingest ``(name, data, tags, origin)`` items: all parsed first, then embedded in
        groups of files (one model call for many chunks), then stored file by file."""
        results: list[IngestResult | None] = []
        pending: list[tuple[int, _Prepared]] = []
        for name, data, tags, origin in items:
            outcome = self._guard(name, partial(self._prepare, name, data, tags, origin))
            if isinstance(outcome, _Prepared):
                pending.append((len(results), outcome))
                results.append(None)
            else:
                results.append(outcome)
        done = len(items) - len(pending)
        while pending:
            group = [pending.pop(0)]
            while pending and sum(len(p.texts) for _, p in group) < EMBED_GROUP:
                group.append(pending.pop(0))
            try:
                vectors = embeddings.embedder().embed([t for _, p in group for t in p.texts])
            except Exception:
                log.exception("%s: embedding failed", self.tenant.slug)
                vectors = None
            offset = 0
            for slot, prepared in group:
                n = len(prepared.texts)
                mine = None if vectors is None else vectors[offset:offset + n]
                offset += n
                result = self._guard(prepared.name, partial(self._commit, principal,
                                                            prepared, mine))
                assert isinstance(result, IngestResult)  # _commit never returns _Prepared
                results[slot] = result
                done += 1
                if progress:
                    progress(done, len(items), prepared.name)
        return [r for r in results if r is not None]

    def _guard(self, name: str, step: Callable[[], _Prepared | IngestResult]
               ) -> _Prepared | IngestResult:
        """Run one file's step; any failure becomes that file's ``rejected`` result."""
        try:
            return step()
        except EnclaveError as e:
            return IngestResult(name, "rejected", str(e) if name in str(e) else f"{name}: {e}")
        except Exception:
            log.exception("%s: ingesting %s failed", self.tenant.slug, name)
            return IngestResult(name, "rejected", f"{name}: could not be read (an internal "
                                "error was logged).")

    def _duplicate(self, name: str, sha: str) -> IngestResult | None:
        same = self.repo.by_hash(sha)
        if same is None:
            return None
        if same.name == name:
            return IngestResult(name, "unchanged", f"{name}: unchanged (same content).",
                                same.id, same.chunk_count)
        return IngestResult(name, "duplicate", f"{name}: same content as '{same.name}', "
                            "not stored twice.", same.id)

    def _prepare(self, name: str, data: bytes, tags: tuple[str, ...], origin: str
                 ) -> _Prepared | IngestResult:
        name = "/".join(clean_name(part) for part in name.split("/")) if origin == "seed" \
            else clean_name(name)
        limits = self.tenant.knowledge
        parsed = load(name, data, max_bytes=int(limits.max_upload_mb * 2**20),
                      max_unpacked=int(limits.max_unpacked_mb * 2**20))
        sha = hashlib.sha256(data).hexdigest()
        duplicate = self._duplicate(name, sha)
        if duplicate is not None:
            return duplicate
        chunks = chunk(parsed.sections, embeddings.tokenizer())
        if not chunks:
            raise UploadRejected(f"{name}: the file contains no text.")
        return _Prepared(name, len(data), sha, tags, origin, parsed, chunks,
                         [_embedding_text(parsed, c.heading, c.text) for c in chunks])

    def _commit(self, principal: Principal, p: _Prepared, vectors: np.ndarray | None
                ) -> IngestResult:
        if vectors is None:
            raise IndexUnavailable(f"{p.name}: could not be embedded (an error was logged).")
        duplicate = self._duplicate(p.name, p.sha256)  # the same file twice in a batch
        if duplicate is not None:
            return duplicate
        previous = self.repo.by_name(p.name)
        doc = Document(secrets.token_hex(8), p.name, p.parsed.title[:200], p.parsed.kind,
                       p.size, p.sha256, p.tags or (previous.tags if previous else ()),
                       p.origin, principal.email, datetime.now(UTC), len(p.chunks))
        ids = [secrets.token_hex(6) for _ in p.chunks]
        old_ids = self.repo.chunk_ids(previous.id) if previous else []
        self._add_vectors(p.name, ids, vectors)
        rows = [(i, c.ordinal, c.text, c.page, c.heading) for i, c in zip(ids, p.chunks,
                                                                          strict=True)]
        statements = [*(self.repo.delete_statements(previous.id) if previous else []),
                      *self.repo.insert_statements(doc, rows, vectors)]
        try:
            self.store.write(*statements)
            self.store.flush()
        except StoreError:
            if self.repo.document(doc.id) is None:  # our unit did not commit
                self._drop_vectors(ids)
                raise
        finally:
            self._count = None
        self._drop_vectors(old_ids)
        status: Status = "replaced" if previous else "added"
        return IngestResult(p.name, status, f"{p.name}: {status} ({len(p.chunks)} chunks).",
                            doc.id, len(p.chunks))

    def _add_vectors(self, name: str, ids: list[str], vectors: np.ndarray) -> None:
        try:
            self.vectors.add(ids, vectors)
        except Exception as e:
            self._drop_vectors(ids)
            raise IndexUnavailable(f"{name}: could not be indexed ({e}).") from None

    def _drop_vectors(self, ids: list[str]) -> None:
        """Remove vectors; a failure only leaves orphans, which retrieval ignores (it
        reads chunks from the store) and ``reindex`` removes."""
        if not ids:
            return
        try:
            self.vectors.delete(ids)
        except Exception:
            log.exception("%s: removing %d vectors failed", self.tenant.slug, len(ids))

    def _remove(self, doc: Document, rebuild: bool = True) -> None:
        ids = self.repo.chunk_ids(doc.id)
        statements = self.repo.delete_statements(doc.id)
        if rebuild:
            statements += self.repo.rebuild_statements()
        self.store.write(*statements)
        self.store.flush()
        self._count = None
        self._drop_vectors(ids)

    def _rebuild_if(self, results: Sequence[IngestResult]) -> None:
        if any(r.status in ("added", "replaced", "removed") for r in results):
            self.store.write(*self.repo.rebuild_statements())
            self.store.flush()
