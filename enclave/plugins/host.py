"""The plugin host: one pluggy manager per process, gated per tenant on every call.

Built-ins and installed packages come from the ``enclave`` entry point group; drop-in
files from the plugins directory are loaded by path (name = file stem). A non-built-in
plugin runs for a tenant only if that tenant has a ``[plugins.<name>]`` table.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import pluggy

from enclave import hookspecs
from enclave.errors import TenantInvalid
from enclave.hookspecs import ModelFactory
from enclave.tenants import Tenant

log = logging.getLogger(__name__)
BUILTIN_PREFIX = "default_"


class PluginError(TenantInvalid):
    """A plugin could not be loaded or broke a rule of the host."""


def _load_dropin(path: Path) -> object:
    spec = importlib.util.spec_from_file_location(f"enclave_dropin.{path.stem}", path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{path}: cannot load plugin file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # a broken plugin file names itself
        raise PluginError(f"{path}: plugin failed to import: {e}") from e
    return module


class PluginHost:
    def __init__(self, plugins_dir: Path | None, *, entry_points: bool = True,
                 extra: dict[str, object] | None = None) -> None:
        self.pm = pluggy.PluginManager("enclave")
        self.pm.add_hookspecs(hookspecs)
        if entry_points:
            self.pm.load_setuptools_entrypoints("enclave")
        for name, plugin in (extra or {}).items():
            self.pm.register(plugin, name=name)
        if plugins_dir is not None and plugins_dir.is_dir():
            for path in sorted(plugins_dir.glob("*.py")):
                if path.stem.startswith("_"):
                    continue
                if self.pm.has_plugin(path.stem):
                    raise PluginError(f"{path}: a plugin named '{path.stem}' already exists")
                self.pm.register(_load_dropin(path), name=path.stem)
        self.pm.check_pending()
        self._providers: dict[frozenset[str], dict[str, ModelFactory]] = {}

    @property
    def names(self) -> set[str]:
        return {name for name, _ in self.pm.list_name_plugin()}

    def check(self, tenant: Tenant) -> None:
        """Refuse a tenant that enables a plugin this deployment does not have."""
        for name in tenant.plugin_config:
            if name not in self.names:
                raise PluginError(f"{tenant.path / 'tenant.toml'}: field 'plugins.{name}': "
                                  f"no plugin named '{name}' is installed")

    def hooks(self, tenant: Tenant) -> Any:
        """The hook relay for ``tenant``: only built-ins and plugins it enabled."""
        return _TenantHooks(self, self._disabled(tenant))

    def _disabled(self, tenant: Tenant) -> frozenset[str]:
        return frozenset(name for name in self.names
                         if not name.startswith(BUILTIN_PREFIX)
                         and not tenant.plugin_enabled(name))

    def model_providers(self, tenant: Tenant) -> dict[str, ModelFactory]:
        """Providers registered by the plugins ``tenant`` runs; name clashes are errors."""
        disabled = self._disabled(tenant)
        found = self._providers.get(disabled)
        if found is None:
            found = {}
            owner: dict[str, str] = {}
            caller = _subset(self, "enclave_register_model_providers", disabled)
            for impl in reversed(caller.get_hookimpls()):  # call order: plugins first
                def register(name: str, factory: ModelFactory, _by: str = impl.plugin_name,
                             ) -> None:
                    if name in found:
                        if _by.startswith(BUILTIN_PREFIX):
                            return  # a plugin already replaced this built-in
                        raise PluginError(f"model provider '{name}' is registered by both "
                                          f"'{owner[name]}' and '{_by}'")
                    found[name], owner[name] = factory, _by
                impl.function(register=register)
            self._providers[disabled] = found
        return found


class _TenantHooks:
    """Attribute access returns a hook caller without the tenant's disabled plugins."""

    def __init__(self, host: PluginHost, disabled: frozenset[str]) -> None:
        self._host, self._disabled = host, disabled

    def __getattr__(self, name: str) -> Any:
        return _subset(self._host, name, self._disabled)


@lru_cache(maxsize=1024)
def _subset(host: PluginHost, hook: str, disabled: frozenset[str]) -> Callable[..., Any]:
    pm = host.pm
    remove = [p for n in disabled if (p := pm.get_plugin(n)) is not None]
    return pm.subset_hook_caller(hook, remove_plugins=remove) if remove \
        else getattr(pm.hook, hook)


def call_safely(caller: Callable[..., Any], **kwargs: Any) -> None:
    """Call an observer hook; a failing plugin is logged, never breaks the turn."""
    try:
        caller(**kwargs)
    except Exception:
        log.exception("plugin hook %s failed", getattr(caller, "name", caller))
