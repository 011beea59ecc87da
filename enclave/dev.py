"""``enclave dev``: the embedded stack on one machine, no account or key needed.

A local OIDC provider (oidc-provider-mock) with the demo users of ``tenants/*/
demo-users.toml``, the local model server, and the Streamlit app. Ctrl-C stops all.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import werkzeug.serving

from enclave import localmodel
from enclave.config import ROOT, Settings
from enclave.identity import roles_for
from enclave.keys import write_private
from enclave.tenants import TenantRegistry

IDP_PORT = 9400
APP_PORT = 8501


def demo_users(tenants: TenantRegistry) -> list[dict[str, Any]]:
    """Claims of every demo user: ``sub`` plus the claims the tenant rules need."""
    users = []
    for tenant in tenants:
        file = tenant.path / "demo-users.toml"
        if file.is_file():
            for user in tomllib.loads(file.read_text())["users"]:
                users.append({"tenant": tenant.slug, **user})
    return users


@contextmanager
def run_idp(users: list[dict[str, Any]], port: int = IDP_PORT,
            token_max_age: float = 3600) -> Iterator[str]:
    """Serve the mock OIDC provider on 127.0.0.1:port; yields its issuer URL."""
    import warnings
    from datetime import timedelta

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from oidc_provider_mock import User, app

    claims = [User(sub=u["sub"], claims={k: v for k, v in u.items()
                                         if k not in ("sub", "tenant")}) for u in users]
    wsgi = app(user_claims=claims, access_token_max_age=timedelta(seconds=token_max_age))
    server = werkzeug.serving.make_server("127.0.0.1", port, wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="oidc-idp")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(2)


def write_secrets(path: Path, tenants: TenantRegistry, issuer: str, app_url: str) -> Path:
    """Streamlit ``[auth]`` secrets: one provider per tenant, all at the local IdP."""
    lines = ["[auth]", f'redirect_uri = "{app_url}/oauth2callback"',
             f'cookie_secret = "{secrets.token_urlsafe(32)}"', ""]
    for t in tenants:
        lines += [f"[auth.{t.identity.provider}]", f'client_id = "enclave-{t.slug}"',
                  f'client_secret = "{secrets.token_urlsafe(16)}"',
                  f'server_metadata_url = "{issuer}/.well-known/openid-configuration"',
                  'client_kwargs = { prompt = "login" }', ""]
    write_private(path, "\n".join(lines).encode())
    return path


def app_command(secrets_file: Path, port: int = APP_PORT) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
            "--server.port", str(port), "--server.address", "127.0.0.1",
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--secrets.files", str(secrets_file)]


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def _stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so the children are stopped too."""
    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)


def seed_knowledge(settings: Settings, knowledge_dir: Path = ROOT / "knowledge") -> None:
    """First start: ingest ``knowledge/<slug>/`` into each active tenant whose knowledge
    base is still empty (before the app opens the stores: one writer per store file)."""
    from enclave.commands.knowledge import operator
    from enclave.workspace import Workspace

    ws = Workspace(settings)
    try:
        for tenant in ws.tenants:
            folder = knowledge_dir / tenant.slug
            if not tenant.active or not folder.is_dir():
                continue
            kb = ws.knowledge(operator(tenant.slug))
            if kb.is_empty():
                results = kb.sync(operator(tenant.slug), folder)
                added = sum(r.status == "added" for r in results)
                print(f"Knowledge of {tenant.slug}: {added} seed document(s) ingested")
                for r in results:
                    if not r.ok:
                        print(f"  {r.message}")
    finally:
        ws.close()


def run(settings: Settings, idp_port: int = IDP_PORT, app_port: int = APP_PORT) -> int:
    _stop_on_sigterm()
    tenants = TenantRegistry.load(settings.tenants_dir)
    seed_knowledge(settings)
    users = demo_users(tenants)
    procs: list[subprocess.Popen[bytes]] = []
    logs = settings.data_dir / "dev"
    logs.mkdir(parents=True, exist_ok=True)
    with run_idp(users, idp_port) as issuer:
        try:
            if settings.default_is_local:
                print(f"Starting the local model on {localmodel.DEFAULT_PORT} "
                      f"(log: {logs / 'model.log'}) ...")
                model = localmodel.start(log=logs / "model.log")
                procs.append(model)
                wait_http(f"http://127.0.0.1:{localmodel.DEFAULT_PORT}/v1/models", 120, model)
            else:
                print(f"Using the model endpoint {settings.default_base_url}")
            app_url = f"http://localhost:{app_port}"
            secrets_file = write_secrets(logs / "secrets.toml", tenants, issuer, app_url)
            procs.append(subprocess.Popen(app_command(secrets_file, app_port), cwd=ROOT))
            wait_http(f"{app_url}/_stcore/health", 60, procs[-1])
            print(f"\nEnclave is running at {app_url}  (OIDC provider: {issuer})")
            print("Demo logins (pick the organisation, then the user on the provider's page):")
            for u in users:
                claims = {**u, "provider": tenants.get(u["tenant"]).identity.provider}
                roles = ",".join(roles_for(tenants.get(u["tenant"]), u["email"], claims))
                print(f"  {u['email']:<24} tenant {u['tenant']:<8} {roles}")
            print("Ctrl-C stops everything.")
            while all(p.poll() is None for p in procs):
                time.sleep(0.5)
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
