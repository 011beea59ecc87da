"""The Streamlit app, page by page, with Streamlit's AppTest: ``st.user`` holds the OIDC
claims of a demo user (AppTest reads ``at.user``), the model is the fake server."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from enclave.config import ROOT
from enclave.workspace import Workspace
from tests.conftest import as_user, make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.test_identity import claims

OpenApp = Callable[[dict[str, Any]], AppTest]


@pytest.fixture
def data_dir(tmp_path: Path, llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The app's environment: a fresh data dir (so a fresh cached Workspace) and the fake
    model."""
    data = tmp_path / "data"
    monkeypatch.setenv("ENCLAVE_DATA_DIR", str(data))
    monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-ui")
    monkeypatch.setenv("ENCLAVE_MODEL", "fake-model")
    for var in ("ENCLAVE_MASTER_KEY", "ENCLAVE_TENANTS_DIR", "ENCLAVE_PLUGINS_DIR"):
        monkeypatch.delenv(var, raising=False)
    return data


@pytest.fixture
def open_app(data_dir: Path) -> OpenApp:
    """Run the app once as ``user`` (what ``st.user`` holds) and check it did not crash."""
    def open_app(user: dict[str, Any]) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
        at.user = user
        return checked(at.run())
    return open_app


def checked(at: AppTest) -> AppTest:
    assert not at.exception, [e.message for e in at.exception]
    return at


def logged_out() -> dict[str, Any]:
    return {"is_logged_in": False}


def sidebar_buttons(at: AppTest) -> list[str]:
    return [b.label for b in at.sidebar.button]


def transcript(at: AppTest) -> list[tuple[str, str]]:
    return [(m.name, " ".join(md.value for md in m.markdown)) for m in at.chat_message]


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("title", "header", "markdown", "caption", "error")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def send(at: AppTest, text: str) -> AppTest:
    return checked(at.chat_input[0].set_value(text).run())


def assert_login_page(at: AppTest) -> None:
    assert [t.value for t in at.title] == ["Enclave"]
    assert [s.label for s in at.selectbox] == ["Organisation"]
    assert len(at.chat_input) == 0


# -- signed out --------------------------------------------------------------------------


def test_logged_out_shows_the_login_page(open_app: OpenApp) -> None:
    at = open_app(logged_out())
    assert_login_page(at)
    org = at.selectbox[0]
    assert org.options == ["Acme Corporation", "Globex Industries"]
    assert org.value is None
    assert at.text_input[0].label == "Work email"


def test_choosing_an_organisation_offers_its_sign_in(open_app: OpenApp) -> None:
    at = checked(open_app(logged_out()).selectbox[0].select("Globex Industries").run())
    assert [b.label for b in at.button] == ["Continue to Globex Industries sign-in"]


def test_unknown_work_email_domain_is_explained(open_app: OpenApp) -> None:
    at = checked(open_app(logged_out()).text_input[0].input("eve@unknown.example").run())
    at = checked(at.button(key="email").click().run())
    assert [e.value for e in at.error] == [
        "No organisation on this workspace uses the domain of eve@unknown.example."]


# -- bob, an acme member ------------------------------------------------------------------


def test_bob_sees_the_acme_chat_page(open_app: OpenApp) -> None:
    at = open_app(claims("bob@acme.example"))
    assert [t.value for t in at.title] == ["Acme Workspace"]
    assert len(at.chat_input) == 1
    assistant = at.sidebar.selectbox[0]
    assert assistant.label == "Assistant"
    assert assistant.options == ["Acme Helpdesk", "HR Buddy", "Product Guide"]
    assert assistant.value == "helpdesk"
    captions = [c.value for c in at.sidebar.caption]
    assert "No conversations yet." in captions
    assert "Bob Baker · Acme Corporation" in captions
    assert transcript(at) == []


