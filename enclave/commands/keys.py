"""``enclave keys rotate-master | rotate SLUG``: envelope key rotation."""

from __future__ import annotations

import argparse
import json

from enclave.commands.access import operator_name
from enclave.config import Settings


def cmd_rotate_master(args: argparse.Namespace, settings: Settings) -> int:
    from enclave.workspace import Workspace

    ws = Workspace(settings)
    try:
        counts = ws.rotate_master_key(operator_name())
    finally:
        ws.close()
    print(json.dumps(counts))
    print("done: every key unwraps with ENCLAVE_MASTER_KEY; unset "
          "ENCLAVE_MASTER_KEY_PREVIOUS everywhere")
    return 0


def cmd_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from enclave.workspace import Workspace

    ws = Workspace(settings)
    try:
        ws.rotate_data_key(args.slug, operator_name())
    finally:
        ws.close()
    print(f"{args.slug}: store re-encrypted under a new data key")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = sub.add_parser("keys", help="rotate keys").add_subparsers(
        dest="keys_command", required=True)
    master = keys.add_parser("rotate-master", help="rewrap every key with ENCLAVE_MASTER_KEY "
                             "(the old one in ENCLAVE_MASTER_KEY_PREVIOUS)")
    master.set_defaults(func=cmd_rotate_master)
    rotate = keys.add_parser("rotate", help="re-encrypt a tenant's store under a new data key")
    rotate.add_argument("slug")
    rotate.set_defaults(func=cmd_rotate)
