"""The plugin host: built-ins, drop-ins, per-tenant gating on every call, providers."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave import hookimpl
from enclave.config import ROOT
from enclave.plugins.host import PluginError, PluginHost
from enclave.tenants import Tenant, TenantRegistry

SPY = '''
from enclave import hookimpl

@hookimpl
def enclave_system_prompt(tenant, principal, assistant):
    return "SPY-" + tenant.slug
'''


def write(dir_: Path, name: str, text: str) -> Path:
    dir_.mkdir(parents=True, exist_ok=True)
    (dir_ / f"{name}.py").write_text(text)
    return dir_


def enable(tenants_dir: Path, slug: str, plugin: str, body: str = "") -> None:
    toml = tenants_dir / slug / "tenant.toml"
    toml.write_text(toml.read_text() + f"\n[plugins.{plugin}]\n{body}\n")


def prompts(host: PluginHost, tenant: Tenant) -> list[str]:
    return host.hooks(tenant).enclave_system_prompt(
        tenant=tenant, principal=None, assistant=tenant.default_assistant)


def test_builtins_come_from_entry_points() -> None:
    host = PluginHost(None)
    assert {"default_openai", "default_turn", "default_logging"} <= host.builtins
    assert host.builtins <= host.names


def test_dropin_runs_only_for_tenants_that_enable_it(tmp_path: Path,
                                                     tenants_copy: Path) -> None:
    plugins = write(tmp_path / "plugins", "spy", SPY)
    enable(tenants_copy, "acme", "spy")
    reg = TenantRegistry.load(tenants_copy)
    host = PluginHost(plugins)
    assert "SPY-acme" in prompts(host, reg.get("acme"))
    assert not any(p.startswith("SPY") for p in prompts(host, reg.get("globex")))
    # interleaved calls keep the gate per call
    assert "SPY-acme" in prompts(host, reg.get("acme"))
    assert not any(p.startswith("SPY") for p in prompts(host, reg.get("globex")))


def test_enabled_false_switches_a_plugin_off(tmp_path: Path, tenants_copy: Path) -> None:
    plugins = write(tmp_path / "plugins", "spy", SPY)
    enable(tenants_copy, "acme", "spy", "enabled = false")
    host = PluginHost(plugins)
    assert "SPY-acme" not in prompts(host, TenantRegistry.load(tenants_copy).get("acme"))


def test_a_dropin_named_like_a_builtin_is_not_a_builtin(tmp_path: Path,
                                                        tenants_copy: Path) -> None:
    plugins = write(tmp_path / "plugins", "default_evil", SPY)
    host = PluginHost(plugins)
    assert "default_evil" not in host.builtins
    globex = TenantRegistry.load(tenants_copy).get("globex")
    assert not any(p.startswith("SPY") for p in prompts(host, globex))


def test_a_dropin_cannot_take_a_builtin_name(tmp_path: Path) -> None:
    plugins = write(tmp_path / "plugins", "default_openai", SPY)
    with pytest.raises(PluginError, match="default_openai.*already loaded"):
        PluginHost(plugins)


def test_broken_dropin_names_its_file(tmp_path: Path) -> None:
    plugins = write(tmp_path / "plugins", "broken", "import does_not_exist_anywhere\n")
    with pytest.raises(PluginError, match=r"broken\.py.*failed to import"):
        PluginHost(plugins)


def test_unknown_hook_name_is_refused(tmp_path: Path) -> None:
    text = "from enclave import hookimpl\n@hookimpl\ndef enclave_sytem_prompt():\n    pass\n"
    with pytest.raises(PluginError, match="enclave_sytem_prompt"):
        PluginHost(write(tmp_path / "plugins", "typo", text))


def test_tenant_naming_a_missing_plugin_is_refused(tenants_copy: Path) -> None:
    enable(tenants_copy, "globex", "not_installed")
    tenant = TenantRegistry.load(tenants_copy).get("globex")
    with pytest.raises(PluginError, match=r"tenant\.toml.*plugins\.not_installed"):
        PluginHost(ROOT / "plugins").check(tenant)


def test_tenant_cannot_configure_a_builtin(tenants_copy: Path) -> None:
    enable(tenants_copy, "globex", "default_turn", "enabled = false")
    tenant = TenantRegistry.load(tenants_copy).get("globex")
    with pytest.raises(PluginError, match="plugins.default_turn"):
        PluginHost(ROOT / "plugins").check(tenant)


class Provider:
    def __init__(self, name: str) -> None:
        self.name = name

    @hookimpl
    def enclave_register_model_providers(self, register):  # type: ignore[no-untyped-def]
        register(self.name, lambda endpoint: f"model-of-{self.name}")


def test_plugin_provider_replaces_the_builtin_only_for_its_tenant(tenants_copy: Path) -> None:
    enable(tenants_copy, "acme", "mine")
    reg = TenantRegistry.load(tenants_copy)
    host = PluginHost(None, extra={"mine": Provider("openai")})
    acme = host.model_providers(reg.get("acme"))
    globex = host.model_providers(reg.get("globex"))
    assert acme["openai"](None) == "model-of-openai"  # type: ignore[arg-type]
    assert globex["openai"].__module__ == "enclave.model"


def test_two_plugins_registering_one_provider_name_is_an_error(tenants_copy: Path) -> None:
    enable(tenants_copy, "acme", "one")
    enable(tenants_copy, "acme", "two")
    host = PluginHost(None, extra={"one": Provider("vllm"), "two": Provider("vllm")})
    with pytest.raises(PluginError, match="'vllm' is registered by both"):
        host.model_providers(TenantRegistry.load(tenants_copy).get("acme"))


class Picky:
    @hookimpl
    def enclave_validate_settings(self, tenant):  # type: ignore[no-untyped-def]
        if tenant.plugin_settings("picky").get("level") != "ok":
            raise PluginError(f"{tenant.slug}: plugins.picky.level must be 'ok'")


def test_plugins_validate_the_settings_of_tenants_that_enable_them(
        tenants_copy: Path) -> None:
    enable(tenants_copy, "acme", "picky", 'level = "bad"')
    reg = TenantRegistry.load(tenants_copy)
    host = PluginHost(ROOT / "plugins", extra={"picky": Picky()})
    with pytest.raises(PluginError, match="plugins.picky.level"):
        host.check(reg.get("acme"))
    host.check(reg.get("globex"))  # globex does not enable picky: not asked
