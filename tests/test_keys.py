"""Master key and per-tenant data keys (envelope encryption)."""

from __future__ import annotations

import base64
import json
import logging
import secrets
import shutil
from pathlib import Path

import pytest

from enclave.errors import KeyUnavailable
from enclave.keys import DEV_KEY_FILE, KeyRing, load_master_key


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def env_key(raw: bytes) -> dict[str, str]:
    return {"ENCLAVE_MASTER_KEY": b64(raw)}


# -- master key ------------------------------------------------------------------------


def test_master_key_from_env(tmp_path: Path) -> None:
    raw = secrets.token_bytes(32)
    assert load_master_key(tmp_path, env_key(raw)) == raw
    assert load_master_key(tmp_path, {"ENCLAVE_MASTER_KEY": f"  {b64(raw)}\n"}) == raw
    assert not (tmp_path / DEV_KEY_FILE).exists()


def test_master_key_from_process_environment(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    raw = secrets.token_bytes(32)
    monkeypatch.setenv("ENCLAVE_MASTER_KEY", b64(raw))
    assert load_master_key(tmp_path) == raw


@pytest.mark.parametrize("value, problem", [
    ("not base64 at all!", "not valid base64"),
    (b64(secrets.token_bytes(32))[:-2], "not valid base64"),  # broken padding
    (b64(secrets.token_bytes(16)), "got 16"),
    (b64(secrets.token_bytes(33)), "got 33"),
])
def test_bad_master_key_in_env(tmp_path: Path, value: str, problem: str) -> None:
    with pytest.raises(KeyUnavailable, match=problem) as exc:
        load_master_key(tmp_path, {"ENCLAVE_MASTER_KEY": value})
    assert "ENCLAVE_MASTER_KEY" in str(exc.value)
    assert value not in str(exc.value)  # the secret is not echoed
    assert not (tmp_path / DEV_KEY_FILE).exists()


def test_development_key_is_generated_once(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    data_dir = tmp_path / "data"  # does not exist yet
    with caplog.at_level(logging.WARNING, logger="enclave.keys"):
        first = load_master_key(data_dir, {})
    key_file = data_dir / DEV_KEY_FILE
    assert len(first) == 32
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert base64.b64decode(key_file.read_text()) == first
    assert any(r.levelno == logging.WARNING and "DEVELOPMENT-ONLY" in r.getMessage()
               and "generated" in r.getMessage() for r in caplog.records)
    assert first.hex() not in caplog.text and b64(first) not in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="enclave.keys"):
        second = load_master_key(data_dir, {"ENCLAVE_MASTER_KEY": ""})
    assert second == first
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "DEVELOPMENT-ONLY" in caplog.text
    assert list(data_dir.iterdir()) == [key_file]  # no temporary file left behind


def test_corrupt_development_key(tmp_path: Path) -> None:
    (tmp_path / DEV_KEY_FILE).write_text(b64(b"short") + "\n")
    with pytest.raises(KeyUnavailable, match=DEV_KEY_FILE):
        load_master_key(tmp_path, {})


def test_env_key_wins_over_development_key(tmp_path: Path) -> None:
    dev = load_master_key(tmp_path, {})
    raw = secrets.token_bytes(32)
    assert load_master_key(tmp_path, env_key(raw)) == raw != dev


# -- tenant data keys ------------------------------------------------------------------


@pytest.fixture
def master() -> bytes:
    return secrets.token_bytes(32)


def datakey_file(data_dir: Path, slug: str) -> Path:
    return data_dir / "tenants" / slug / "datakey.json"


def test_data_key_is_created_and_stable(tmp_path: Path, master: bytes) -> None:
    key = KeyRing(tmp_path, master).data_key("acme")
    assert len(key) == 32
    file = datakey_file(tmp_path, "acme")
    assert file.stat().st_mode & 0o777 == 0o600
    doc = json.loads(file.read_text())
    assert doc["alg"] == "AES-256-GCM" and doc["version"] == 1
    assert base64.b64decode(doc["wrapped"]) != key  # stored wrapped, not in the clear
    assert key.hex() not in file.read_text() and b64(key) not in file.read_text()
    assert KeyRing(tmp_path, master).data_key("acme") == key  # new instance, same key


def test_data_keys_differ_per_tenant(tmp_path: Path, master: bytes) -> None:
    ring = KeyRing(tmp_path, master)
    assert ring.data_key("acme") != ring.data_key("globex")


def test_wrong_master_key(tmp_path: Path, master: bytes) -> None:
    KeyRing(tmp_path, master).data_key("acme")
    with pytest.raises(KeyUnavailable, match="acme"):
        KeyRing(tmp_path, secrets.token_bytes(32)).data_key("acme")


def test_data_key_is_bound_to_its_tenant(tmp_path: Path, master: bytes) -> None:
    ring = KeyRing(tmp_path, master)
    ring.data_key("acme")
    moved = datakey_file(tmp_path, "globex")
    moved.parent.mkdir(parents=True)
    shutil.copy(datakey_file(tmp_path, "acme"), moved)
    with pytest.raises(KeyUnavailable, match="globex"):
        ring.data_key("globex")


@pytest.mark.parametrize("content", [
    "{not json",
    "",
    '{"version": 1}',
    '{"nonce": "!!!", "wrapped": "AAAA"}',
])
def test_corrupt_data_key_file(tmp_path: Path, master: bytes, content: str) -> None:
    file = datakey_file(tmp_path, "acme")
    file.parent.mkdir(parents=True)
    file.write_text(content)
    with pytest.raises(KeyUnavailable, match="corrupt"):
        KeyRing(tmp_path, master).data_key("acme")


def test_tampered_wrapped_key(tmp_path: Path, master: bytes) -> None:
    ring = KeyRing(tmp_path, master)
    ring.data_key("acme")
    file = datakey_file(tmp_path, "acme")
    doc = json.loads(file.read_text())
    wrapped = bytearray(base64.b64decode(doc["wrapped"]))
    wrapped[0] ^= 1
    file.write_text(json.dumps({**doc, "wrapped": b64(bytes(wrapped))}))
    with pytest.raises(KeyUnavailable):
        ring.data_key("acme")


@pytest.mark.parametrize("content", ["null", "[]", '{"nonce": 1, "wrapped": 2}'])
def test_wrongly_shaped_data_key_file(tmp_path: Path, master: bytes, content: str) -> None:
    file = datakey_file(tmp_path, "acme")
    file.parent.mkdir(parents=True)
    file.write_text(content)
    with pytest.raises(KeyUnavailable, match="corrupt"):
        KeyRing(tmp_path, master).data_key("acme")