def test_bob_chats_and_the_conversation_is_listed(open_app: OpenApp, llm: FakeOpenAI) -> None:
    at = send(open_app(claims("bob@acme.example")), "hello from apptest")
    assert transcript(at) == [("user", "hello from apptest"),
                              ("assistant", "You said: hello from apptest")]
    assert "▸ hello from apptest" in sidebar_buttons(at)  # the open conversation
    assert "No conversations yet." not in [c.value for c in at.sidebar.caption]
    assert len(llm.requests) == 1


def test_bobs_second_message_continues_the_conversation(open_app: OpenApp,
                                                        llm: FakeOpenAI) -> None:
    at = send(send(open_app(claims("bob@acme.example")), "first question"), "second question")
    sent = [(m["role"], m["content"]) for m in llm.requests[-1]["messages"][1:]]
    assert sent == [("user", "first question"), ("assistant", "You said: first question"),
                    ("user", "second question")]
    assert [b for b in sidebar_buttons(at) if "question" in b] == ["▸ first question"]
    assert ("assistant", "You said: second question") in transcript(at)


def click(at: AppTest, label: str) -> AppTest:
    """Click the sidebar button labelled ``label`` and run."""
    return checked(next(b for b in at.sidebar.button if b.label == label).click().run())


def test_new_chat_starts_an_empty_conversation(open_app: OpenApp) -> None:
    at = send(open_app(claims("bob@acme.example")), "hello from apptest")
    at = click(at, "New chat")
    assert transcript(at) == []
    assert "hello from apptest" in sidebar_buttons(at)  # listed, no longer open


def test_bob_chats_with_the_assistant_he_picks(open_app: OpenApp, llm: FakeOpenAI) -> None:
    at = open_app(claims("bob@acme.example"))
    at = checked(at.sidebar.selectbox[0].select("hr-buddy").run())
    assert at.chat_input[0].placeholder == "Message HR Buddy"
    send(at, "time off?")
    assert "## Assistant: HR Buddy" in llm.requests[-1]["messages"][0]["content"]


def test_reopening_a_conversation_restores_its_messages_and_assistant(
        open_app: OpenApp, llm: FakeOpenAI) -> None:
    at = open_app(claims("bob@acme.example"))
    at = send(checked(at.sidebar.selectbox[0].select("hr-buddy").run()), "hr question")
    at = click(at, "New chat")
    at = send(checked(at.sidebar.selectbox[0].select("product-guide").run()), "skates")
    at = click(at, "hr question")
    assert at.sidebar.selectbox[0].value == "hr-buddy"
    assert transcript(at) == [("user", "hr question"), ("assistant", "You said: hr question")]
    send(at, "follow up")
    sent = llm.requests[-1]["messages"]
    assert "## Assistant: HR Buddy" in sent[0]["content"]
    assert [m["content"] for m in sent[1:]] == ["hr question", "You said: hr question",
                                                "follow up"]


def test_rename_and_delete_a_conversation(open_app: OpenApp) -> None:
    at = send(open_app(claims("bob@acme.example")), "to be renamed")
    at = checked(at.sidebar.text_input[0].input("Travel plans").run())
    at = checked(at.sidebar.button(key="rename").click().run())
    assert "▸ Travel plans" in sidebar_buttons(at)
    at = checked(at.sidebar.button(key="delete").click().run())
    assert transcript(at) == []
    assert "No conversations yet." in [c.value for c in at.sidebar.caption]
    assert not any("Travel plans" in b or "renamed" in b for b in sidebar_buttons(at))


def test_conversation_with_a_removed_assistant_can_be_opened(
        open_app: OpenApp, data_dir: Path, tenants_copy: Path, llm: FakeOpenAI) -> None:
    # The conversation was held with an assistant that acme has removed since.
    retired = tenants_copy / "acme" / "assistants" / "retired.toml"
    retired.write_text('name = "Retired"\ninstructions = "Gone now."\n')
    old = Workspace(make_settings(data_dir, llm.base_url, tenants_copy))
    list(old.chat(as_user(old, "acme", "bob@acme.example"), "old question", None, "retired"))
    old.close()
    at = click(open_app(claims("bob@acme.example")), "old question")
    assert ("user", "old question") in transcript(at)
    assert at.sidebar.selectbox[0].value == "helpdesk"  # falls back to the default
    assert ("assistant", "You said: and now?") in transcript(send(at, "and now?"))


