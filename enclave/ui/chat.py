"""Chat page: the assistant picker and your conversations in the sidebar; the selected
conversation and a chat box with the streamed answer in the main area."""

from __future__ import annotations

import time
from collections.abc import Iterator

import streamlit as st

from enclave.errors import EnclaveError
from enclave.identity import Principal
from enclave.tenants import Tenant
from enclave.turns import Citation, Event, Final, Token
from enclave.ui import branding
from enclave.ui.session import set_state, state
from enclave.workspace import Workspace

UI_BATCH_SECONDS = 0.05


def batched_text(events: Iterator[Event], done: list[Final],
                 every: float = UI_BATCH_SECONDS) -> Iterator[str]:
    """Tokens joined into one UI update per ``every`` seconds; the Final goes to ``done``."""
    pending: list[str] = []
    last = time.monotonic()
    for event in events:
        if isinstance(event, Token):
            pending.append(event.text)
            if time.monotonic() - last >= every:
                yield "".join(pending)
                pending.clear()
                last = time.monotonic()
        elif isinstance(event, Final):
            done.append(event)
    if pending:
        yield "".join(pending)


def citations(cited: tuple[Citation, ...]) -> None:
    """The sources of an answer, one expander each: title, page or section, snippet."""
    for c in cited:
        where = f"p. {c.page}" if c.page is not None else (c.section or "")
        with st.expander(f"[{c.number}] {c.title}" + (f" · {where}" if where else ""),
                         icon=":material/description:"):
            st.caption(f"chunk {c.chunk_id} · score {c.score:.4f}")
            st.markdown(c.snippet)


def _sidebar(ws: Workspace, tenant: Tenant, principal: Principal) -> str | None:
    current = state(principal, "conversation")
    with st.sidebar:
        names = {a.slug: a.name for a in tenant.assistants.values()}
        selected = state(principal, "assistant")
        if selected not in names:  # none yet, or the tenant removed it
            selected = tenant.default_assistant.slug
        chosen = st.selectbox("Assistant", list(names), format_func=names.__getitem__,
                              index=list(names).index(selected))
        set_state(principal, "assistant", chosen)
        st.caption(tenant.assistant(chosen).description)
        if st.button("New chat", icon=":material/add:", use_container_width=True):
            set_state(principal, "conversation", None)
            st.rerun()
        st.subheader("Conversations")
        conversations = ws.list_conversations(principal)
        if not conversations:
            st.caption("No conversations yet.")
        for conv in conversations:
            label = ("▸ " if conv.id == current else "") + conv.title
            if st.button(label, key=f"open-{conv.id}", use_container_width=True):
                set_state(principal, "conversation", conv.id)
                set_state(principal, "assistant", conv.assistant)
                st.rerun()
        if current and any(c.id == current for c in conversations):
            with st.expander("Manage this conversation"):
                title = st.text_input("Title", key=f"title-{current}")
                if st.button("Rename", key="rename") and title:
                    ws.rename_conversation(principal, current, title)
                    st.rerun()
                if st.button("Delete", key="delete", type="primary"):
                    ws.delete_conversation(principal, current)
                    set_state(principal, "conversation", None)
                    st.rerun()
        elif current:
            set_state(principal, "conversation", None)
            current = None
        st.divider()
        st.caption(f"{principal.name} · {tenant.name}")
        st.button("Sign out", on_click=st.logout, icon=":material/logout:")
    return current


def page(ws: Workspace, tenant: Tenant, principal: Principal) -> None:
    branding.header(tenant)
    try:
        current = _sidebar(ws, tenant, principal)
        for msg in ws.messages(principal, current) if current else []:
            with st.chat_message(msg.role):
                st.markdown(msg.content)
                citations(msg.citations)
    except EnclaveError as e:
        st.error(str(e))
        return
    assistant = tenant.assistant(state(principal, "assistant"))
    text = st.chat_input(f"Message {assistant.name}")
    if not text:
        return
    with st.chat_message("user"):
        st.markdown(text)
    with st.chat_message("assistant"):
        done: list[Final] = []
        try:
            events = ws.chat(principal, text, current, assistant.slug)
            st.write_stream(batched_text(events, done))
            if done:
                citations(done[0].citations)
        except EnclaveError as e:
            st.error(str(e))
            return
    if done:
        usage = done[0].usage
        st.caption(f"{usage.total_tokens} tokens{' (estimated)' if usage.estimated else ''}"
                   f" · {done[0].latency_ms / 1000:.1f} s")
        set_state(principal, "conversation", done[0].conversation_id)
        if current is None:
            st.rerun()
