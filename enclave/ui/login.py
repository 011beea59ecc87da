"""Login page: choose your organisation, or type your work email, then sign in with its
identity provider."""

from __future__ import annotations

import streamlit as st

from enclave.tenants import TenantRegistry


def page(tenants: TenantRegistry) -> None:
    st.title("Enclave")
    st.write("Sign in with your organisation's single sign-on.")
    active = [t for t in tenants if t.active]
    by_org, by_email = st.tabs(["Choose your organisation", "Use your work email"])
    with by_org:
        names = {t.name: t for t in active}
        choice = st.selectbox("Organisation", list(names), index=None,
                              placeholder="Select your organisation")
        if choice and st.button(f"Continue to {choice} sign-in", type="primary", key="org"):
            st.login(names[choice].identity.provider)
    with by_email:
        email = st.text_input("Work email", placeholder="you@company.example").strip()
        if email and st.button("Continue", type="primary", key="email"):
            matches = [t for t in tenants.by_email_domain(email) if t.active]
            if len(matches) == 1:
                st.login(matches[0].identity.provider)
            elif not matches:
                st.error(f"No organisation on this workspace uses the domain of {email}.")
            else:
                st.error(f"The domain of {email} is used by several organisations; "
                         "choose yours in the other tab.")
