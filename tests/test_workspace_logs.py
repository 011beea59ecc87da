"""Reading logs and other people's conversations through the workspace: who may, and
every such read (and break-glass) lands in the tenant's own audit trail."""

from __future__ import annotations

import json

import pytest

from enclave.errors import AccessDenied, BadInput, IdentityRefused, NotFound
from enclave.turnlog import LogFilter
from enclave.turns import Final
from enclave.workspace import Workspace
from tests.conftest import as_user
from tests.fakes.openai_server import FakeOpenAI


def chat(ws: Workspace, tenant: str, email: str, text: str) -> Final:
    return [e for e in ws.chat(as_user(ws, tenant, email), text) if isinstance(e, Final)][0]


def actions(ws: Workspace, tenant: str) -> list[tuple[str, str, str]]:
    return [(e.actor, e.action, e.target)
            for e in ws._trail(ws.tenants.get(tenant)).entries()]


def test_a_member_cannot_read_another_members_conversation(ws: Workspace,
                                                           llm: FakeOpenAI) -> None:
    final = chat(ws, "acme", "bob@acme.example", "bob's private question")
    carl = as_user(ws, "acme", "carl@acme.example")
    with pytest.raises(NotFound):
        ws.messages(carl, final.conversation_id)
    with pytest.raises(AccessDenied, match="may not logs read"):
        ws.user_messages(carl, "bob@acme.example", final.conversation_id)
    with pytest.raises(AccessDenied):
        ws.user_conversations(carl, "bob@acme.example")
    with pytest.raises(AccessDenied):
        ws.read_logs(carl)
    with pytest.raises(AccessDenied):
        ws.audit_trail(carl)
    assert ws.list_conversations(carl) == []
    assert actions(ws, "acme") == []  # refused reads show nothing, record nothing


def test_an_auditor_read_is_allowed_and_audited(ws: Workspace, llm: FakeOpenAI) -> None:
    final = chat(ws, "globex", "erin@globex.example", "erin's question")
    dave = as_user(ws, "globex", "dave@globex.example")  # auditor
    [conv] = ws.user_conversations(dave, "erin@globex.example")
    messages = ws.user_messages(dave, "erin@globex.example", conv.id)
    assert [m.content for m in messages] == ["erin's question", final.text]
    [entry] = ws.read_logs(dave, LogFilter(user="erin@globex.example"))
    assert ws.log_entry(dave, entry.id).prompt == "erin's question"
    text = ws.export_logs(dave, "json")
    assert json.loads(text)[0]["id"] == entry.id
    assert actions(ws, "globex") == [
        ("dave@globex.example", "conversations.list", "user:erin@globex.example"),
        ("dave@globex.example", "conversation.read", f"conversation:{conv.id}"),
        ("dave@globex.example", "logs.view", "turn_log"),
        ("dave@globex.example", "logs.open", f"turn:{entry.id}"),
        ("dave@globex.example", "logs.export", "turn_log"),
    ]
    trail = ws._trail(ws.tenants.get("globex")).entries()
    assert json.loads(trail[2].detail) == {"user": "erin@globex.example", "limit": 500,
                                           "rows": 1}
    assert json.loads(trail[4].detail)["format"] == "json"
    assert trail[0].channel == "cli"
    entries, result = ws.audit_trail(dave)
    assert result.ok and len(entries) == 5
    assert actions(ws, "globex")[-1] == ("dave@globex.example", "audit.view", "audit_log")
    assert actions(ws, "acme") == []  # globex's reads are not in acme's trail


def test_an_admin_reads_logs_of_own_tenant_only(ws: Workspace, llm: FakeOpenAI) -> None:
    chat(ws, "globex", "carol@globex.example", "globex only")
    chat(ws, "acme", "bob@acme.example", "acme only")
    alice = as_user(ws, "acme", "alice@acme.example")
    assert [e.prompt for e in ws.read_logs(alice)] == ["acme only"]
    with pytest.raises(IdentityRefused):
        as_user(ws, "globex", "alice@acme.example")


def test_break_glass_needs_a_reason_and_is_audited(ws: Workspace, llm: FakeOpenAI) -> None:
    chat(ws, "acme", "bob@acme.example", "incident data")
    with pytest.raises(BadInput, match="reason"):
        ws.break_glass("acme", "ops", "  ")
    assert actions(ws, "acme") == []
    op = ws.break_glass("acme", "ops", "INC-4411 data leak investigation")
    assert [e.prompt for e in ws.read_logs(op)] == ["incident data"]
    with pytest.raises(AccessDenied):
        ws.chat(op, "hello")  # read-only access
    trail = ws._trail(ws.tenants.get("acme")).entries()
    assert [(e.actor, e.action) for e in trail] == [("operator:ops", "break_glass"),
                                                   ("operator:ops", "logs.view")]
    assert json.loads(trail[0].detail) == {"reason": "INC-4411 data leak investigation"}


def test_a_member_reading_own_history_is_not_audited(ws: Workspace, llm: FakeOpenAI) -> None:
    final = chat(ws, "acme", "bob@acme.example", "mine")
    bob = as_user(ws, "acme", "bob@acme.example")
    assert len(ws.messages(bob, final.conversation_id)) == 2
    assert actions(ws, "acme") == []
