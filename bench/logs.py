"""Turn logging: rows per second through the store's batched writer, and the latency
logging adds to a chat turn.

* ``writer``: N turn-log rows queued by ``TurnLog.record`` as fast as one thread can,
  until all are committed (sustained rows/s). Side by side, the same rows through the
  row-by-row ``executemany`` path the writer used before (ratio = coalesced / row-bound).
* ``chat``: ``ws.chat(bob@acme)`` turns against the fake OpenAI server (a subprocess, as
  in bench/chat_overhead.py), with the turn log on and off in alternating blocks of the
  same run; ``added_p50_ms`` is the difference of the medians.

    .venv/bin/python bench/logs.py [--rows 100000] [--turns 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chat_overhead import bench_tenants, fake_server, pct

import enclave.workspace as workspace_module
from enclave.config import ROOT, Settings
from enclave.identity import principal_from_email
from enclave.keys import KeyRing
from enclave.store import TenantStore
from enclave.turnlog import TurnLog
from enclave.turns import TurnRecord, Usage
from enclave.workspace import TENANT_MIGRATIONS, Workspace

TARGETS = {"rows_per_s_min": 20_000, "added_p50_ms_max": 0.2}
PROMPT = "How do I reset my VPN password before travelling next week? " * 3
RESPONSE = "Open the self-service portal, choose VPN, then Reset password. " * 6


def writer_rate(tmp: Path, rows: int, coalesce: bool) -> float:
    store = TenantStore(tmp / f"w-{coalesce}" / "store.duckdb",
                        KeyRing(tmp / "keys", b"k" * 32).data_key("bench"), TENANT_MIGRATIONS)
    if not coalesce:
        store._run_many = store._con.executemany  # type: ignore[method-assign]
    log = TurnLog(store)
    record = TurnRecord("acme", "u", "ui", "c" * 32, "helpdesk", "fake-model", "ok", PROMPT,
                        RESPONSE, Usage(120, 80, False), 812.5)
    try:
        t0 = time.perf_counter()
        for _ in range(rows):
            log.record(record, "bob@acme.example", ("doc#1", "doc#2"), True)
        store.flush()
        return rows / (time.perf_counter() - t0)
    finally:
        store.close()


class NoTurnLog(TurnLog):
    def record(self, *args: Any, **kwargs: Any) -> None:
        """Logging off."""


def chat_latency(ws: Workspace, turns: int, block: int, warmup: int) -> dict[str, float]:
    bob = principal_from_email(ws.tenants, "acme", "bob@acme.example", "cli")
    modes = {"with_log": TurnLog, "without_log": NoTurnLog}
    lat: dict[str, list[float]] = {m: [] for m in modes}

    def turn(i: int) -> float:
        t0 = time.perf_counter()
        for _ in ws.chat(bob, f"{PROMPT} (turn {i})"):
            pass
        return (time.perf_counter() - t0) * 1000

    for cls in modes.values():
        workspace_module.TurnLog = cls  # type: ignore[misc]
        for i in range(warmup):
            turn(i)
    for b, start in enumerate(range(0, turns, block)):
        for mode in list(modes) if b % 2 == 0 else list(modes)[::-1]:
            workspace_module.TurnLog = modes[mode]  # type: ignore[misc]
            lat[mode] += [turn(i) for i in range(start, min(start + block, turns))]
    workspace_module.TurnLog = TurnLog  # type: ignore[misc]
    out = {f"{m}_p50_ms": round(statistics.median(v), 3) for m, v in lat.items()}
    out |= {f"{m}_p99_ms": pct(v, 99) for m, v in lat.items()}
    out["added_p50_ms"] = round(out["with_log_p50_ms"] - out["without_log_p50_ms"], 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000, help="rows through the writer")
    ap.add_argument("--baseline-rows", type=int, default=5_000,
                    help="rows through the row-by-row path (slow)")
    ap.add_argument("--turns", type=int, default=300, help="measured chat turns per mode")
    ap.add_argument("--block", type=int, default=25)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--token-delay", type=float, default=0.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="enclave-bench-") as tmp_name:
        tmp = Path(tmp_name)
        coalesced = writer_rate(tmp, args.rows, True)
        row_bound = writer_rate(tmp, args.baseline_rows, False)
        with fake_server(args.tokens, args.token_delay) as base_url:
            settings = Settings(data_dir=tmp / "data",
                                tenants_dir=bench_tenants(tmp / "tenants"),
                                plugins_dir=ROOT / "plugins", default_base_url=base_url,
                                default_api_key="bench-key", default_model="fake-model",
                                default_is_local=False, log_prune_seconds=0)
            ws = Workspace(settings)
            try:
                chat = chat_latency(ws, args.turns, args.block, args.warmup)
            finally:
                ws.close()
    writer = {"rows_per_s": round(coalesced), "row_by_row_rows_per_s": round(row_bound),
              "ratio": round(coalesced / row_bound, 1)}
    meets = {"rows_per_s": writer["rows_per_s"] >= TARGETS["rows_per_s_min"],
             "added_p50_ms": chat["added_p50_ms"] <= TARGETS["added_p50_ms_max"]}
    print(json.dumps({"params": vars(args) | {"python": sys.version.split()[0]},
                      "targets": TARGETS, "writer": writer, "chat": chat,
                      "meets_targets": meets}, indent=2))


if __name__ == "__main__":
    main()
