"""Anomaly detection over the metering rows (DuckDB SQL), per user and per tenant.

For the current and the previous hour, each subject is compared with its own trailing
baseline of hourly tokens (hours without use count as 0, from its first use on):

- ``usage_spike``: robust z-score ``(tokens - median) / max(1.4826 * MAD, 10% of the
  median, 1)`` at or above ``z_threshold``, with at least ``min_tokens`` tokens;
- ``refusal_burst``: at least ``refusal_burst`` refused turns in the hour;
- ``unusual_hour``: turns at an hour of the day that held less than
  ``unusual_hour_share`` of the subject's baseline turns.

Each finding becomes an alert with its figures (once per subject, kind and hour); with
``auto_throttle`` a user's spike also throttles that user until an admin clears it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from enclave.hookspecs import Alert
from enclave.metering import Metering
from enclave.quota.engine import QuotaEngine
from enclave.tenants import Tenant

log = logging.getLogger(__name__)
SCAN_EVERY_SECONDS = 300.0
MIN_UNUSUAL_HOUR_BASELINE_TURNS = 50
MIN_UNUSUAL_HOUR_TURNS = 3

_HOURLY_SQL = """
WITH rows AS (
    SELECT {subject} AS subject, date_trunc('hour', timezone('UTC', ts)) AS hour,
           prompt_tokens + completion_tokens AS tokens, outcome
    FROM usage WHERE tenant = ? AND ts >= ? AND ts < ?),
firsts AS (SELECT subject, min(hour) AS first_hour FROM rows GROUP BY subject),
hours AS (SELECT unnest(generate_series(?::TIMESTAMP, ?::TIMESTAMP, INTERVAL 1 HOUR)) AS hour),
grid AS (SELECT f.subject, h.hour FROM firsts f JOIN hours h ON h.hour >= f.first_hour),
hourly AS (
    SELECT g.subject, g.hour, coalesce(sum(r.tokens), 0) AS tokens, count(r.tokens) AS turns,
           count(r.tokens) FILTER (WHERE r.outcome = 'refused') AS refusals
    FROM grid g LEFT JOIN rows r ON r.subject = g.subject AND r.hour = g.hour
    GROUP BY g.subject, g.hour)
SELECT e.subject, e.hour, any_value(e.tokens), any_value(e.turns), any_value(e.refusals),
       coalesce(median(b.tokens), 0), coalesce(mad(b.tokens), 0), count(b.hour),
       coalesce(sum(b.turns) FILTER (WHERE hour(b.hour) = hour(e.hour)), 0),
       coalesce(sum(b.turns), 0)
FROM hourly e LEFT JOIN hourly b ON b.subject = e.subject AND b.hour < e.hour
     AND b.hour >= e.hour - to_hours(?::BIGINT)
WHERE e.hour >= ?
GROUP BY e.subject, e.hour
ORDER BY e.hour, e.subject
"""


@dataclass(frozen=True)
class Finding:
    kind: str  # usage_spike | refusal_burst | unusual_hour
    scope: str  # user | tenant
    subject: str  # user hash, or the tenant slug
    hour: datetime
    figures: dict[str, Any]


def hourly_stats(metering: Metering, tenant: Tenant, now: datetime) -> list[dict[str, Any]]:
    """Per subject (each user, and the tenant as a whole) and evaluated hour: its tokens,
    turns, refusals and its baseline's median, MAD, hours and hour-of-day share."""
    a = tenant.quotas.anomaly
    now_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None)
    start = now_hour - timedelta(hours=a.baseline_hours + 1)
    out = []
    for scope, subject in (("user", "user_hash"), ("tenant", "'tenant'")):
        rows = metering.store.query(_HOURLY_SQL.format(subject=subject), [
            tenant.slug, start.replace(tzinfo=UTC), now, start, now_hour, a.baseline_hours,
            now_hour - timedelta(hours=1)])
        for r in rows:
            med, mad = float(r[5]), float(r[6])
            scale = max(1.4826 * mad, 0.1 * med, 1.0)
            out.append({"scope": scope, "subject": tenant.slug if scope == "tenant" else r[0],
                        "hour": r[1], "tokens": int(r[2]), "turns": int(r[3]),
                        "refusals": int(r[4]), "baseline_median": med, "baseline_mad": mad,
                        "baseline_hours": int(r[7]), "robust_z": round((r[2] - med) / scale, 2),
                        "same_hour_turns": int(r[8]), "baseline_turns": int(r[9])})
    return out


