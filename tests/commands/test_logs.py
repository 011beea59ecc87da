"""``enclave logs show | export | prune`` and ``enclave audit show | verify`` and
``enclave keys rotate | rotate-master``, run in-process like tests/test_cli.py."""

from __future__ import annotations

import base64
import csv
import io
import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from enclave.keys import KeyRing, load_master_key
from enclave.store import TenantStore
from enclave.workspace import TENANT_MIGRATIONS
from tests.test_cli import Run, env, run  # noqa: F401 - fixtures

BOB, DAVE, CAROL = "bob@acme.example", "dave@globex.example", "carol@globex.example"


def chat(run: Run, slug: str, email: str, text: str) -> None:  # noqa: F811
    r = run("chat", slug, "--as", email, text)
    assert r.code == 0, r.err


def rewrite(data: Path, slug: str, sql: str) -> None:
    """An attacker holding the tenant's data key rewrites rows of its store."""
    key = KeyRing(data, load_master_key(data)).data_key(slug)
    store = TenantStore(data / "tenants" / slug / "store.duckdb", key, TENANT_MIGRATIONS)
    store.write((sql, []))
    store.close()


def test_logs_show_json_as_auditor_is_audited(run: Run) -> None:  # noqa: F811
    chat(run, "globex", "erin@globex.example", "budget question")
    chat(run, "globex", CAROL, "other question")
    r = run("logs", "show", "globex", "--as", DAVE, "--user", "erin@globex.example", "--json")
    assert r.code == 0, r.err
    [entry] = json.loads(r.out)
    assert entry["prompt"] == "budget question" and entry["outcome"] == "ok"
    r = run("logs", "show", "globex", "--as", DAVE, "--turn", entry["id"])
    assert json.loads(r.out)[0]["id"] == entry["id"]
    r = run("logs", "show", "globex", "--as", DAVE)
    assert r.code == 0 and len(r.out.splitlines()) == 2 and "2 turn(s)" in r.err
    r = run("audit", "show", "globex", "--as", DAVE, "--json")
    doc = json.loads(r.out)
    assert doc["ok"] is True and [e["action"] for e in doc["entries"]] == [
        "logs.view", "logs.open", "logs.view"]
    assert {e["actor"] for e in doc["entries"]} == {DAVE}
    assert {e["channel"] for e in doc["entries"]} == {"cli"}


def test_logs_are_refused_to_a_member_and_across_tenants(run: Run) -> None:  # noqa: F811
    chat(run, "acme", BOB, "hello")
    run("logs", "show", "acme", "--as", BOB).assert_clean_failure(BOB, "may not logs read")
    run("logs", "show", "acme", "--as", DAVE).assert_clean_failure(DAVE, "acme")
    run("audit", "show", "acme", "--as", BOB).assert_clean_failure("may not audit read")
    with pytest.raises(SystemExit) as exit_:
        run("logs", "show", "acme")  # --as or --break-glass is required
    assert exit_.value.code == 2


def test_break_glass_from_the_cli_is_audited(run: Run) -> None:  # noqa: F811
    chat(run, "acme", BOB, "incident")
    run("logs", "show", "acme", "--break-glass", "x").assert_clean_failure("reason")
    r = run("logs", "show", "acme", "--break-glass", "INC-77 investigation", "--json")
    assert r.code == 0 and json.loads(r.out)[0]["prompt"] == "incident"
    r = run("audit", "show", "acme", "--break-glass", "INC-77 investigation")
    lines = r.out.splitlines()
    assert "break_glass" in lines[0] and "INC-77 investigation" in lines[0]
    assert "logs.view" in lines[1] and lines[-1].startswith("ok:")


