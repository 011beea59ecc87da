"""The turn log: one row per turn in the tenant's own encrypted store, written through the
batched writer from the workspace; per-tenant content setting and retention."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from enclave.config import Settings
from enclave.errors import BadInput, EnclaveError, QuotaExceeded
from enclave.hookspecs import QuotaDenial
from enclave.tenants import TenantRegistry
from enclave.turnlog import LogFilter, TurnLog, export
from enclave.turns import Final, TurnRecord, Usage
from enclave.workspace import Workspace
from tests.conftest import as_user, plaintext_hits
from tests.fakes.openai_server import FakeOpenAI
from tests.test_workspace import Spy, enable_for_acme, spy_ws  # noqa: F401 - fixture

SECRET = "zebra-mortgage-7731"


def logs(ws: Workspace, tenant: str, **f: object) -> list:  # type: ignore[type-arg]
    return TurnLog(ws._store(ws.tenants.get(tenant))).rows(LogFilter(**f))  # type: ignore[arg-type]


def test_an_ok_turn_is_logged_with_its_figures(ws: Workspace, llm: FakeOpenAI) -> None:
    bob = as_user(ws, "acme", "bob@acme.example")
    final = [e for e in ws.chat(bob, "hello there", assistant="hr-buddy")
             if isinstance(e, Final)][0]
    [entry] = logs(ws, "acme")
    assert (entry.tenant, entry.user_id, entry.channel, entry.assistant) == (
        "acme", "bob@acme.example", "cli", "hr-buddy")
    assert entry.conversation_id == final.conversation_id and entry.outcome == "ok"
    assert entry.prompt == "hello there" and entry.response == final.text
    assert entry.model == "fake-model" and entry.chunk_ids == ()
    assert (entry.prompt_tokens, entry.completion_tokens) == (
        final.usage.prompt_tokens, final.usage.completion_tokens)
    assert entry.tokens_estimated is False and entry.latency_ms > 0 and entry.error is None
    assert logs(ws, "globex") == []  # the other tenant's store has nothing


def test_refused_and_failed_turns_are_logged(spy_ws: tuple[Workspace, Spy],  # noqa: F811
                                             llm: FakeOpenAI) -> None:
    ws, spy = spy_ws
    bob = as_user(ws, "acme", "bob@acme.example")
    spy.deny = QuotaDenial("requests_per_minute", "slow down")
    with pytest.raises(QuotaExceeded):
        ws.chat(bob, "one")
    spy.deny = None
    llm.fail_status = 500
    with pytest.raises(EnclaveError):
        list(ws.chat(bob, "two"))
    by_outcome = {e.outcome: e for e in logs(ws, "acme")}
    assert set(by_outcome) == {"refused", "model_error"}
    assert by_outcome["refused"].error == "slow down" and by_outcome["refused"].prompt == "one"
    assert "500" in (by_outcome["model_error"].error or "")
    assert [e.outcome for e in logs(ws, "acme", outcome="refused")] == ["refused"]


def test_redaction_plugins_run_before_the_log(ws: Workspace, llm: FakeOpenAI) -> None:
    list(ws.chat(as_user(ws, "acme", "bob@acme.example"), "mail bob.private@gmail.com"))
    [entry] = logs(ws, "acme")
    assert entry.prompt == "mail [email]" and "gmail" not in (entry.response or "")


def test_metadata_only_tenant_keeps_no_content(settings: Settings, tenants_copy: Path,
                                               llm: FakeOpenAI) -> None:
    toml = tenants_copy / "globex" / "tenant.toml"
    toml.write_text(toml.read_text() + '\n[logging]\ncontent = "metadata"\nretention_days = 7\n')
    ws = Workspace(settings, TenantRegistry.load(tenants_copy))
    try:
        list(ws.chat(as_user(ws, "globex", "carol@globex.example"), f"about {SECRET}"))
        [entry] = logs(ws, "globex")
        assert entry.prompt is None and entry.response is None
        assert entry.outcome == "ok" and entry.completion_tokens > 0
    finally:
        ws.close()


def test_bad_logging_settings_name_the_field(tenants_copy: Path) -> None:
    toml = tenants_copy / "globex" / "tenant.toml"
    toml.write_text(toml.read_text() + '\n[logging]\ncontent = "everything"\n')
    with pytest.raises(EnclaveError, match="logging.content"):
        TenantRegistry.load(tenants_copy)
    toml.write_text(toml.read_text().replace('content = "everything"', "retention_days = 0"))
    with pytest.raises(EnclaveError, match="logging.retention_days"):
        TenantRegistry.load(tenants_copy)


def test_retrieved_chunk_ids_are_logged(ws: Workspace) -> None:
    record = TurnRecord("acme", "h", "ui", "c1", "helpdesk", "m", "ok", "p", "r",
                        Usage(1, 2, True), 3.0)
    log = TurnLog(ws._store(ws.tenants.get("acme")))
    log.record(record, "bob@acme.example", ("doc1#0", "doc2#3"), keep_content=True)
    [entry] = log.rows(LogFilter())
    assert entry.chunk_ids == ("doc1#0", "doc2#3") and entry.tokens_estimated is True
    assert log.get(entry.id) == entry
    with pytest.raises(EnclaveError, match="no logged turn 'nope'"):
        log.get("nope")


def test_filters_and_prune(ws: Workspace) -> None:
    log = TurnLog(ws._store(ws.tenants.get("acme")))
    now = datetime.now(UTC)
    for days, user in ((100, "old@acme.example"), (10, "bob@acme.example"),
                       (0, "bob@acme.example")):
        record = TurnRecord("acme", "h", "ui", "c", "helpdesk", "m", "ok", "p", "r", None, 1.0)
        log.record(record, user, (), True, at=now - timedelta(days=days))
    assert len(log.rows(LogFilter(user="bob@acme.example"))) == 2
    assert len(log.rows(LogFilter(since=now - timedelta(days=11)))) == 2
    assert len(log.rows(LogFilter(until=now - timedelta(days=50)))) == 1
    assert len(log.rows(LogFilter(limit=1))) == 1
    assert ws.prune_logs(now) == {"acme": 1}  # retention_days defaults to 90
    assert {e.user_id for e in log.rows(LogFilter())} == {"bob@acme.example"}
    assert ws.prune_logs(now) == {"acme": 0}
    [entry] = ws._trail(ws.tenants.get("acme")).entries()
    assert (entry.actor, entry.action) == ("system", "logs.prune")
    assert json.loads(entry.detail) == {"rows": 1, "retention_days": 90}


@pytest.mark.parametrize("bad, message", [
    ({"outcome": "maybe"}, "unknown outcome 'maybe'"),
    ({"limit": 0}, "limit must be between"),
    ({"since": datetime(2025, 2, 1, tzinfo=UTC), "until": datetime(2025, 1, 1, tzinfo=UTC)},
     "'since' must be before 'until'"),
])
def test_bad_filters_are_refused(bad: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(BadInput, match=message):
        LogFilter(**bad)


def test_export_csv_and_json(ws: Workspace, llm: FakeOpenAI) -> None:
    list(ws.chat(as_user(ws, "globex", "carol@globex.example"), "=HYPERLINK(\"x\") total"))
    entries = logs(ws, "globex")
    rows = list(csv.DictReader(io.StringIO(export(entries, "csv"))))
    assert len(rows) == 1 and rows[0]["user_id"] == "carol@globex.example"
    assert rows[0]["prompt"].startswith("'=HYPERLINK")  # no formula in a spreadsheet
    doc = json.loads(export(entries, "json"))
    assert doc[0]["prompt"].startswith("=HYPERLINK") and doc[0]["id"] == entries[0].id
    with pytest.raises(BadInput, match="unknown export format 'xml'"):
        export(entries, "xml")


def test_no_prompt_or_response_in_plaintext_under_data(ws: Workspace, settings: Settings,
                                                       llm: FakeOpenAI) -> None:
    bob = as_user(ws, "acme", "bob@acme.example")
    list(ws.chat(bob, f"my secret is {SECRET}"))
    assert logs(ws, "acme")[0].prompt == f"my secret is {SECRET}"
    assert plaintext_hits(settings.data_dir, SECRET) == []  # open: stores and WALs
    ws.close()
    assert plaintext_hits(settings.data_dir, SECRET) == []
    assert plaintext_hits(settings.data_dir, "bob@acme.example") == []