def detect(metering: Metering, tenant: Tenant, now: datetime | None = None) -> list[Finding]:
    a = tenant.quotas.anomaly
    findings = []
    for s in hourly_stats(metering, tenant, now or datetime.now(UTC)):
        base = {k: s[k] for k in ("tokens", "turns", "refusals", "baseline_median",
                                  "baseline_mad", "baseline_hours", "robust_z")}
        found = []
        if (s["baseline_hours"] >= a.min_history_hours and s["tokens"] >= a.min_tokens
                and s["robust_z"] >= a.z_threshold):
            found.append("usage_spike")
        if s["refusals"] >= a.refusal_burst:
            found.append("refusal_burst")
        if (s["baseline_hours"] >= a.min_history_hours
                and s["baseline_turns"] >= MIN_UNUSUAL_HOUR_BASELINE_TURNS
                and s["turns"] >= MIN_UNUSUAL_HOUR_TURNS
                and s["same_hour_turns"] < a.unusual_hour_share * s["baseline_turns"]):
            found.append("unusual_hour")
            base = {**base, "same_hour_turns": s["same_hour_turns"],
                    "baseline_turns": s["baseline_turns"]}
        findings += [Finding(k, s["scope"], s["subject"], s["hour"], base) for k in found]
    return findings


_TEXT = {
    "usage_spike": "used {tokens:,} tokens in the hour from {hour}, far above its usual "
                   "{baseline_median:,.0f} (robust z-score {robust_z:g})",
    "refusal_burst": "was refused {refusals:,} turns in the hour from {hour}",
    "unusual_hour": "made {turns:,} turns in the hour from {hour}, an hour it almost never "
                    "uses ({same_hour_turns} of {baseline_turns} turns before)",
}


class AnomalyScanner:
    """Scans a tenant's metering rows for anomalies, at most every few minutes per
    tenant, in the background, after turns."""

    def __init__(self, metering: Callable[[], Metering], engine: QuotaEngine,
                 users: Callable[[Tenant], dict[str, str]],
                 every: float = SCAN_EVERY_SECONDS) -> None:
        self._metering, self._engine, self._users, self.every = metering, engine, users, every
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def maybe_scan(self, tenant: Tenant) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(tenant.slug, -self.every) < self.every:
                return
            self._last[tenant.slug] = now
        threading.Thread(target=self._scan_logged, args=(tenant,), daemon=True,
                         name=f"anomaly-scan-{tenant.slug}").start()

    def _scan_logged(self, tenant: Tenant) -> None:
        try:
            self.scan(tenant)
        except Exception:
            log.exception("anomaly scan of %s failed", tenant.slug)

    def scan(self, tenant: Tenant, now: datetime | None = None) -> list[Finding]:
        """Detect, alert (once per subject, kind and hour), throttle if configured."""
        findings = detect(self._metering(), tenant, now)
        names = self._users(tenant) if any(f.scope == "user" for f in findings) else {}
        for f in findings:
            who = tenant.name if f.scope == "tenant" else names.get(f.subject, f"user {f.subject}")
            throttle = (f.kind == "usage_spike" and f.scope == "user"
                        and tenant.quotas.anomaly.auto_throttle)
            message = f"{who} " + _TEXT[f.kind].format(hour=f"{f.hour:%Y-%m-%d %H:00} UTC",
                                                        **f.figures)
            if throttle:
                message += "; throttled until an admin clears this alert"
            alert = Alert(f.kind, "warning", message + ".",
                          {**f.figures, "scope": f.scope, "subject": f.subject,
                           "hour": f.hour.isoformat(), "throttled": throttle})
            key = f"anomaly/{f.kind}/{f.scope}/{f.subject}/{f.hour:%Y%m%d%H}"
            if self._engine.raise_alert(tenant, alert, key, 7200) and throttle:
                self._engine.throttle(tenant, f.subject)
        return findings
