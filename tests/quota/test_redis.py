"""Limits shared across processes: two server processes (each its own data directory and
DuckDB files) against one real redis-server admit exactly the limit between them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from enclave.config import ROOT
from tests.fakes.openai_server import FakeOpenAI
from tests.quota.conftest import RedisServer, set_quotas


def test_two_processes_sharing_redis_admit_exactly_the_limit(
        tenants_copy: Path, tmp_path: Path, llm: FakeOpenAI, redis_server: RedisServer
        ) -> None:
    set_quotas(tenants_copy, "acme", "[quotas]\nrequests_per_minute = 10")
    start = time.time() + 4  # both processes are up and importing by then
    procs = []
    for i in range(2):
        env = {**os.environ, "ENCLAVE_DATA_DIR": str(tmp_path / f"server{i}"),
               "ENCLAVE_TENANTS_DIR": str(tenants_copy), "ENCLAVE_LIMITS_URL": redis_server.url,
               "OPENAI_BASE_URL": llm.base_url, "OPENAI_API_KEY": "sk-test",
               "ENCLAVE_MODEL": "fake-model", "PYTHONPATH": str(ROOT)}
        env.pop("ENCLAVE_MASTER_KEY", None)
        procs.append(subprocess.Popen([sys.executable, "-m", "tests.quota.worker", "16",
                                       str(start)], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(o["ok"] for o in outs) == 10
    assert sum(o["refused"] for o in outs) == 22
    assert len(llm.requests) == 10
    assert all((tmp_path / f"server{i}" / "platform").is_dir() for i in range(2))
