"""The tenant's branding: page title, logo and colours."""

from __future__ import annotations

import streamlit as st

from enclave.tenants import Tenant


def apply(tenant: Tenant) -> None:
    b = tenant.branding
    logo = str(tenant.logo_path) if tenant.logo_path else None
    st.set_page_config(page_title=b.title, page_icon=logo, layout="wide")
    if logo:
        st.logo(logo, size="large")
    st.html(f"""<style>
      .stApp, [data-testid="stBottom"] > div {{ background-color: {b.background_color};
        color: {b.text_color}; }}
      .stApp h1, .stApp h2, .stApp h3 {{ color: {b.primary_color}; }}
      .stApp button[kind="primary"] {{ background-color: {b.primary_color};
        border-color: {b.primary_color}; }}
      [data-testid="stSidebar"] {{ border-right: 4px solid {b.primary_color}; }}
    </style>""")


def header(tenant: Tenant) -> None:
    st.title(tenant.branding.title)
    if tenant.branding.tagline:
        st.caption(tenant.branding.tagline)
