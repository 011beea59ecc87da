"""Conversations through the workspace: streamed turns, history, rename, delete, and
isolation between users and between tenants."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave.config import Settings
from enclave.conversations import MIGRATIONS
from enclave.errors import BadInput, ModelUnavailable, NotFound
from enclave.identity import Principal
from enclave.store import TenantStore
from enclave.turns import Event, Final, Token, Usage
from enclave.workspace import Workspace
from tests.conftest import as_user, plaintext_hits
from tests.fakes.openai_server import FakeOpenAI

PROMPT_MARKER = "wombatpromptmarker"
ANSWER_MARKER = "narwhalanswermarker"


def alice(ws: Workspace) -> Principal:
    return as_user(ws, "acme", "alice@acme.example")


def bob(ws: Workspace) -> Principal:
    return as_user(ws, "acme", "bob@acme.example")


def carol(ws: Workspace) -> Principal:
    return as_user(ws, "globex", "carol@globex.example")


def turn(ws: Workspace, who: Principal, text: str, conversation_id: str | None = None
         ) -> Final:
    """Run one turn to the end; return its Final event."""
    events = list(ws.chat(who, text, conversation_id))
    assert isinstance(events[-1], Final)
    return events[-1]


def titles(ws: Workspace, who: Principal) -> list[str]:
    return [c.title for c in ws.list_conversations(who)]


def contents(ws: Workspace, who: Principal, conversation_id: str) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in ws.messages(who, conversation_id)]


def store_path(settings: Settings, slug: str) -> Path:
    return settings.data_dir / "tenants" / slug / "store.duckdb"


# -- one turn --------------------------------------------------------------------------


def test_chat_streams_tokens_then_usage_then_final(ws: Workspace, llm: FakeOpenAI) -> None:
    events: list[Event] = list(ws.chat(alice(ws), "What is the remote work policy?"))
    kinds = [type(e) for e in events]
    n_tokens = kinds.count(Token)
    assert n_tokens >= 2
    assert kinds == [Token] * n_tokens + [Usage, Final]
    final = events[-1]
    assert isinstance(final, Final)
    answer = "".join(e.text for e in events if isinstance(e, Token))
    assert final.text == answer == "You said: What is the remote work policy?"
    assert final.usage == events[-2]
    assert final.usage.completion_tokens == n_tokens and not final.usage.estimated
    assert final.model == "fake-model" and final.latency_ms > 0
    assert len(llm.requests) == 1


def test_turn_is_stored(ws: Workspace, llm: FakeOpenAI) -> None:
    llm.reply = "Three days a week from home."
    final = turn(ws, alice(ws), "How often can I work remotely?")
    msgs = ws.messages(alice(ws), final.conversation_id)
    assert [(m.role, m.content) for m in msgs] == [
        ("user", "How often can I work remotely?"),
        ("assistant", "Three days a week from home.")]
    assert msgs[1].id == final.message_id
    assert msgs[0].usage is None and msgs[1].usage == final.usage


def test_conversation_is_listed_with_a_title_from_the_first_prompt(ws: Workspace) -> None:
    a = alice(ws)
    assert ws.list_conversations(a) == []
    final = turn(ws, a, "  How do I   claim travel expenses?  ")
    [conv] = ws.list_conversations(a)
    assert (conv.id, conv.title, conv.assistant) == (
        final.conversation_id, "How do I claim travel expenses?", "helpdesk")
    turn(ws, a, "And for train tickets?", final.conversation_id)
    assert titles(ws, a) == ["How do I claim travel expenses?"]  # first prompt only


def test_long_first_prompt_gives_a_short_title(ws: Workspace) -> None:
    turn(ws, alice(ws), "word " * 100)
    [title] = titles(ws, alice(ws))
    assert 0 < len(title) <= 60 and title.startswith("word word")


def test_newest_conversation_first(ws: Workspace) -> None:
    a = alice(ws)
    first = turn(ws, a, "first topic")
    turn(ws, a, "second topic")
    assert titles(ws, a) == ["second topic", "first topic"]
    turn(ws, a, "back to it", first.conversation_id)
    assert titles(ws, a) == ["first topic", "second topic"]


def test_continuing_sends_the_history(ws: Workspace, llm: FakeOpenAI) -> None:
    a = alice(ws)
    first = turn(ws, a, "My favourite gadget is the Rocket Skates.")
    second = turn(ws, a, "Which gadget did I name?", first.conversation_id)
    assert second.conversation_id == first.conversation_id
    sent = [(m["role"], m["content"]) for m in llm.requests[-1]["messages"]]
    assert sent[0][0] == "system"
    assert sent[1:] == [
        ("user", "My favourite gadget is the Rocket Skates."),
        ("assistant", "You said: My favourite gadget is the Rocket Skates."),
        ("user", "Which gadget did I name?")]
    # a new conversation starts without history
    turn(ws, a, "Fresh start")
    assert [m["role"] for m in llm.requests[-1]["messages"]] == ["system", "user"]
    assert len(contents(ws, a, first.conversation_id)) == 4


@pytest.mark.parametrize("text", ["", "   ", "\x00\x07"])
def test_empty_prompt_is_bad_input(ws: Workspace, llm: FakeOpenAI, text: str) -> None:
    with pytest.raises(BadInput):
        ws.chat(alice(ws), text)
    assert llm.requests == [] and ws.list_conversations(alice(ws)) == []


# -- rename and delete -----------------------------------------------------------------


def test_rename(ws: Workspace) -> None:
    a = alice(ws)
    cid = turn(ws, a, "expenses question").conversation_id
    ws.rename_conversation(a, cid, "  Travel\n expenses ")
    assert titles(ws, a) == ["Travel expenses"]
    for empty in ("", "   ", "\n\t"):
        with pytest.raises(BadInput):
            ws.rename_conversation(a, cid, empty)
    assert titles(ws, a) == ["Travel expenses"]


def test_delete_erases_the_messages(ws: Workspace, settings: Settings) -> None:
    a = alice(ws)
    kept = turn(ws, a, "keep this one").conversation_id
    gone = turn(ws, a, "delete this one").conversation_id
    ws.delete_conversation(a, gone)
    assert [c.id for c in ws.list_conversations(a)] == [kept]
    with pytest.raises(NotFound):
        ws.messages(a, gone)
    with pytest.raises(NotFound):
        ws.delete_conversation(a, gone)
    with pytest.raises(NotFound):
        ws.chat(a, "still there?", gone)
    assert len(contents(ws, a, kept)) == 2
    ws.close()
    # erased from the store itself, not only hidden
    store = TenantStore(store_path(settings, "acme"), ws.keys.data_key("acme"), MIGRATIONS)
    try:
        assert store.query("SELECT count(*) FROM messages WHERE conversation_id = ?",
                           [gone]) == [(0,)]
        assert store.query("SELECT title FROM conversations WHERE id = ?", [gone]) == [("",)]
        assert store.query("SELECT count(*) FROM messages WHERE conversation_id = ?",
                           [kept]) == [(2,)]
    finally:
        store.close()


# -- isolation -------------------------------------------------------------------------


def test_bob_cannot_touch_alices_conversation(ws: Workspace, llm: FakeOpenAI) -> None:
    a, b = alice(ws), bob(ws)
    cid = turn(ws, a, "alice's private question").conversation_id
    before = contents(ws, a, cid)
    requests = len(llm.requests)
    assert ws.list_conversations(b) == []
    with pytest.raises(NotFound):
        ws.messages(b, cid)
    with pytest.raises(NotFound):
        ws.rename_conversation(b, cid, "hijacked")
    with pytest.raises(NotFound):
        ws.delete_conversation(b, cid)
    with pytest.raises(NotFound):
        ws.chat(b, "let me in", cid)
    assert len(llm.requests) == requests  # the model was never called
    assert titles(ws, a) == ["alice's private question"]
    assert contents(ws, a, cid) == before
    assert ws.list_conversations(b) == []


def test_tenants_have_separate_stores(ws: Workspace, settings: Settings) -> None:
    a, c = alice(ws), carol(ws)
    acme_conv = turn(ws, a, "acme only").conversation_id
    assert ws.list_conversations(c) == []
    with pytest.raises(NotFound):
        ws.messages(c, acme_conv)
    with pytest.raises(NotFound):
        ws.chat(c, "peek", acme_conv)
    globex_conv = turn(ws, c, "globex only").conversation_id
    assert titles(ws, c) == ["globex only"]
    assert titles(ws, a) == ["acme only"]
    with pytest.raises(NotFound):
        ws.messages(a, globex_conv)
    acme_file, globex_file = store_path(settings, "acme"), store_path(settings, "globex")
    assert acme_file.is_file() and globex_file.is_file()
    assert ws.keys.data_key("acme") != ws.keys.data_key("globex")


def test_same_email_local_part_in_two_tenants_is_two_users(ws: Workspace) -> None:
    # user ids are full emails, and each tenant has its own store
    a = alice(ws)
    turn(ws, a, "acme side")
    other = as_user(ws, "globex", "alice@globex.example")
    assert ws.list_conversations(other) == []


# -- encryption at rest ----------------------------------------------------------------


def test_no_plaintext_under_the_data_dir(ws: Workspace, llm: FakeOpenAI,
                                         settings: Settings) -> None:
    llm.reply = f"The answer is {ANSWER_MARKER}."
    a = alice(ws)
    first = turn(ws, a, f"Tell me about {PROMPT_MARKER} please")
    turn(ws, a, f"More on {PROMPT_MARKER}", first.conversation_id)
    turn(ws, carol(ws), f"Globex {PROMPT_MARKER}")
    ws.rename_conversation(a, first.conversation_id, f"Renamed {PROMPT_MARKER}")
    ws.close()
    assert store_path(settings, "acme").is_file() and store_path(settings, "globex").is_file()
    for marker in (PROMPT_MARKER, ANSWER_MARKER, "alice@acme.example"):
        assert plaintext_hits(settings.data_dir, marker) == [], marker


def test_usage_is_estimated_when_the_model_sends_none(ws: Workspace, llm: FakeOpenAI) -> None:
    llm.no_usage = True
    events = list(ws.chat(alice(ws), "count my tokens"))
    kinds = [type(e) for e in events]
    assert kinds == [Token] * kinds.count(Token) + [Usage, Final]
    usage = events[-2]
    assert isinstance(usage, Usage) and usage.estimated and usage.prompt_tokens > 0


def test_failed_first_turn_leaves_no_empty_conversation(ws: Workspace, llm: FakeOpenAI
                                                        ) -> None:
    # the conversation is stored with its first successful turn, not before
    llm.fail_status = 500
    with pytest.raises(ModelUnavailable):
        list(ws.chat(alice(ws), "is the model up?"))
    assert ws.list_conversations(alice(ws)) == []
