"""Knowledge base benchmark; prints JSON figures.

- ingestion throughput (parse + chunk + embed + store + index, chunks/s) of a few hundred
  realistic chunks, against the raw throughput of the same model on the same chunk texts,
  side by side in this run;
- warm query latency p50/p95 (query embedding + hybrid search) at 1k, 10k and 100k chunks
  in one tenant (synthetic texts and vectors written straight to the store and index:
  this measures queries, not ingestion), and across 200 loaded tenants;
- RSS per loaded tenant (store + Chroma collection opened and queried once).

Run: ``.venv/bin/python bench/knowledge.py [--max-chunks 100000] [--tenants 200]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import secrets
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

# the repo root instead of bench/ (whose logging.py would shadow the standard library)
from enclave.config import ROOT
from enclave.identity import Principal
from enclave.knowledge import embeddings
from enclave.knowledge.chunking import chunk
from enclave.knowledge.index import VectorIndex
from enclave.knowledge.loaders import load
from enclave.knowledge.repository import Document, KnowledgeRepository
from enclave.knowledge.service import KnowledgeBase, Upload
from enclave.store import TenantStore
from enclave.tenants import Tenant, TenantRegistry
from enclave.workspace import TENANT_MIGRATIONS

WORDS = ("policy travel hotel night expense receipt manager approval flight train budget "
         "laptop password security badge office remote meeting holiday leave parental sick "
         "salary bonus review contract supplier invoice purchase order warranty repair "
         "skates helmet battery charger speed brake wheel safety incident report plant "
         "shift goggles forklift chemical spill evacuation drill retention archive backup "
         "privacy customer complaint refund shipping delivery onboarding training mentor "
         "badge parking canteen printer network vpn email calendar phone support ticket").split()
QUERIES = ["What is the hotel cap per night?", "How do I reset my password?",
           "How long is parental leave?", "What does the skates warranty cover?",
           "Who approves a purchase order?", "What to do after a chemical spill?",
           "How long do we keep backups?", "Can I work remotely from abroad?",
           "How do I get a refund for a customer?", "Where can visitors park?"]
PRINCIPAL = Principal("bench", "bench", "bench@example.org", "Bench", ("admin",), "cli")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _vocabulary() -> tuple[list[str], list[float]]:
    """Zipf-distributed words: the domain words spread among 20,000 pseudo-words, like
    the long tail of a real corpus."""
    rng = random.Random(11)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choices(letters, k=rng.randint(4, 10))) for _ in range(20_000)]
    for i, word in enumerate(WORDS):
        words[50 + i * 37] = word
    return words, [1 / (rank + 1) for rank in range(len(words))]


VOCABULARY, ZIPF = _vocabulary()


def sentence(rng: random.Random) -> str:
    words = rng.choices(VOCABULARY, ZIPF, k=rng.randint(8, 18))
    return " ".join(words).capitalize() + "."


def documents(rng: random.Random, count: int, sections: int) -> list[Upload]:
    out = []
    for d in range(count):
        body = [f"# Handbook {d}"]
        for s in range(sections):
            body.append(f"## Section {s}: {rng.choice(WORDS)}")
            body.append(" ".join(sentence(rng) for _ in range(rng.randint(6, 12))))
        out.append(Upload(f"handbook-{d}.md", "\n\n".join(body).encode()))
    return out


def open_kb(tenant: Tenant, root: Path, index: VectorIndex) -> KnowledgeBase:
    store = TenantStore(root / tenant.slug / "store.duckdb", secrets.token_bytes(32),
                        TENANT_MIGRATIONS)
    return KnowledgeBase(tenant, store, lambda: index.for_tenant(tenant.slug),
                         lambda *entry: None)  # the benchmark keeps no audit trail


def ingestion(kb: KnowledgeBase, rng: random.Random) -> dict[str, float]:
    uploads = documents(rng, 12, 10)
    texts = []  # the exact texts ingestion embeds
    for u in uploads:
        parsed = load(u.name, u.data, max_bytes=2**30, max_unpacked=2**30)
        texts += ["\n".join(p for p in (parsed.title, c.heading, c.text) if p)
                  for c in chunk(parsed.sections, embeddings.tokenizer())]
    embedder = embeddings.embedder()
    embedder.embed(texts[:32])  # warm
    started = time.perf_counter()
    embedder.embed(texts)
    raw = len(texts) / (time.perf_counter() - started)
    started = time.perf_counter()
    results = kb.add(PRINCIPAL, uploads)
    elapsed = time.perf_counter() - started
    chunks = sum(r.chunks for r in results)
    assert chunks == len(texts), (chunks, len(texts))
    return {"chunks": chunks, "raw_embedding_chunks_per_s": round(raw, 1),
            "ingestion_chunks_per_s": round(chunks / elapsed, 1),
            "ratio": round(chunks / elapsed / raw, 3)}


def fill(kb: KnowledgeBase, rng: random.Random, count: int, doc_size: int = 100) -> None:
    """Synthetic chunks (texts and unit vectors) written straight to store and index."""
    np_rng = np.random.default_rng(rng.randrange(2**32))
    now = datetime.now(UTC)
    for start in range(0, count, 5000):
        n = min(5000, count - start)
        vectors = np_rng.normal(size=(n, embeddings.DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = [secrets.token_hex(6) for _ in range(n)]
        statements = []
        for d in range(0, n, doc_size):
            doc = Document(secrets.token_hex(8), f"synthetic-{start + d}.txt",
                           f"Synthetic {start + d}", "text", 1000, secrets.token_hex(32), (),
                           "upload", PRINCIPAL.email, now, min(doc_size, n - d))
            rows = [(ids[i], i - d, " ".join(sentence(rng) for _ in range(6)), None,
                     f"Section {i % 7}") for i in range(d, min(d + doc_size, n))]
            statements += KnowledgeRepository.insert_statements(doc, rows, vectors[d:d + len(rows)])
        kb.store.write(*statements)
        kb.vectors.add(ids, vectors)
    kb.store.write(*kb.repo.rebuild_statements())
    kb.store.flush()
    kb._count = None


def latency(kbs: list[KnowledgeBase], rng: random.Random, n: int = 200) -> dict[str, float]:
    for kb in kbs:  # warm: first query of each tenant opens its collection
        kb.search(QUERIES[0])
    times = []
    for i in range(n):
        kb = kbs[i % len(kbs)] if len(kbs) > 1 else kbs[0]
        started = time.perf_counter()
        kb.search(rng.choice(QUERIES))
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(percentile(times, 95), 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-chunks", type=int, default=100_000)
    parser.add_argument("--tenants", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(7)
    base = TenantRegistry.load(ROOT / "tenants").get("acme")
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        index = VectorIndex(root)
        big = open_kb(replace(base, slug="bench-big"), root, index)
        figures["ingestion"] = ingestion(big, rng)
        sizes: dict[str, object] = {}
        have = big.repo.store.query("SELECT count(*) FROM kb_chunks")[0][0]
        for size in (1_000, 10_000, 100_000):
            if size > args.max_chunks:
                break
            started = time.perf_counter()
            fill(big, rng, size - have)
            have = size
            sizes[str(size)] = {**latency([big], rng),
                                "fill_s": round(time.perf_counter() - started, 1)}
        figures["query_one_tenant"] = sizes
        big.store.close()

        gc.collect()
        before = rss_mb()
        kbs = [open_kb(replace(base, slug=f"bench-t{i:03d}"), root, index)
               for i in range(args.tenants)]
        gc.collect()
        stores_open = rss_mb()
        for i, kb in enumerate(kbs):
            fill(kb, rng, 50, doc_size=25)
            kb.search(QUERIES[i % len(QUERIES)])
        gc.collect()
        after = rss_mb()
        per = max(1, args.tenants)
        figures["tenants_loaded"] = {
            "tenants": args.tenants, "chunks_per_tenant": 50,
            "rss_before_mb": round(before, 1), "rss_after_mb": round(after, 1),
            "rss_per_tenant_mb": round((after - before) / per, 2),
            "of_which_tenant_store_open_mb": round((stores_open - before) / per, 2),
            "of_which_knowledge_data_and_chroma_mb": round((after - stores_open) / per, 2),
            **latency(kbs, rng, 400)}
        for kb in kbs:
            kb.store.close()
    figures["targets"] = {"ingestion_ratio_min": 0.8, "p95_ms_at_100k_max": 25,
                          "rss_per_tenant_mb_max": 5}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
