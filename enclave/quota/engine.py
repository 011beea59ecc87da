"""The quota engine: which limits a turn is under, reserve before the model call, settle
or release after, alerts at thresholds and breaches, throttles.

Scopes are a list (tenant, user, API key); each has the five limits of ``Limits``:
requests and tokens per minute (moving windows), tokens per day and per month and a
monthly cost budget (totals per UTC calendar period). A turn reserves its estimate
(prompt estimate + max output tokens, and their cost) on every counter at once, or is
refused before any model call; after the model it settles budgets to the real usage,
or gives them back when the call failed. Windows count admitted requests and reserved
tokens (what the endpoint was asked for) and are not refunded.

Counters live in a ``limits`` storage: ``memory://`` (one process) by default,
``ENCLAVE_LIMITS_URL=redis://...`` shares them across processes. When the storage is
down a tenant fails closed (``on_storage_error = "closed"``, the default) or open.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from limits import RateLimitItemPerMinute
from limits.errors import ConfigurationError, StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string

from enclave.errors import QuotaExceeded, QuotaUnavailable
from enclave.hookspecs import Alert
from enclave.quota.counters import Counter, Counters
from enclave.tenants import Limits, Tenant

if TYPE_CHECKING:
    from enclave.identity import Principal
    from enclave.turns import Usage

log = logging.getLogger(__name__)
LIMITS_URL_ENV = "ENCLAVE_LIMITS_URL"
WINDOWS = ("requests_per_minute", "tokens_per_minute")
PERIODS = {"tokens_per_day": "day", "tokens_per_month": "month",
           "monthly_budget_usd": "month"}
THROTTLE_CACHE_SECONDS = 5.0
STORAGE_DOWN_ALERT_SECONDS = 300.0
CHECKS_CACHE_SIZE = 10_000

Kind = Literal["tenant", "user", "api_key"]
AlertSink = Callable[[Tenant, Alert], None]
# (tenant, scope, limit, period start) -> what the metering rows say was used
Seeder = Callable[[Tenant, "Scope", str, datetime], int]


@dataclass(frozen=True)
class Scope:
    """Who a limit applies to: the tenant, a user (``id`` = pseudonymous user hash) or an
    API key (``id`` = the key's id). ``name`` is shown to admins."""

    kind: Kind
    id: str
    name: str


@dataclass(frozen=True)
class Check:
    """One limit of one scope, as a counter."""

    scope: Scope
    limit: str
    value: int  # requests, tokens, or micro-USD for the cost budget
    counter: Counter
    resets_at: float | None = None  # budgets: the end of the calendar period

    def amount(self, tokens: int, cost_micros: int) -> int:
        if self.limit == "requests_per_minute":
            return 1
        return cost_micros if self.limit == "monthly_budget_usd" else tokens


@dataclass
class Reservation:
    """What a turn holds until it is settled or released (each happens at most once)."""

    tenant: Tenant
    model: str
    tokens: int
    cost_micros: int
    budgets: list[Check] = field(default_factory=list)
    metered: bool = True
    done: bool = False


def period_start(period: str, now: datetime) -> datetime:
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == "day" else day.replace(day=1)


def period_end(period: str, now: datetime) -> datetime:
    start = period_start(period, now)
    if period == "day":
        return start + timedelta(days=1)
    return (start + timedelta(days=32)).replace(day=1)


def describe(limit: str, value: int) -> str:
    """``"30 requests per minute"``, ``"a monthly budget of $250.00"``."""
    if limit == "monthly_budget_usd":
        return f"a monthly budget of ${value / 1e6:,.2f}"
    return f"{value:,} {limit.replace('_', ' ')}"


def in_words(seconds: float) -> str:
    """``"12 seconds"``, ``"3 minutes"``, ``"5 hours"``, ``"9 days"``."""
    s = max(1, math.ceil(seconds))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= 2 * size:
            n = round(s / size)
            return f"{n} {unit}s"
    return f"{s} second{'s' if s != 1 else ''}"


def _lowered(value: int | None, to: int) -> int:
    return to if value is None else min(value, to)


def _redacted(url: str) -> str:
    return url.split("@", 1)[-1] if "@" in url else url


class QuotaEngine:
    def __init__(self, url: str | None = None, *, alert: AlertSink | None = None,
                 seed: Seeder | None = None) -> None:
        self.url = url or os.environ.get(LIMITS_URL_ENV) or "memory://"
        try:
            storage = storage_from_string(self.url, wrap_exceptions=True, socket_timeout=1.0,
                                          socket_connect_timeout=1.0)
        except ConfigurationError as e:
            raise QuotaUnavailable(f"{LIMITS_URL_ENV}={_redacted(self.url)}: {e}") from None
        if not isinstance(storage, Storage):
            raise QuotaUnavailable(f"{LIMITS_URL_ENV}={_redacted(self.url)}: an async "
                                   "storage cannot be used here; use memory:// or redis://")
        self.storage = storage
        try:
            self.counters = Counters(storage)
        except TypeError as e:
            raise QuotaUnavailable(f"{LIMITS_URL_ENV}={_redacted(self.url)}: {e}; use "
                                   "memory:// or redis://") from None
        self._down_errors: tuple[type[BaseException], ...] = (
            (StorageError,) if isinstance(storage, MemoryStorage)
            else (StorageError, storage.base_exceptions))  # type: ignore[assignment]
        self._alert = alert
        self._seed = seed if isinstance(storage, MemoryStorage) else None
        self._seeded: set[str] = set()
        self._once_local: dict[str, float] = {}
        self._throttles: dict[str, tuple[bool, float]] = {}
        self._checks: dict[tuple[object, ...], tuple[Check, ...]] = {}
        self._lock = threading.Lock()
        self._seed_lock = threading.Lock()

    # -- which limits apply ------------------------------------------------------------
    def scopes(self, tenant: Tenant, principal: Principal | None,
               api_key_id: str | None = None, throttled: bool = False
               ) -> list[tuple[Scope, Limits]]:
        """The scopes of a turn and their limits (a throttled user's are lowered)."""
        q = tenant.quotas
        out = [(Scope("tenant", tenant.slug, tenant.name), q.tenant)]
        if principal is not None:
            limits = q.user_limits(principal.email, principal.roles)
            if throttled:
                a = q.anomaly
                limits = limits.model_copy(update={
                    "requests_per_minute": _lowered(limits.requests_per_minute,
                                                    a.throttle_requests_per_minute),
                    "tokens_per_minute": _lowered(limits.tokens_per_minute,
                                                  a.throttle_tokens_per_minute)})
            out.append((Scope("user", principal.user_hash, principal.email), limits))
        if api_key_id is not None:
            out.append((Scope("api_key", api_key_id, f"API key {api_key_id}"), q.api_key))
        return out

    def checks(self, tenant: Tenant, principal: Principal | None,
               api_key_id: str | None = None, now: float | None = None) -> tuple[Check, ...]:
        """Every limit of a turn, as counters (cached per user and UTC day)."""
        now = time.time() if now is None else now
        throttled = principal is not None and self.throttled(tenant, principal.user_hash)
        who = (principal.user_hash, principal.email, principal.roles) if principal else None
        key = (tenant.slug, id(tenant.quotas), who, throttled, api_key_id, int(now // 86400))
        found = self._checks.get(key)
        if found is None:
            if len(self._checks) > CHECKS_CACHE_SIZE:
                self._checks.clear()
            found = self._checks[key] = tuple(self._build_checks(
                tenant, self.scopes(tenant, principal, api_key_id, throttled), now))
        return found

    def _build_checks(self, tenant: Tenant, scopes: list[tuple[Scope, Limits]], now: float
                      ) -> list[Check]:
        at = datetime.fromtimestamp(now, UTC)
        out: list[Check] = []
        for scope, limits in scopes:
            base = f"enclave/{tenant.slug}/{scope.kind}/{scope.id}/"
            for name, raw in limits.model_dump().items():
                if raw is None:
                    continue
                value = round(raw * 1e6) if name == "monthly_budget_usd" else int(raw)
                if name in WINDOWS:
                    item = RateLimitItemPerMinute(value, namespace=f"enclave-{name}")
                    window = Counter.tokens if name == "tokens_per_minute" else Counter.window
                    out.append(Check(scope, name, value, window(item, base + name)))
                else:
                    period = PERIODS[name]
                    end = period_end(period, at)
                    tag = period_start(period, at).strftime("%Y-%m-%d")
                    expiry = int((end - at).total_seconds()) + 86400
                    out.append(Check(scope, name, value,
                                     Counter("budget", f"{base}{name}/{tag}", value, expiry),
                                     end.timestamp()))
        return out

    # -- a turn ------------------------------------------------------------------------
    def reserve(self, tenant: Tenant, principal: Principal, model: str, prompt_tokens: int,
                max_output: int, api_key_id: str | None = None) -> Reservation:
        """Hold the turn's estimate on every limit, or raise ``QuotaExceeded`` (which
        limit, when to retry) or ``QuotaUnavailable`` (storage down, failing closed)."""
        price = tenant.quotas.price(model)
        tokens = prompt_tokens + max_output
        cost = price.cost_micros(prompt_tokens, max_output) if price else 0
        try:
            now = time.time()
            checks = self.checks(tenant, principal, api_key_id, now)
            self._seed_budgets(tenant, checks)
            refused = self.counters.acquire([c.counter for c in checks],
                                            [c.amount(tokens, cost) for c in checks])
        except self._down_errors as e:
            return self._storage_down(tenant, model, tokens, cost, e)
        if refused is not None:
            check = checks[refused.index]
            raise self._refusal(tenant, check, check.amount(tokens, cost), refused.retry_at)
        return Reservation(tenant, model, tokens, cost,
                           [c for c in checks if c.counter.kind == "budget"])

    def settle(self, r: Reservation, usage: Usage) -> None:
        """Replace the estimate by the real usage on every budget; alert at thresholds."""
        if r.done or not r.metered:
            return
        r.done = True
        price = r.tenant.quotas.price(r.model)
        cost = price.cost_micros(usage.prompt_tokens, usage.completion_tokens) if price else 0
        deltas = [c.amount(usage.total_tokens, cost) - c.amount(r.tokens, r.cost_micros)
                  for c in r.budgets]
        try:
            totals = self.counters.adjust([c.counter for c in r.budgets], deltas)
            for check, total in zip(r.budgets, totals, strict=True):
                self._thresholds(r.tenant, check, total)
        except self._down_errors:
            log.exception("quota: settling a turn of %s failed", r.tenant.slug)

    def release(self, r: Reservation) -> None:
        """Give the budgets back (the model call failed or the turn was abandoned)."""
        if r.done or not r.metered:
            return
        r.done = True
        try:
            self.counters.adjust([c.counter for c in r.budgets],
                                 [-c.amount(r.tokens, r.cost_micros) for c in r.budgets])
        except self._down_errors:
            log.exception("quota: releasing a turn of %s failed", r.tenant.slug)

    def consumption(self, tenant: Tenant, principal: Principal | None = None
                    ) -> list[tuple[Check, int]]:
        """Every limit of the tenant (and of ``principal``) with what it holds now."""
        checks = self.checks(tenant, principal)
        if principal is not None:
            checks = tuple(c for c in checks if c.scope.kind != "tenant")
        self._seed_budgets(tenant, checks)
        return [(c, self.counters.used(c.counter)) for c in checks]

    # -- throttles ---------------------------------------------------------------------
    def _throttle_key(self, tenant: Tenant, user_hash: str) -> str:
        return f"enclave/{tenant.slug}/throttle/{user_hash}"

    def throttle(self, tenant: Tenant, user_hash: str, on: bool = True) -> None:
        """Lower a user's minute limits to the tenant's throttle values, or lift that."""
        key = self._throttle_key(tenant, user_hash)
        self.storage.clear(key)
        if on:
            self.storage.incr(key, 10 * 365 * 86400, 1)
        self._throttles[key] = (on, time.monotonic())

    def throttled(self, tenant: Tenant, user_hash: str) -> bool:
        key = self._throttle_key(tenant, user_hash)
        cached = self._throttles.get(key)
        if cached is None or time.monotonic() - cached[1] > THROTTLE_CACHE_SECONDS:
            cached = (self.storage.get(key) > 0, time.monotonic())
            self._throttles[key] = cached
        return cached[0]

    # -- alerts ------------------------------------------------------------------------
    def once(self, key: str, window_seconds: float) -> bool:
        """True the first time ``key`` is seen in a window, across processes sharing the
        storage (in this process only while the storage is down)."""
        now = time.monotonic()
        with self._lock:
            if self._once_local.get(key, 0) > now:
                return False
            self._once_local[key] = now + window_seconds
        try:
            return self.storage.incr(f"enclave/once/{key}", math.ceil(window_seconds)) == 1
        except self._down_errors:
            return True

    def raise_alert(self, tenant: Tenant, alert: Alert, key: str, window: float) -> bool:
        """Deliver ``alert`` unless ``key`` was raised in the last ``window`` seconds."""
        if self._alert is None or not self.once(f"{tenant.slug}/{key}", window):
            return False
        self._alert(tenant, alert)
        return True

    def _thresholds(self, tenant: Tenant, check: Check, total: int) -> None:
        for t in tenant.quotas.alerts.thresholds:
            if total >= t * check.value:
                full = t >= 1
                self.raise_alert(tenant, Alert(
                    "quota_threshold", "critical" if full else "warning",
                    f"{check.scope.name} used {total / max(check.value, 1):.0%} of "
                    f"{describe(check.limit, check.value)}.",
                    {"scope": check.scope.kind, "subject": check.scope.id,
                     "limit": check.limit, "threshold": t, "used": total,
                     "value": check.value}),
                    f"threshold/{check.counter.key}/{t}",
                    max(60.0, (check.resets_at or 0) - time.time()))

    def _refusal(self, tenant: Tenant, check: Check, amount: int, retry_at: float | None
                 ) -> QuotaExceeded:
        now = time.time()
        retry_at = None if amount > check.value else retry_at or check.resets_at
        retry = max(1.0, retry_at - now) if retry_at else None
        scope = check.scope
        who = {"tenant": f"{scope.name} has", "user": "You have",
               "api_key": "This API key has"}[scope.kind]
        what = describe(check.limit, check.value)
        if retry is None:
            message = (f"This message needs about {amount:,} tokens, more than {what} "
                       f"allows{' for ' + scope.name if scope.kind == 'tenant' else ''}.")
        else:
            message = f"{who} reached {what}. Try again in {in_words(retry)}."
        self.raise_alert(tenant, Alert(
            "quota_breach", "warning",
            f"{scope.name} was refused a turn: {what} reached.",
            {"scope": scope.kind, "subject": scope.id, "limit": check.limit,
             "value": check.value, "retry_after": retry}),
            f"breach/{check.counter.key}", max(3600.0, (check.resets_at or 0) - now))
        return QuotaExceeded(message, retry, check.limit)

    # -- storage down, seeding ---------------------------------------------------------
    def _storage_down(self, tenant: Tenant, model: str, tokens: int, cost: int,
                      err: BaseException) -> Reservation:
        where = _redacted(self.url)
        if tenant.quotas.on_storage_error == "closed":
            log.error("quota storage %s is unreachable (%s): refusing turns of %s", where,
                      err, tenant.slug)
            raise QuotaUnavailable("Usage limits cannot be checked right now, so the message "
                                   "was not sent. Please try again in a minute.") from None
        self.raise_alert(tenant, Alert(
            "quota_storage_down", "critical",
            f"The quota storage {where} is unreachable; {tenant.name} runs without limits "
            "(on_storage_error = open).", {"error": str(err)}),
            "storage_down", STORAGE_DOWN_ALERT_SECONDS)
        return Reservation(tenant, model, tokens, cost, metered=False)

    def _seed_budgets(self, tenant: Tenant, checks: tuple[Check, ...]) -> None:
        """memory:// starts empty in every process: fill each budget once from the
        metering rows of its period, so a restart does not reset a month."""
        if self._seed is None:
            return
        for c in checks:
            if c.counter.kind == "budget" and c.counter.key not in self._seeded:
                with self._seed_lock:
                    if c.counter.key in self._seeded:
                        continue
                    start = period_start(PERIODS[c.limit], datetime.now(UTC))
                    used = self._seed(tenant, c.scope, c.limit, start)
                    if used:
                        self.counters.adjust([c.counter], [used])
                    self._seeded.add(c.counter.key)
