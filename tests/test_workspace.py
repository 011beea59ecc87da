"""The workspace service: messages built from the tenant, assistant and plugins; every
hook called through the per-tenant gate; refusals before any model call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enclave import hookimpl
from enclave.config import Settings
from enclave.errors import EnclaveError, QuotaExceeded, TenantUnavailable
from enclave.hookspecs import Alert, QuotaDenial
from enclave.plugins.host import PluginHost
from enclave.tenants import TenantRegistry
from enclave.turns import Final, Token, TurnRecord
from enclave.workspace import Workspace
from tests.conftest import PLUGINS, as_user
from tests.fakes.openai_server import FakeOpenAI


class Spy:
    """A test plugin that records what it sees and can deny, wrap or fail."""

    def __init__(self) -> None:
        self.records: list[TurnRecord] = []
        self.alerts: list[tuple[str, Alert]] = []
        self.lifecycle: list[tuple[str, str]] = []
        self.deny: QuotaDenial | None = None
        self.shout = False

    @hookimpl
    def enclave_quota_check(self, tenant, principal, request):  # type: ignore[no-untyped-def]
        return self.deny

    @hookimpl(wrapper=True)
    def enclave_chat_turn(self, tenant, principal, request):  # type: ignore[no-untyped-def]
        events = yield
        if not self.shout:
            return events

        def upper() -> Iterator[Any]:
            for e in events:
                yield Token(e.text.upper()) if isinstance(e, Token) else e
        return upper()

    @hookimpl
    def enclave_after_turn(self, tenant, principal, record):  # type: ignore[no-untyped-def]
        self.records.append(record)

    @hookimpl
    def enclave_alert(self, tenant, alert):  # type: ignore[no-untyped-def]
        self.alerts.append((tenant.slug, alert))

    @hookimpl
    def enclave_tenant_lifecycle(self, tenant, event, previous_status):  # type: ignore[no-untyped-def]
        self.lifecycle.append((tenant.slug, event))


class Broken:
    @hookimpl(tryfirst=True)
    def enclave_after_turn(self, tenant, principal, record):  # type: ignore[no-untyped-def]
        raise RuntimeError("plugin bug")


def enable_for_acme(tenants_dir: Path, *names: str) -> None:
    toml = tenants_dir / "acme" / "tenant.toml"
    toml.write_text(toml.read_text() + "".join(f"\n[plugins.{n}]\n" for n in names))


@pytest.fixture
def spy_ws(settings: Settings, tenants_copy: Path) -> Iterator[tuple[Workspace, Spy]]:
    enable_for_acme(tenants_copy, "spy", "broken")
    spy = Spy()
    host = PluginHost(PLUGINS, extra={"spy": spy, "broken": Broken()})
    ws = Workspace(settings, TenantRegistry.load(tenants_copy), host)
    yield ws, spy
    ws.close()


def test_system_prompt_is_the_tenants_own(ws: Workspace, llm: FakeOpenAI) -> None:
    list(ws.chat(as_user(ws, "acme", "bob@acme.example"), "hi", assistant="hr-buddy"))
    list(ws.chat(as_user(ws, "globex", "carol@globex.example"), "hi"))
    acme_sys, globex_sys = (r["messages"][0]["content"] for r in llm.requests)
    acme, globex = ws.tenants.get("acme"), ws.tenants.get("globex")
    assert acme.system_prompt in acme_sys and globex.system_prompt not in acme_sys
    assert acme.assistants["hr-buddy"].instructions in acme_sys
    assert "Bob" in acme_sys and "— Acme Workspace" in acme_sys  # tone_persona settings
    assert globex.default_assistant.instructions in globex_sys
    assert "Acme" not in globex_sys and "formal" in globex_sys.lower()


def test_pii_is_redacted_before_the_model_and_the_store(ws: Workspace, llm: FakeOpenAI) -> None:
    bob = as_user(ws, "acme", "bob@acme.example")
    final = [e for e in ws.chat(bob, "mail me at bob.private@gmail.com") if
             isinstance(e, Final)][0]
    assert llm.requests[-1]["messages"][-1]["content"] == "mail me at [email]"
    stored = ws.messages(bob, final.conversation_id)
    assert stored[0].content == "mail me at [email]"
    # globex did not enable pii_redaction: its text goes through unchanged
    list(ws.chat(as_user(ws, "globex", "carol@globex.example"), "mail carol@globex.example"))
    assert llm.requests[-1]["messages"][-1]["content"] == "mail carol@globex.example"


def test_quota_denial_refuses_before_any_model_call(spy_ws: tuple[Workspace, Spy],
                                                    llm: FakeOpenAI) -> None:
    ws, spy = spy_ws
    spy.deny = QuotaDenial("requests_per_minute", "30 requests a minute; wait a bit.", 12.0)
    bob = as_user(ws, "acme", "bob@acme.example")
    with pytest.raises(QuotaExceeded, match="30 requests a minute") as err:
        ws.chat(bob, "hello")
    assert err.value.retry_after == 12.0 and err.value.status == 429
    assert llm.requests == []
    assert [r.outcome for r in spy.records] == ["refused"]
    assert ws.list_conversations(bob) == []


def test_chat_turn_wrapper_changes_what_is_streamed_and_stored(
        spy_ws: tuple[Workspace, Spy], llm: FakeOpenAI) -> None:
    ws, spy = spy_ws
    spy.shout = True
    bob = as_user(ws, "acme", "bob@acme.example")
    events = list(ws.chat(bob, "quiet words"))
    final = events[-1]
    assert isinstance(final, Final) and final.text == "YOU SAID: QUIET WORDS"
    assert ws.messages(bob, final.conversation_id)[-1].content == "YOU SAID: QUIET WORDS"


def test_a_failing_after_turn_plugin_breaks_neither_the_turn_nor_others(
        spy_ws: tuple[Workspace, Spy], caplog: pytest.LogCaptureFixture) -> None:
    ws, spy = spy_ws
    events = list(ws.chat(as_user(ws, "acme", "bob@acme.example"), "hello"))
    assert isinstance(events[-1], Final)
    assert [r.outcome for r in spy.records] == ["ok"]
    record = spy.records[0]
    assert record.tenant == "acme" and record.prompt == "hello"
    assert record.response == "You said: hello" and record.usage is not None
    assert "plugin broken failed in enclave_after_turn" in caplog.text


def test_plugins_of_acme_never_see_globex_turns(spy_ws: tuple[Workspace, Spy],
                                                llm: FakeOpenAI) -> None:
    ws, spy = spy_ws
    spy.deny = QuotaDenial("x", "denied")
    events = list(ws.chat(as_user(ws, "globex", "carol@globex.example"), "hello"))
    assert isinstance(events[-1], Final)  # acme's denying plugin did not run
    assert spy.records == []


def test_lifecycle_loaded_and_alerts_reach_enabled_plugins_only(
        spy_ws: tuple[Workspace, Spy]) -> None:
    ws, spy = spy_ws
    assert spy.lifecycle == [("acme", "loaded")]
    alert = Alert("budget", "warning", "80% of the monthly budget", {"used": 0.8})
    ws.alert(ws.tenants.get("acme"), alert)
    ws.alert(ws.tenants.get("globex"), alert)
    assert spy.alerts == [("acme", alert)]


def test_model_error_is_recorded_and_nothing_stored(spy_ws: tuple[Workspace, Spy],
                                                    llm: FakeOpenAI) -> None:
    ws, spy = spy_ws
    llm.fail_status = 500
    bob = as_user(ws, "acme", "bob@acme.example")
    with pytest.raises(EnclaveError, match="HTTP 500"):
        list(ws.chat(bob, "hello"))
    assert [r.outcome for r in spy.records] == ["model_error"]
    assert ws.list_conversations(bob) == []


def test_suspended_tenant_refuses_chat(settings: Settings, tenants_copy: Path,
                                       llm: FakeOpenAI) -> None:
    ws = Workspace(settings, TenantRegistry.load(tenants_copy))
    bob = as_user(ws, "acme", "bob@acme.example")
    toml = tenants_copy / "acme" / "tenant.toml"
    toml.write_text(toml.read_text().replace('status = "active"', 'status = "suspended"'))
    suspended = Workspace(settings, TenantRegistry.load(tenants_copy))
    with pytest.raises(TenantUnavailable, match="suspended"):
        suspended.chat(bob, "hello")
    assert llm.requests == []
    ws.close()
    suspended.close()


def test_control_characters_are_stripped(ws: Workspace, llm: FakeOpenAI) -> None:
    list(ws.chat(as_user(ws, "globex", "carol@globex.example"), "  hi\x00\x1b[31m there\n"))
    assert llm.requests[-1]["messages"][-1]["content"] == "hi[31m there"
