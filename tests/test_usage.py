"""Usage analytics: per tenant (scoped to its own rows, by user, assistant and model,
with cost), permissions, and the operator view across tenants (figures only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from enclave.errors import AccessDenied, BadInput, QuotaExceeded
from enclave.usage import is_operator, parse_since, platform_quotas, platform_usage, tenant_usage
from enclave.workspace import Workspace
from tests.conftest import as_user
from tests.fakes.openai_server import FakeOpenAI

SINCE = datetime.now(UTC) - timedelta(days=1)


def _traffic(ws: Workspace) -> None:
    bob, alice = as_user(ws, "acme", "bob@acme.example"), as_user(ws, "acme", "alice@acme.example")
    list(ws.chat(bob, "hello"))
    list(ws.chat(bob, "again", assistant="hr-buddy"))
    list(ws.chat(alice, "hi"))
    list(ws.chat(as_user(ws, "globex", "carol@globex.example"), "globex secret"))


def test_a_tenant_admin_sees_its_usage_by_user_assistant_and_model(ws: Workspace) -> None:
    _traffic(ws)
    usage = tenant_usage(ws, as_user(ws, "acme", "alice@acme.example"))
    [day] = usage.report(SINCE)
    assert day["turns"] == 3 and day["tokens"] > 0 and day["refusals"] == 0
    acme = ws.tenants.get("acme")
    rows = ws.metering.rows(tenant="acme")
    price = acme.quotas.price("fake-model")
    assert price is not None
    cost = sum(r["prompt_tokens"] * price.input_per_million
               + r["completion_tokens"] * price.output_per_million for r in rows) / 1e6
    assert day["cost_usd"] == pytest.approx(cost, abs=1e-6) and cost > 0
    by_user = {r["user"]: r["turns"] for r in usage.report(SINCE, "user")}
    assert by_user == {"bob@acme.example": 2, "alice@acme.example": 1}
    assert {r["assistant"] for r in usage.totals(SINCE, "assistant")} == {"helpdesk",
                                                                          "hr-buddy"}
    assert [r["model"] for r in usage.report(SINCE, "model")] == ["fake-model"]
    with pytest.raises(BadInput, match="cannot group usage by 'tenant'"):
        usage.report(SINCE, "tenant")  # type: ignore[arg-type]


def test_usage_needs_the_permission(ws: Workspace) -> None:
    with pytest.raises(AccessDenied, match="may not usage view"):
        tenant_usage(ws, as_user(ws, "acme", "bob@acme.example"))
    auditor = tenant_usage(ws, as_user(ws, "globex", "dave@globex.example"))
    assert auditor.tenant.slug == "globex"


def test_refusals_show_in_the_report_and_quota(ws: Workspace, llm: FakeOpenAI) -> None:
    bob = as_user(ws, "acme", "bob@acme.example")
    acme = ws.tenants.get("acme")
    for _ in range(acme.quotas.requests_per_minute or 0):
        ws.quota.reserve(acme, bob, "fake-model", 1, 1)
    with pytest.raises(QuotaExceeded):
        list(ws.chat(bob, "one more"))
    usage = tenant_usage(ws, as_user(ws, "acme", "alice@acme.example"))
    assert usage.report(SINCE)[0]["refusals"] == 1
    rpm = next(c for c in usage.quota(bob) if c.limit == "requests_per_minute")
    assert (rpm.used, rpm.value, rpm.fraction) == (30, 30, 1.0)
    assert [a.kind for a in usage.alerts()] == ["quota_breach"]


def test_operators_see_every_tenant_without_content(ws: Workspace,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _traffic(ws)
    alice = as_user(ws, "acme", "alice@acme.example")
    monkeypatch.delenv("ENCLAVE_OPERATORS", raising=False)
    assert not is_operator(alice)
    with pytest.raises(AccessDenied, match="not a platform operator"):
        platform_usage(ws, alice, SINCE)
    with pytest.raises(AccessDenied):
        platform_quotas(ws, None)
    monkeypatch.setenv("ENCLAVE_OPERATORS", "ops@example.org, Alice@Acme.example")
    rows = platform_usage(ws, alice, SINCE)
    assert {(r["tenant"], r["turns"]) for r in rows} == {("acme", 3), ("globex", 1)}
    assert "globex secret" not in str(rows) and "bob@acme.example" not in str(rows)
    assert set(platform_quotas(ws, alice)) == {"acme", "globex"}


def test_since_dates() -> None:
    assert parse_since("2030-01-02") == datetime(2030, 1, 2, tzinfo=UTC)
    with pytest.raises(BadInput, match="--since 'yesterday' is not a date"):
        parse_since("yesterday")
