"""Shared fixtures: a fake OpenAI-compatible server, settings on a temporary data
directory, and a workspace over the demo tenants (or a modified copy of them)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from enclave.config import ROOT, Settings
from enclave.identity import Principal, principal_from_email
from enclave.workspace import Workspace
from tests.fakes.openai_server import FakeOpenAI

TENANTS = ROOT / "tenants"
PLUGINS = ROOT / "plugins"


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def llm(fake_llm: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The session's fake server, reset before each test."""
    fake_llm.reset()
    yield fake_llm
    fake_llm.reset()


def make_settings(data_dir: Path, base_url: str, tenants_dir: Path = TENANTS,
                  model: str = "fake-model") -> Settings:
    return Settings(data_dir=data_dir, tenants_dir=tenants_dir, plugins_dir=PLUGINS,
                    default_base_url=base_url, default_api_key="test-key",
                    default_model=model, default_is_local=False)


@pytest.fixture
def tenants_copy(tmp_path: Path) -> Path:
    """A writable copy of the demo tenants, for tests that change them."""
    dest = tmp_path / "tenants"
    shutil.copytree(TENANTS, dest)
    return dest


@pytest.fixture
def settings(tmp_path: Path, llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("ENCLAVE_MASTER_KEY", raising=False)
    return make_settings(tmp_path / "data", llm.base_url)


@pytest.fixture
def ws(settings: Settings) -> Iterator[Workspace]:
    workspace = Workspace(settings)
    yield workspace
    workspace.close()


def as_user(ws: Workspace, tenant: str, email: str) -> Principal:
    return principal_from_email(ws.tenants, tenant, email, "cli")


def plaintext_hits(root: Path, needle: str) -> list[Path]:
    """Files under ``root`` that contain ``needle`` in UTF-8 or UTF-16 (raw bytes)."""
    forms = [needle.encode(), needle.encode("utf-16-le")]
    return [p for p in root.rglob("*") if p.is_file()
            and any(f in p.read_bytes() for f in forms)]


def free_port() -> int:
    """A local TCP port nobody listens on (for a server to start, or a refused call)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Terminate a test server process, killing it if it does not exit in time."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
