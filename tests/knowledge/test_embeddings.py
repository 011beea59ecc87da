"""The offline MiniLM session: unit vectors, order kept across length-sorted batches,
similar texts closer than unrelated ones, one session per process."""

from __future__ import annotations

import numpy as np

from enclave.knowledge import embeddings


def test_vectors_are_unit_length_and_in_input_order() -> None:
    texts = ["a much longer sentence about the travel policy of the company " * 3, "short",
             "hotel cap per night"]
    vectors = embeddings.embedder().embed(texts)
    assert vectors.shape == (3, embeddings.DIM) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    alone = embeddings.embedder().embed([texts[2]])[0]
    assert np.allclose(vectors[2], alone, atol=1e-4)  # padding does not change a vector


def test_related_texts_are_more_similar_than_unrelated() -> None:
    q, related, unrelated = embeddings.embedder().embed([
        "What is the hotel limit per night?", "Hotels are capped at $185 per night.",
        "Rocket skates reach 40 km/h."])
    assert q @ related > 0.5 > q @ unrelated


def test_one_session_per_process() -> None:
    assert embeddings.embedder() is embeddings.embedder()
    assert embeddings.loaded()
