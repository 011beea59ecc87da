"""Usage analytics over the platform metering rows: per tenant (``TenantUsage``, bound to
one tenant by construction: every query takes its slug) and across tenants for platform
operators (``platform_usage``: figures only, no tenant content, no user names).

Costs are computed from the tenant's current ``[quotas.prices]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from enclave.errors import AccessDenied, BadInput
from enclave.identity import Principal
from enclave.metering import Metering
from enclave.quota.book import StoredAlert
from enclave.quota.engine import Check, Scope, describe
from enclave.rbac import Permission, authorize
from enclave.tenants import Tenant

if TYPE_CHECKING:
    from enclave.workspace import Workspace

OPERATORS_ENV = "ENCLAVE_OPERATORS"
Dimension = Literal["user", "assistant", "model"]
DIMENSIONS: tuple[Dimension, ...] = ("user", "assistant", "model")
_COLUMN = {"user": "u.user_hash", "assistant": "u.assistant", "model": "u.model"}
FIGURES = ("turns", "tokens", "refusals", "errors", "cost_usd", "latency_p50_ms",
           "latency_p95_ms")


def _priced(tenant: Tenant) -> tuple[str, list[Any]]:
    """A ``prices`` CTE of the tenant's per-model prices (and ``default``)."""
    rows: list[Any] = ["\x00none", 0.0, 0.0]
    for model, p in tenant.quotas.prices.items():
        rows += [model, p.input_per_million, p.output_per_million]
    values = ", ".join(["(?, ?, ?)"] * (len(rows) // 3))
    return f"prices(model, inp, outp) AS (VALUES {values})", rows


_COST = ("(u.prompt_tokens * coalesce(p.inp, d.inp, 0) + u.completion_tokens * "
         "coalesce(p.outp, d.outp, 0))")
_JOIN = ("FROM usage u LEFT JOIN prices p ON p.model = u.model "
         "LEFT JOIN prices d ON d.model = 'default'")
_FIGURES_SQL = (
    "count(*), sum(u.prompt_tokens + u.completion_tokens), "
    "count(*) FILTER (WHERE u.outcome = 'refused'), "
    "count(*) FILTER (WHERE u.outcome NOT IN ('ok', 'refused')), "
    f"sum({_COST}) / 1e6, quantile_cont(u.latency_ms, 0.5) FILTER (WHERE u.outcome = 'ok'), "
    "quantile_cont(u.latency_ms, 0.95) FILTER (WHERE u.outcome = 'ok')")


def _figures(row: tuple[Any, ...]) -> dict[str, Any]:
    turns, tokens, refusals, errors, cost, p50, p95 = row
    return {"turns": int(turns), "tokens": int(tokens or 0), "refusals": int(refusals),
            "errors": int(errors), "cost_usd": round(float(cost or 0), 6),
            "latency_p50_ms": round(p50, 1) if p50 is not None else None,
            "latency_p95_ms": round(p95, 1) if p95 is not None else None}


def period_used(metering: Metering, tenant: Tenant, scope: Scope, limit: str,
                since: datetime) -> int:
    """Tokens (or micro-USD for ``monthly_budget_usd``) that ``scope`` used since a time,
    from the metering rows (API keys are not metered per key: 0)."""
    if scope.kind == "api_key":
        return 0
    prices, params = _priced(tenant)
    where = "u.tenant = ? AND u.ts >= ?" + (" AND u.user_hash = ?" if scope.kind == "user"
                                            else "")
    what = _COST if limit == "monthly_budget_usd" else "u.prompt_tokens + u.completion_tokens"
    rows = metering.store.query(
        f"WITH {prices} SELECT coalesce(sum({what}), 0) {_JOIN} WHERE {where}",
        [*params, tenant.slug, since, *([scope.id] if scope.kind == "user" else [])])
    return int(rows[0][0])


@dataclass(frozen=True)
class Consumption:
    scope: str
    subject: str
    limit: str
    description: str
    used: int
    value: int
    resets_at: datetime | None

    @property
    def fraction(self) -> float:
        return self.used / self.value if self.value else 1.0


def parse_since(text: str | None, default_days: int = 30) -> datetime:
    """``YYYY-MM-DD`` (UTC midnight) or an ISO time; default: ``default_days`` ago."""
    if not text:
        return datetime.now(UTC) - timedelta(days=default_days)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"--since '{text}' is not a date (use YYYY-MM-DD)") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class TenantUsage:
    """Usage, quotas and alerts of one tenant."""

    def __init__(self, ws: Workspace, tenant: Tenant) -> None:
        self.ws, self.tenant = ws, tenant

    def report(self, since: datetime, by: Dimension | None = None,
               bucket: Literal["hour", "day"] = "day") -> list[dict[str, Any]]:
        """Figures per ``bucket`` (and per user, assistant or model), oldest first."""
        if by is not None and by not in DIMENSIONS:
            raise BadInput(f"cannot group usage by '{by}' (use one of {', '.join(DIMENSIONS)})")
        prices, params = _priced(self.tenant)
        key = _COLUMN[by] if by else "''"
        rows = self.ws.metering.store.query(
            f"WITH {prices} SELECT date_trunc('{bucket}', timezone('UTC', u.ts)) AS period, "
            f"{key} AS k, {_FIGURES_SQL} {_JOIN} WHERE u.tenant = ? AND u.ts >= ? "
            "GROUP BY period, k ORDER BY period, k", [*params, self.tenant.slug, since])
        names = self.ws.quota_book(self.tenant).users() if by == "user" else {}
        out = []
        for r in rows:
            row: dict[str, Any] = {"period": r[0].isoformat()}
            if by:
                row[by] = names.get(r[1], r[1])
            out.append({**row, **_figures(r[2:])})
        return out

    def totals(self, since: datetime, by: Dimension) -> list[dict[str, Any]]:
        """Figures per user, assistant or model over the whole time."""
        prices, params = _priced(self.tenant)
        rows = self.ws.metering.store.query(
            f"WITH {prices} SELECT {_COLUMN[by]} AS k, {_FIGURES_SQL} {_JOIN} "
            "WHERE u.tenant = ? AND u.ts >= ? GROUP BY k ORDER BY 3 DESC",
            [*params, self.tenant.slug, since])
        names = self.ws.quota_book(self.tenant).users() if by == "user" else {}
        return [{by: names.get(r[0], r[0]), **_figures(r[1:])} for r in rows]

    def quota(self, principal: Principal | None = None) -> list[Consumption]:
        """Current consumption of the tenant's limits (or of one user's)."""
        def row(c: Check, used: int) -> Consumption:
            resets = datetime.fromtimestamp(c.resets_at, UTC) if c.resets_at else None
            return Consumption(c.scope.kind, c.scope.name, c.limit,
                               describe(c.limit, c.value), used, c.value, resets)
        return [row(c, used) for c, used in self.ws.quota.consumption(self.tenant, principal)]

    def alerts(self, open_only: bool = True) -> list[StoredAlert]:
        return self.ws.quota_book(self.tenant).alerts(open_only)

    def clear_alert(self, alert_id: str, by: str) -> StoredAlert:
        """Close an alert; clearing a throttle alert lifts that user's throttle."""
        alert = self.ws.quota_book(self.tenant).clear(alert_id, by)
        if alert.figures.get("throttled"):
            self.ws.quota.throttle(self.tenant, str(alert.figures["subject"]), on=False)
        return alert


def tenant_usage(ws: Workspace, principal: Principal,
                 permission: Permission = Permission.USAGE_VIEW) -> TenantUsage:
    """The principal's own tenant, if its roles allow ``permission``."""
    authorize(principal, permission)
    return TenantUsage(ws, ws.tenant_for(principal))


def is_operator(principal: Principal | None, env: dict[str, str] | None = None) -> bool:
    """Platform operators are the emails listed in ``ENCLAVE_OPERATORS`` (comma
    separated); none when it is unset."""
    listed = (os.environ if env is None else env).get(OPERATORS_ENV, "")
    emails = {e.strip().lower() for e in listed.split(",") if e.strip()}
    return principal is not None and principal.email.lower() in emails


def require_operator(principal: Principal | None) -> None:
    if not is_operator(principal):
        who = principal.email if principal else "anonymous"
        raise AccessDenied(f"{who} is not a platform operator")


def platform_usage(ws: Workspace, principal: Principal | None, since: datetime
                   ) -> list[dict[str, Any]]:
    """Per tenant and day, for operators: figures and open alert counts only."""
    require_operator(principal)
    out = []
    for tenant in ws.tenants:
        prices, params = _priced(tenant)
        rows = ws.metering.store.query(
            f"WITH {prices} SELECT date_trunc('day', timezone('UTC', u.ts)) AS day, "
            f"{_FIGURES_SQL} {_JOIN} WHERE u.tenant = ? AND u.ts >= ? GROUP BY day "
            "ORDER BY day", [*params, tenant.slug, since])
        open_alerts = len(ws.quota_book(tenant).alerts()) if tenant.active else 0
        out += [{"tenant": tenant.slug, "day": r[0].date().isoformat(),
                 "open_alerts": open_alerts, **_figures(r[1:])} for r in rows]
    return out


def platform_quotas(ws: Workspace, principal: Principal | None) -> dict[str, list[Consumption]]:
    """Each active tenant's own limits (tenant scope), for operators."""
    require_operator(principal)
    return {t.slug: TenantUsage(ws, t).quota() for t in ws.tenants if t.active}
