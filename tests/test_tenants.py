"""Tenant folders: the demo tenants load, and every invalid folder is refused with a
TenantInvalid that names the offending file and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from enclave.errors import TenantInvalid, TenantNotFound
from enclave.tenants import TenantRegistry
from tests.conftest import TENANTS


def edit(file: Path, old: str, new: str) -> None:
    """Replace ``old`` (which must be present) by ``new`` in ``file``."""
    text = file.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {file}"
    file.write_text(text.replace(old, new, 1), encoding="utf-8")


def load_error(tenants_dir: Path) -> str:
    """The message of the TenantInvalid raised while loading ``tenants_dir``."""
    with pytest.raises(TenantInvalid) as exc:
        TenantRegistry.load(tenants_dir)
    return str(exc.value)


def assert_names(message: str, file: Path, *fragments: str) -> None:
    assert str(file) in message, message
    for fragment in fragments:
        assert fragment in message, message


# -- the demo tenants ------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> TenantRegistry:
    return TenantRegistry.load(TENANTS)


def test_demo_tenants_load(demo: TenantRegistry) -> None:
    assert [t.slug for t in demo] == ["acme", "globex"]
    assert len(demo) == 2
    acme, globex = demo.get("acme"), demo.get("globex")
    assert (acme.name, globex.name) == ("Acme Corporation", "Globex Industries")
    assert acme.branding.title == "Acme Workspace"
    assert globex.branding.title == "Globex Intelligence Desk"
    assert acme.branding.primary_color == "#d9480f"
    assert acme.active and globex.active


def test_demo_assistants_and_prompts(demo: TenantRegistry) -> None:
    acme, globex = demo.get("acme"), demo.get("globex")
    assert set(acme.assistants) == {"helpdesk", "hr-buddy", "product-guide"}
    assert acme.default_assistant.slug == "helpdesk"
    assert acme.assistant(None).name == "Acme Helpdesk"
    assert globex.default_assistant.slug == "ops-analyst"
    assert acme.assistant("hr-buddy").instructions.startswith("You are HR Buddy")
    assert acme.system_prompt.startswith("# Acme Workspace assistant")
    with pytest.raises(TenantNotFound):
        acme.assistant("ops-analyst")  # globex's, not acme's


def test_demo_logo_paths(demo: TenantRegistry) -> None:
    for tenant in demo:
        assert tenant.logo_path == tenant.path / "branding" / "logo.svg"
        assert tenant.logo_path.is_file()


def test_demo_plugin_settings(demo: TenantRegistry) -> None:
    acme, globex = demo.get("acme"), demo.get("globex")
    assert acme.plugin_enabled("tone_persona") and acme.plugin_enabled("pii_redaction")
    assert dict(acme.plugin_settings("tone_persona")) == {
        "persona": "cheerful", "signature": "— Acme Workspace"}
    assert dict(acme.plugin_settings("pii_redaction")) == {"redact": ["email", "phone", "iban"]}
    assert dict(globex.plugin_settings("tone_persona")) == {"persona": "formal"}
    assert not globex.plugin_enabled("pii_redaction")
    assert dict(globex.plugin_settings("pii_redaction")) == {}


def test_plugin_enabled_false(tenants_copy: Path) -> None:
    edit(tenants_copy / "globex" / "tenant.toml", 'persona = "formal"',
         'persona = "formal"\nenabled = false')
    globex = TenantRegistry.load(tenants_copy).get("globex")
    assert not globex.plugin_enabled("tone_persona")
    assert dict(globex.plugin_settings("tone_persona")) == {"persona": "formal"}


def test_demo_quotas_are_typed_and_frozen(demo: TenantRegistry) -> None:
    acme, globex = demo.get("acme"), demo.get("globex")
    assert acme.quotas.requests_per_minute == 30
    assert globex.quotas.requests_per_minute == 60
    assert acme.quotas.tenant.monthly_budget_usd == 250.0
    with pytest.raises(ValidationError):
        acme.quotas.requests_per_minute = 1  # type: ignore[misc]


def test_demo_identity(demo: TenantRegistry) -> None:
    acme = demo.get("acme")
    assert acme.identity.provider == "acme"
    assert acme.identity.allowed_email_domains == ("acme.example",)
    assert (acme.identity.tenant_claim, acme.identity.tenant_claim_value) == ("org", "acme")
    assert acme.identity.role_map["acme-admins"] == ("admin",)
    with pytest.raises(TenantNotFound):
        demo.get("initech")


def test_by_email_domain_is_case_insensitive(demo: TenantRegistry) -> None:
    assert [t.slug for t in demo.by_email_domain("Bob@ACME.Example")] == ["acme"]
    assert [t.slug for t in demo.by_email_domain("carol@globex.example ")] == ["globex"]
    assert demo.by_email_domain("eve@evil.example") == []


def test_allowed_domains_are_normalised(tenants_copy: Path) -> None:
    edit(tenants_copy / "acme" / "tenant.toml", '["acme.example"]', '["@ACME.Example"]')
    registry = TenantRegistry.load(tenants_copy)
    assert registry.get("acme").identity.allowed_email_domains == ("acme.example",)
    assert [t.slug for t in registry.by_email_domain("bob@acme.example")] == ["acme"]


def test_hidden_and_underscore_folders_are_skipped(tenants_copy: Path) -> None:
    shutil.copytree(tenants_copy / "acme", tenants_copy / "_template")
    (tenants_copy / ".git").mkdir()
    assert [t.slug for t in TenantRegistry.load(tenants_copy)] == ["acme", "globex"]


def test_missing_tenants_dir(tmp_path: Path) -> None:
    assert_names(load_error(tmp_path / "nope"), tmp_path / "nope", "not found")


# -- tenant.toml errors ------------------------------------------------------------------

TOML_CASES = {
    # case: (old text, new text, field named in the message)
    "missing branding.title": ('title = "Acme Workspace"\n', "", "branding.title"),
    "unknown top-level field": ('name = "Acme Corporation"',
                                'name = "Acme Corporation"\ncolour = "red"', "colour"),
    "unknown branding field": ('tagline = ', 'font = "Comic Sans"\ntagline = ',
                               "branding.font"),
    "bad colour": ('primary_color = "#d9480f"', 'primary_color = "#12345"',
                   "branding.primary_color"),
    "bad status": ('status = "active"', 'status = "paused"', "status"),
    "missing logo": ('logo = "branding/logo.svg"', 'logo = "branding/missing.svg"',
                     "branding.logo"),
    "absolute logo": ('logo = "branding/logo.svg"', 'logo = "/etc/passwd"', "branding.logo"),
    "claim without value": ('tenant_claim_value = "acme"\n', "", "identity.tenant_claim"),
    "value without claim": ('tenant_claim = "org"\n', "", "identity.tenant_claim"),
    "unknown role in role_map": ('"acme-admins" = ["admin"]', '"acme-admins" = ["superuser"]',
                                 "identity.role_map"),
    "unknown default role": ('default_roles = ["member"]', 'default_roles = ["owner"]',
                             "identity.default_roles"),
    "unknown assigned role": ('roles = ["admin"]', 'roles = ["root"]',
                              "identity.assignments"),
    "no email domains": ('allowed_email_domains = ["acme.example"]',
                         "allowed_email_domains = []", "identity.allowed_email_domains"),
    "temperature out of range": ("temperature = 0.3", "temperature = 7", "model.temperature"),
}


@pytest.mark.parametrize("case", TOML_CASES)
def test_invalid_tenant_toml(tenants_copy: Path, case: str) -> None:
    old, new, field = TOML_CASES[case]
    toml_file = tenants_copy / "acme" / "tenant.toml"
    edit(toml_file, old, new)
    assert_names(load_error(tenants_copy), toml_file, f"'{field}")


def test_plugin_settings_must_be_a_table(tenants_copy: Path) -> None:
    toml_file = tenants_copy / "acme" / "tenant.toml"
    text = toml_file.read_text(encoding="utf-8")
    toml_file.write_text(text[:text.index("[plugins.")] + '[plugins]\npii_redaction = "on"\n',
                         encoding="utf-8")
    assert_names(load_error(tenants_copy), toml_file, "'plugins.pii_redaction")


def test_invalid_toml_syntax(tenants_copy: Path) -> None:
    toml_file = tenants_copy / "acme" / "tenant.toml"
    edit(toml_file, 'name = "Acme Corporation"', 'name = "Acme Corporation')
    assert_names(load_error(tenants_copy), toml_file, "not valid TOML", "line 1")


def test_missing_tenant_toml(tenants_copy: Path) -> None:
    toml_file = tenants_copy / "globex" / "tenant.toml"
    toml_file.unlink()
    assert_names(load_error(tenants_copy), toml_file, "missing")


def test_logo_outside_the_tenant_folder(tenants_copy: Path) -> None:
    # the target exists, so only the containment check can refuse it
    outside = tenants_copy.parent / "etc" / "passwd"
    outside.parent.mkdir()
    outside.write_text("root:x:0:0\n")
    toml_file = tenants_copy / "acme" / "tenant.toml"
    edit(toml_file, 'logo = "branding/logo.svg"', 'logo = "../../etc/passwd"')
    assert_names(load_error(tenants_copy), toml_file, "'branding.logo'", "../../etc/passwd")


@pytest.mark.parametrize("slug", ["Acme_Corp", "ab", "1acme", "a" * 33])
def test_invalid_folder_slug(tenants_copy: Path, slug: str) -> None:
    folder = tenants_copy / slug
    (tenants_copy / "acme").rename(folder)
    assert_names(load_error(tenants_copy), folder, f"folder name '{slug}'", "slug")


# -- prompt and assistants -------------------------------------------------------------


def test_missing_system_prompt(tenants_copy: Path) -> None:
    prompt = tenants_copy / "acme" / "prompts" / "system.md"
    prompt.unlink()
    assert_names(load_error(tenants_copy), prompt, "missing")


def test_empty_system_prompt(tenants_copy: Path) -> None:
    prompt = tenants_copy / "acme" / "prompts" / "system.md"
    prompt.write_text("  \n\n\t\n", encoding="utf-8")
    assert_names(load_error(tenants_copy), prompt, "empty")


@pytest.mark.parametrize("remove_folder", [False, True])
def test_no_assistants(tenants_copy: Path, remove_folder: bool) -> None:
    folder = tenants_copy / "globex" / "assistants"
    if remove_folder:
        shutil.rmtree(folder)
    else:
        for file in folder.glob("*.toml"):
            file.unlink()
        (folder / "notes.txt").write_text("not an assistant")
    assert_names(load_error(tenants_copy), folder, "assistants/*.toml")


def test_two_default_assistants(tenants_copy: Path) -> None:
    folder = tenants_copy / "acme" / "assistants"
    edit(folder / "hr-buddy.toml", 'name = "HR Buddy"', 'name = "HR Buddy"\ndefault = true')
    assert_names(load_error(tenants_copy), folder, "default = true")


@pytest.mark.parametrize("stem", ["Help_Desk", "hd", "help desk"])
def test_invalid_assistant_file_name(tenants_copy: Path, stem: str) -> None:
    folder = tenants_copy / "acme" / "assistants"
    file = folder / f"{stem}.toml"
    (folder / "hr-buddy.toml").rename(file)
    assert_names(load_error(tenants_copy), file, f"'{stem}'", "assistant slug")


def test_invalid_assistant_fields(tenants_copy: Path) -> None:
    file = tenants_copy / "acme" / "assistants" / "product-guide.toml"
    edit(file, 'name = "Product Guide"', 'name = "Product Guide"\ntemperature = 0.9')
    assert_names(load_error(tenants_copy), file, "'temperature'")


def test_assistant_without_instructions(tenants_copy: Path) -> None:
    file = tenants_copy / "acme" / "assistants" / "helpdesk.toml"
    file.write_text('name = "Acme Helpdesk"\n', encoding="utf-8")
    assert_names(load_error(tenants_copy), file, "'instructions'")


# -- rules across tenants --------------------------------------------------------------


def share_acme_provider(tenants_dir: Path, with_claims: bool) -> Path:
    """Make globex use the acme provider; drop its tenant claim unless ``with_claims``."""
    toml_file = tenants_dir / "globex" / "tenant.toml"
    edit(toml_file, 'provider = "globex"', 'provider = "acme"')
    if not with_claims:
        edit(toml_file, 'tenant_claim = "org"\ntenant_claim_value = "globex"\n', "")
    return toml_file


def test_shared_provider_without_tenant_claims(tenants_copy: Path) -> None:
    toml_file = share_acme_provider(tenants_copy, with_claims=False)
    assert_names(load_error(tenants_copy), toml_file, "'identity.provider'", "acme",
                 "tenant_claim")


def test_shared_provider_with_tenant_claims_loads(tenants_copy: Path) -> None:
    share_acme_provider(tenants_copy, with_claims=True)
    registry = TenantRegistry.load(tenants_copy)
    assert {t.identity.provider for t in registry} == {"acme"}


def test_shared_provider_check_does_not_depend_on_folder_order(tenants_copy: Path) -> None:
    # acme (first in order) drops its claim; globex (second) shares the provider with one
    edit(tenants_copy / "acme" / "tenant.toml",
         'tenant_claim = "org"\ntenant_claim_value = "acme"\n', "")
    share_acme_provider(tenants_copy, with_claims=True)
    assert_names(load_error(tenants_copy), tenants_copy / "acme" / "tenant.toml",
                 "'identity.provider'")
