"""Usage page (admin, auditor): tokens, turns, cost, refusals and latency over time by
user, assistant or model; quota consumption; open alerts. Plus the alert banner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pandas as pd
import streamlit as st

from enclave.errors import EnclaveError
from enclave.identity import Principal, principal_from_email
from enclave.rbac import Permission, can
from enclave.tenants import Tenant
from enclave.usage import DIMENSIONS, Consumption, Dimension, TenantUsage, tenant_usage
from enclave.workspace import Workspace

PERIODS: dict[str, tuple[int, Literal["hour", "day"]]] = {
    "Last 24 hours": (1, "hour"), "Last 7 days": (7, "day"), "Last 30 days": (30, "day")}
CHARTS = {"Tokens": "tokens", "Turns": "turns", "Cost (USD)": "cost_usd",
          "Refusals": "refusals", "Latency p95 (ms)": "latency_p95_ms"}
TOP_USERS = 10


def banner(ws: Workspace, principal: Principal) -> None:
    """Open alerts, as a warning, for those who may see usage."""
    if not can(principal, Permission.USAGE_VIEW):
        return
    try:
        alerts = tenant_usage(ws, principal).alerts()
    except EnclaveError:
        return
    if alerts:
        latest = alerts[0]
        more = f" (+{len(alerts) - 1} more on the Usage page)" if len(alerts) > 1 else ""
        st.warning(f"**{latest.kind.replace('_', ' ').capitalize()}**: {latest.message}{more}",
                   icon=":material/warning:")


def progress(rows: list[Consumption]) -> None:
    for c in rows:
        st.progress(min(c.fraction, 1.0),
                    text=f"{c.subject} · {c.description}: {c.used:,} ({c.fraction:.0%})"
                    if c.limit != "monthly_budget_usd" else
                    f"{c.subject} · {c.description}: ${c.used / 1e6:,.2f} ({c.fraction:.0%})")


def charts(rows: list[dict[str, Any]], by: str | None) -> None:
    df = pd.DataFrame(rows)
    df["period"] = pd.to_datetime(df["period"])
    for tab, (title, column) in zip(st.tabs(list(CHARTS)), CHARTS.items(), strict=True):
        with tab:
            data = (df.pivot_table(index="period", columns=by, values=column, aggfunc="sum")
                    if by else df.set_index("period")[[column]])
            st.line_chart(data, y_label=title)


def _alerts(usage: TenantUsage, principal: Principal) -> None:
    st.subheader("Open alerts")
    alerts = usage.alerts()
    if not alerts:
        st.caption("No open alerts.")
    for a in alerts:
        cols = st.columns([6, 1])
        cols[0].warning(f"{a.raised_at:%Y-%m-%d %H:%M} UTC · **{a.kind}** · {a.message}")
        if can(principal, Permission.TENANT_SETTINGS) and cols[1].button(
                "Clear", key=f"clear-{a.id}"):
            usage.clear_alert(a.id, principal.email)
            st.rerun()


def page(ws: Workspace, tenant: Tenant, principal: Principal) -> None:
    st.header("Usage")
    try:
        usage = tenant_usage(ws, principal)
        c1, c2 = st.columns(2)
        days, bucket = PERIODS[c1.selectbox("Period", list(PERIODS), index=1)]
        by: Dimension | None = c2.selectbox(
            "Break down by", [None, *DIMENSIONS],
            format_func=lambda b: "Nothing" if b is None else b.capitalize())
        since = datetime.now(UTC) - timedelta(days=days)
        rows = usage.report(since, by, bucket)
        total = usage.report(since, None, "day")
        cols = st.columns(5)
        for col, (label, key) in zip(cols, [("Tokens", "tokens"), ("Turns", "turns"),
                                            ("Cost (USD)", "cost_usd"),
                                            ("Refusals", "refusals"), ("Errors", "errors")],
                                     strict=True):
            value = sum(r[key] for r in total)
            col.metric(label, f"{value:,.2f}" if key == "cost_usd" else f"{value:,}")
        if rows:
            charts(rows, by)
        else:
            st.caption("No usage in this period.")
        st.subheader("Quota consumption")
        progress(usage.quota())
        for row in usage.totals(since, "user")[:TOP_USERS]:
            try:
                user = principal_from_email(ws.tenants, tenant.slug, row["user"], "ui")
            except EnclaveError:
                continue  # a user hash without a known email
            progress([c for c in usage.quota(user) if c.used])
        _alerts(usage, principal)
    except EnclaveError as e:
        st.error(str(e))
