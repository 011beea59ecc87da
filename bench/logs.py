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

import sys
from pathlib import Path

# this file is named like the standard library's logging: keep its folder off the path
BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

_spec = importlib.util.spec_from_file_location("chat_overhead", BENCH / "chat_overhead.py")
assert _spec and _spec.loader
chat_overhead = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(chat_overhead)
fake_server, pct = chat_overhead.fake_server, chat_overhead.pct

import enclave.workspace as workspace_module  # noqa: E402
from enclave.config import Settings  # noqa: E402
from enclave.identity import principal_from_email  # noqa: E402
from enclave.keys import KeyRing  # noqa: E402
from enclave.store import TenantStore  # noqa: E402
from enclave.turnlog import TurnLog  # noqa: E402
from enclave.turns import TurnRecord, Usage  # noqa: E402
from enclave.workspace import TENANT_MIGRATIONS, Workspace  # noqa: E402

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


def tenants_without_quotas(dest: Path) -> Path:
    """A copy of the demo tenants without their ``[quotas]`` (the bench's turns would
    exceed them; quota cost is the same with and without logging)."""
    shutil.copytree(ROOT / "tenants", dest)
    for toml in dest.glob("*/tenant.toml"):
        kept, skipping = [], False
        for line in toml.read_text().splitlines():
            if line.startswith("["):
                skipping = line.lstrip("[").startswith("quotas")
            if not skipping:
                kept.append(line)
        toml.write_text("\n".join(kept) + "\n")
    return dest


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
                                tenants_dir=tenants_without_quotas(tmp / "tenants"),
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
