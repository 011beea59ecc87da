"""``enclave usage report``, ``enclave quota status``, ``enclave alerts list | clear |
scan``: a tenant's usage, quotas and alerts, for platform operators (figures only: no
conversation content)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from enclave.commands.access import operator_name
from enclave.config import Settings
from enclave.identity import principal_from_email
from enclave.usage import DIMENSIONS, FIGURES, TenantUsage, parse_since


def _usage(settings: Settings, slug: str) -> tuple[Any, TenantUsage]:
    from enclave.workspace import Workspace

    ws = Workspace(settings)
    try:
        return ws, TenantUsage(ws, ws.tenants.get(slug))
    except BaseException:
        ws.close()
        raise


def _table(rows: list[dict[str, Any]], keys: list[str]) -> None:
    widths = {k: max([len(k), *(len(_cell(r[k])) for r in rows)]) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for r in rows:
        print("  ".join(_cell(r[k]).ljust(widths[k]) for k in keys))


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:,.4f}" if isinstance(v, float) else str(v)


def cmd_usage_report(args: argparse.Namespace, settings: Settings) -> int:
    ws, usage = _usage(settings, args.slug)
    try:
        rows = usage.report(parse_since(args.since), args.by)
    finally:
        ws.close()
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no usage in this period")
    else:
        _table(rows, ["period", *([args.by] if args.by else []), *FIGURES])
    return 0


def cmd_quota_status(args: argparse.Namespace, settings: Settings) -> int:
    ws, usage = _usage(settings, args.slug)
    try:
        principal = principal_from_email(ws.tenants, args.slug, args.user) if args.user \
            else None
        rows = [{"scope": c.scope, "subject": c.subject, "limit": c.description,
                 "used": c.used, "of": c.value, "percent": round(100 * c.fraction, 1),
                 "resets": c.resets_at.isoformat() if c.resets_at else "moving minute"}
                for c in usage.quota(principal)]
        print(f"limits storage: {ws.quota.url.split('@')[-1]}")
    finally:
        ws.close()
    if args.json:
        print(json.dumps(rows, indent=2))
    elif rows:
        _table(rows, list(rows[0]))
    else:
        print("no limits configured")
    return 0


def cmd_alerts_list(args: argparse.Namespace, settings: Settings) -> int:
    ws, usage = _usage(settings, args.slug)
    try:
        alerts = usage.alerts(open_only=not args.all)
    finally:
        ws.close()
    if args.json:
        print(json.dumps([{**vars(a), "raised_at": a.raised_at.isoformat(),
                           "cleared_at": a.cleared_at.isoformat() if a.cleared_at else None}
                          for a in alerts], indent=2))
        return 0
    for a in alerts:
        state = f"cleared by {a.cleared_by}" if a.cleared_at else "open"
        print(f"{a.raised_at:%Y-%m-%d %H:%M} {a.id} {a.severity:<8} {a.kind:<18} {state:<10} "
              f"{a.message}")
    if not alerts:
        print("no open alerts" if not args.all else "no alerts")
    return 0


def cmd_alerts_clear(args: argparse.Namespace, settings: Settings) -> int:
    ws, usage = _usage(settings, args.slug)
    try:
        alert = usage.clear_alert(args.alert_id, f"operator:{operator_name()}")
    finally:
        ws.close()
    lifted = " (throttle lifted)" if alert.figures.get("throttled") else ""
    print(f"cleared {alert.id}: {alert.message}{lifted}")
    return 0


def cmd_alerts_scan(args: argparse.Namespace, settings: Settings) -> int:
    ws, usage = _usage(settings, args.slug)
    try:
        findings = ws.anomalies.scan(usage.tenant)
    finally:
        ws.close()
    for f in findings:
        print(f"{f.hour:%Y-%m-%d %H:00} {f.kind:<14} {f.scope:<6} {f.subject} {f.figures}")
    print(f"{len(findings)} finding(s)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    usage = sub.add_parser("usage", help="a tenant's usage").add_subparsers(
        dest="usage_command", required=True)
    report = usage.add_parser("report", help="tokens, turns, refusals, cost and latency")
    report.add_argument("slug")
    report.add_argument("--since", metavar="DATE", help="YYYY-MM-DD (default: 30 days ago)")
    report.add_argument("--by", choices=DIMENSIONS)
    report.add_argument("--json", action="store_true")
    report.set_defaults(func=cmd_usage_report)

    quota = sub.add_parser("quota", help="a tenant's limits").add_subparsers(
        dest="quota_command", required=True)
    status = quota.add_parser("status", help="current consumption of every limit")
    status.add_argument("slug")
    status.add_argument("--user", metavar="EMAIL", help="one user's limits")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_quota_status)

    alerts = sub.add_parser("alerts", help="a tenant's quota and anomaly alerts"
                            ).add_subparsers(dest="alerts_command", required=True)
    a_list = alerts.add_parser("list", help="open alerts (newest first)")
    a_list.add_argument("slug")
    a_list.add_argument("--all", action="store_true", help="include cleared alerts")
    a_list.add_argument("--json", action="store_true")
    a_list.set_defaults(func=cmd_alerts_list)
    a_clear = alerts.add_parser("clear", help="clear an alert (lifts its throttle)")
    a_clear.add_argument("slug")
    a_clear.add_argument("alert_id")
    a_clear.set_defaults(func=cmd_alerts_clear)
    a_scan = alerts.add_parser("scan", help="run anomaly detection now")
    a_scan.add_argument("slug")
    a_scan.set_defaults(func=cmd_alerts_scan)
