"""Account page: who you are, your organisation, roles and what they allow."""

from __future__ import annotations

import streamlit as st

from enclave.identity import Principal
from enclave.rbac import permissions
from enclave.tenants import Tenant


def page(tenant: Tenant, principal: Principal) -> None:
    st.header("Your account")
    st.write(f"**{principal.name}** · {principal.email}")
    st.write(f"Organisation: **{tenant.name}**")
    st.write("Roles: " + ", ".join(f"`{r}`" for r in principal.roles))
    allowed = sorted(p.value.replace("_", " ") for p in permissions(principal.roles))
    st.write("You may: " + (", ".join(allowed) or "nothing yet"))
    st.button("Sign out", on_click=st.logout, key="account-logout")