def test_a_model_error_is_shown_and_nothing_is_stored(open_app: OpenApp,
                                                      llm: FakeOpenAI) -> None:
    llm.fail_status = 500
    at = send(open_app(claims("bob@acme.example")), "hello")
    assert any("HTTP 500" in e.value for e in at.error), texts(at)
    llm.fail_status = None
    at = checked(at.run())
    assert "No conversations yet." in [c.value for c in at.sidebar.caption]


def test_sign_out_logs_bob_out(open_app: OpenApp) -> None:
    at = open_app(claims("bob@acme.example"))
    sign_out = next(b for b in at.sidebar.button if b.label == "Sign out")
    at = checked(sign_out.click().run())
    assert at.user == {"is_logged_in": False}
    assert_login_page(at)


# -- other users ---------------------------------------------------------------------------


def test_dave_the_auditor_sees_only_his_account(open_app: OpenApp) -> None:
    at = open_app(claims("dave@globex.example"))
    assert len(at.chat_input) == 0
    assert [h.value for h in at.header] == ["Your account"]
    page = texts(at)
    assert "**Dave Diaz** · dave@globex.example" in page
    assert "Organisation: **Globex Industries**" in page
    assert "Roles: `auditor`" in page
    assert "chat" not in page.split("You may:")[1]


def test_carol_through_the_acme_provider_is_refused(open_app: OpenApp) -> None:
    at = open_app(claims("carol@globex.example", provider="acme"))
    assert [t.value for t in at.title] == ["Sign-in refused"]
    assert len(at.error) == 1 and "carol@globex.example" in at.error[0].value
    assert [b.label for b in at.button] == ["Sign out and use another account"]
    assert len(at.chat_input) == 0
    at = checked(at.button[0].click().run())
    assert at.user == {"is_logged_in": False}
    assert_login_page(at)


def test_an_expired_login_is_logged_out(open_app: OpenApp) -> None:
    at = open_app(claims("bob@acme.example", exp=int(time.time()) - 5))
    assert at.user == {"is_logged_in": False}  # st.logout() ran
    assert len(at.chat_input) == 0 and "Acme Workspace" not in texts(at)
    assert_login_page(checked(at.run()))


def test_globex_sees_its_branding_and_none_of_bobs_conversations(open_app: OpenApp) -> None:
    send(open_app(claims("bob@acme.example")), "acme secret roadmap")
    at = open_app(claims("carol@globex.example"))
    assert [t.value for t in at.title] == ["Globex Intelligence Desk"]
    assert at.sidebar.selectbox[0].options == ["Compliance Officer", "Engineering Reference",
                                               "Operations Analyst"]
    assert "No conversations yet." in [c.value for c in at.sidebar.caption]
    assert not any("roadmap" in b for b in sidebar_buttons(at))
    assert "roadmap" not in texts(at)


def test_a_suspended_tenant_is_not_offered_and_refuses_sign_in(
        open_app: OpenApp, tenants_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tenants_copy / "globex" / "tenant.toml"
    toml.write_text(toml.read_text().replace('status = "active"', 'status = "suspended"'))
    monkeypatch.setenv("ENCLAVE_TENANTS_DIR", str(tenants_copy))
    assert open_app(logged_out()).selectbox[0].options == ["Acme Corporation"]
    at = open_app(claims("carol@globex.example"))
    assert [t.value for t in at.title] == ["Sign-in refused"]
    assert "suspended" in at.error[0].value
    assert len(at.chat_input) == 0


def test_alice_sees_none_of_bobs_conversations(open_app: OpenApp) -> None:
    send(open_app(claims("bob@acme.example")), "bob private note")
    at = open_app(claims("alice@acme.example"))
    assert [t.value for t in at.title] == ["Acme Workspace"]
    assert not any("private note" in b for b in sidebar_buttons(at))
    assert "Alice Archer · Acme Corporation" in [c.value for c in at.sidebar.caption]
