"""Envelope encryption: one data key per tenant, wrapped by the deployment master key.

The master key comes from ``ENCLAVE_MASTER_KEY`` (32 random bytes, base64). When unset,
one is generated once into the data directory, with a loud warning: development only.
A wrapped key is bound to its tenant (AES-GCM associated data), so it cannot be moved
to another tenant. Deleting ``datakey.json`` makes the tenant's store unreadable.
Master rotation: ``ENCLAVE_MASTER_KEY_PREVIOUS`` (the old key) is accepted for unwrapping
until :meth:`KeyRing.rotate_master` has rewrapped every key with ``ENCLAVE_MASTER_KEY``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

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
    _fsync_dir(path.parent)


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


class KeyProvider(Protocol):
    """Wraps and unwraps data keys outside Enclave (an external KMS); returned by the
    ``enclave_key_provider`` hook. ``context`` names the key (``enclave:<slug>``) and
    must be bound to the wrapped key (e.g. as KMS encryption context)."""

    name: str

    def wrap(self, key: bytes, context: str) -> bytes: ...

    def unwrap(self, wrapped: bytes, context: str) -> bytes: ...


def load_previous_master_key(env: dict[str, str] | None = None) -> bytes | None:
    """``ENCLAVE_MASTER_KEY_PREVIOUS``: still accepted while ``rotate-master`` runs."""
    value = (os.environ if env is None else env).get("ENCLAVE_MASTER_KEY_PREVIOUS")
    return _decode_master(value, "ENCLAVE_MASTER_KEY_PREVIOUS") if value else None


@dataclass(frozen=True)
class KeyFile:
    path: Path
    context: str  # AES-GCM associated data / KMS context: binds the key to its owner


class KeyRing:
    """Creates and unwraps the keys under ``<data_dir>``: per tenant a data key
    (``datakey.json``; ``datakey.next.json`` while a rotation runs) and an audit key
    (``auditkey.json``), and the platform key. Each is wrapped by the master key, or by
    the tenant's key provider when it has one."""

    def __init__(self, data_dir: Path, master_key: bytes, previous: bytes | None = None
                 ) -> None:
        self.data_dir = data_dir
        self._master = AESGCM(master_key)
        self._previous = AESGCM(previous) if previous and previous != master_key else None

    def _tenant(self, slug: str, name: str, context: str) -> KeyFile:
        return KeyFile(self.data_dir / "tenants" / slug / name, f"{context}:{slug}")

    def data_file(self, slug: str) -> KeyFile:
        return self._tenant(slug, "datakey.json", "enclave")

    def staged_file(self, slug: str) -> KeyFile:
        return self._tenant(slug, "datakey.next.json", "enclave")

    def data_key(self, slug: str, provider: KeyProvider | None = None) -> bytes:
        """The tenant's data key, created on first use."""
        return self._key(self.data_file(slug), provider)

    def audit_key(self, slug: str, provider: KeyProvider | None = None) -> bytes:
        """The key of the tenant's audit chain (never the data key: see enclave.audit)."""
        return self._key(self._tenant(slug, "auditkey.json", "enclave-audit"), provider)

    def platform_key(self) -> bytes:
        """The key of the platform stores (metering: no tenant content)."""
        return self._key(KeyFile(self.data_dir / "platform" / "datakey.json",
                                 "enclave-platform"), None)

    def stage_data_key(self, slug: str, key: bytes, provider: KeyProvider | None) -> None:
        """Write ``key`` as the tenant's next data key (see enclave.rotation)."""
        self._write(self.staged_file(slug), key, provider)

    def staged_data_key(self, slug: str, provider: KeyProvider | None) -> bytes | None:
        f = self.staged_file(slug)
        return self._unwrap(f, provider)[0] if f.path.exists() else None

    def commit_data_key(self, slug: str) -> None:
        """Make the staged key the tenant's data key (atomic rename)."""
        os.replace(self.staged_file(slug).path, self.data_file(slug).path)
        _fsync_dir(self.data_file(slug).path.parent)

    def discard_staged_key(self, slug: str) -> None:
        self.staged_file(slug).path.unlink(missing_ok=True)

    def rotate_master(self) -> dict[str, int]:
        """Rewrap every key still wrapped by the previous master key with the current one.
        Safe to interrupt and run again: each file is replaced atomically, and both
        masters unwrap until it is done."""
        if self._previous is None:
            raise KeyUnavailable("set ENCLAVE_MASTER_KEY_PREVIOUS to the old master key and "
                                 "ENCLAVE_MASTER_KEY to the new one, then rotate")
        counts = {"rewrapped": 0, "already_current": 0, "external_provider": 0}
        files = [KeyFile(self.data_dir / "platform" / "datakey.json", "enclave-platform")]
        tenants = self.data_dir / "tenants"
        for folder in sorted(tenants.iterdir()) if tenants.is_dir() else []:
            files += [self.data_file(folder.name), self.staged_file(folder.name),
                      self._tenant(folder.name, "auditkey.json", "enclave-audit")]
        for f in files:
            if not f.path.exists():
                continue
            if "provider" in self._read(f.path):
                counts["external_provider"] += 1
                continue
            key, by_previous = self._unwrap(f, None)
            if by_previous:
                self._write(f, key, None)
                counts["rewrapped"] += 1
            else:
                counts["already_current"] += 1
        return counts

    def _key(self, f: KeyFile, provider: KeyProvider | None) -> bytes:
        if not f.path.exists():
            key = secrets.token_bytes(32)
            self._write(f, key, provider)
            return key
        return self._unwrap(f, provider)[0]

    def _write(self, f: KeyFile, key: bytes, provider: KeyProvider | None) -> None:
        if provider is not None:
            doc = {"version": 1, "provider": provider.name,
                   "wrapped": base64.b64encode(provider.wrap(key, f.context)).decode()}
        else:
            nonce = secrets.token_bytes(12)
            doc = {"version": 1, "alg": "AES-256-GCM",
                   "nonce": base64.b64encode(nonce).decode(),
                   "wrapped": base64.b64encode(self._master.encrypt(
                       nonce, key, f.context.encode())).decode()}
        write_private(f.path, json.dumps(doc).encode())

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            raise KeyUnavailable(f"{path} is corrupt") from None
        if not isinstance(doc, dict):
            raise KeyUnavailable(f"{path} is corrupt")
        return doc

    def _unwrap(self, f: KeyFile, provider: KeyProvider | None) -> tuple[bytes, bool]:
        """The key, and whether the previous master key unwrapped it."""
        doc = self._read(f.path)
        try:
            wrapped = base64.b64decode(doc["wrapped"], validate=True)
            if "provider" in doc:
                return self._unwrap_external(f, doc["provider"], wrapped, provider), False
            nonce = base64.b64decode(doc["nonce"], validate=True)
            for n, master in enumerate([self._master, self._previous]):
                if master is None:
                    continue
                try:
                    return master.decrypt(nonce, wrapped, f.context.encode()), n == 1
                except InvalidTag:
                    pass
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise KeyUnavailable(f"{f.path} is corrupt") from None
        raise KeyUnavailable(f"the data key {f.path} does not unwrap with this master key "
                             "(wrong ENCLAVE_MASTER_KEY, or a key file of another "
                             "tenant?)")

    @staticmethod
    def _unwrap_external(f: KeyFile, name: str, wrapped: bytes,
                         provider: KeyProvider | None) -> bytes:
        if provider is None or provider.name != name:
            raise KeyUnavailable(f"{f.path} is wrapped by the key provider '{name}', which "
                                 "is not enabled for this tenant")
        try:
            key = provider.unwrap(wrapped, f.context)
        except Exception as e:  # an external KMS: any failure is "key unavailable"
            raise KeyUnavailable(f"the key provider '{name}' could not unwrap {f.path}: "
                                 f"{e}") from None
        if not isinstance(key, bytes) or len(key) != 32:
            raise KeyUnavailable(f"the key provider '{name}' returned no 32-byte key for "
                                 f"{f.path}")
        return key


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
