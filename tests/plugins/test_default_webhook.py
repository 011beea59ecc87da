"""The built-in alert webhook against a real local HTTP server that is slow or failing:
Slack-compatible JSON, retries with a timeout, and never blocking the caller."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from enclave.hookspecs import Alert
from enclave.plugins import default_webhook
from enclave.workspace import Workspace
from tests.conftest import make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.quota.conftest import set_quotas


class Hook:
    """A webhook receiver: ``plan`` lists what each request gets (``200``, ``500``,
    ``"hang"``: wait for ``release``), ``bodies`` what arrived."""

    def __init__(self) -> None:
        self.plan: list[int | str] = []
        self.bodies: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.arrived = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                hook.bodies.append(body)
                step = hook.plan.pop(0) if hook.plan else 200
                hook.arrived.set()
                if step == "hang":
                    hook.release.wait(10)
                    step = 200
                try:
                    self.send_response(int(step))
                    self.end_headers()
                except OSError:
                    pass  # the client gave up (timeout)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = (f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/secret"
                    "?token=secret")
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hook]:
    monkeypatch.setattr(default_webhook, "BACKOFF_SECONDS", 0.01)
    h = Hook()
    yield h
    h.release.set()
    h.server.shutdown()
    h.server.server_close()


@pytest.fixture
def hooked_ws(tenants_copy: Path, tmp_path: Path, llm: FakeOpenAI, hook: Hook
              ) -> Iterator[Workspace]:
    set_quotas(tenants_copy, "acme", f'[quotas]\n[quotas.alerts]\nwebhook_url = "{hook.url}"\n'
               "webhook_timeout_seconds = 0.3\nwebhook_retries = 2")
    ws = Workspace(make_settings(tmp_path / "data", llm.base_url, tenants_copy))
    yield ws
    ws.close()


ALERT = Alert("quota_threshold", "warning", "bob@acme.example used 80% of 100 tokens per day.",
              {"limit": "tokens_per_day", "used": 80})


def test_enclave_alert_posts_a_slack_compatible_body_after_retries(hooked_ws: Workspace,
                                                                   hook: Hook) -> None:
    hook.plan = [500, 503, 200]
    hooked_ws.alert(hooked_ws.tenants.get("acme"), ALERT)
    assert default_webhook.sender.wait_idle(10)
    assert len(hook.bodies) == 3, "retried on 5xx until delivered"
    body = hook.bodies[-1]
    assert body["text"] == ("[Acme Corporation] warning: bob@acme.example used 80% of 100 "
                            "tokens per day.")
    assert body["blocks"][0]["type"] == "section"
    assert "limit: tokens_per_day" in body["blocks"][1]["elements"][0]["text"]
    assert body["enclave"] == {"tenant": "acme", "kind": "quota_threshold",
                               "severity": "warning", "message": ALERT.message,
                               "figures": {"limit": "tokens_per_day", "used": 80}}


def test_a_slow_webhook_times_out_is_retried_and_never_blocks(hooked_ws: Workspace,
                                                             hook: Hook) -> None:
    hook.plan = ["hang", 200]
    hooked_ws.alert(hooked_ws.tenants.get("acme"), ALERT)
    assert not hook.release.is_set()  # alert() returned while the webhook still hangs
    assert default_webhook.sender.wait_idle(10)
    assert len(hook.bodies) == 2, "the timed-out attempt was retried"


def test_a_4xx_is_not_retried_and_gives_up_logged(hooked_ws: Workspace, hook: Hook,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    hook.plan = [404]
    hooked_ws.alert(hooked_ws.tenants.get("acme"), ALERT)
    assert default_webhook.sender.wait_idle(10)
    assert len(hook.bodies) == 1
    assert "gave up" in caplog.text and "secret" not in caplog.text


def test_a_bad_webhook_url_is_refused_at_load(tenants_copy: Path) -> None:
    from enclave.errors import TenantInvalid
    from enclave.tenants import TenantRegistry

    set_quotas(tenants_copy, "acme", '[quotas]\n[quotas.alerts]\nwebhook_url = "ftp://x"')
    with pytest.raises(TenantInvalid, match="quotas.alerts.webhook_url"):
        TenantRegistry.load(tenants_copy)
