"""The ``enclave`` command line, run in-process through ``enclave.cli.main`` (plus one real
subprocess for the module entry point) against the fake OpenAI server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from enclave import cli
from enclave.config import ROOT
from tests.fakes.openai_server import FakeOpenAI

API_KEY = "sk-test-cli-secret-0123456789"
BOB = "bob@acme.example"
USAGE_LINE = re.compile(r"^\[conversation ([0-9a-f]{32}) · fake-model · (\d+)\+(\d+) tokens"
                        r"(?: \(estimated\))? · \d+ ms\]$", re.M)


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("error:")]

    def assert_clean_failure(self, *fragments: str) -> str:
        """Exit 1 with exactly one ``error:`` line naming ``fragments``, no traceback, no
        secret; returns that line."""
        assert self.code == 1, (self.out, self.err)
        assert len(self.error_lines) == 1, self.err
        line = self.error_lines[0]
        for fragment in fragments:
            assert fragment in line, line
        for text in (self.out, self.err):
            assert "Traceback" not in text
            assert API_KEY not in text
        return line

    @property
    def conversation_id(self) -> str:
        m = USAGE_LINE.search(self.err)
        assert m, self.err
        return m.group(1)


@pytest.fixture
def env(tmp_path: Path, llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI's environment: a temporary data dir and the fake model. Returns the data dir."""
    data = tmp_path / "data"
    monkeypatch.setenv("ENCLAVE_DATA_DIR", str(data))
    monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("ENCLAVE_MODEL", "fake-model")
    for var in ("ENCLAVE_MASTER_KEY", "ENCLAVE_TENANTS_DIR", "ENCLAVE_PLUGINS_DIR"):
        monkeypatch.delenv(var, raising=False)
    return data


Run = Callable[..., Result]


@pytest.fixture
def run(env: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """``run(*argv)``: call ``enclave.cli.main(argv)`` and capture its exit code and output."""
    def run(*argv: str) -> Result:
        capsys.readouterr()  # drop anything printed before
        code = cli.main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)
    return run


def last_request_messages(llm: FakeOpenAI) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in llm.requests[-1]["messages"]]


# -- tenants -----------------------------------------------------------------------------


def test_tenants_list(run: Run) -> None:
    r = run("tenants", "list")
    assert r.code == 0, r.err
    rows = [line.split()[:2] for line in r.out.splitlines()]
    assert rows == [["acme", "active"], ["globex", "active"]]
    assert "Acme Corporation" in r.out and "Globex Industries" in r.out


def test_tenants_show_acme_is_json(run: Run) -> None:
    r = run("tenants", "show", "acme")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["slug"] == "acme" and doc["name"] == "Acme Corporation"
    assert doc["title"] == "Acme Workspace" and doc["provider"] == "acme"
    assert doc["assistants"] == {"helpdesk": "Acme Helpdesk", "hr-buddy": "HR Buddy",
                                 "product-guide": "Product Guide"}
    assert doc["default_assistant"] == "helpdesk"
    assert doc["plugins"] == ["pii_redaction", "tone_persona"]
    assert doc["email_domains"] == ["acme.example"]
    assert doc["model"]["timeout_seconds"] == 60


def test_tenants_show_unknown_tenant(run: Run) -> None:
    r = run("tenants", "show", "nope")
    assert r.out == ""
    r.assert_clean_failure("no tenant", "nope")


def test_tenants_validate_ok(run: Run) -> None:
    r = run("tenants", "validate")
    assert r.code == 0, r.err
    assert r.out.strip() == "ok: 2 tenant(s) valid"


def test_tenants_validate_names_file_and_field_of_a_broken_copy(run: Run,
                                                                tenants_copy: Path) -> None:
    toml = tenants_copy / "globex" / "tenant.toml"
    toml.write_text(toml.read_text().replace('primary_color = "#2f9e44"',
                                             'primary_color = "green"'))
    r = run("tenants", "validate", "--tenants-dir", str(tenants_copy))
    assert not r.out.startswith("ok")
    r.assert_clean_failure(str(toml), "branding.primary_color")


