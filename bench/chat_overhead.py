"""Overhead of ``Workspace.chat`` over calling the model endpoint directly.

The same N turns run two ways against the same fake OpenAI-compatible server:

* ``direct``: the official ``openai.OpenAI`` client, ``stream=True`` with usage, sending the
  system prompt the workspace would build plus the user text, consuming the whole stream;
* ``workspace``: ``ws.chat(bob@acme)`` in a new conversation each turn, consuming every
  event (Token..., Usage, Final); also ``workspace_continue``, which keeps one conversation
  per worker thread for the whole level (history is read and sent, so messages grow; it is
  informational, not held to the targets).

Latency is the time from the call to the last event. Modes alternate in blocks, so machine
noise hits them all alike, at concurrency 1 and 16 (a thread pool; throughput = turns /
wall-clock). The server runs in a separate process so its CPU work (uvicorn, JSON, SSE)
does not compete for this process's GIL: what differs between the modes is then only
the client-side work, i.e. the workspace's overhead. One JSON object goes to stdout.

    .venv/bin/python bench/chat_overhead.py [--turns 200] [--tokens 20] [--token-delay 0.002]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai

from enclave.config import ROOT, Settings
from enclave.identity import principal_from_email
from enclave.model import resolve_endpoint
from enclave.workspace import Workspace

TARGETS = {"added_p50_ms": 2.0, "added_p99_ms": 10.0, "throughput_ratio_min": 0.8}
TEXT = "How do I reset my VPN password before travelling next week? (turn {i})"
Turn = Callable[[int], float]  # runs turn i, returns its latency in ms


@contextmanager
def fake_server(tokens: int, delay: float) -> Iterator[str]:
    """Run ``tests.fakes.openai_server`` in a subprocess on a free port; yield its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(port),
         "--tokens", str(tokens), "--token-delay", str(delay)],
        cwd=ROOT, stdout=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.05)
        yield base_url
    finally:
        proc.kill()
        proc.wait()


def make_turns(ws: Workspace, base_url: str) -> dict[str, Turn]:
    principal = principal_from_email(ws.tenants, "acme", "bob@acme.example", "cli")
    tenant = ws.tenant_for(principal)
    asst = tenant.default_assistant
    ep = resolve_endpoint(ws.settings, tenant, asst)
    system = ws.system_prompt(tenant, principal, asst)
    client = openai.OpenAI(base_url=base_url, api_key=ep.api_key,
                           timeout=ep.timeout_seconds, max_retries=ep.max_retries)
    local = threading.local()

    def direct(i: int) -> float:
        t0 = time.perf_counter()
        stream = client.chat.completions.create(
            model=ep.model, temperature=ep.temperature, max_tokens=ep.max_tokens,
            messages=[{"role": "system", "content": system},
                      {"role": "user", "content": TEXT.format(i=i)}],
            stream=True, stream_options={"include_usage": True})
        parts = [c.choices[0].delta.content or "" for c in stream if c.choices]
        assert parts, "empty answer"
        return (time.perf_counter() - t0) * 1000

    def workspace(i: int, conversation_id: str | None = None) -> float:
        t0 = time.perf_counter()
        for _ in ws.chat(principal, TEXT.format(i=i), conversation_id):
            pass
        return (time.perf_counter() - t0) * 1000

    def workspace_continue(i: int) -> float:
        if not hasattr(local, "conv"):
            local.conv = ws.new_conversation(principal).id
        return workspace(i, local.conv)

    return {"direct": direct, "workspace": workspace, "workspace_continue": workspace_continue}


def bench_tenants(dest: Path) -> Path:
    """A copy of the demo tenants whose quota limits are lifted out of reach: the quota
    engine still checks, reserves and settles every turn, but never refuses one."""
    shutil.copytree(ROOT / "tenants", dest)
    limit = re.compile(r"^(\w+_per_\w+|monthly_budget_usd)\s*=\s*[\d.]+", re.M)
    for toml in dest.glob("*/tenant.toml"):
        toml.write_text(limit.sub(r"\1 = 1000000000000", toml.read_text()))
    return dest


def pct(xs: list[float], p: int) -> float:
    return round(statistics.quantiles(xs, n=100, method="inclusive")[p - 1], 2)


def run_level(turns: dict[str, Turn], n: int, conc: int, block: int, warmup: int
              ) -> dict[str, Any]:
    """``n`` turns per mode at concurrency ``conc``, modes alternating in blocks."""
    block = max(block, 4 * conc)  # at high concurrency, every worker runs several turns
    lat: dict[str, list[float]] = {m: [] for m in turns}
    wall = dict.fromkeys(turns, 0.0)
    with ThreadPoolExecutor(conc) as pool:
        for fn in turns.values():
            list(pool.map(fn, range(max(warmup, 2 * conc))))
        modes = list(turns)
        for b, start in enumerate(range(0, n, block)):
            for mode in modes if b % 2 == 0 else modes[::-1]:
                t0 = time.perf_counter()
                lat[mode] += pool.map(turns[mode], range(start, min(start + block, n)))
                wall[mode] += time.perf_counter() - t0
    out: dict[str, float] = {}
    for mode in turns:
        out[f"{mode}_p50_ms"], out[f"{mode}_p99_ms"] = pct(lat[mode], 50), pct(lat[mode], 99)
        out[f"throughput_{mode}_tps"] = round(n / wall[mode], 2)
    for mode, sfx in (("workspace", ""), ("workspace_continue", "_continue")):
        for p in ("p50", "p99"):
            out[f"added{sfx}_{p}_ms"] = round(out[f"{mode}_{p}_ms"] - out[f"direct_{p}_ms"], 2)
        out[f"throughput_ratio{sfx}"] = round(
            out[f"throughput_{mode}_tps"] / out["throughput_direct_tps"], 3)
    meets = {"added_p50_ms": out["added_p50_ms"] <= TARGETS["added_p50_ms"],
             "added_p99_ms": out["added_p99_ms"] <= TARGETS["added_p99_ms"],
             "throughput_ratio": out["throughput_ratio"] >= TARGETS["throughput_ratio_min"]}
    return {**out, "meets_targets": meets}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=200, help="measured turns per mode and level")
    ap.add_argument("--tokens", type=int, default=20, help="streamed tokens per answer")
    ap.add_argument("--token-delay", type=float, default=0.002, help="server seconds/token")
    ap.add_argument("--block", type=int, default=20, help="turns per alternating block")
    ap.add_argument("--warmup", type=int, default=10, help="uncounted turns per mode")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = ap.parse_args()
    with fake_server(args.tokens, args.token_delay) as base_url, \
            tempfile.TemporaryDirectory(prefix="enclave-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data",
                            tenants_dir=bench_tenants(Path(tmp) / "tenants"),
                            plugins_dir=ROOT / "plugins", default_base_url=base_url,
                            default_api_key="bench-key", default_model="fake-model",
                            default_is_local=False)
        ws = Workspace(settings)
        try:
            turns = make_turns(ws, base_url)
            levels = {str(c): run_level(turns, args.turns, c, args.block, args.warmup)
                      for c in args.concurrency}
        finally:
            ws.close()
    ok = all(all(v["meets_targets"].values()) for v in levels.values())
    result = {"params": vars(args) | {"python": sys.version.split()[0]}, "targets": TARGETS,
              "concurrency": levels, "meets_targets": ok}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
