"""Chunks fit the model's window (counted with its own tokenizer), overlap, prefer
sentence ends, and keep their section's page and heading."""

from __future__ import annotations

from enclave.knowledge.chunking import MAX_TOKENS, chunk
from enclave.knowledge.embeddings import tokenizer
from enclave.knowledge.loaders import Section


def tokens(text: str) -> int:
    return len(tokenizer().encode(text, add_special_tokens=False).ids)


def test_a_short_section_is_one_chunk_with_its_metadata() -> None:
    chunks = chunk([Section("Hotels cost 185.", page=3, heading="Hotels")], tokenizer())
    assert [(c.ordinal, c.text, c.page, c.heading) for c in chunks] == [
        (0, "Hotels cost 185.", 3, "Hotels")]


def test_long_text_is_split_into_overlapping_windows_at_sentence_ends() -> None:
    text = " ".join(f"Sentence number {i} talks about expense rule {i}." for i in range(80))
    chunks = chunk([Section(text, heading="Rules")], tokenizer())
    assert len(chunks) > 3
    assert all(tokens(c.text) <= MAX_TOKENS for c in chunks)
    assert all(c.text.endswith(".") for c in chunks)
    assert all(c.heading == "Rules" for c in chunks)
    for a, b in zip(chunks, chunks[1:], strict=False):  # consecutive windows overlap
        assert a.text.split()[-1] in b.text
    covered = " ".join(c.text for c in chunks)
    assert all(f"rule {i}." in covered for i in range(80))


def test_chunks_are_numbered_across_sections() -> None:
    chunks = chunk([Section("One.", page=1), Section("Two.", page=2)], tokenizer())
    assert [(c.ordinal, c.page) for c in chunks] == [(0, 1), (1, 2)]
