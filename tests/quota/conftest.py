"""Quota test fixtures: a real redis-server on a free port, and tenants with the limits
a test sets."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """A throwaway redis-server (no persistence) on 127.0.0.1."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
        self.client = client

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(scope="session")
def redis_session() -> Iterator[RedisServer]:
    if not Path(REDIS_SERVER).exists():
        pytest.fail("redis-server is missing: run `make system-deps` (apt redis-server)")
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def redis_server(redis_session: RedisServer) -> RedisServer:
    """The session's redis-server, emptied for this test."""
    redis_session.client.flushall()
    return redis_session


def set_quotas(tenants_dir: Path, slug: str, quotas: str) -> None:
    """Replace the ``[quotas]`` tables of a tenant copy by ``quotas`` (TOML)."""
    file = tenants_dir / slug / "tenant.toml"
    text = file.read_text()
    start = text.index("[quotas]")
    end = text.find("\n[plugins", start)
    rest = text[end:] if end >= 0 else ""
    file.write_text(text[:start] + quotas.strip() + "\n" + rest)
    assert re.search(r"^\[quotas\]", file.read_text(), re.M)


@pytest.fixture
def make_ws(tenants_copy: Path, tmp_path: Path, llm: object,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """``make_ws(quotas_toml, url="memory://")``: a workspace whose acme tenant has these
    ``[quotas]`` and whose limits live at ``url``."""
    from enclave.workspace import Workspace
    from tests.conftest import make_settings

    made: list[Workspace] = []
    monkeypatch.delenv("ENCLAVE_MASTER_KEY", raising=False)

    def make(quotas: str, url: str = "memory://", slug: str = "acme") -> Workspace:
        set_quotas(tenants_copy, slug, quotas)
        monkeypatch.setenv("ENCLAVE_LIMITS_URL", url)
        ws = Workspace(make_settings(tmp_path / f"data{len(made)}",
                                     llm.base_url, tenants_copy))  # type: ignore[attr-defined]
        made.append(ws)
        return ws

    yield make
    for ws in made:
        ws.close()