def test_logs_export_csv_to_a_private_file(run: Run, tmp_path: Path) -> None:  # noqa: F811
    chat(run, "acme", BOB, "export me")
    out = tmp_path / "turns.csv"
    r = run("logs", "export", "acme", "--as", "alice@acme.example", "--format", "csv",
            "--output", str(out), "--since", datetime.now(UTC).date().isoformat())
    assert r.code == 0, r.err
    [row] = list(csv.DictReader(io.StringIO(out.read_text())))
    assert row["prompt"] == "export me" and row["user_id"] == BOB
    assert out.stat().st_mode & 0o777 == 0o600
    r = run("logs", "export", "acme", "--as", "alice@acme.example", "--format", "json")
    assert json.loads(r.out)[0]["prompt"] == "export me"
    r = run("logs", "export", "acme", "--as", "alice@acme.example", "--since", "yesterday")
    r.assert_clean_failure("--since", "'yesterday' is not a date")


def test_logs_prune_removes_turns_past_retention(run: Run, env: Path) -> None:  # noqa: F811
    chat(run, "acme", BOB, "old turn")
    chat(run, "acme", BOB, "new turn")
    old = (datetime.now(UTC) - timedelta(days=91)).isoformat()
    rewrite(env, "acme", f"UPDATE turn_log SET ts = '{old}' WHERE prompt = 'old turn'")
    r = run("logs", "prune")
    assert r.code == 0 and "acme: removed 1 turn(s)" in r.out
    r = run("logs", "show", "acme", "--as", "alice@acme.example", "--json")
    assert [e["prompt"] for e in json.loads(r.out)] == ["new turn"]


@pytest.mark.parametrize("attack, bad", [
    ("UPDATE audit_log SET target = 'nothing to see' WHERE seq = 2", 2),
    ("DELETE FROM audit_log WHERE seq = 1", 1),
    ("UPDATE audit_log SET seq = 4 - seq WHERE seq IN (1, 3)", 1),
    ("DELETE FROM audit_log WHERE seq = 3", 3),
])
def test_audit_verify_names_the_first_bad_entry(run: Run, env: Path, attack: str,  # noqa: F811
                                                bad: int) -> None:
    chat(run, "acme", BOB, "hello")
    for _ in range(3):
        assert run("logs", "show", "acme", "--as", "alice@acme.example").code == 0
    r = run("audit", "verify", "acme")
    assert r.code == 0 and r.out.strip() == "acme: ok: 3 entries, chain and anchor intact"
    rewrite(env, "acme", attack)
    r = run("audit", "verify", "acme")
    assert r.code == 1 and r.out.startswith(f"acme: TAMPERED: entry {bad}: "), r.out


def test_keys_rotate_and_rotate_master(run: Run, env: Path,  # noqa: F811
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    monkeypatch.setenv("ENCLAVE_MASTER_KEY", base64.b64encode(old).decode())
    chat(run, "acme", BOB, "keep me")
    r = run("keys", "rotate", "acme")
    assert r.code == 0 and "re-encrypted" in r.out, r.err
    run("keys", "rotate", "nope").assert_clean_failure("no tenant 'nope'")
    run("keys", "rotate-master").assert_clean_failure("ENCLAVE_MASTER_KEY_PREVIOUS")
    monkeypatch.setenv("ENCLAVE_MASTER_KEY", base64.b64encode(new).decode())
    monkeypatch.setenv("ENCLAVE_MASTER_KEY_PREVIOUS", base64.b64encode(old).decode())
    r = run("keys", "rotate-master")
    assert r.code == 0 and json.loads(r.out.splitlines()[0])["rewrapped"] == 3, r.err
    monkeypatch.delenv("ENCLAVE_MASTER_KEY_PREVIOUS")
    r = run("logs", "show", "acme", "--as", "alice@acme.example", "--json")
    assert json.loads(r.out)[0]["prompt"] == "keep me"
    r = run("audit", "show", "acme", "--as", "alice@acme.example", "--json")
    actions = [e["action"] for e in json.loads(r.out)["entries"]]
    assert actions == ["keys.rotate", "keys.rotate_master", "logs.view"]
