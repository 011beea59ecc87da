"""Built-in alert webhook: a JSON POST with a Slack-compatible body (``text`` and
``blocks``, plus an ``enclave`` object with the figures) to the tenant's
``[quotas.alerts] webhook_url``.

Delivery runs on one background thread, with a timeout per attempt and retries with
backoff on network errors, 429 and 5xx, so a slow or failing webhook never blocks a
chat turn. When the queue is full an alert is dropped and logged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from enclave import hookimpl
from enclave.hookspecs import Alert
from enclave.tenants import Tenant

log = logging.getLogger(__name__)
BACKOFF_SECONDS = 0.5
QUEUE_SIZE = 1000


@dataclass(frozen=True)
class Delivery:
    url: str
    body: dict[str, Any]
    timeout: float
    retries: int


def slack_body(tenant: Tenant, alert: Alert) -> dict[str, Any]:
    figures = " · ".join(f"{k}: {v}" for k, v in alert.figures.items())
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {
        "type": "mrkdwn",
        "text": f"*{tenant.name}* · `{alert.kind}` · {alert.severity}\n{alert.message}"}}]
    if figures:
        blocks.append({"type": "context",
                       "elements": [{"type": "mrkdwn", "text": figures[:2900]}]})
    return {"text": f"[{tenant.name}] {alert.severity}: {alert.message}", "blocks": blocks,
            "enclave": {"tenant": tenant.slug, "kind": alert.kind,
                        "severity": alert.severity, "message": alert.message,
                        "figures": alert.figures}}


def _host(url: str) -> str:
    """The webhook's host only: its path and query often hold its secret."""
    return httpx.URL(url).host


class WebhookSender:
    def __init__(self) -> None:
        self._queue: queue.Queue[Delivery] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, delivery: Delivery) -> None:
        """Queue a delivery (never blocks)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="alert-webhook")
                self._thread.start()
        try:
            self._queue.put_nowait(delivery)
        except queue.Full:
            log.error("alert webhook queue is full: dropped an alert for %s",
                      _host(delivery.url))

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued delivery is done (delivered or given up)."""
        with self._queue.all_tasks_done:
            return self._queue.all_tasks_done.wait_for(
                lambda: self._queue.unfinished_tasks == 0, timeout)

    def _run(self) -> None:
        with httpx.Client() as client:
            while True:
                delivery = self._queue.get()
                try:
                    self._deliver(client, delivery)
                finally:
                    self._queue.task_done()

    def _deliver(self, client: httpx.Client, d: Delivery) -> None:
        for attempt in range(d.retries + 1):
            if attempt:
                time.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
            try:
                status = client.post(d.url, json=d.body, timeout=d.timeout).status_code
            except httpx.HTTPError as e:
                problem = f"{type(e).__name__}: {e}"
            else:
                if status < 300:
                    return
                problem = f"HTTP {status}"
                if status < 500 and status != 429:
                    break
            log.warning("alert webhook %s failed (attempt %d): %s", _host(d.url), attempt + 1,
                        problem)
        log.error("alert webhook %s: gave up on an alert", _host(d.url))


sender = WebhookSender()


@hookimpl(trylast=True)
def enclave_alert(tenant: Tenant, alert: Alert) -> None:
    settings = tenant.quotas.alerts
    if settings.webhook_url:
        sender.submit(Delivery(settings.webhook_url, slack_body(tenant, alert),
                               settings.webhook_timeout_seconds, settings.webhook_retries))
