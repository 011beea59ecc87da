"""The vector index: Chroma, one Chroma tenant + database per Enclave tenant, holding
embeddings and chunk ids only (never text: that stays in the encrypted tenant store).

Embedded ``PersistentClient`` at ``<data_dir>/chroma`` by default; ``ENCLAVE_CHROMA_URL``
(``http://host:port`` of ``chroma run``) switches to ``HttpClient``, same code path.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import chromadb
import httpx
import numpy as np
from chromadb.config import Settings as ChromaSettings

from enclave.errors import EnclaveError

COLLECTION = "chunks"
DATABASE = "knowledge"
ADD_BATCH = 1000


class IndexUnavailable(EnclaveError):
    status = 503


def chroma_tenant(slug: str) -> str:
    return f"enclave-{slug}"


class VectorIndex:
    """The process's connection to Chroma; ``for_tenant`` scopes it to one tenant."""

    def __init__(self, data_dir: Path, url: str | None = None) -> None:
        self.url = url
        self.path = data_dir / "chroma"
        self._settings: dict[str, Any] = {"anonymized_telemetry": False}
        if url:
            parts = urlparse(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise IndexUnavailable(f"ENCLAVE_CHROMA_URL {url!r} is not an http(s) URL")
            self._host, self._ssl = parts.hostname, parts.scheme == "https"
            self._port = parts.port or (443 if self._ssl else 8000)
        self._lock = threading.Lock()
        self._tenants: dict[str, TenantVectors] = {}

    @classmethod
    def from_env(cls, data_dir: Path) -> VectorIndex:
        return cls(data_dir, os.environ.get("ENCLAVE_CHROMA_URL") or None)

    def _admin(self) -> chromadb.api.AdminAPI:
        if self.url:
            return chromadb.AdminClient(ChromaSettings(
                chroma_api_impl="chromadb.api.fastapi.FastAPI", chroma_server_host=self._host,
                chroma_server_http_port=self._port, chroma_server_ssl_enabled=self._ssl,
                **self._settings))
        return chromadb.AdminClient(ChromaSettings(is_persistent=True,
                                                   persist_directory=str(self.path),
                                                   **self._settings))

    def _client(self, tenant: str) -> chromadb.api.ClientAPI:
        settings = ChromaSettings(**self._settings)
        if self.url:
            return chromadb.HttpClient(host=self._host, port=self._port, ssl=self._ssl,
                                       settings=settings, tenant=tenant, database=DATABASE)
        return chromadb.PersistentClient(str(self.path), settings=settings, tenant=tenant,
                                         database=DATABASE)

    def for_tenant(self, slug: str) -> TenantVectors:
        """The tenant's own Chroma tenant/database, created on first use."""
        with self._lock:
            vectors = self._tenants.get(slug)
            if vectors is None:
                name = chroma_tenant(slug)
                try:
                    admin = self._admin()
                    try:
                        admin.get_tenant(name)
                    except chromadb.errors.NotFoundError:
                        admin.create_tenant(name)
                    try:
                        admin.get_database(DATABASE, tenant=name)
                    except chromadb.errors.NotFoundError:
                        admin.create_database(DATABASE, tenant=name)
                    collection = self._client(name).get_or_create_collection(
                        COLLECTION, embedding_function=None,
                        configuration={"hnsw": {"space": "cosine"}})
                except (chromadb.errors.ChromaError, httpx.HTTPError, OSError, ValueError) as e:
                    raise IndexUnavailable(f"the vector index of {slug} is unavailable: {e}"
                                           ) from None
                vectors = self._tenants[slug] = TenantVectors(collection)
            return vectors


class TenantVectors:
    """One tenant's collection: ids and embeddings, nothing else."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection

    def add(self, ids: Sequence[str], embeddings: np.ndarray) -> None:
        for start in range(0, len(ids), ADD_BATCH):
            self._collection.add(ids=list(ids[start:start + ADD_BATCH]),
                                 embeddings=embeddings[start:start + ADD_BATCH])

    def delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), ADD_BATCH):
            self._collection.delete(ids=list(ids[start:start + ADD_BATCH]))

    def query(self, embedding: np.ndarray, n: int, ids: Sequence[str] | None = None
              ) -> list[tuple[str, float]]:
        """The ``n`` nearest chunk ids with their cosine similarity, best first; only
        among ``ids`` when given."""
        if ids is not None and not ids:
            return []
        result = self._collection.query(query_embeddings=embedding[None, :], n_results=n,
                                        ids=list(ids) if ids is not None else None,
                                        include=["distances"])
        return [(i, 1.0 - float(d)) for i, d in zip(result["ids"][0],
                                                    result["distances"][0], strict=True)]

    def count(self) -> int:
        return int(self._collection.count())

    def ids(self) -> list[str]:
        return list(self._collection.get(include=[])["ids"])
