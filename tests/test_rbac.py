"""Roles and permissions: the table itself, and its enforcement by the workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave.config import Settings
from enclave.errors import AccessDenied
from enclave.identity import Principal
from enclave.rbac import Permission, authorize, can, permissions
from enclave.workspace import Workspace
from tests.conftest import as_user
from tests.fakes.openai_server import FakeOpenAI

P = Permission


def principal(*roles: str) -> Principal:
    return Principal("acme", "sub-1", "someone@acme.example", "Someone", roles, "cli")


# -- the permission table --------------------------------------------------------------


def test_member() -> None:
    assert permissions(("member",)) == {P.CHAT, P.OWN_HISTORY}
    assert can(principal("member"), P.CHAT)
    assert not can(principal("member"), P.LOGS_READ)
    assert not can(principal("member"), P.KNOWLEDGE_EDIT)


def test_editor_edits_knowledge_and_assistants() -> None:
    editor = principal("editor")
    assert can(editor, P.KNOWLEDGE_EDIT) and can(editor, P.ASSISTANTS_EDIT)
    assert can(editor, P.CHAT)
    assert not can(editor, P.TENANT_SETTINGS) and not can(editor, P.LOGS_READ)


def test_auditor_reads_logs_but_cannot_chat() -> None:
    auditor = principal("auditor")
    assert permissions(("auditor",)) == {P.LOGS_READ, P.AUDIT_READ, P.USAGE_VIEW}
    assert not can(auditor, P.CHAT)
    assert not can(auditor, P.OWN_HISTORY)


def test_admin_has_every_permission() -> None:
    assert permissions(("admin",)) == set(Permission)


def test_roles_combine() -> None:
    assert permissions(("member", "auditor")) == {P.CHAT, P.OWN_HISTORY, P.LOGS_READ,
                                                  P.AUDIT_READ, P.USAGE_VIEW}
    assert permissions(frozenset({"editor", "member"})) == permissions(("editor",))


@pytest.mark.parametrize("roles", [(), ("superuser",), ("Admin",), ("admin ",)])
def test_unknown_roles_grant_nothing(roles: tuple[str, ...]) -> None:
    assert permissions(roles) == frozenset()
    for perm in Permission:
        assert not can(principal(*roles), perm)


def test_unknown_role_does_not_spoil_known_ones() -> None:
    assert permissions(("superuser", "member")) == permissions(("member",))


def test_authorize() -> None:
    authorize(principal("member"), P.CHAT)  # no exception
    with pytest.raises(AccessDenied, match="someone@acme.example may not logs read"):
        authorize(principal("member"), P.LOGS_READ)
    with pytest.raises(AccessDenied, match="anonymous"):
        authorize(None, P.CHAT)
    assert not can(None, P.CHAT)


# -- enforcement by the workspace ------------------------------------------------------


def globex_store(settings: Settings) -> Path:
    return settings.data_dir / "tenants" / "globex"


def test_auditor_cannot_chat(ws: Workspace, llm: FakeOpenAI, settings: Settings) -> None:
    dave = as_user(ws, "globex", "dave@globex.example")
    assert dave.roles == ("auditor",)
    with pytest.raises(AccessDenied, match="chat"):
        ws.chat(dave, "What is the lockout procedure?")
    assert llm.requests == []
    assert not globex_store(settings).exists()  # no store, no data key, nothing written


def test_auditor_has_no_conversation_history(ws: Workspace, llm: FakeOpenAI,
                                             settings: Settings) -> None:
    dave = as_user(ws, "globex", "dave@globex.example")
    with pytest.raises(AccessDenied):
        ws.list_conversations(dave)
    with pytest.raises(AccessDenied):
        ws.new_conversation(dave)
    with pytest.raises(AccessDenied):
        ws.messages(dave, "0" * 32)
    assert llm.requests == []
    assert not globex_store(settings).exists()


def test_principal_without_roles_is_denied(ws: Workspace, llm: FakeOpenAI) -> None:
    nobody = Principal("globex", "sub-x", "x@globex.example", "X", (), "api")
    with pytest.raises(AccessDenied):
        ws.chat(nobody, "hello")
    assert llm.requests == []


def test_admin_can_chat(ws: Workspace, llm: FakeOpenAI, settings: Settings) -> None:
    # the same path works for a role that holds the permission (the denials above are real)
    carol = as_user(ws, "globex", "carol@globex.example")
    events = list(ws.chat(carol, "hello"))
    assert events and len(llm.requests) == 1
    assert (globex_store(settings) / "store.duckdb").exists()