def test_tenants_validate_on_a_missing_directory(run: Run, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    run("tenants", "validate", "--tenants-dir", str(missing)).assert_clean_failure(
        str(missing), "not found")


def test_tenants_validate_refuses_an_unknown_plugin(run: Run, tenants_copy: Path) -> None:
    toml = tenants_copy / "acme" / "tenant.toml"
    toml.write_text(toml.read_text() + "\n[plugins.no_such_plugin]\n")
    r = run("tenants", "validate", "--tenants-dir", str(tenants_copy))
    r.assert_clean_failure(str(toml), "plugins.no_such_plugin")


def test_tenants_validate_checks_plugin_settings(run: Run, tenants_copy: Path) -> None:
    toml = tenants_copy / "acme" / "tenant.toml"
    toml.write_text(toml.read_text().replace('persona = "cheerful"', 'persona = "grumpy"'))
    r = run("tenants", "validate", "--tenants-dir", str(tenants_copy))
    r.assert_clean_failure(str(toml), "plugins.tone_persona.persona")


# -- chat --------------------------------------------------------------------------------


def test_chat_prints_the_streamed_answer_and_a_usage_line(run: Run, llm: FakeOpenAI) -> None:
    r = run("chat", "acme", "--as", BOB, "hello")
    assert r.code == 0, r.err
    assert r.out == "You said: hello\n"
    m = USAGE_LINE.search(r.err)
    assert m, r.err
    assert int(m.group(3)) == 3  # "You", " said:", " hello"
    assert len(llm.requests) == 1
    req = llm.requests[0]
    assert req["model"] == "fake-model" and req["stream"] is True
    assert req["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert last_request_messages(llm)[-1] == ("user", "hello")
    assert "Acme Helpdesk" in last_request_messages(llm)[0][1]  # the default assistant


def test_chat_with_a_named_assistant(run: Run, llm: FakeOpenAI) -> None:
    r = run("chat", "acme", "--as", BOB, "--assistant", "hr-buddy", "time off?")
    assert r.code == 0, r.err
    assert r.out == "You said: time off?\n"
    system = last_request_messages(llm)[0]
    assert system[0] == "system" and "## Assistant: HR Buddy" in system[1]


def test_chat_with_an_unknown_assistant(run: Run, llm: FakeOpenAI) -> None:
    r = run("chat", "acme", "--as", BOB, "--assistant", "nope", "hello")
    assert r.out == ""
    r.assert_clean_failure("no assistant", "nope")
    assert llm.requests == []


def test_chat_as_a_user_of_another_tenant_is_refused(run: Run, llm: FakeOpenAI) -> None:
    r = run("chat", "acme", "--as", "carol@globex.example", "hello")
    r.assert_clean_failure("carol@globex.example", "does not belong")
    assert llm.requests == []


def test_chat_as_an_unknown_domain_is_refused(run: Run, llm: FakeOpenAI) -> None:
    r = run("chat", "acme", "--as", "mallory@evil.example", "hello")
    r.assert_clean_failure("mallory@evil.example", "does not belong")
    assert llm.requests == []


def test_auditor_may_not_chat(run: Run, llm: FakeOpenAI) -> None:
    r = run("chat", "globex", "--as", "dave@globex.example", "hello")
    r.assert_clean_failure("dave@globex.example", "may not chat")
    assert llm.requests == []


def test_empty_message_is_refused(run: Run, llm: FakeOpenAI) -> None:
    run("chat", "acme", "--as", BOB, "   ").assert_clean_failure("empty")
    assert llm.requests == []


def test_usage_is_marked_estimated_when_the_model_reports_none(
        run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCLAVE_MODEL", "no-usage")
    r = run("chat", "acme", "--as", BOB, "hello")
    assert r.code == 0, r.err
    assert re.search(r"· no-usage · \d+\+3 tokens \(estimated\) · \d+ ms\]$", r.err, re.M), r.err


def test_continue_a_conversation(run: Run, llm: FakeOpenAI) -> None:
    first = run("chat", "acme", "--as", BOB, "my name is Bob")
    assert first.code == 0, first.err
    conv = first.conversation_id
    second = run("chat", "acme", "--as", BOB, "--conversation", conv, "what is my name?")
    assert second.code == 0, second.err
    assert second.out == "You said: what is my name?\n"
    assert second.conversation_id == conv
    assert last_request_messages(llm)[1:] == [
        ("user", "my name is Bob"), ("assistant", "You said: my name is Bob"),
        ("user", "what is my name?")]


def test_another_users_conversation_cannot_be_continued(run: Run, llm: FakeOpenAI) -> None:
    conv = run("chat", "acme", "--as", BOB, "secret plans").conversation_id
    r = run("chat", "acme", "--as", "alice@acme.example", "--conversation", conv, "show me")
    r.assert_clean_failure("not yours")
    assert len(llm.requests) == 1  # only bob's turn reached the model


def test_model_error_is_one_clear_line(run: Run, llm: FakeOpenAI) -> None:
    llm.fail_status = 500
    r = run("chat", "acme", "--as", BOB, "hello")
    assert r.out.strip() == ""
    r.assert_clean_failure("HTTP 500")
    assert llm.requests  # the model was called


def test_chat_works_again_after_a_failed_chat(run: Run, llm: FakeOpenAI) -> None:
    llm.fail_status = 500
    assert run("chat", "acme", "--as", BOB, "hello").code == 1
    llm.fail_status = None
    r = run("chat", "acme", "--as", BOB, "hello again")
    assert r.code == 0, r.err
    assert r.out == "You said: hello again\n"


# -- the module entry point --------------------------------------------------------------


def test_module_entry_point_runs_as_a_subprocess(env: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "enclave.cli", "tenants", "list"],
                          cwd=ROOT, env=dict(os.environ), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == ["acme", "globex"]


def test_module_entry_point_reports_errors_with_exit_code_1(env: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "enclave.cli", "tenants", "show", "nope"],
                          cwd=ROOT, env=dict(os.environ), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert "error: no tenant 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr
