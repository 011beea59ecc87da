"""``enclave usage report``, ``enclave quota status``, ``enclave alerts list|clear|scan``."""

from __future__ import annotations

import json

import pytest

from enclave import cli
from enclave.config import Settings
from enclave.hookspecs import Alert
from enclave.workspace import Workspace
from tests.conftest import as_user
from tests.fakes.openai_server import FakeOpenAI


@pytest.fixture
def env(settings: Settings, llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ENCLAVE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ENCLAVE_MODEL", "fake-model")
    ws = Workspace(settings)
    bob = as_user(ws, "acme", "bob@acme.example")
    list(ws.chat(bob, "hello"))
    list(ws.chat(bob, "hello again"))
    ws.alert(ws.tenants.get("acme"),
             Alert("quota_threshold", "warning", "bob@acme.example used 80%.", {}))
    ws.close()
    return settings


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_usage_report(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "usage", "report", "acme", "--by", "user", "--json")
    assert code == 0
    [row] = json.loads(out)
    assert row["user"] == "bob@acme.example" and row["turns"] == 2
    code, out, _ = run(capsys, "usage", "report", "acme", "--since", "2000-01-01")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["period", "turns", "tokens"]
    code, _, err = run(capsys, "usage", "report", "acme", "--since", "soon")
    assert code == 1 and "--since 'soon' is not a date" in err
    code, out, _ = run(capsys, "usage", "report", "globex")
    assert out.strip() == "no usage in this period"


def test_quota_status(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "quota", "status", "acme", "--user", "bob@acme.example",
                       "--json")
    assert code == 0
    rows = {r["limit"]: r for r in json.loads(out.split("\n", 1)[1])}
    assert rows["100,000 tokens per day"]["used"] > 0, "budgets come from the metering rows"
    code, out, _ = run(capsys, "quota", "status", "acme")
    assert code == 0 and "250.00" in out and "Acme Corporation" in out
    code, _, err = run(capsys, "quota", "status", "acme", "--user", "eve@globex.example")
    assert code == 1 and "does not belong to tenant 'acme'" in err


def test_alerts_list_clear_and_scan(env: Settings, capsys: pytest.CaptureFixture[str]
                                    ) -> None:
    code, out, _ = run(capsys, "alerts", "list", "acme")
    assert code == 0 and "quota_threshold" in out and "bob@acme.example used 80%." in out
    alert_id = out.split()[2]
    assert run(capsys, "alerts", "clear", "acme", alert_id)[0] == 0
    assert run(capsys, "alerts", "list", "acme")[1].strip() == "no open alerts"
    code, out, _ = run(capsys, "alerts", "list", "acme", "--all", "--json")
    assert json.loads(out)[0]["cleared_by"].startswith("operator:")
    code, _, err = run(capsys, "alerts", "clear", "acme", "nope")
    assert code == 1 and "no open alert 'nope'" in err
    code, out, _ = run(capsys, "alerts", "scan", "acme")
    assert code == 0 and out.strip().endswith("0 finding(s)")
