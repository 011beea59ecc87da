"""Token-aware chunking with the embedding model's own tokenizer: windows of at most
``max_tokens`` tokens that overlap, cut at a sentence end when one is near, each keeping
its section's page number and heading."""

from __future__ import annotations

from dataclasses import dataclass

from tokenizers import Tokenizer

from enclave.knowledge.loaders import Section

MAX_TOKENS = 160  # leaves room for the title and heading within the model's 256
OVERLAP = 24
_SENTENCE_END = (".", "!", "?", ":", ";")


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    text: str
    page: int | None
    heading: str | None


def _windows(text: str, tokenizer: Tokenizer, max_tokens: int, overlap: int
             ) -> list[str]:
    offsets = tokenizer.encode(text, add_special_tokens=False).offsets
    if len(offsets) <= max_tokens:
        return [text.strip()]
    out: list[str] = []
    start = 0
    while start < len(offsets):
        end = min(start + max_tokens, len(offsets))
        if end < len(offsets):  # prefer a sentence end in the last quarter of the window
            for i in range(end - 1, start + max_tokens * 3 // 4, -1):
                if text[offsets[i][0]:offsets[i][1]] in _SENTENCE_END or \
                        "\n" in text[offsets[i][1]:offsets[i + 1][0]]:
                    end = i + 1
                    break
        piece = text[offsets[start][0]:offsets[end - 1][1]].strip()
        if piece:
            out.append(piece)
        if end >= len(offsets):
            break
        start = max(end - overlap, start + 1)
    return out


def chunk(sections: list[Section], tokenizer: Tokenizer, max_tokens: int = MAX_TOKENS,
          overlap: int = OVERLAP) -> list[Chunk]:
    """Chunks of every section, numbered in document order."""
    chunks: list[Chunk] = []
    for section in sections:
        for piece in _windows(section.text, tokenizer, max_tokens, overlap):
            chunks.append(Chunk(len(chunks), piece, section.page, section.heading))
    return chunks
