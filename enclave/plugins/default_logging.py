"""Built-in observer: turn metadata (never content) and alerts go to the Python log."""

from __future__ import annotations

import logging

from enclave import hookimpl
from enclave.hookspecs import Alert
from enclave.identity import Principal
from enclave.tenants import Tenant
from enclave.turns import TurnRecord

log = logging.getLogger("enclave.turns")


@hookimpl(trylast=True)
def enclave_after_turn(tenant: Tenant, principal: Principal, record: TurnRecord) -> None:
    tokens = record.usage.total_tokens if record.usage else 0
    log.info("turn tenant=%s user=%s channel=%s assistant=%s model=%s outcome=%s tokens=%d "
             "latency_ms=%.1f", record.tenant, record.user_hash, record.channel,
             record.assistant, record.model, record.outcome, tokens, record.latency_ms)


@hookimpl(trylast=True)
def enclave_alert(tenant: Tenant, alert: Alert) -> None:
    level = logging.WARNING if alert.severity != "info" else logging.INFO
    logging.getLogger("enclave.alerts").log(level, "alert tenant=%s kind=%s: %s %s",
                                            tenant.slug, alert.kind, alert.message,
                                            alert.figures)
