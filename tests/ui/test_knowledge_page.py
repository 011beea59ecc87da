"""The Knowledge page (AppTest): editors upload several files with per-file results, see
the table, re-tag, delete and try retrieval; members are refused in the core; globex
never sees acme's documents; answers on the chat page show their citations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest

from enclave.knowledge.service import Upload
from enclave.ui.session import workspace
from tests.conftest import as_user
from tests.fakes.openai_server import FakeOpenAI
from tests.knowledge import files
from tests.test_identity import claims
from tests.ui.test_app import OpenApp, checked, data_dir, open_app, send  # noqa: F401

HOTELS = "Hotels: the hotel cap is 185 dollars per night, before taxes."


def knowledge_page(email: str, tenant: str) -> AppTest:
    def script(email: str, tenant: str) -> None:
        from enclave.identity import principal_from_email
        from enclave.ui import knowledge
        from enclave.ui.session import workspace
        ws = workspace()
        me = principal_from_email(ws.tenants, tenant, email, "ui")
        knowledge.page(ws, ws.tenants.get(tenant), me)
    return checked(AppTest.from_function(script, args=(email, tenant),
                                         default_timeout=60).run())


def test_alice_uploads_sees_retags_searches_and_deletes(data_dir: Path) -> None:  # noqa: F811
    at = knowledge_page("alice@acme.example", "acme")
    assert [h.value for h in at.header] == ["Knowledge"]
    assert "No documents yet." in [c.value for c in at.caption]
    at.file_uploader[0].set_value([("travel.pdf", files.pdf(HOTELS), "application/pdf"),
                                   ("empty.txt", b"", "text/plain")])
    at = checked(at.text_input[0].input("travel").run())
    at = checked(at.button[0].click().run())
    assert any("travel.pdf: added (1 chunks)." in i.value for i in at.info)
    assert [e.value for e in at.error] == ["empty.txt: the file is empty."]
    frame: Any = at.dataframe[0].value
    assert list(frame["File"]) == ["travel.pdf"] and list(frame["Tags"]) == ["travel"]
    assert list(frame["Uploaded by"]) == ["alice@acme.example"]
    assert list(frame["Chunks"]) == [1] and list(frame["Type"]) == ["pdf"]
    at = checked(at.text_input(key="kb-search").input("hotel cap per night").run())
    assert [e.label for e in at.expander][0].startswith("1. travel · p. 1 · score ")
    assert HOTELS in [t.value for t in at.text]
    doc_id = at.selectbox[0].value
    at = checked(at.text_input(key=f"kb-retag-{doc_id}").input("travel, finance").run())
    at = checked(at.button(key="kb-save-tags").click().run())
    assert list(at.dataframe[0].value["Tags"]) == ["travel, finance"]
    at = checked(at.button(key="kb-delete").click().run())
    assert "No documents yet." in [c.value for c in at.caption]


def test_bob_the_member_is_refused_by_the_core(data_dir: Path) -> None:  # noqa: F811
    at = knowledge_page("bob@acme.example", "acme")
    assert [e.value for e in at.error] == ["bob@acme.example may not knowledge edit"]
    assert len(at.file_uploader) == 0 and len(at.dataframe) == 0


def test_globex_sees_none_of_acmes_documents(data_dir: Path) -> None:  # noqa: F811
    ws = workspace()
    alice = as_user(ws, "acme", "alice@acme.example")
    ws.knowledge(alice).add(alice, [Upload("policy.txt", HOTELS.encode())])
    carol = as_user(ws, "globex", "carol@globex.example")
    ws.knowledge(carol).add(carol, [Upload("policy.txt", b"Globex: goggles on the floor.")])
    at = knowledge_page("carol@globex.example", "globex")
    assert list(at.dataframe[0].value["File"]) == ["policy.txt"]
    at = checked(at.text_input(key="kb-search").input("hotel cap per night").run())
    assert "185" not in " ".join(t.value for t in at.text)
    assert not any("185" in e.label for e in at.expander)


def test_the_chat_answer_shows_its_citations(open_app: OpenApp,  # noqa: F811
                                             llm: FakeOpenAI) -> None:
    ws = workspace()
    alice = as_user(ws, "acme", "alice@acme.example")
    ws.knowledge(alice).add(alice, [Upload("travel.md", f"# Travel\n\n## Hotels\n\n{HOTELS}"
                                           .encode())])
    llm.reply = "The cap is 185 dollars [1]."
    at = send(open_app(claims("bob@acme.example")), "What is the hotel cap per night?")
    assert [e.label for e in at.expander if e.label.startswith("[1]")] == [
        "[1] Travel · Hotels"]
    assert HOTELS in [m.value for m in at.markdown]
