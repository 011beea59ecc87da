"""Knowledge fixtures: principals of both demo tenants, and a Chroma server started from
the venv's ``chroma`` binary (the ``ENCLAVE_CHROMA_URL`` path)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from enclave.dev import wait_http
from enclave.identity import Principal
from enclave.knowledge.service import IngestResult, KnowledgeBase, Upload
from enclave.workspace import Workspace
from tests.conftest import as_user, free_port, stop


@pytest.fixture
def alice(ws: Workspace) -> Principal:
    return as_user(ws, "acme", "alice@acme.example")


@pytest.fixture
def carol(ws: Workspace) -> Principal:
    return as_user(ws, "globex", "carol@globex.example")


def add_text(kb: KnowledgeBase, who: Principal, name: str, text: str,
             tags: tuple[str, ...] = ()) -> IngestResult:
    [result] = kb.add(who, [Upload(name, text.encode())], tags)
    assert result.ok, result.message
    return result


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``chroma run`` on a free port; yields its URL."""
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    binary = Path(sys.executable).with_name("chroma")
    proc = subprocess.Popen([str(binary), "run", "--path", str(path), "--port", str(port),
                             "--host", "127.0.0.1"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/api/v2/heartbeat", 30, proc)
        yield url
    finally:
        stop(proc)
