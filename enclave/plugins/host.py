"""The plugin host: one pluggy manager per process, gated per tenant on every call.

Built-ins are the ``enclave.plugins.default_*`` modules of the ``enclave`` entry point
group, and run for every tenant. Installed packages (same entry point group) and drop-in
files of the plugins directory (name = file stem) run for a tenant only if that tenant
has a ``[plugins.<name>]`` table that does not say ``enabled = false``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import pluggy

from enclave import hookspecs
from enclave.errors import TenantInvalid
from enclave.hookspecs import ModelFactory
from enclave.tenants import Tenant

log = logging.getLogger(__name__)
BUILTIN_MODULE_PREFIX = "enclave.plugins.default_"


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
        self.builtins: frozenset[str] = frozenset()
        if entry_points:
            builtins = set()
            for ep in importlib.metadata.entry_points(group="enclave"):
                self._register(ep.load(), ep.name, f"entry point {ep.value}")
                if ep.value.startswith(BUILTIN_MODULE_PREFIX):
                    builtins.add(ep.name)
            self.builtins = frozenset(builtins)
        for name, plugin in (extra or {}).items():
            self._register(plugin, name, "extra plugin")
        if plugins_dir is not None and plugins_dir.is_dir():
            for path in sorted(plugins_dir.glob("*.py")):
                if not path.stem.startswith("_"):
                    self._register(_load_dropin(path), path.stem, str(path))
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as e:
            raise PluginError(f"plugin '{e.plugin}' implements an unknown hook: {e}") from e
        self.names = frozenset(name for name, _ in self.pm.list_name_plugin())
        self._providers: dict[frozenset[str], dict[str, ModelFactory]] = {}

    def _register(self, plugin: object, name: str, origin: str) -> None:
        if self.pm.has_plugin(name):
            raise PluginError(f"{origin}: a plugin named '{name}' is already loaded")
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as e:
            raise PluginError(f"{origin}: {e}") from e

    def check(self, tenant: Tenant) -> None:
        """Refuse a tenant that enables a plugin this deployment does not have, or gives
        one of its plugins settings it rejects."""
        for name in tenant.plugin_config:
            if name not in self.names or name in self.builtins:
                raise PluginError(f"{tenant.path / 'tenant.toml'}: field 'plugins.{name}': "
                                  f"no optional plugin named '{name}' is installed")
        self.hooks(tenant).enclave_validate_settings(tenant=tenant)

    def disabled(self, tenant: Tenant) -> frozenset[str]:
        """Plugins that must not run for ``tenant``."""
        return frozenset(n for n in self.names
                         if n not in self.builtins and not tenant.plugin_enabled(n))

    def hooks(self, tenant: Tenant) -> Any:
        """The hook relay for ``tenant``: only built-ins and plugins it enabled."""
        return _TenantHooks(self, self.disabled(tenant))

    def model_providers(self, tenant: Tenant) -> dict[str, ModelFactory]:
        """Providers registered by the plugins ``tenant`` runs; name clashes are errors."""
        disabled = self.disabled(tenant)
        if disabled not in self._providers:
            found: dict[str, ModelFactory] = {}
            owner: dict[str, str] = {}
            caller = _subset(self, "enclave_register_model_providers", disabled)
            for impl in reversed(caller.get_hookimpls()):  # call order: plugins first
                def register(name: str, factory: ModelFactory, _by: str = impl.plugin_name,
                             ) -> None:
                    if name in found:
                        if _by in self.builtins:
                            return  # a plugin already replaced this built-in
                        raise PluginError(f"model provider '{name}' is registered by both "
                                          f"'{owner[name]}' and '{_by}'")
                    found[name], owner[name] = factory, _by
                impl.function(register=register)
            self._providers[disabled] = found
        return self._providers[disabled]


class _TenantHooks:
    """Attribute access returns a hook caller without the tenant's disabled plugins."""

    def __init__(self, host: PluginHost, disabled: frozenset[str]) -> None:
        self._host, self._disabled = host, disabled

    def __getattr__(self, name: str) -> Any:
        return _subset(self._host, name, self._disabled)


@lru_cache(maxsize=1024)
def _subset(host: PluginHost, hook: str, disabled: frozenset[str]) -> Any:
    pm = host.pm
    remove = [p for n in disabled if (p := pm.get_plugin(n)) is not None]
    return pm.subset_hook_caller(hook, remove_plugins=remove) if remove \
        else getattr(pm.hook, hook)


def notify(caller: Any, **kwargs: Any) -> None:
    """Call every implementation of an observer hook on its own: a failing plugin is
    logged and never stops the others, nor the turn."""
    for impl in reversed(caller.get_hookimpls()):
        try:
            impl.function(**{k: kwargs[k] for k in impl.argnames})
        except Exception:
            log.exception("plugin %s failed in %s", impl.plugin_name, caller.name)
