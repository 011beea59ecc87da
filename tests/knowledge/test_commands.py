"""``enclave knowledge ...`` and the citations of ``enclave chat``, in-process through
``enclave.cli.main`` with real stores, Chroma and the fake model; and the first-start
seeding of ``enclave dev``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enclave.dev import seed_knowledge
from enclave.workspace import Workspace
from tests.conftest import as_user, make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.knowledge import files
from tests.test_cli import Run, env, run  # noqa: F401  (fixtures)

HOTELS = "Hotels: the hotel cap is 185 dollars per night, before taxes."


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "travel.pdf").write_bytes(files.pdf("Trains: book second class.", HOTELS))
    (folder / "empty.txt").write_bytes(b"")
    return folder


def test_add_list_search_remove(run: Run, docs: Path) -> None:  # noqa: F811
    r = run("knowledge", "add", "acme", str(docs / "travel.pdf"), str(docs / "empty.txt"),
            str(docs / "missing.md"), "--tags", "travel,Policies")
    assert r.code == 1  # some files were refused; the good one went in
    assert "added      travel.pdf: added (2 chunks)." in r.out
    assert "rejected   empty.txt: the file is empty." in r.out
    assert "missing.md: cannot read" in r.out
    assert "ingest" in r.err and "100%" in r.err  # the progress bar
    [doc] = json.loads(run("knowledge", "list", "acme", "--json").out)
    assert (doc["name"], doc["kind"], doc["chunks"], doc["tags"]) == (
        "travel.pdf", "pdf", 2, ["travel", "policies"])
    assert doc["uploaded_by"].startswith("operator:")
    r = run("knowledge", "search", "acme", "hotel cap per night", "--k", "1")
    assert r.code == 0, r.err
    assert r.out.startswith("1. travel · p. 2  score ")
    assert "185 dollars" in r.out and "2." not in r.out
    assert run("knowledge", "remove", "acme", doc["id"]).out == \
        f"removed {doc['id']} travel.pdf\n"
    assert json.loads(run("knowledge", "list", "acme", "--json").out) == []
    run("knowledge", "remove", "acme", doc["id"]).assert_clean_failure("No document")


def test_globex_never_sees_acme_through_the_cli(run: Run, docs: Path) -> None:  # noqa: F811
    assert run("knowledge", "add", "acme", str(docs / "travel.pdf")).code == 0
    assert run("knowledge", "add", "globex", str(docs / "travel.pdf")).code == 0  # same file
    acme = json.loads(run("knowledge", "search", "acme", "hotel cap", "--json").out)
    globex = json.loads(run("knowledge", "search", "globex", "hotel cap", "--json").out)
    assert acme and globex
    assert not {h["chunk_id"] for h in acme} & {h["chunk_id"] for h in globex}
    run("knowledge", "remove", "globex", acme[0]["chunk_id"]).assert_clean_failure()
    [acme_doc] = json.loads(run("knowledge", "list", "acme", "--json").out)
    run("knowledge", "remove", "globex", acme_doc["id"]).assert_clean_failure("No document")
    assert len(json.loads(run("knowledge", "list", "acme", "--json").out)) == 1


def test_a_member_is_refused(run: Run, docs: Path) -> None:  # noqa: F811
    r = run("knowledge", "add", "acme", str(docs / "travel.pdf"), "--as", "bob@acme.example")
    r.assert_clean_failure("bob@acme.example may not knowledge edit")
    r = run("knowledge", "list", "acme", "--as", "alice@acme.example")
    assert r.code == 0


def test_sync_and_reindex(run: Run, tmp_path: Path) -> None:  # noqa: F811
    folder = tmp_path / "seed"
    folder.mkdir()
    (folder / "hotels.md").write_text(f"# Hotels\n\n{HOTELS}")
    assert "added      hotels.md" in run("knowledge", "sync", "acme", "--folder",
                                          str(folder)).out
    assert "unchanged  hotels.md" in run("knowledge", "sync", "acme", "--folder",
                                         str(folder)).out
    r = run("knowledge", "reindex", "acme")
    assert r.out == "reindexed 1 chunks of acme\n"
    run("knowledge", "sync", "acme", "--folder", str(tmp_path / "nope")) \
        .assert_clean_failure("no such folder")


def test_chat_prints_the_citations(run: Run, docs: Path, llm: FakeOpenAI) -> None:  # noqa: F811
    run("knowledge", "add", "acme", str(docs / "travel.pdf"))
    llm.reply = "It is 185 dollars [1]."
    r = run("chat", "acme", "--as", "bob@acme.example", "What is the hotel cap per night?")
    assert r.code == 0, r.err
    assert "It is 185 dollars [1].\n[1] travel, p. 2 (chunk " in r.out
    assert "Hotels: the hotel cap is 185" in r.out


def test_dev_seeds_empty_knowledge_bases_on_first_start(tmp_path: Path,
                                                         llm: FakeOpenAI) -> None:
    seeds = tmp_path / "knowledge"
    (seeds / "acme").mkdir(parents=True)
    (seeds / "acme" / "hotels.md").write_text(f"# Hotels\n\n{HOTELS}")
    settings = make_settings(tmp_path / "data", llm.base_url)
    seed_knowledge(settings, seeds)
    (seeds / "acme" / "later.md").write_text("Added after the first start.")
    seed_knowledge(settings, seeds)  # not empty any more: left alone
    ws = Workspace(settings)
    try:
        alice = as_user(ws, "acme", "alice@acme.example")
        assert [d.name for d in ws.knowledge(alice).documents()] == ["hotels.md"]
        assert ws.knowledge(as_user(ws, "globex", "carol@globex.example")).is_empty()
    finally:
        ws.close()
