"""plugins/tone_persona.py: loaded by file path, exercised with real Tenant objects."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pluggy
import pytest

from enclave import hookspecs
from enclave.errors import TenantInvalid
from enclave.identity import Principal
from enclave.tenants import Tenant, load_tenant

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_FILE = ROOT / "plugins" / "tone_persona.py"


def load_plugin(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"enclave_dropin_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


plugin = load_plugin(PLUGIN_FILE)


def make_tenant(tmp_path: Path, plugins_toml: str | None, source: str = "acme") -> Tenant:
    """A tmp copy of ``tenants/<source>`` with its ``[plugins...]`` tables replaced.

    ``plugins_toml=None`` keeps the tenant's own plugin settings. Files the tenant folder
    may not have yet (prompt, assistant, logo) are created in the copy only.
    """
    folder = tmp_path / source
    shutil.copytree(ROOT / "tenants" / source, folder)
    toml_file = folder / "tenant.toml"
    if plugins_toml is not None:
        text = toml_file.read_text(encoding="utf-8")
        cut = text.find("\n[plugins")
        text = text if cut < 0 else text[:cut + 1]
        toml_file.write_text(text.rstrip() + "\n\n" + plugins_toml.strip() + "\n",
                             encoding="utf-8")
    prompt = folder / "prompts" / "system.md"
    if not prompt.exists():
        prompt.parent.mkdir(parents=True, exist_ok=True)
        prompt.write_text("You are the workspace assistant.\n", encoding="utf-8")
    assistants = folder / "assistants"
    if not list(assistants.glob("*.toml")):
        assistants.mkdir(parents=True, exist_ok=True)
        (assistants / "helpdesk.toml").write_text(
            'name = "Helpdesk"\ndescription = "General questions"\n'
            'instructions = "Answer questions about the company."\ndefault = true\n',
            encoding="utf-8")
    logo = folder / "branding" / "logo.svg"
    if not logo.exists():
        logo.parent.mkdir(parents=True, exist_ok=True)
        logo.write_text('<svg xmlns="http://www.w3.org/2000/svg"/>\n', encoding="utf-8")
    return load_tenant(folder)


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
    pm = pluggy.PluginManager("enclave")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name=PLUGIN_FILE.stem)
    pm.check_pending()
    tenant = make_tenant(tmp_path, '[plugins.tone_persona]\npersona = "cheerful"')
    results = pm.hook.enclave_system_prompt(tenant=tenant, principal=principal(),
                                            assistant=tenant.default_assistant)
    assert len(results) == 1 and "Alice" in results[0]
