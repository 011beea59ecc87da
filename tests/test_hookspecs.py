"""Meta-tests: every hook has a test and an entry in the plugin author docs, and every
spec is documented and keyword-typed."""

from __future__ import annotations

import inspect

import pytest

from enclave import hookspecs
from enclave.config import ROOT

HOOKS = sorted(n for n, f in vars(hookspecs).items()
               if n.startswith("enclave_") and callable(f))
TESTS = ROOT / "tests"


def test_there_are_hooks() -> None:
    assert len(HOOKS) >= 8


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_for_plugin_authors(hook: str) -> None:
    assert f"### `{hook}`" in (ROOT / "docs" / "plugins.md").read_text()


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook: str) -> None:
    """Some test other than this file implements or calls the hook."""
    users = [p for p in TESTS.rglob("test_*.py") if p.name != "test_hookspecs.py"
             and hook in p.read_text()]
    assert users, f"no test mentions {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_spec_has_a_contract_and_type_hints(hook: str) -> None:
    fn = getattr(hookspecs, hook)
    assert fn.__doc__ and len(fn.__doc__.split()) >= 15, "the docstring is the contract"
    sig = inspect.signature(fn)
    assert all(p.annotation is not inspect.Parameter.empty for p in sig.parameters.values())
    assert sig.return_annotation is not inspect.Signature.empty
