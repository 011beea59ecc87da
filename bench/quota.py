"""Quota engine benchmark: check + reserve + settle per turn, in microseconds, with
``memory://`` and with a local ``redis-server`` (started here), and the admitted/limit
ratio of 64 concurrent turns against a request limit and a token budget. Prints JSON.

    .venv/bin/python bench/quota.py [--turns 5000] [--users 500]

Targets: under 50 us in memory, under 1 ms with local Redis, ratio exactly 1.00.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from enclave.config import ROOT
from enclave.errors import QuotaExceeded
from enclave.identity import Principal
from enclave.quota.engine import QuotaEngine
from enclave.tenants import Tenant, load_tenant
from enclave.turns import Usage

sys.path.insert(0, str(ROOT))  # the tests' redis-server and tenant helpers
from tests.quota.conftest import RedisServer, set_quotas  # noqa: E402

# the demo tenant's shape: per-user minute windows and budgets, tenant budgets and cost
QUOTAS = """
[quotas]
requests_per_minute = 1000
tokens_per_minute = 20000
tokens_per_day = 10000000
tokens_per_month = 100000000
[quotas.tenant]
requests_per_minute = 1000000
tokens_per_month = 100000000000
monthly_budget_usd = 1000000.0
[quotas.prices.default]
input_per_million = 0.15
output_per_million = 0.60
"""
PROMPT_TOKENS, MAX_OUTPUT = 300, 256
USAGE = Usage(280, 120, False)


def tenant_with(quotas: str, workdir: Path) -> Tenant:
    dest = workdir / "tenants"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(ROOT / "tenants", dest)
    set_quotas(dest, "acme", quotas)
    return load_tenant(dest / "acme")


def user(i: int) -> Principal:
    return Principal("acme", f"s{i}", f"user{i}@acme.example", f"user{i}", ("member",))


def per_turn_us(engine: QuotaEngine, tenant: Tenant, turns: int, users: int) -> dict[str, float]:
    people = [user(i) for i in range(users)]
    for p in people[:10]:  # warm up (seeding, scripts, caches)
        engine.settle(engine.reserve(tenant, p, "m", PROMPT_TOKENS, MAX_OUTPUT), USAGE)
    samples = []
    for i in range(turns):
        started = time.perf_counter()
        r = engine.reserve(tenant, people[i % users], "m", PROMPT_TOKENS, MAX_OUTPUT)
        engine.settle(r, USAGE)
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return {"mean_us": round(statistics.fmean(samples), 1),
            "p50_us": round(samples[len(samples) // 2], 1),
            "p99_us": round(samples[int(len(samples) * 0.99)], 1)}


def admitted_ratio(engine: QuotaEngine, tenant: Tenant, limit: int, workers: int = 64) -> float:
    """``workers`` turns at once against ``limit``: admitted / limit (holds not settled)."""
    barrier = threading.Barrier(workers)
    who = user(999_999)

    def turn(_: int) -> bool:
        barrier.wait()
        try:
            engine.reserve(tenant, who, "m", PROMPT_TOKENS, MAX_OUTPUT)
            return True
        except QuotaExceeded:
            return False

    with ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(turn, range(workers))) / limit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--turns", type=int, default=5000)
    ap.add_argument("--users", type=int, default=500)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="enclave-bench-quota-"))
    redis = RedisServer()
    try:
        tenant = tenant_with(QUOTAS, work)
        rpm = tenant_with("[quotas]\nrequests_per_minute = 32", work)
        fit = 10
        budget = tenant_with(f"[quotas]\ntokens_per_day = {fit * (PROMPT_TOKENS + MAX_OUTPUT)}",
                             work)
        out: dict[str, object] = {"turns": args.turns, "users": args.users,
                                  "limits_per_turn": 7}
        for name, url in (("memory", "memory://"), ("redis", redis.url)):
            redis.client.flushall()
            out[f"{name}_check_reserve_settle"] = per_turn_us(QuotaEngine(url), tenant,
                                                              args.turns, args.users)
            out[f"{name}_64way_rpm_admitted_over_limit"] = admitted_ratio(
                QuotaEngine(url), rpm, 32)
            redis.client.flushall()
            out[f"{name}_64way_budget_admitted_over_fitting"] = admitted_ratio(
                QuotaEngine(url), budget, fit)
        print(json.dumps(out, indent=2))
    finally:
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
