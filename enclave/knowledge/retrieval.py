"""Hybrid ranking: reciprocal rank fusion of the vector and the BM25 rankings, keeping
only chunks above the relevance floor (cosine similarity to the query)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from enclave.knowledge.repository import ChunkRow

RRF_K = 60  # the usual constant of Cormack et al.


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    document_id: str
    title: str
    text: str
    page: int | None
    heading: str | None
    score: float  # fused RRF score
    similarity: float  # cosine similarity to the query

    @property
    def where(self) -> str:
        """``p. 3`` or the section heading, for a citation."""
        if self.page is not None:
            return f"p. {self.page}"
        return self.heading or ""


def rrf(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> dict[str, float]:
    """Reciprocal rank fusion: ``sum(1 / (k + rank))`` over the rankings holding an id."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return scores


def fuse(vector: Sequence[str], keyword: Sequence[str], rows: Mapping[str, ChunkRow],
         top_k: int, min_similarity: float) -> list[Hit]:
    """The ``top_k`` best chunks of both rankings that exist in ``rows`` (allowed and
    stored) and reach ``min_similarity``, best first."""
    relevant = {i for i, row in rows.items() if row.similarity >= min_similarity}
    scores = rrf([[i for i in vector if i in relevant], [i for i in keyword if i in relevant]])
    best = sorted(scores, key=lambda i: (-scores[i], -rows[i].similarity, i))[:top_k]
    return [Hit(i, rows[i].document_id, rows[i].title, rows[i].text, rows[i].page,
                rows[i].heading, scores[i], rows[i].similarity) for i in best]
