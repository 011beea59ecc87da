"""Audit page (auditor, admin): the tenant's audit trail and its verification status."""

from __future__ import annotations

import streamlit as st

from enclave.errors import EnclaveError
from enclave.identity import Principal
from enclave.tenants import Tenant
from enclave.workspace import Workspace

SHOWN = 500


def page(ws: Workspace, tenant: Tenant, principal: Principal) -> None:
    st.header("Audit trail")
    try:
        entries, result = ws.audit_trail(principal, SHOWN)
    except EnclaveError as e:
        st.error(str(e))
        return
    if result.ok:
        st.success(f"Verified: {result}")
    else:
        st.error(f"Verification failed: {result}")
    st.caption(f"The newest {SHOWN} entries, newest first. Viewing this page is audited.")
    st.dataframe([{"#": e.seq, "time": e.ts, "who": e.actor, "from": e.channel,
                   "action": e.action, "object": e.target, "detail": e.detail}
                  for e in reversed(entries)], hide_index=True, use_container_width=True)
