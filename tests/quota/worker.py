"""One server process for the cross-process test: ``python -m tests.quota.worker N START``
runs N concurrent turns as bob@acme.example at time START (epoch seconds) against the
environment's ENCLAVE_LIMITS_URL, and prints ``{"ok": .., "refused": ..}``."""

from __future__ import annotations

import json
import sys
import time

from enclave.config import Settings
from enclave.identity import principal_from_email
from enclave.workspace import Workspace
from tests.quota.test_engine import concurrently


def main(n: int, start: float) -> None:
    ws = Workspace(Settings.from_env())
    try:
        bob = principal_from_email(ws.tenants, "acme", "bob@acme.example")
        time.sleep(max(0.0, start - time.time()))
        results = concurrently(ws, bob, n)
    finally:
        ws.close()
    ok = sum(1 for r in results if not isinstance(r, Exception))
    print(json.dumps({"ok": ok, "refused": n - ok}))


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]))
