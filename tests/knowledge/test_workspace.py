"""Grounded chat turns: retrieval from the tenant's own knowledge after the plugins'
transform, the chunks with their numbers and ids in the prompt, citations on ``Final``,
'say so' when nothing is relevant, assistant tag limits, and an empty knowledge base
that never loads the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave.identity import Principal
from enclave.knowledge import embeddings, service
from enclave.turns import ChatMessage, Final, TurnRequest
from enclave.workspace import Workspace
from tests.conftest import as_user, make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.knowledge.conftest import add_text

HOTELS = "Hotels: the hotel cap is 185 dollars per night, before taxes."


def final(ws: Workspace, who: Principal, text: str, assistant: str | None = None) -> Final:
    return [e for e in ws.chat(who, text, None, assistant) if isinstance(e, Final)][0]


def test_the_answer_is_grounded_on_the_tenants_chunks_and_cites_them(
        ws: Workspace, alice: Principal, llm: FakeOpenAI) -> None:
    add_text(ws.knowledge(alice), alice, "travel.md", f"# Travel policy\n\n## Hotels\n\n{HOTELS}")
    llm.reply = "The cap is 185 dollars [1]."
    bob = as_user(ws, "acme", "bob@acme.example")
    done = final(ws, bob, "What is the hotel cap per night?")
    [citation] = done.citations
    assert (citation.number, citation.title, citation.section) == (1, "Travel policy", "Hotels")
    assert citation.snippet == HOTELS and citation.score > 0
    system = llm.requests[-1]["messages"][0]["content"]
    assert f"[1] Travel policy (Hotels) · chunk {citation.chunk_id}\n{HOTELS}" in system
    assert "cite each one you use by its number" in system
    assert llm.requests[-1]["messages"][-1]["content"] == "What is the hotel cap per night?"


def test_citations_are_kept_with_the_answer(ws: Workspace, alice: Principal,
                                            llm: FakeOpenAI) -> None:
    add_text(ws.knowledge(alice), alice, "travel.md", f"# Travel policy\n\n## Hotels\n\n{HOTELS}")
    llm.reply = "The cap is 185 dollars [1]."
    bob = as_user(ws, "acme", "bob@acme.example")
    done = final(ws, bob, "What is the hotel cap per night?")
    question, answer = ws.messages(bob, done.conversation_id)
    assert question.citations == () and answer.id == done.message_id
    assert answer.citations == done.citations and len(answer.citations) == 1


def test_nothing_relevant_tells_the_model_to_say_so(ws: Workspace, alice: Principal,
                                                    llm: FakeOpenAI) -> None:
    add_text(ws.knowledge(alice), alice, "travel.md", HOTELS)
    done = final(ws, alice, "Explain quantum chromodynamics on a lattice")
    assert done.citations == ()
    system = llm.requests[-1]["messages"][0]["content"]
    assert "Nothing in Acme Corporation's documents matches" in system and "185" not in system


def test_retrieval_uses_the_redacted_prompt(ws: Workspace, alice: Principal,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    add_text(ws.knowledge(alice), alice, "travel.md", HOTELS)
    asked: list[str] = []
    real = service.KnowledgeBase.search
    monkeypatch.setattr(service.KnowledgeBase, "search",
                        lambda self, q, k=None, tags=None: asked.append(q) or real(self, q, k,
                                                                                  tags))
    final(ws, alice, "Mail me at alice.private@example.org about the hotel cap")
    assert asked and "alice.private@example.org" not in asked[0]  # pii_redaction ran first


def test_the_turn_request_carries_the_retrieved_chunk_ids(ws: Workspace,
                                                          alice: Principal) -> None:
    result = add_text(ws.knowledge(alice), alice, "travel.md", HOTELS)
    tenant = ws.tenant_for(alice)
    chunk_ids = [r[0] for r in ws.knowledge(alice).store.query(
        "SELECT id FROM kb_chunks WHERE document_id = ?", [result.document_id])]
    request = TurnRequest("c", "helpdesk", [ChatMessage("system", "S"),
                                            ChatMessage("user", "hotel cap per night?")],
                          endpoint=None)  # type: ignore[arg-type]
    hits = ws._ground(tenant, tenant.default_assistant, request)
    assert request.retrieved_chunk_ids == tuple(chunk_ids) == tuple(h.chunk_id for h in hits)
    assert request.messages[0].content.startswith("S\n\n## Knowledge")


def test_an_assistant_limited_to_tags_cannot_read_other_documents(
        tenants_copy: Path, tmp_path: Path, llm: FakeOpenAI) -> None:
    (tenants_copy / "acme" / "assistants" / "travel-desk.toml").write_text(
        'name = "Travel Desk"\ninstructions = "Travel only."\nknowledge_tags = ["travel"]\n')
    ws = Workspace(make_settings(tmp_path / "data", llm.base_url, tenants_copy))
    try:
        alice = as_user(ws, "acme", "alice@acme.example")
        kb = ws.knowledge(alice)
        add_text(kb, alice, "hotels.txt", HOTELS, ("travel",))
        add_text(kb, alice, "salaries.txt", "Salary bands: engineers earn 90k per year.",
                 ("hr",))
        bob = as_user(ws, "acme", "bob@acme.example")
        assert final(ws, bob, "What do engineers earn per year?", "helpdesk").citations
        done = final(ws, bob, "What do engineers earn per year?", "travel-desk")
        assert all("Salary" not in c.snippet for c in done.citations)
        assert "90k" not in llm.requests[-1]["messages"][0]["content"]
    finally:
        ws.close()


def test_an_empty_knowledge_base_changes_nothing_and_loads_no_model(
        ws: Workspace, alice: Principal, llm: FakeOpenAI,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_model() -> None:
        raise AssertionError("the embedding model was loaded")

    monkeypatch.setattr(embeddings, "embedder", no_model)
    done = final(ws, alice, "hello")
    assert done.citations == ()
    assert "## Knowledge" not in llm.requests[-1]["messages"][0]["content"]
    assert ws.vector_index._tenants == {}  # Chroma not even opened
