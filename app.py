"""Enclave: the auth gate, the tenant's branding, and the pages the principal's roles
allow. Run with `make demo` (or `streamlit run app.py` with [auth] secrets)."""

from functools import partial

import streamlit as st

from enclave.rbac import Permission, can
from enclave.ui import account, audit, branding, chat, knowledge, login, logs, operator, usage
from enclave.ui.session import principal, workspace
from enclave.usage import is_operator

# The tenant's pages, in menu order, each shown only to roles with its permission.
TENANT_PAGES = [
    (Permission.CHAT, chat, "Chat", ":material/chat:"),
    (Permission.KNOWLEDGE_EDIT, knowledge, "Knowledge", ":material/menu_book:"),
    (Permission.LOGS_READ, logs, "Logs", ":material/receipt_long:"),
    (Permission.AUDIT_READ, audit, "Audit", ":material/policy:"),
    (Permission.USAGE_VIEW, usage, "Usage", ":material/monitoring:"),
]

ws = workspace()
if not st.user.is_logged_in:
    st.set_page_config(page_title="Enclave · Sign in", page_icon=":material/lock:")
    login.page(ws.tenants)
    st.stop()

me = principal(ws)
tenant = ws.tenant_for(me)
branding.apply(tenant)
usage.banner(ws, me)

pages = [st.Page(partial(module.page, ws, tenant, me), title=title, icon=icon,
                 url_path=title.lower(), default=module is chat)
         for permission, module, title, icon in TENANT_PAGES if can(me, permission)]
if is_operator(me):
    pages.append(st.Page(partial(operator.page, ws, me), title="Platform",
                         icon=":material/dns:", url_path="platform"))
pages.append(st.Page(partial(account.page, tenant, me), title="Account",
                     icon=":material/person:", url_path="account",
                     default=not can(me, Permission.CHAT)))
st.navigation(pages).run()
