"""Anomaly detection on generated usage histories: a known spike, a refusal burst and an
unusual hour are found with their figures; a flat history raises nothing; a spike can
throttle the user until an admin clears the alert."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from enclave.errors import QuotaExceeded
from enclave.metering import MIGRATIONS, Metering
from enclave.quota.anomaly import detect
from enclave.store import TenantStore
from enclave.tenants import TenantRegistry
from enclave.turns import TurnRecord, Usage
from enclave.usage import TenantUsage
from enclave.workspace import Workspace
from tests.conftest import TENANTS, as_user

NOW = datetime(2030, 1, 7, 12, 30, tzinfo=UTC)
HOUR = NOW.replace(minute=0)


@pytest.fixture
def metering(tmp_path: Path) -> Iterator[Metering]:
    store = TenantStore(tmp_path / "metering.duckdb", os.urandom(32), MIGRATIONS)
    yield Metering(store)
    store.close()


def add(metering: Metering, user: str, at: datetime, turns: int, tokens: int,
        outcome: str = "ok") -> None:
    """``turns`` metering rows of ``tokens`` each for ``user`` in the hour ``at``."""
    for i in range(turns):
        usage = Usage(tokens // 2, tokens - tokens // 2, False) if outcome == "ok" else None
        metering.record(TurnRecord("acme", user, "ui", f"c{i}", "helpdesk", "m",
                                   outcome, "", "", usage, 100.0),  # type: ignore[arg-type]
                        at=at + timedelta(minutes=i % 30))


def flat_history(metering: Metering, user: str, days: int = 7,
                 hours: range = range(24)) -> None:
    for h in range(days * 24, 0, -1):
        at = HOUR - timedelta(hours=h)
        if at.hour in hours:
            add(metering, user, at, 3, 300)


def acme() -> object:
    return TenantRegistry.load(TENANTS).get("acme")


def test_a_flat_history_raises_no_alarm(metering: Metering) -> None:
    flat_history(metering, "u-flat")
    add(metering, "u-flat", HOUR, 3, 300)
    assert detect(metering, acme(), NOW) == []  # type: ignore[arg-type]


def test_a_known_spike_is_found_with_its_figures(metering: Metering) -> None:
    flat_history(metering, "u-spiky")
    flat_history(metering, "u-calm")
    add(metering, "u-spiky", HOUR, 30, 600)
    add(metering, "u-calm", HOUR, 3, 300)
    findings = detect(metering, acme(), NOW)  # type: ignore[arg-type]
    spikes = {(f.scope, f.subject): f for f in findings if f.kind == "usage_spike"}
    assert set(spikes) == {("user", "u-spiky"), ("tenant", "acme")}
    user = spikes[("user", "u-spiky")].figures
    assert user["tokens"] == 18000 and user["baseline_median"] == 900
    assert user["robust_z"] > 100 and user["baseline_hours"] == 7 * 24
    assert spikes[("user", "u-spiky")].hour == HOUR.replace(tzinfo=None)
    assert {f.kind for f in findings} == {"usage_spike"}


def test_refusal_bursts_and_unusual_hours(metering: Metering) -> None:
    flat_history(metering, "u-refused")
    add(metering, "u-refused", HOUR, 25, 0, outcome="refused")
    flat_history(metering, "u-office", hours=range(8, 18))
    late = HOUR.replace(hour=3)
    findings = detect(metering, acme(), late + timedelta(minutes=30))  # type: ignore[arg-type]
    assert not findings, "nothing yet at 03:00 for the office user"
    add(metering, "u-office", late, 4, 300)
    found = {(f.kind, f.subject) for f in detect(metering, acme(),  # type: ignore[arg-type]
                                                 late + timedelta(minutes=30))}
    assert ("unusual_hour", "u-office") in found
    burst = [f for f in detect(metering, acme(), NOW)  # type: ignore[arg-type]
             if f.kind == "refusal_burst"]
    assert [(f.subject, f.figures["refusals"]) for f in burst if f.scope == "user"] == [
        ("u-refused", 25)]


def test_a_spike_throttles_the_user_until_an_admin_clears_it(
        make_ws: Callable[..., Workspace]) -> None:
    ws = make_ws("[quotas]\nrequests_per_minute = 100\n[quotas.anomaly]\n"
                 "auto_throttle = true\nthrottle_requests_per_minute = 2")
    tenant = ws.tenants.get("acme")
    bob = as_user(ws, "acme", "bob@acme.example")
    ws.quota_book(tenant).remember_user(bob.user_hash, bob.email)
    flat_history(ws.metering, bob.user_hash)
    add(ws.metering, bob.user_hash, HOUR, 40, 600)
    findings = ws.anomalies.scan(tenant, NOW)
    assert any(f.kind == "usage_spike" and f.subject == bob.user_hash for f in findings)
    assert ws.anomalies.scan(tenant, NOW), "found again..."
    alerts = TenantUsage(ws, tenant).alerts()
    spike = [a for a in alerts if a.kind == "usage_spike" and a.figures["scope"] == "user"]
    assert len(spike) == 1, "...but alerted once"
    assert spike[0].message.startswith("bob@acme.example used 24,000 tokens")
    assert "throttled until an admin clears this alert" in spike[0].message
    for _ in range(2):
        ws.quota.reserve(tenant, bob, "m", 1, 1)
    with pytest.raises(QuotaExceeded, match="2 requests per minute"):
        ws.quota.reserve(tenant, bob, "m", 1, 1)
    TenantUsage(ws, tenant).clear_alert(spike[0].id, "alice@acme.example")
    assert not ws.quota.throttled(tenant, bob.user_hash)
    ws.quota.reserve(tenant, bob, "m", 1, 1)
