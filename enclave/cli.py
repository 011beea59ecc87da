"""The ``enclave`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from enclave.commands import audit as audit_commands
from enclave.commands import keys as keys_commands
from enclave.commands import knowledge as knowledge_commands
from enclave.commands import logs as logs_commands
from enclave.commands import usage as usage_commands
from enclave.config import Settings
from enclave.errors import EnclaveError
from enclave.tenants import Tenant, TenantRegistry
from enclave.turns import Final, Token


def _tenants(args: argparse.Namespace, settings: Settings) -> TenantRegistry:
    return TenantRegistry.load(Path(args.tenants_dir) if getattr(args, "tenants_dir", None)
                               else settings.tenants_dir)


def _describe(t: Tenant) -> dict[str, object]:
    return {
        "slug": t.slug, "name": t.name, "status": t.status, "title": t.branding.title,
        "provider": t.identity.provider, "email_domains": list(t.identity.allowed_email_domains),
        "assistants": {a.slug: a.name for a in t.assistants.values()},
        "default_assistant": t.default_assistant.slug,
        "plugins": sorted(n for n in t.plugin_config if t.plugin_enabled(n)),
        "model": t.model.model_dump(exclude_none=True),
        "quotas": t.quotas.model_dump(exclude_defaults=True),
    }


def cmd_tenants_list(args: argparse.Namespace, settings: Settings) -> int:
    for t in _tenants(args, settings):
        print(f"{t.slug:<20} {t.status:<10} {t.name}")
    return 0


def cmd_tenants_show(args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(_describe(_tenants(args, settings).get(args.slug)), indent=2))
    return 0


def cmd_tenants_validate(args: argparse.Namespace, settings: Settings) -> int:
    from enclave.plugins.host import PluginHost

    registry = _tenants(args, settings)
    host = PluginHost(settings.plugins_dir)
    for t in registry:
        host.check(t)
    print(f"ok: {len(registry)} tenant(s) valid")
    return 0


def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    from enclave.identity import principal_from_email
    from enclave.workspace import Workspace

    ws = Workspace(settings)
    try:
        principal = principal_from_email(ws.tenants, args.slug, args.as_email, "cli")
        for event in ws.chat(principal, args.text, args.conversation, args.assistant):
            if isinstance(event, Token):
                print(event.text, end="", flush=True)
            elif isinstance(event, Final):
                usage = event.usage
                est = " (estimated)" if usage.estimated else ""
                print()
                for c in event.citations:
                    where = f", p. {c.page}" if c.page else (f", {c.section}" if c.section
                                                              else "")
                    print(f"[{c.number}] {c.title}{where} (chunk {c.chunk_id}): "
                          f"{' '.join(c.snippet.split())[:160]}")
                print(f"[conversation {event.conversation_id} · {event.model} · "
                      f"{usage.prompt_tokens}+{usage.completion_tokens} tokens{est} · "
                      f"{event.latency_ms:.0f} ms]", file=sys.stderr)
    finally:
        ws.close()
    return 0


def cmd_model_serve(args: argparse.Namespace, settings: Settings) -> int:
    from enclave import localmodel

    return localmodel.serve(args.host, args.port)


def cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    from enclave import dev

    return dev.run(settings, args.idp_port, args.port)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="enclave", description="Enclave multi-tenant workspace")
    sub = p.add_subparsers(dest="command", required=True)

    tenants = sub.add_parser("tenants", help="inspect and validate tenants").add_subparsers(
        dest="tenants_command", required=True)
    t_list = tenants.add_parser("list", help="list tenants")
    t_list.set_defaults(func=cmd_tenants_list)
    t_show = tenants.add_parser("show", help="show one tenant")
    t_show.add_argument("slug")
    t_show.set_defaults(func=cmd_tenants_show)
    t_val = tenants.add_parser("validate", help="validate every tenant folder")
    t_val.set_defaults(func=cmd_tenants_validate)
    for sp in (t_list, t_show, t_val):
        sp.add_argument("--tenants-dir", help="tenants directory (default: ./tenants)")

    chat = sub.add_parser("chat", help="run one chat turn as a user of a tenant")
    chat.add_argument("slug")
    chat.add_argument("text")
    chat.add_argument("--as", dest="as_email", required=True, metavar="EMAIL")
    chat.add_argument("--assistant", metavar="NAME")
    chat.add_argument("--conversation", metavar="ID", help="continue a conversation")
    chat.set_defaults(func=cmd_chat)

    model = sub.add_parser("model", help="the local model").add_subparsers(
        dest="model_command", required=True)
    serve = model.add_parser("serve", help="serve the local model (OpenAI-compatible)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.set_defaults(func=cmd_model_serve)

    dev = sub.add_parser("dev", help="run the embedded stack: local IdP, model and app")
    dev.add_argument("--port", type=int, default=8501)
    dev.add_argument("--idp-port", type=int, default=9400)
    dev.set_defaults(func=cmd_dev)

    for group in (logs_commands, audit_commands, keys_commands, knowledge_commands,
                  usage_commands):
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    try:
        return int(args.func(args, Settings.from_env()))
    except EnclaveError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
