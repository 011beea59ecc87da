"""Key rotation: a tenant's store re-encrypted under a new data key (readable with the
new key, unreadable with the old, safe to interrupt anywhere, the tenant paused
meanwhile), and the master key rotated with the old one accepted until done."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from enclave import hookimpl, rotation
from enclave.config import ROOT, Settings
from enclave.errors import KeyUnavailable, TenantUnavailable
from enclave.keys import KeyRing
from enclave.plugins.host import PluginHost
from enclave.store import StoreError, TenantStore
from enclave.tenants import TenantRegistry
from enclave.turns import Final
from enclave.workspace import TENANT_MIGRATIONS, Workspace
from tests.conftest import PLUGINS, as_user
from tests.fakes.openai_server import FakeOpenAI
from tests.test_workspace import enable_for_acme


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def store_path(settings: Settings, slug: str = "acme") -> Path:
    return settings.data_dir / "tenants" / slug / "store.duckdb"


def seed(ws: Workspace, n: int = 3) -> list[str]:
    """``n`` turns by bob; returns their conversation ids."""
    bob = as_user(ws, "acme", "bob@acme.example")
    return [[e for e in ws.chat(bob, f"question {i}") if isinstance(e, Final)][0]
            .conversation_id for i in range(n)]


def readable(ws: Workspace, ids: list[str]) -> list[str]:
    bob = as_user(ws, "acme", "bob@acme.example")
    return [ws.messages(bob, c)[0].content for c in ids]


def test_rotation_keeps_data_readable_with_the_new_key_only(ws: Workspace, settings: Settings,
                                                            llm: FakeOpenAI) -> None:
    ids = seed(ws)
    old_key = ws.keys.data_key("acme")
    ws.audit(ws.tenants.get("acme"), None, "test.before", "x")
    ws.rotate_data_key("acme", "ops")
    new_key = ws.keys.data_key("acme")
    assert new_key != old_key
    assert readable(ws, ids) == ["question 0", "question 1", "question 2"]
    assert ws.verify_audit("acme").ok  # the chain survived the copy
    actions = [e.action for e in ws._trail(ws.tenants.get("acme")).entries()]
    assert actions == ["test.before", "keys.rotate"]
    seed(ws, 1)  # and the store takes new writes
    ws.close()
    with pytest.raises(StoreError, match="cannot open"):
        TenantStore(store_path(settings), old_key, TENANT_MIGRATIONS)
    TenantStore(store_path(settings), new_key, TENANT_MIGRATIONS).close()
    leftovers = {p.name for p in store_path(settings).parent.iterdir()}
    assert leftovers == {"store.duckdb", "datakey.json", "auditkey.json", "audit.anchor.json"}


@pytest.mark.parametrize("fail_at", ["copy", "stage", "swap", "commit"])
def test_an_interrupted_rotation_leaves_a_readable_store(
        ws: Workspace, settings: Settings, llm: FakeOpenAI, fail_at: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ids = seed(ws)
    step = {"copy": (rotation, "_copy"), "stage": (KeyRing, "stage_data_key"),
            "swap": (rotation, "_swap"), "commit": (KeyRing, "commit_data_key")}[fail_at]
    real = getattr(*step)

    def crash(*args: object, **kwargs: object) -> None:
        real(*args, **kwargs)  # the step completes, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(*step, crash)
    with pytest.raises(KeyboardInterrupt):
        ws.rotate_data_key("acme", "ops")
    monkeypatch.setattr(*step, real)
    ws.close()
    again = Workspace(settings)  # a restart recovers (finishes or undoes) the rotation
    try:
        assert readable(again, ids) == ["question 0", "question 1", "question 2"]
        names = {p.name for p in store_path(settings).parent.iterdir()}
        assert not names & {"store.next.duckdb", "datakey.next.json"}
        again.rotate_data_key("acme", "ops")  # and a new rotation works
        assert readable(again, ids)[0] == "question 0"
    finally:
        again.close()


KILL_SCRIPT = """
import os, signal, sys
from enclave import rotation
from enclave.config import Settings
from enclave.keys import KeyRing
from enclave.workspace import Workspace
settings = Settings(**{**Settings.from_env().__dict__, "log_prune_seconds": 0})
target, calls = sys.argv[1], {"n": 0}
owner = rotation if target in ("_copy", "_swap") else KeyRing
real = getattr(owner, target)
def killed(*a, **k):
    real(*a, **k)
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no atexit: a real crash
setattr(owner, target, killed)
Workspace(settings).rotate_data_key("acme", "ops")
"""


@pytest.mark.parametrize("target", ["stage_data_key", "_swap"])
def test_a_killed_rotation_process_leaves_a_readable_store(
        ws: Workspace, settings: Settings, llm: FakeOpenAI, target: str) -> None:
    ids = seed(ws)
    ws.close()
    env = {**os.environ, "ENCLAVE_DATA_DIR": str(settings.data_dir),
           "OPENAI_BASE_URL": llm.base_url, "OPENAI_API_KEY": "x"}
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, target], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (store_path(settings).parent / "datakey.next.json").exists()  # mid-rotation
    again = Workspace(settings)
    try:
        assert readable(again, ids) == ["question 0", "question 1", "question 2"]
    finally:
        again.close()


def test_the_tenant_is_paused_during_rotation_others_keep_serving(
        ws: Workspace, llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = seed(ws)
    copying, release = threading.Event(), threading.Event()
    real = rotation._copy

    def slow_copy(*args: object) -> None:
        copying.set()
        assert release.wait(10)
        real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(rotation, "_copy", slow_copy)
    worker = threading.Thread(target=ws.rotate_data_key, args=("acme", "ops"))
    worker.start()
    try:
        assert copying.wait(10)
        with pytest.raises(TenantUnavailable, match="data key is being rotated"):
            ws.chat(as_user(ws, "acme", "bob@acme.example"), "during")
        final = [e for e in ws.chat(as_user(ws, "globex", "carol@globex.example"), "hi")
                 if isinstance(e, Final)]
        assert final  # another tenant is served meanwhile
    finally:
        release.set()
        worker.join(30)
    assert readable(ws, ids)[0] == "question 0"
    seed(ws, 1)


# -- master key rotation ---------------------------------------------------------------------


def test_rotate_master_rewraps_every_key(settings: Settings, llm: FakeOpenAI,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    monkeypatch.setenv("ENCLAVE_MASTER_KEY", b64(old))
    ws = Workspace(settings)
    ids = seed(ws)
    list(ws.chat(as_user(ws, "globex", "carol@globex.example"), "hi"))
    ws.audit(ws.tenants.get("acme"), None, "test", "x")
    ws.close()

    monkeypatch.setenv("ENCLAVE_MASTER_KEY", b64(new))
    with pytest.raises(KeyUnavailable, match="does not unwrap"):
        Workspace(settings).keys.data_key("acme")  # the new key alone cannot
    monkeypatch.setenv("ENCLAVE_MASTER_KEY_PREVIOUS", b64(old))
    ws = Workspace(settings)
    try:
        assert readable(ws, ids)[0] == "question 0"  # both accepted meanwhile
        counts = ws.rotate_master_key("ops")
        # the platform key, acme's data and audit keys, globex's data key
        assert counts == {"rewrapped": 4, "already_current": 0, "external_provider": 0}
        # idempotent (globex's audit key was created under the new master meanwhile)
        assert ws.rotate_master_key("ops") == {"rewrapped": 0, "already_current": 5,
                                               "external_provider": 0}
        assert [e.action for e in ws._trail(ws.tenants.get("globex")).entries()] == [
            "keys.rotate_master", "keys.rotate_master"]
    finally:
        ws.close()
    monkeypatch.delenv("ENCLAVE_MASTER_KEY_PREVIOUS")
    ws = Workspace(settings)  # the new master alone now opens everything
    try:
        assert readable(ws, ids)[0] == "question 0"
        assert ws.verify_audit("acme").ok and ws.verify_audit("globex").ok
        assert ws.metering.rows("acme")
    finally:
        ws.close()
    with pytest.raises(KeyUnavailable):
        KeyRing(settings.data_dir, old).data_key("acme")  # the old master is useless


def test_rotate_master_needs_the_previous_key(tmp_path: Path) -> None:
    with pytest.raises(KeyUnavailable, match="ENCLAVE_MASTER_KEY_PREVIOUS"):
        KeyRing(tmp_path, secrets.token_bytes(32)).rotate_master()


# -- the key provider hook (external KMS) -----------------------------------------------------


class FakeKms:
    """A KMS plugin: wraps keys with its own key, bound to the context."""

    name = "fake-kms"

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        self._aead = AESGCM(secrets.token_bytes(32))
        self.calls: list[tuple[str, str]] = []

    def wrap(self, key: bytes, context: str) -> bytes:
        self.calls.append(("wrap", context))
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, key, context.encode())

    def unwrap(self, wrapped: bytes, context: str) -> bytes:
        self.calls.append(("unwrap", context))
        return self._aead.decrypt(wrapped[:12], wrapped[12:], context.encode())


class KmsPlugin:
    def __init__(self) -> None:
        self.kms = FakeKms()

    @hookimpl
    def enclave_key_provider(self, tenant):  # type: ignore[no-untyped-def]
        return self.kms


def test_a_key_provider_plugin_wraps_the_tenants_keys(settings: Settings, tenants_copy: Path,
                                                      llm: FakeOpenAI) -> None:
    enable_for_acme(tenants_copy, "kms")
    plugin = KmsPlugin()
    registry = TenantRegistry.load(tenants_copy)
    ws = Workspace(settings, registry, PluginHost(PLUGINS, extra={"kms": plugin}))
    try:
        ids = seed(ws)
        ws.audit(ws.tenants.get("acme"), None, "test", "x")
        doc = json.loads((store_path(settings).parent / "datakey.json").read_text())
        assert doc["provider"] == "fake-kms" and "nonce" not in doc
        assert ("wrap", "enclave:acme") in plugin.kms.calls
        assert ("wrap", "enclave-audit:acme") in plugin.kms.calls
        list(ws.chat(as_user(ws, "globex", "carol@globex.example"), "hi"))
        globex_doc = json.loads((store_path(settings, "globex").parent /
                                 "datakey.json").read_text())
        assert "provider" not in globex_doc  # globex did not enable it: master key
        ws.rotate_data_key("acme", "ops")  # rotation goes through the provider too
        assert readable(ws, ids)[0] == "question 0"
    finally:
        ws.close()
    toml = tenants_copy / "acme" / "tenant.toml"
    toml.write_text(toml.read_text().replace("\n[plugins.kms]\n", "\n"))
    # the tenant no longer runs the provider: its keys are unavailable, by name
    without = Workspace(settings, TenantRegistry.load(tenants_copy))
    try:
        with pytest.raises(KeyUnavailable, match="key provider 'fake-kms'"):
            readable(without, ids)
    finally:
        without.close()
