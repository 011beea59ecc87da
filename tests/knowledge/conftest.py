"""Knowledge fixtures: principals of both demo tenants, and a Chroma server started from
the venv's ``chroma`` binary (the ``ENCLAVE_CHROMA_URL`` path)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from enclave.identity import Principal
from enclave.knowledge.service import IngestResult, KnowledgeBase, Upload
from enclave.workspace import Workspace
from tests.conftest import as_user


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("chroma run did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
