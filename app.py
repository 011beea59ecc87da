"""Enclave: the auth gate, the tenant's branding, and the pages the principal's roles
allow. Run with `make demo` (or `streamlit run app.py` with [auth] secrets)."""

from functools import partial

import streamlit as st

from enclave.rbac import Permission, can
from enclave.ui import account, branding, chat, login
from enclave.ui import audit as audit_page
from enclave.ui import knowledge as knowledge_page
from enclave.ui import logs as logs_page
from enclave.ui import operator as operator_page
from enclave.ui import usage as usage_page
from enclave.ui.session import principal, workspace
from enclave.usage import is_operator

ws = workspace()
if not st.user.is_logged_in:
    st.set_page_config(page_title="Enclave · Sign in", page_icon=":material/lock:")
    login.page(ws.tenants)
    st.stop()

me = principal(ws)
tenant = ws.tenant_for(me)
branding.apply(tenant)
usage_page.banner(ws, me)

pages = []
if can(me, Permission.CHAT):
    pages.append(st.Page(partial(chat.page, ws, tenant, me), title="Chat",
                         icon=":material/chat:", url_path="chat", default=True))
if can(me, Permission.KNOWLEDGE_EDIT):
    pages.append(st.Page(partial(knowledge_page.page, ws, tenant, me), title="Knowledge",
                         icon=":material/menu_book:", url_path="knowledge"))
if can(me, Permission.LOGS_READ):
    pages.append(st.Page(partial(logs_page.page, ws, tenant, me), title="Logs",
                         icon=":material/receipt_long:", url_path="logs"))
if can(me, Permission.AUDIT_READ):
    pages.append(st.Page(partial(audit_page.page, ws, tenant, me), title="Audit",
                         icon=":material/policy:", url_path="audit"))
if can(me, Permission.USAGE_VIEW):
    pages.append(st.Page(partial(usage_page.page, ws, tenant, me), title="Usage",
                         icon=":material/monitoring:", url_path="usage"))
if is_operator(me):
    pages.append(st.Page(partial(operator_page.page, ws, me), title="Platform",
                         icon=":material/dns:", url_path="platform"))
pages.append(st.Page(partial(account.page, tenant, me), title="Account",
                     icon=":material/person:", url_path="account",
                     default=not can(me, Permission.CHAT)))
st.navigation(pages).run()
