"""Helpers for drop-in plugin tests: load a plugin by path, as the host does, and build a
real Tenant from a copy of a demo tenant with its ``[plugins...]`` tables replaced."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pluggy

from enclave import hookspecs
from enclave.config import ROOT
from enclave.tenants import Tenant, load_tenant


def load_plugin(name: str) -> ModuleType:
    path = ROOT / "plugins" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"enclave_dropin_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plugin_manager(plugin: ModuleType) -> pluggy.PluginManager:
    """A bare pluggy manager with Enclave's hooks and only ``plugin`` registered."""
    pm = pluggy.PluginManager("enclave")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name=plugin.PLUGIN_NAME)
    pm.check_pending()
    return pm


def make_tenant(tmp_path: Path, plugins_toml: str | None, source: str = "acme") -> Tenant:
    """A copy of ``tenants/<source>``; ``plugins_toml`` (unless None) replaces its
    ``[plugins...]`` tables."""
    folder = tmp_path / source
    shutil.copytree(ROOT / "tenants" / source, folder)
    if plugins_toml is not None:
        toml_file = folder / "tenant.toml"
        text = toml_file.read_text(encoding="utf-8")
        cut = text.find("\n[plugins")
        text = text if cut < 0 else text[:cut + 1]
        toml_file.write_text(text.rstrip() + "\n\n" + plugins_toml.strip() + "\n",
                             encoding="utf-8")
    return load_tenant(folder)
