"""Envelope encryption: one data key per tenant, wrapped by the deployment master key.

The master key comes from ``ENCLAVE_MASTER_KEY`` (32 random bytes, base64). When unset,
one is generated once into the data directory, with a loud warning: development only.
A wrapped key is bound to its tenant (AES-GCM associated data), so it cannot be moved
to another tenant. Deleting ``datakey.json`` makes the tenant's store unreadable.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from enclave.errors import KeyUnavailable

log = logging.getLogger(__name__)
DEV_KEY_FILE = "master.key.DEVELOPMENT-ONLY"


def _decode_master(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyUnavailable(f"{where} is not valid base64") from None
    if len(key) != 32:
        raise KeyUnavailable(f"{where} must decode to 32 bytes, got {len(key)}")
    return key


def write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_master_key(data_dir: Path, env: dict[str, str] | None = None) -> bytes:
    value = (os.environ if env is None else env).get("ENCLAVE_MASTER_KEY")
    if value:
        return _decode_master(value, "ENCLAVE_MASTER_KEY")
    path = data_dir / DEV_KEY_FILE
    if not path.exists():
        write_private(path, base64.b64encode(secrets.token_bytes(32)) + b"\n")
        log.warning("ENCLAVE_MASTER_KEY is not set: generated a DEVELOPMENT-ONLY master key "
                    "at %s. Set ENCLAVE_MASTER_KEY in production.", path)
    else:
        log.warning("ENCLAVE_MASTER_KEY is not set: using the DEVELOPMENT-ONLY master key at "
                    "%s", path)
    return _decode_master(path.read_text(), str(path))


class KeyRing:
    """Creates and unwraps tenant data keys under ``<data_dir>/tenants/<slug>/``."""

    def __init__(self, data_dir: Path, master_key: bytes) -> None:
        self.data_dir = data_dir
        self._master = AESGCM(master_key)

    def data_key(self, slug: str) -> bytes:
        """The tenant's data key, created on first use."""
        return self._key(self.data_dir / "tenants" / slug / "datakey.json", f"enclave:{slug}")

    def platform_key(self) -> bytes:
        """The key of the platform stores (metering: no tenant content)."""
        return self._key(self.data_dir / "platform" / "datakey.json", "enclave-platform")

    def _key(self, path: Path, aad: str) -> bytes:
        if not path.exists():
            key = secrets.token_bytes(32)
            nonce = secrets.token_bytes(12)
            wrapped = self._master.encrypt(nonce, key, aad.encode())
            write_private(path, json.dumps({
                "version": 1, "alg": "AES-256-GCM",
                "nonce": base64.b64encode(nonce).decode(),
                "wrapped": base64.b64encode(wrapped).decode(),
            }).encode())
            return key
        try:
            doc = json.loads(path.read_text())
            nonce = base64.b64decode(doc["nonce"], validate=True)
            wrapped = base64.b64decode(doc["wrapped"], validate=True)
            return self._master.decrypt(nonce, wrapped, aad.encode())
        except InvalidTag:
            raise KeyUnavailable(f"the data key {path} does not unwrap with this master key "
                                 "(wrong ENCLAVE_MASTER_KEY, or a key file of another "
                                 "tenant?)") from None
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise KeyUnavailable(f"{path} is corrupt") from None
