"""Enclave: the auth gate, the tenant's branding, and the pages the principal's roles
allow. Run with `make demo` (or `streamlit run app.py` with [auth] secrets)."""

from functools import partial

import streamlit as st

from enclave.rbac import Permission, can
from enclave.ui import account, branding, chat, login
from enclave.ui.session import principal, workspace

ws = workspace()
if not st.user.is_logged_in:
    st.set_page_config(page_title="Enclave · Sign in", page_icon=":material/lock:")
    login.page(ws.tenants)
    st.stop()

me = principal(ws)
tenant = ws.tenant_for(me)
branding.apply(tenant)

pages = []
if can(me, Permission.CHAT):
    pages.append(st.Page(partial(chat.page, ws, tenant, me), title="Chat",
                         icon=":material/chat:", url_path="chat", default=True))
pages.append(st.Page(partial(account.page, tenant, me), title="Account",
                     icon=":material/person:", url_path="account", default=not pages))
st.navigation(pages).run()
