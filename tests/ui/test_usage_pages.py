"""The Usage page (tenant admins and auditors), the alert banner and the Platform page
(operators only), with Streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from enclave.hookspecs import Alert
from enclave.ui.session import workspace
from tests.conftest import as_user
from tests.test_identity import claims
from tests.ui.test_app import OpenApp, checked, data_dir, open_app  # noqa: F401


def run_page(name: str, email: str, tenant: str) -> AppTest:
    def script(name: str, email: str, tenant: str) -> None:
        from enclave.identity import principal_from_email
        from enclave.ui import operator, usage
        from enclave.ui.session import workspace
        ws = workspace()
        me = principal_from_email(ws.tenants, tenant, email, "ui")
        if name == "usage":
            usage.page(ws, ws.tenants.get(tenant), me)
        else:
            operator.page(ws, me)
    return checked(AppTest.from_function(script, args=(name, email, tenant),
                                         default_timeout=30).run())


def test_usage_page_shows_charts_quotas_and_alerts(data_dir: Path) -> None:  # noqa: F811
    ws = workspace()
    bob = as_user(ws, "acme", "bob@acme.example")
    list(ws.chat(bob, "usage page question"))
    ws.alert(ws.tenants.get("acme"), Alert("quota_threshold", "warning",
                                           "bob@acme.example used 80% of it.", {}))
    at = run_page("usage", "alice@acme.example", "acme")
    assert [h.value for h in at.header] == ["Usage"]
    assert {m.label: m.value for m in at.metric}["Turns"] == "1"
    assert [t.label for t in at.tabs] == ["Tokens", "Turns", "Cost (USD)", "Refusals",
                                          "Latency p95 (ms)"]
    bars = [p.text for p in at.get("progress")]
    assert any("Acme Corporation · a monthly budget of $250.00" in b for b in bars)
    assert any("bob@acme.example · 100,000 tokens per day" in b for b in bars)
    assert any("bob@acme.example used 80% of it." in w.value for w in at.warning)
    at = checked(at.button(key=at.button[0].key).click().run())
    assert not any("80% of it" in w.value for w in at.warning), "cleared by the admin"
    assert "usage page question" not in str(at)


def test_usage_page_refuses_a_member(data_dir: Path) -> None:  # noqa: F811
    at = run_page("usage", "bob@acme.example", "acme")
    assert [e.value for e in at.error] == ["bob@acme.example may not usage view"]


def test_banner_for_admins_only(open_app: OpenApp) -> None:  # noqa: F811
    ws = workspace()
    ws.alert(ws.tenants.get("acme"), Alert("usage_spike", "warning", "a spike.", {}))
    alice = open_app(claims("alice@acme.example"))
    assert any("**Usage spike**: a spike." in w.value for w in alice.warning)
    bob = open_app(claims("bob@acme.example"))
    assert not bob.warning


def test_platform_page_is_for_operators_only(data_dir: Path,  # noqa: F811
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ws = workspace()
    list(ws.chat(as_user(ws, "globex", "carol@globex.example"), "platform secret"))
    monkeypatch.delenv("ENCLAVE_OPERATORS", raising=False)
    at = run_page("platform", "carol@globex.example", "globex")
    assert [e.value for e in at.error] == ["carol@globex.example is not a platform operator"]
    monkeypatch.setenv("ENCLAVE_OPERATORS", "carol@globex.example")
    at = run_page("platform", "carol@globex.example", "globex")
    assert [h.value for h in at.header] == ["Platform"]
    assert list(at.dataframe[0].value.index) == ["globex"]
    assert "platform secret" not in str(at)
