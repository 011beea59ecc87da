"""Smoke test: one real turn against the embedded local model (llama.cpp + SmolLM2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave import localmodel
from enclave.config import LOCAL_MODEL_NAME
from enclave.dev import wait_http
from enclave.turns import Final, Token, Usage
from enclave.workspace import Workspace
from tests.conftest import as_user, free_port, make_settings

pytestmark = pytest.mark.localmodel


def test_gguf_ships_in_the_package() -> None:
    assert localmodel.gguf_path().stat().st_size > 50_000_000


def test_a_real_turn_against_the_local_model(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENCLAVE_MASTER_KEY", raising=False)
    port = free_port()
    server = localmodel.start(port=port, log=tmp_path / "model.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", 120, server)
        settings = make_settings(tmp_path / "data", f"http://127.0.0.1:{port}/v1",
                                 model=LOCAL_MODEL_NAME)
        ws = Workspace(settings)
        events = list(ws.chat(as_user(ws, "acme", "bob@acme.example"),
                              "Say hello to the team in one short sentence."))
        ws.close()
    finally:
        server.terminate()
        server.wait(10)
    tokens = [e for e in events if isinstance(e, Token)]
    usage = next(e for e in events if isinstance(e, Usage))
    final = events[-1]
    assert len(tokens) >= 2 and isinstance(final, Final)
    assert final.text.strip() and final.model == LOCAL_MODEL_NAME
    assert usage.estimated and usage.completion_tokens == len(tokens)  # llama.cpp: no usage
