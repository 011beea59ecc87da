"""``enclave knowledge add | list | remove | search | sync | reindex``: a tenant's knowledge
base. The platform operator runs them (recorded as ``operator:<os user>``), or a tenant
user with ``--as EMAIL`` and that user's roles (editor or admin)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from enclave.commands.access import operator_name
from enclave.config import ROOT, Settings
from enclave.errors import NotFound
from enclave.identity import Principal, principal_from_email

if TYPE_CHECKING:
    from enclave.knowledge.service import IngestResult, KnowledgeBase, Progress
    from enclave.workspace import Workspace


def operator(slug: str) -> Principal:
    name = operator_name()
    return Principal(slug, f"operator:{name}", f"operator:{name}", name, ("editor",), "cli")


@contextmanager
def _knowledge(args: argparse.Namespace, settings: Settings
               ) -> Iterator[tuple[Workspace, Principal, KnowledgeBase]]:
    from enclave.workspace import Workspace

    ws = Workspace(settings)
    try:
        ws.tenants.get(args.slug)
        who = (principal_from_email(ws.tenants, args.slug, args.as_email, "cli")
               if args.as_email else operator(args.slug))
        yield ws, who, ws.knowledge(who)
    finally:
        ws.close()


@contextmanager
def _progress(total: int, label: str) -> Iterator[Progress]:
    from tqdm import tqdm

    with tqdm(total=total, desc=label, unit="file", file=sys.stderr,
              disable=total == 0) as bar:
        def step(done: int, total: int, name: str) -> None:
            bar.set_postfix_str(name[-40:])
            bar.update(done - bar.n)
        yield step


def _report(results: list[IngestResult]) -> int:
    for r in results:
        print(f"{r.status:<10} {r.message}")
    return 0 if all(r.ok for r in results) else 1


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    from enclave.knowledge.service import IngestResult, Upload

    uploads, unreadable = [], []
    for file in args.files:
        try:
            uploads.append(Upload(Path(file).name, Path(file).read_bytes()))
        except OSError as e:
            unreadable.append(IngestResult(file, "rejected", f"{file}: cannot read "
                                           f"({e.strerror or e})."))
    tags = [t for t in (args.tags or "").split(",") if t.strip()]
    with _knowledge(args, settings) as (_, who, kb), _progress(len(uploads), "ingest") as step:
        results = kb.add(who, uploads, tags, step)
    return _report(unreadable + results)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    with _knowledge(args, settings) as (_, _who, kb):
        docs = kb.documents()
    if args.json:
        print(json.dumps([{"id": d.id, "name": d.name, "title": d.title, "kind": d.kind,
                           "size_bytes": d.size_bytes, "chunks": d.chunk_count,
                           "tags": list(d.tags), "origin": d.origin,
                           "uploaded_by": d.uploaded_by,
                           "uploaded_at": d.uploaded_at.isoformat()} for d in docs], indent=2))
        return 0
    for d in docs:
        print(f"{d.id}  {d.kind:<8} {d.size_bytes:>9,} B {d.chunk_count:>4} chunks  "
              f"{d.uploaded_at:%Y-%m-%d %H:%M}  {d.uploaded_by:<24} {d.name}"
              + (f"  [{', '.join(d.tags)}]" if d.tags else ""))
    print(f"{len(docs)} document(s)", file=sys.stderr)
    return 0


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    with _knowledge(args, settings) as (_, who, kb):
        doc = kb.remove(who, args.doc_id)
    print(f"removed {doc.id} {doc.name}")
    return 0


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    with _knowledge(args, settings) as (ws, _who, kb):
        tags = ws.tenants.get(args.slug).assistant(args.assistant).knowledge_tags \
            if args.assistant else None
        hits = kb.search(args.query, args.k, tags)
    if args.json:
        print(json.dumps([{"rank": n, "chunk_id": h.chunk_id, "document": h.title,
                           "page": h.page, "section": h.heading, "score": h.score,
                           "similarity": h.similarity, "text": h.text}
                          for n, h in enumerate(hits, 1)], indent=2, ensure_ascii=False))
        return 0
    if not hits:
        print("no relevant chunk found")
    for n, h in enumerate(hits, 1):
        where = f" · {h.where}" if h.where else ""
        print(f"{n}. {h.title}{where}  score {h.score:.4f} · similarity {h.similarity:.2f} "
              f"· chunk {h.chunk_id}")
        print("   " + " ".join(h.text.split())[:240])
    return 0


def _folder(args: argparse.Namespace) -> Path:
    folder = Path(args.folder) if args.folder else ROOT / "knowledge" / args.slug
    if not folder.is_dir():
        raise NotFound(f"{folder}: no such folder of seed documents")
    return folder


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    folder = _folder(args)
    with _knowledge(args, settings) as (_, who, kb):
        with _progress(sum(1 for p in folder.rglob("*") if p.is_file()), "sync") as step:
            results = kb.sync(who, folder, step)
    return _report(results)


def cmd_reindex(args: argparse.Namespace, settings: Settings) -> int:
    with _knowledge(args, settings) as (_, _who, kb):
        count = kb.reindex()
    print(f"reindexed {count} chunks of {args.slug}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    kb = sub.add_parser("knowledge", help="a tenant's knowledge base").add_subparsers(
        dest="knowledge_command", required=True)

    def command(name: str, help: str, func: Callable[[argparse.Namespace, Settings], int]
                ) -> argparse.ArgumentParser:
        p = kb.add_parser(name, help=help)
        p.add_argument("slug")
        p.add_argument("--as", dest="as_email", metavar="EMAIL",
                       help="act as this tenant user (editor or admin) instead of the operator")
        p.set_defaults(func=func)
        return p

    add = command("add", "ingest documents (PDF, DOCX, HTML, Markdown, text, CSV)", cmd_add)
    add.add_argument("files", nargs="+", metavar="FILE")
    add.add_argument("--tags", help="comma-separated tags, e.g. hr,policies")
    command("list", "list the documents", cmd_list).add_argument("--json", action="store_true")
    command("remove", "remove a document", cmd_remove).add_argument("doc_id")
    search = command("search", "try retrieval: ranked chunks", cmd_search)
    search.add_argument("query")
    search.add_argument("--k", type=int, default=None, help="how many chunks (default: the "
                                                             "tenant's top_k)")
    search.add_argument("--assistant", help="search only what this assistant may read")
    search.add_argument("--json", action="store_true")
    sync = command("sync", "ingest knowledge/SLUG/ (unchanged skipped, removed removed)",
                   cmd_sync)
    sync.add_argument("--folder", help="the seed folder (default: knowledge/SLUG)")
    command("reindex", "rebuild the vector and BM25 indexes from the store", cmd_reindex)
