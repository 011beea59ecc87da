"""plugins/tone_persona.py: loaded by file path, exercised with real Tenant objects."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave.errors import TenantInvalid
from enclave.identity import Principal
from enclave.tenants import Tenant
from tests.plugins.support import load_plugin, make_tenant, plugin_manager

plugin = load_plugin("tone_persona")




def principal(name: str = "Alice Smith", email: str = "alice@acme.example") -> Principal:
    return Principal("acme", "sub-1", email, name, ("member",), "ui")


def prompt_for(tenant: Tenant, who: Principal | None = None) -> str | None:
    return plugin.enclave_system_prompt(tenant=tenant, principal=who or principal(),
                                        assistant=tenant.default_assistant)


def test_cheerful_addresses_user_by_first_name(tmp_path: Path) -> None:
    tenant = make_tenant(tmp_path, '[plugins.tone_persona]\npersona = "cheerful"')
    text = prompt_for(tenant)
    assert isinstance(text, str) and "\n" not in text
    assert "cheerful" in text.lower() and "Alice" in text
    assert "Smith" not in text
    assert "End every answer" not in text


@pytest.mark.parametrize(("name", "email", "expected"), [
    ("Bob", "bob@acme.example", "Bob"),
    ("alice.smith", "alice.smith@acme.example", "Alice"),  # CLI: email local part
    ("", "carol_jones@acme.example", "Carol"),
    ("Jean-Luc Picard", "jl@acme.example", "Jean-Luc"),
])
def test_first_name(name: str, email: str, expected: str) -> None:
    assert plugin.first_name(principal(name, email)) == expected


def test_formal(tmp_path: Path) -> None:
    tenant = make_tenant(tmp_path, '[plugins.tone_persona]\npersona = "formal"')
    text = prompt_for(tenant)
    assert text is not None and "formal" in text.lower()
    assert "Alice" not in text
    assert "Do not use first names" in text


def test_concise(tmp_path: Path) -> None:
    tenant = make_tenant(tmp_path, '[plugins.tone_persona]\npersona = "concise"')
    text = prompt_for(tenant)
    assert text is not None and "concise" in text.lower() and "briefly" in text
    assert "Alice" not in text


@pytest.mark.parametrize("persona", ["cheerful", "formal", "concise"])
def test_signature(tmp_path: Path, persona: str) -> None:
    tenant = make_tenant(tmp_path, f'[plugins.tone_persona]\npersona = "{persona}"\n'
                                   'signature = "  — Acme Workspace  "')
    text = prompt_for(tenant)
    assert text is not None
    assert text.endswith("End every answer with the following line, exactly as written, "
                         "on a line of its own: — Acme Workspace")


def test_shipped_tenant_settings_are_valid(tmp_path: Path) -> None:
    acme = make_tenant(tmp_path / "a", None, "acme")
    text = prompt_for(acme)
    assert text is not None and "Alice" in text and text.endswith("— Acme Workspace")
    globex = make_tenant(tmp_path / "g", None, "globex")
    text = prompt_for(globex, principal("Carol White", "carol@globex.example"))
    assert text is not None and "formal" in text.lower() and "End every answer" not in text


def test_unknown_persona_names_tenant_setting_and_allowed_values(tmp_path: Path) -> None:
    tenant = make_tenant(tmp_path, '[plugins.tone_persona]\npersona = "pirate"')
    with pytest.raises(TenantInvalid) as err:
        prompt_for(tenant)
    msg = str(err.value)
    assert "'acme'" in msg and "plugins.tone_persona.persona" in msg and "'pirate'" in msg
    assert "cheerful, formal, concise" in msg


def test_missing_persona_is_invalid(tmp_path: Path) -> None:
    tenant = make_tenant(tmp_path, '[plugins.tone_persona]\nsignature = "Bye"')
    with pytest.raises(TenantInvalid, match="persona.*is missing"):
        prompt_for(tenant)


@pytest.mark.parametrize("bad", ['signature = 42', 'signature = ""',
                                 'signature = "line one\\nline two"'])
def test_bad_signature_is_invalid(tmp_path: Path, bad: str) -> None:
    tenant = make_tenant(tmp_path, f'[plugins.tone_persona]\npersona = "formal"\n{bad}')
    with pytest.raises(TenantInvalid, match="plugins.tone_persona.signature"):
        prompt_for(tenant)


def test_unknown_setting_is_invalid(tmp_path: Path) -> None:
    tenant = make_tenant(tmp_path, '[plugins.tone_persona]\npersona = "formal"\npersonna = 1')
    with pytest.raises(TenantInvalid, match="plugins.tone_persona.personna"):
        prompt_for(tenant)


def test_enabled_key_is_not_a_setting(tmp_path: Path) -> None:
    tenant = make_tenant(tmp_path, '[plugins.tone_persona]\nenabled = true\npersona = "formal"')
    assert tenant.plugin_enabled("tone_persona")
    assert prompt_for(tenant) is not None


def test_works_through_pluggy(tmp_path: Path) -> None:
    pm = plugin_manager(plugin)
    tenant = make_tenant(tmp_path, '[plugins.tone_persona]\npersona = "cheerful"')
    results = pm.hook.enclave_system_prompt(tenant=tenant, principal=principal(),
                                            assistant=tenant.default_assistant)
    assert len(results) == 1 and "Alice" in results[0]
