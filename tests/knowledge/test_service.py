"""The knowledge base of a tenant: ingestion (dedupe, versions, bad files in a batch),
failure atomicity, isolation between tenants, no plaintext at rest, tags, sync, reindex.
Everything through the workspace, with real stores, Chroma and the embedding model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from enclave.errors import AccessDenied, BadInput, NotFound
from enclave.identity import Principal
from enclave.knowledge.index import TenantVectors
from enclave.knowledge.repository import KnowledgeRepository
from enclave.knowledge.service import KnowledgeBase, Upload
from enclave.workspace import Workspace
from tests.conftest import as_user, make_settings, plaintext_hits
from tests.fakes.openai_server import FakeOpenAI
from tests.knowledge import files
from tests.knowledge.conftest import add_text

HOTELS = "Hotels: the hotel cap is 185 dollars per night, before taxes."
SKATES = "Rocket skates: the warranty lasts two years from the day of purchase."


def texts(kb: KnowledgeBase, query: str) -> list[str]:
    return [h.text for h in kb.search(query)]


def state(kb: KnowledgeBase) -> tuple[list[tuple[str, str, int]], list[str], list[str]]:
    """Documents, stored chunk ids and indexed vector ids."""
    docs = [(d.name, d.sha256, d.chunk_count) for d in kb.documents()]
    chunks = sorted(r[0] for r in kb.store.query("SELECT id FROM kb_chunks"))
    return docs, chunks, sorted(kb.vectors.ids())


def test_upload_then_search_finds_the_chunk_with_its_document(ws: Workspace,
                                                              alice: Principal) -> None:
    kb = ws.knowledge(alice)
    add_text(kb, alice, "travel.md", f"# Travel\n\n## Hotels\n\n{HOTELS}")
    add_text(kb, alice, "skates.txt", SKATES)
    [best, *_] = kb.search("How much can I spend on a hotel per night?")
    assert best.text == HOTELS and best.title == "Travel" and best.heading == "Hotels"
    assert kb.search("quantum chromodynamics on a lattice") == []  # below the floor
    doc = next(d for d in kb.documents() if d.name == "travel.md")
    assert (doc.kind, doc.uploaded_by, doc.chunk_count) == ("markdown", alice.email, 1)


def test_same_content_is_stored_once_and_a_new_version_replaces_the_old(
        ws: Workspace, alice: Principal) -> None:
    kb = ws.knowledge(alice)
    first = add_text(kb, alice, "policy.txt", HOTELS)
    assert add_text(kb, alice, "policy.txt", HOTELS).status == "unchanged"
    copy = add_text(kb, alice, "copy-of-policy.txt", HOTELS)
    assert copy.status == "duplicate" and "policy.txt" in copy.message
    assert [d.name for d in kb.documents()] == ["policy.txt"]
    twice = kb.add(alice, [Upload("a.txt", SKATES.encode()), Upload("b.txt", SKATES.encode())])
    assert [r.status for r in twice] == ["added", "duplicate"]
    kb.remove(alice, twice[0].document_id or "")
    second = add_text(kb, alice, "policy.txt", HOTELS.replace("185", "199"))
    assert second.status == "replaced" and second.document_id != first.document_id
    assert texts(kb, "hotel cap per night") == [HOTELS.replace("185", "199")]
    docs, chunks, vectors = state(kb)
    assert len(docs) == 1 and chunks == vectors  # the old version's vectors are gone


def test_bad_files_are_refused_by_name_and_the_rest_of_the_batch_goes_in(
        ws: Workspace, alice: Principal) -> None:
    kb = ws.knowledge(alice)
    batch = [Upload("empty.txt", b""), Upload("locked.pdf", files.pdf("x", encrypt="pw")),
             Upload("scan.pdf", files.pdf("")), Upload("broken.pdf", files.pdf("x")[:300]),
             Upload("../escape.txt", b"sneaky"), Upload("tool.bin", b"\x00\x01" * 99),
             Upload("good.pdf", files.pdf(HOTELS, SKATES)),
             Upload("good.docx", files.docx(("heading", "Skates"), ("para", SKATES + " Yes.")))]
    seen: list[tuple[int, int]] = []
    results = kb.add(alice, batch, progress=lambda done, total, name: seen.append((done, total)))
    assert seen[-1] == (len(batch), len(batch)) and seen == sorted(seen)
    by_name = {r.name: r for r in results}
    for upload in batch[:6]:
        result = by_name[upload.name]
        assert result.status == "rejected" and upload.name in result.message
    assert {r.name for r in results if r.ok} == {"good.pdf", "good.docx"}
    pages = [(h.page, h.text) for h in kb.search("hotel cap per night") if h.page]
    assert pages[0] == (1, HOTELS)


def test_the_size_limit_is_a_tenant_setting(tenants_copy: Path, tmp_path: Path,
                                            llm: FakeOpenAI) -> None:
    toml = tenants_copy / "acme" / "tenant.toml"
    toml.write_text(toml.read_text() + "\n[knowledge]\nmax_upload_mb = 0.001\n")
    ws = Workspace(make_settings(tmp_path / "data", llm.base_url, tenants_copy))
    try:
        alice = as_user(ws, "acme", "alice@acme.example")
        [result] = ws.knowledge(alice).add(alice, [Upload("big.txt", b"word " * 1000)])
        assert result.status == "rejected" and "big.txt" in result.message
        assert "more than the limit" in result.message
    finally:
        ws.close()


def test_a_failed_vector_write_leaves_store_and_index_as_they_were(
        ws: Workspace, alice: Principal, monkeypatch: pytest.MonkeyPatch) -> None:
    kb = ws.knowledge(alice)
    add_text(kb, alice, "policy.txt", HOTELS)
    before = state(kb)
    real_add = TenantVectors.add

    def half_then_fail(self: TenantVectors, ids: list[str], vectors: np.ndarray) -> None:
        real_add(self, ids[:1], vectors[:1])
        raise RuntimeError("disk full")

    monkeypatch.setattr(TenantVectors, "add", half_then_fail)
    [result] = kb.add(alice, [Upload("policy.txt", (HOTELS + " New text. ") .encode() * 40)])
    assert result.status == "rejected" and "policy.txt" in result.message
    assert state(kb) == before
    assert texts(kb, "hotel cap per night") == [HOTELS]  # the old version still answers


def test_a_failed_store_write_removes_the_new_vectors(
        ws: Workspace, alice: Principal, monkeypatch: pytest.MonkeyPatch) -> None:
    kb = ws.knowledge(alice)
    add_text(kb, alice, "policy.txt", HOTELS)
    before = state(kb)
    real = KnowledgeRepository.insert_statements

    def failing(*args: object) -> list[tuple[str, list[object]]]:
        return [*real(*args), ("INSERT INTO kb_no_such_table VALUES (1)", [])]  # type: ignore[arg-type]

    monkeypatch.setattr(KnowledgeRepository, "insert_statements", staticmethod(failing))
    [result] = kb.add(alice, [Upload("policy.txt", SKATES.encode())])
    assert result.status == "rejected"
    assert state(kb) == before
    assert texts(kb, "hotel cap per night") == [HOTELS]


def test_acme_documents_never_reach_globex(ws: Workspace, alice: Principal,
                                           carol: Principal) -> None:
    acme, globex = ws.knowledge(alice), ws.knowledge(carol)
    add_text(acme, alice, "policy.md", "The acme-only canary is violet-harbour. " + HOTELS)
    add_text(globex, carol, "policy.md", "Globex plant rule: wear goggles on the floor.")
    add_text(acme, alice, "shared.txt", SKATES)
    add_text(globex, carol, "shared.txt", SKATES)  # same name and same text in both
    acme_ids = {r[0] for r in acme.store.query("SELECT id FROM kb_chunks")}
    for query in ("violet-harbour canary", "hotel cap per night", "skates warranty",
                  "policy"):
        hits = globex.search(query)
        assert not acme_ids & {h.chunk_id for h in hits}
        assert all("violet" not in h.text and "185" not in h.text for h in hits)
    assert [d.name for d in globex.documents()] == ["shared.txt", "policy.md"]
    assert acme.store is not globex.store and acme.vectors is not globex.vectors


def test_no_document_text_is_stored_in_plaintext(ws: Workspace, alice: Principal) -> None:
    kb = ws.knowledge(alice)
    add_text(kb, alice, "secret.md", "# Secret plan\n\nThe codeword is quokka-meridian-42.")
    kb.add(alice, [Upload("secret.pdf", files.pdf("PDF codeword tapir-solstice-77."))])
    assert kb.search("codeword")
    ws.close()
    data_dir = ws.settings.data_dir
    assert (data_dir / "chroma").is_dir()
    for needle in ("quokka-meridian", "tapir-solstice", "Secret plan", "codeword"):
        assert not plaintext_hits(data_dir, needle), needle


def test_assistant_tags_limit_what_retrieval_reads(ws: Workspace, alice: Principal) -> None:
    kb = ws.knowledge(alice)
    add_text(kb, alice, "hotels.txt", HOTELS, ("travel",))
    skates = add_text(kb, alice, "skates.txt", SKATES, ("product",))
    assert texts(kb, "hotel cap warranty") and not any(
        "185" in t for t in [h.text for h in kb.search("hotel cap", tags=("product",))])
    assert [h.text for h in kb.search("hotel cap per night", tags=("travel",))] == [HOTELS]
    assert kb.search("hotel cap per night", tags=("nothing-has-this",)) == []
    kb.retag(alice, skates.document_id or "", ["Travel", "product"])
    assert next(d for d in kb.documents() if d.name == "skates.txt").tags == ("travel",
                                                                             "product")
    with pytest.raises(BadInput, match="tag"):
        kb.retag(alice, skates.document_id or "", ["no spaces allowed"])


def test_remove_deletes_rows_and_vectors(ws: Workspace, alice: Principal) -> None:
    kb = ws.knowledge(alice)
    doc = add_text(kb, alice, "hotels.txt", HOTELS)
    kb.remove(alice, doc.document_id or "")
    assert state(kb) == ([], [], [])
    assert kb.search("hotel cap") == [] and kb.is_empty()
    with pytest.raises(NotFound):
        kb.remove(alice, "nope")


def test_members_may_not_manage_knowledge(ws: Workspace) -> None:
    with pytest.raises(AccessDenied):
        ws.knowledge(as_user(ws, "acme", "bob@acme.example"))


def test_sync_is_idempotent_and_follows_the_folder(ws: Workspace, alice: Principal,
                                                   tmp_path: Path) -> None:
    folder = tmp_path / "seed"
    (folder / "hr").mkdir(parents=True)
    (folder / "hotels.md").write_text(f"# Hotels\n\n{HOTELS}")
    (folder / "hr" / "leave.txt").write_text("Parental leave is sixteen weeks, fully paid.")
    (folder / ".hidden").write_text("skipped")
    kb = ws.knowledge(alice)
    assert {(r.name, r.status) for r in kb.sync(alice, folder)} == {
        ("hotels.md", "added"), ("hr/leave.txt", "added")}
    assert next(d for d in kb.documents() if d.name == "hr/leave.txt").tags == ("hr",)
    assert {r.status for r in kb.sync(alice, folder)} == {"unchanged"}
    (folder / "hotels.md").unlink()
    (folder / "hr" / "leave.txt").write_text("Parental leave is twenty weeks, fully paid.")
    assert {(r.name, r.status) for r in kb.sync(alice, folder)} == {
        ("hr/leave.txt", "replaced"), ("hotels.md", "removed")}
    assert texts(kb, "how long is parental leave") == [
        "Parental leave is twenty weeks, fully paid."]


def test_reindex_rebuilds_the_vector_index_from_the_store(ws: Workspace,
                                                          alice: Principal) -> None:
    kb = ws.knowledge(alice)
    add_text(kb, alice, "hotels.txt", HOTELS)
    kb.vectors.delete(kb.vectors.ids())  # the index is lost
    assert kb.reindex() == 1
    assert texts(kb, "hotel cap per night") == [HOTELS]


def test_the_chroma_server_path_serves_the_same_code(
        chroma_server: str, tmp_path: Path, llm: FakeOpenAI,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCLAVE_CHROMA_URL", chroma_server)
    ws = Workspace(make_settings(tmp_path / "data", llm.base_url))
    try:
        alice = as_user(ws, "acme", "alice@acme.example")
        carol = as_user(ws, "globex", "carol@globex.example")
        add_text(ws.knowledge(alice), alice, "hotels.txt", HOTELS)
        assert texts(ws.knowledge(alice), "hotel cap per night") == [HOTELS]
        assert ws.knowledge(carol).search("hotel cap per night") == []
        assert not (tmp_path / "data" / "chroma").exists()  # nothing embedded
    finally:
        ws.close()


def test_seed_folders_of_the_repo_ingest_cleanly(ws: Workspace, alice: Principal,
                                                 tmp_path: Path) -> None:
    folder = tmp_path / "acme"
    shutil.copytree(Path(__file__).parents[2] / "knowledge" / "acme", folder)
    results = ws.knowledge(alice).sync(alice, folder)
    assert results and all(r.status == "added" for r in results)
