"""Reciprocal rank fusion and the relevance floor."""

from __future__ import annotations

import pytest

from enclave.knowledge.repository import ChunkRow
from enclave.knowledge.retrieval import RRF_K, fuse, rrf


def row(i: str, similarity: float) -> ChunkRow:
    return ChunkRow(i, "doc", "Title", f"text {i}", None, "Heading", similarity)


def test_rrf_sums_reciprocal_ranks() -> None:
    scores = rrf([["a", "b"], ["b", "c"]])
    assert scores["b"] == pytest.approx(1 / (RRF_K + 2) + 1 / (RRF_K + 1))
    assert scores["a"] == pytest.approx(1 / (RRF_K + 1))
    assert max(scores, key=scores.__getitem__) == "b"


def test_fuse_ranks_agreement_first_and_applies_floor_and_top_k() -> None:
    rows = {"a": row("a", 0.9), "b": row("b", 0.6), "c": row("c", 0.5), "low": row("low", 0.1)}
    hits = fuse(["a", "b", "low"], ["b", "c", "low"], rows, top_k=2, min_similarity=0.3)
    assert [h.chunk_id for h in hits] == ["b", "a"]
    assert hits[0].similarity == 0.6 and hits[0].where == "Heading"


def test_fuse_drops_ids_without_a_row() -> None:
    """A vector of a removed chunk (or of a document the assistant may not read) is never
    returned: only rows read from the store count."""
    assert [h.chunk_id for h in fuse(["gone", "a"], [], {"a": row("a", 0.8)}, 5, 0.3)] == ["a"]
