"""``enclave audit show | verify``: the tenant's tamper-evident audit trail."""

from __future__ import annotations

import argparse
import json

from enclave.commands.access import add_reader_args, reader
from enclave.config import Settings


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from enclave.workspace import Workspace

    ws = Workspace(settings)
    try:
        entries, result = ws.audit_trail(reader(ws, args), args.limit)
    finally:
        ws.close()
    if args.json:
        print(json.dumps({"verification": str(result), "ok": result.ok,
                          "entries": [e.as_dict() for e in entries]}, indent=2,
                         ensure_ascii=False))
    else:
        for e in entries:
            print(f"{e.seq:>6} {e.ts:%Y-%m-%d %H:%M:%S} {e.channel:<6} {e.actor:<28} "
                  f"{e.action:<20} {e.target} {e.detail}")
        print(result)
    return 0 if result.ok else 1


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    from enclave.workspace import Workspace

    ws = Workspace(settings)
    try:
        result = ws.verify_audit(args.slug)
    finally:
        ws.close()
    print(f"{args.slug}: {result}")
    return 0 if result.ok else 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    audit = sub.add_parser("audit", help="the tenant's audit trail").add_subparsers(
        dest="audit_command", required=True)
    show = audit.add_parser("show", help="show the trail and its verification (audited)")
    add_reader_args(show)
    show.add_argument("--limit", type=int, help="only the newest N entries")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
    verify = audit.add_parser("verify", help="check the chain; exit 1 naming the first bad "
                                             "entry")
    verify.add_argument("slug")
    verify.set_defaults(func=cmd_verify)
