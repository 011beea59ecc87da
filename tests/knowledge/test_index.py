"""The vector index: one Chroma tenant/database per Enclave tenant, ids and embeddings
only; the same code embedded and against a ``chroma run`` server."""

from __future__ import annotations

from pathlib import Path

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings as ChromaSettings

from enclave.knowledge.index import IndexUnavailable, VectorIndex, chroma_tenant


def unit(seed: int, n: int = 3) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 384)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(params=["embedded", "server"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> VectorIndex:
    if request.param == "server":
        return VectorIndex(tmp_path, request.getfixturevalue("chroma_server"))
    return VectorIndex(tmp_path)


def test_tenants_are_separate_chroma_tenants(index: VectorIndex) -> None:
    acme, globex = index.for_tenant("acme"), index.for_tenant("globex")
    vectors = unit(1)
    acme.add(["a1", "a2", "a3"], vectors)
    globex.add(["g1"], unit(2, 1))
    assert [i for i, _ in acme.query(vectors[0], 3)][0] == "a1"
    assert acme.query(vectors[0], 3)[0][1] == pytest.approx(1, abs=1e-3)
    assert {i for i, _ in globex.query(vectors[0], 5)} == {"g1"}
    assert acme.count() == 3 and globex.count() == 1
    assert [i for i, _ in acme.query(vectors[0], 3, ids=["a2", "a3"])] != ["a1"]
    acme.delete(["a1", "a2"])
    assert acme.ids() == ["a3"]


def test_the_index_holds_no_documents_or_metadata(tmp_path: Path) -> None:
    VectorIndex(tmp_path).for_tenant("acme").add(["a1"], unit(3, 1))
    client = chromadb.PersistentClient(str(tmp_path / "chroma"),
                                       settings=ChromaSettings(anonymized_telemetry=False),
                                       tenant=chroma_tenant("acme"), database="knowledge")
    stored = client.get_collection("chunks").get(include=["documents", "metadatas"])
    assert stored["ids"] == ["a1"]
    assert stored["documents"] == [None] and stored["metadatas"] == [None]


def test_a_bad_or_unreachable_server_url_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IndexUnavailable, match="not an http"):
        VectorIndex(tmp_path, "ftp://nowhere")
    with pytest.raises(IndexUnavailable, match="acme"):
        VectorIndex(tmp_path, "http://127.0.0.1:9").for_tenant("acme")
