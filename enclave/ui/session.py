"""Per-process workspace and per-session principal."""

from __future__ import annotations

from typing import Any

import streamlit as st

from enclave.config import Settings
from enclave.errors import EnclaveError
from enclave.identity import Principal, is_expired, principal_from_claims
from enclave.workspace import Workspace


def workspace() -> Workspace:
    """The process's workspace for the current settings; it scopes every call by the
    principal's tenant."""
    return _workspace(Settings.from_env())


@st.cache_resource(show_spinner=False)
def _workspace(settings: Settings) -> Workspace:
    return Workspace(settings)


def principal(ws: Workspace) -> Principal:
    """The signed-in principal; logs out expired sessions, refuses unbound logins."""
    claims = st.user.to_dict()
    if is_expired(claims):
        st.logout()
        st.stop()
    try:
        return principal_from_claims(ws.tenants, claims)
    except EnclaveError as e:
        st.title("Sign-in refused")
        st.error(str(e))
        st.button("Sign out and use another account", on_click=st.logout, type="primary")
        st.stop()
        raise  # unreachable: st.stop() raises


def state(principal: Principal, key: str, default: Any = None) -> Any:
    """Session state namespaced by tenant and user."""
    return st.session_state.get(f"{principal.tenant}:{principal.user_id}:{key}", default)


def set_state(principal: Principal, key: str, value: Any) -> None:
    st.session_state[f"{principal.tenant}:{principal.user_id}:{key}"] = value
