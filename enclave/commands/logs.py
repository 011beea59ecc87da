"""``enclave logs show | export | prune``: the tenant's turn log."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from enclave.commands.access import add_reader_args, parse_date, reader
from enclave.config import Settings
from enclave.keys import write_private
from enclave.turnlog import OUTCOMES, LogEntry, LogFilter


def _filter(args: argparse.Namespace) -> LogFilter:
    return LogFilter(user=args.user.lower() if args.user else None, assistant=args.assistant,
                     outcome=args.outcome, since=parse_date(args.since, "--since"),
                     until=parse_date(args.until, "--until"), limit=args.limit)


def _line(e: LogEntry) -> str:
    tokens = f"{e.prompt_tokens}+{e.completion_tokens}{'~' if e.tokens_estimated else ''}"
    prompt = "-" if e.prompt is None else " ".join(e.prompt.split())[:60]
    return (f"{e.ts:%Y-%m-%d %H:%M:%S} {e.id} {e.user_id:<24} {e.assistant:<14} "
            f"{e.outcome:<11} {tokens:>9} {e.latency_ms:>7.0f} ms  {prompt}")


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from enclave.workspace import Workspace

    ws = Workspace(settings)
    try:
        principal = reader(ws, args)
        if args.turn:
            entries = [ws.log_entry(principal, args.turn)]
        else:
            entries = ws.read_logs(principal, _filter(args))
        if args.json or args.turn:
            print(json.dumps([e.as_dict() for e in entries], indent=2, ensure_ascii=False))
        else:
            for e in entries:
                print(_line(e))
            print(f"{len(entries)} turn(s)", file=sys.stderr)
    finally:
        ws.close()
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from enclave.workspace import Workspace

    ws = Workspace(settings)
    try:
        text = ws.export_logs(reader(ws, args), args.format, _filter(args))
    finally:
        ws.close()
    if args.output:
        write_private(Path(args.output), text.encode())
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_prune(args: argparse.Namespace, settings: Settings) -> int:
    from enclave.workspace import Workspace

    ws = Workspace(settings)
    try:
        for slug, n in ws.prune_logs().items():
            print(f"{slug}: removed {n} turn(s) past retention")
    finally:
        ws.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    logs = sub.add_parser("logs", help="the tenant's turn log").add_subparsers(
        dest="logs_command", required=True)
    show = logs.add_parser("show", help="list logged turns (audited)")
    export = logs.add_parser("export", help="export logged turns as CSV or JSON (audited)")
    for p in (show, export):
        add_reader_args(p)
        p.add_argument("--user", metavar="EMAIL")
        p.add_argument("--assistant", metavar="NAME")
        p.add_argument("--outcome", choices=OUTCOMES)
        p.add_argument("--since", metavar="DATE", help="from this date or time (UTC)")
        p.add_argument("--until", metavar="DATE", help="before this date or time (UTC)")
        p.add_argument("--limit", type=int, default=500)
    show.add_argument("--json", action="store_true", help="JSON with content")
    show.add_argument("--turn", metavar="ID", help="open one turn")
    show.set_defaults(func=cmd_show)
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("--output", metavar="FILE", help="write here (owner-only) not stdout")
    export.set_defaults(func=cmd_export)
    prune = logs.add_parser("prune", help="remove turns past each tenant's retention_days")
    prune.set_defaults(func=cmd_prune)
