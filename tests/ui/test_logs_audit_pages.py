"""The Logs and Audit pages (AppTest): shown by permission, every view and export
audited, and the trail's verification status displayed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest

from enclave.ui.session import workspace
from tests.conftest import as_user
from tests.test_identity import claims
from tests.ui.test_app import OpenApp, checked, data_dir, open_app  # noqa: F401


def run_page(name: str, email: str, tenant: str) -> AppTest:
    def script(name: str, email: str, tenant: str) -> None:
        from enclave.identity import principal_from_email
        from enclave.ui import audit, logs
        from enclave.ui.session import workspace
        ws = workspace()
        me = principal_from_email(ws.tenants, tenant, email, "ui")
        {"logs": logs, "audit": audit}[name].page(ws, ws.tenants.get(tenant), me)
    return checked(AppTest.from_function(script, args=(name, email, tenant),
                                         default_timeout=30).run())


def trail(tenant: str) -> list[tuple[str, str]]:
    """The tenant's trail, read through the app's own (cached) workspace."""
    ws = workspace()
    return [(e.actor, e.action) for e in ws._trail(ws.tenants.get(tenant)).entries()]


def test_the_auditor_still_lands_on_the_account_page(open_app: OpenApp) -> None:  # noqa: F811
    dave = open_app(claims("dave@globex.example"))
    assert [h.value for h in dave.header] == ["Your account"]


def test_logs_page_views_opens_and_exports_audited(data_dir: Path) -> None:  # noqa: F811
    ws = workspace()
    list(ws.chat(as_user(ws, "globex", "erin@globex.example"), "page question"))
    at = run_page("logs", "dave@globex.example", "globex")
    assert [h.value for h in at.header] == ["Turn logs"]
    frame: Any = at.dataframe[0].value
    assert list(frame["user"]) == ["erin@globex.example"]
    at = checked(at.selectbox(key="logs-open").select(frame["id"][0]).run())
    assert "page question" in [t.value for t in at.text]
    at = checked(at.run())  # a rerun with the same filter is not a new view
    assert [a for _, a in trail("globex")] == ["logs.view", "logs.open"]


def test_audit_page_shows_the_verified_trail(data_dir: Path) -> None:  # noqa: F811
    at = run_page("logs", "carol@globex.example", "globex")
    at = run_page("audit", "carol@globex.example", "globex")
    assert [h.value for h in at.header] == ["Audit trail"]
    assert at.success and "Verified: ok: 1 entries" in at.success[0].value
    assert list(at.dataframe[0].value["action"]) == ["logs.view"]
    assert [a for _, a in trail("globex")] == ["logs.view", "audit.view"]
