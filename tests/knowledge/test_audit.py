"""Document uploads, re-tags and deletions land in the tenant's audit trail."""

from __future__ import annotations

from enclave.identity import Principal
from enclave.workspace import Workspace
from tests.knowledge.conftest import add_text


def actions(ws: Workspace, slug: str) -> list[tuple[str, str, str]]:
    trail = ws._trail(ws.tenants.get(slug))
    return [(e.actor, e.action, e.target) for e in trail.entries()]


def test_upload_retag_and_delete_are_audited(ws: Workspace, alice: Principal) -> None:
    kb = ws.knowledge(alice)
    doc = add_text(kb, alice, "expenses.md", "# Expenses\n\nThe hotel cap is 185 dollars.")
    kb.retag(alice, doc.document_id or "", ["finance"])
    kb.remove(alice, doc.document_id or "")
    target = f"document:{doc.document_id}"
    assert actions(ws, "acme") == [
        ("alice@acme.example", "knowledge.upload", target),
        ("alice@acme.example", "knowledge.retag", target),
        ("alice@acme.example", "knowledge.delete", target)]
    assert ws.verify_audit("acme").ok


def test_an_unchanged_upload_is_not_audited_again(ws: Workspace, alice: Principal) -> None:
    kb = ws.knowledge(alice)
    add_text(kb, alice, "a.md", "# A\n\nSome text about travel.")
    add_text(kb, alice, "a.md", "# A\n\nSome text about travel.")
    assert [a for _, a, _ in actions(ws, "acme")] == ["knowledge.upload"]
