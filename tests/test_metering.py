"""Platform metering: one content-free row per turn, for every outcome."""

from __future__ import annotations

import pytest

from enclave.config import Settings
from enclave.errors import ModelUnavailable
from enclave.workspace import Workspace
from tests.conftest import as_user, plaintext_hits
from tests.fakes.openai_server import FakeOpenAI


def test_each_turn_is_metered_without_content(ws: Workspace, llm: FakeOpenAI,
                                              settings: Settings) -> None:
    bob = as_user(ws, "acme", "bob@acme.example")
    carol = as_user(ws, "globex", "carol@globex.example")
    list(ws.chat(bob, "metering-canary one two three"))
    list(ws.chat(carol, "hello"))
    llm.fail_status = 500
    with pytest.raises(ModelUnavailable):
        list(ws.chat(bob, "again"))
    rows = ws.metering.rows()
    assert [(r["tenant"], r["outcome"]) for r in rows] == [
        ("acme", "ok"), ("globex", "ok"), ("acme", "model_error")]
    assert rows[0]["user_hash"] == bob.user_hash != rows[1]["user_hash"]
    assert rows[0]["completion_tokens"] > 0 and rows[0]["latency_ms"] > 0
    assert [r["tenant"] for r in ws.metering.rows(tenant="globex")] == ["globex"]
    assert "bob@acme.example" not in str(rows)
    ws.close()
    assert not plaintext_hits(settings.data_dir, "metering-canary")
    assert not plaintext_hits(settings.data_dir / "platform", "bob@acme.example")
