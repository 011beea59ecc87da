"""Logs page (auditor, admin): filter the tenant's turn log, open a turn, export it.
Every view, opened turn and export is audited by the workspace."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import partial

import streamlit as st

from enclave.errors import EnclaveError
from enclave.identity import Principal
from enclave.tenants import Tenant
from enclave.turnlog import OUTCOMES, LogEntry, LogFilter
from enclave.ui.session import set_state, state
from enclave.workspace import Workspace


def _filters(tenant: Tenant) -> LogFilter:
    c1, c2, c3, c4 = st.columns(4)
    user = c1.text_input("User (email)", key="logs-user").strip().lower() or None
    assistants = {a.slug: a.name for a in tenant.assistants.values()}
    assistant = c2.selectbox("Assistant", [None, *assistants], key="logs-assistant",
                             format_func=lambda s: "All" if s is None else assistants[s])
    outcome = c3.selectbox("Outcome", [None, *OUTCOMES], key="logs-outcome",
                           format_func=lambda o: "All" if o is None else o)
    today = datetime.now(UTC).date()
    days = c4.date_input("Dates", (today - timedelta(days=7), today), key="logs-dates")
    since = until = None
    if isinstance(days, tuple) and len(days) == 2:
        since, until = _start(days[0]), _start(days[1]) + timedelta(days=1)
    return LogFilter(user=user, assistant=assistant, outcome=outcome, since=since,
                     until=until)


def _start(d: date) -> datetime:
    return datetime.combine(d, time.min, tzinfo=UTC)


def _rows(ws: Workspace, principal: Principal, f: LogFilter) -> list[LogEntry]:
    """The turns for ``f``: read (and audited) once per filter, not on every rerun."""
    cached = state(principal, "logs-view")
    if st.button("Refresh", icon=":material/refresh:", key="logs-refresh"):
        cached = None
    if cached is None or cached[0] != f:
        cached = (f, ws.read_logs(principal, f))
        set_state(principal, "logs-view", cached)
    rows: list[LogEntry] = cached[1]
    return rows


def page(ws: Workspace, tenant: Tenant, principal: Principal) -> None:
    st.header("Turn logs")
    try:
        f = _filters(tenant)
        rows = _rows(ws, principal, f)
    except EnclaveError as e:
        st.error(str(e))
        return
    st.caption(f"{len(rows)} turn(s) · content kept: {tenant.logging.content} · "
               f"retention: {tenant.logging.retention_days} days · every view is audited")
    st.dataframe([{"time": e.ts, "user": e.user_id, "assistant": e.assistant,
                   "outcome": e.outcome, "tokens": e.prompt_tokens + e.completion_tokens,
                   "estimated": e.tokens_estimated, "latency ms": round(e.latency_ms),
                   "id": e.id} for e in rows], hide_index=True, use_container_width=True)
    c1, c2 = st.columns(2)
    for col, fmt, mime in ((c1, "csv", "text/csv"), (c2, "json", "application/json")):
        col.download_button(f"Export {fmt.upper()}", key=f"export-{fmt}", mime=mime,
                            file_name=f"{tenant.slug}-turns.{fmt}",
                            data=partial(ws.export_logs, principal, fmt, f))
    if not rows:
        return
    chosen = st.selectbox("Open a turn", [None, *(e.id for e in rows)], key="logs-open",
                          format_func=lambda i: "Select a turn" if i is None else i)
    if chosen:
        try:
            entry = _opened(ws, principal, chosen)
        except EnclaveError as e:
            st.error(str(e))
            return
        st.subheader(f"Turn {entry.id}")
        st.write(f"**{entry.user_id}** · {entry.assistant} · {entry.model} · "
                 f"{entry.outcome} · conversation `{entry.conversation_id}`")
        st.markdown("**Prompt**")
        st.text(entry.prompt if entry.prompt is not None else "(not kept: metadata only)")
        st.markdown("**Response**")
        st.text(entry.response if entry.response is not None else "(not kept)")
        if entry.chunk_ids:
            st.caption("Retrieved chunks: " + ", ".join(entry.chunk_ids))
        if entry.error:
            st.error(entry.error)


def _opened(ws: Workspace, principal: Principal, entry_id: str) -> LogEntry:
    cached = state(principal, "logs-opened")
    if cached is None or cached.id != entry_id:
        cached = ws.log_entry(principal, entry_id)
        set_state(principal, "logs-opened", cached)
    entry: LogEntry = cached
    return entry
