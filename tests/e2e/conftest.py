"""The real stack for browser tests: the mock OIDC provider, the fake model server, the
Streamlit app in its own process, and Debian Chromium driven by Playwright."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from enclave.config import ROOT
from enclave.dev import app_command, demo_users, run_idp, wait_http, write_secrets
from enclave.tenants import TenantRegistry
from tests.conftest import free_port, stop
from tests.fakes.openai_server import FakeOpenAI

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


class Stack:
    def __init__(self, url: str, data_dir: Path, fake: FakeOpenAI) -> None:
        self.url, self.data_dir, self.fake = url, data_dir, fake


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian chromium")
    tmp = tmp_path_factory.mktemp("stack")
    tenants = TenantRegistry.load(ROOT / "tenants")
    port = free_port()
    app_url = f"http://localhost:{port}"
    with FakeOpenAI(reply="Hello from the fake model. The hotel cap is $185 per night.",
                    token_delay=0.01) as fake, run_idp(demo_users(tenants), port=0) as issuer:
        secrets = write_secrets(tmp / "secrets.toml", tenants, issuer, app_url)
        env = {**os.environ, "ENCLAVE_DATA_DIR": str(tmp / "data"),
               "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "test-key",
               "ENCLAVE_MODEL": "fake-model"}
        env.pop("ENCLAVE_MASTER_KEY", None)
        log = open(tmp / "app.log", "wb")  # noqa: SIM115
        app = subprocess.Popen(app_command(secrets, port), cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_http(f"{app_url}/_stcore/health", 90, app)
            yield Stack(app_url, tmp / "data", fake)
        finally:
            stop(app, 15)
            log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
