"""Who reads tenant data from the CLI: a tenant user (``--as EMAIL``, with that user's
roles) or a platform operator with an audited reason (``--break-glass REASON``)."""

from __future__ import annotations

import argparse
import getpass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from enclave.errors import BadInput
from enclave.identity import Principal, principal_from_email

if TYPE_CHECKING:
    from enclave.workspace import Workspace


def add_reader_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("slug")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--as", dest="as_email", metavar="EMAIL",
                     help="read as this user of the tenant (needs the auditor or admin role)")
    who.add_argument("--break-glass", metavar="REASON",
                     help="platform operator access to tenant content; audited with REASON")


def reader(ws: Workspace, args: argparse.Namespace) -> Principal:
    if args.break_glass is not None:
        return ws.break_glass(args.slug, operator_name(), args.break_glass)
    return principal_from_email(ws.tenants, args.slug, args.as_email, "cli")


def operator_name() -> str:
    """The OS account running the command, recorded as the operator."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def parse_date(value: str | None, flag: str) -> datetime | None:
    """``YYYY-MM-DD`` or an ISO 8601 time; without a zone, UTC."""
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(f"{flag}: '{value}' is not a date (YYYY-MM-DD or ISO 8601)") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
