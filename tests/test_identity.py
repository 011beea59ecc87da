"""Binding logins to exactly one tenant: OIDC claims (as ``st.user.to_dict()`` gives them)
and the CLI's ``--as EMAIL``."""

from __future__ import annotations

import shutil
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from enclave.errors import IdentityRefused
from enclave.identity import (
    Principal,
    is_expired,
    principal_from_claims,
    principal_from_email,
)
from enclave.tenants import TenantRegistry
from tests.conftest import TENANTS

DEMO_USERS: dict[str, dict[str, Any]] = {
    u["email"]: u
    for slug in ("acme", "globex")
    for u in tomllib.loads((TENANTS / slug / "demo-users.toml").read_text())["users"]
}
ISSUER = "http://127.0.0.1:8900"


def claims(who: str, provider: str | None = None, **changes: Any) -> dict[str, Any]:
    """What Streamlit's ``st.user.to_dict()`` holds after user ``who`` (a demo user, or a
    user shaped like one) logs in through ``provider`` (default: their organisation's).
    ``changes`` override claims; a value of ``...`` removes the claim."""
    user = DEMO_USERS.get(who) or {"sub": f"sub-{who}", "email": who,
                                   "name": who.split("@")[0].title(),
                                   "org": who.split("@")[1].split(".")[0], "groups": []}
    provider = provider or user["org"]
    now = int(time.time())
    out: dict[str, Any] = {
        "is_logged_in": True, "provider": provider, "iss": ISSUER,
        "aud": f"enclave-{provider}", "sub": user["sub"], "email": user["email"],
        "email_verified": True, "name": user["name"], "iat": now, "exp": now + 3600,
        "nonce": "n-0S6_WzA2Mj", "org": user["org"], "groups": list(user["groups"]),
    }
    out.update(changes)
    return {k: v for k, v in out.items() if v is not ...}


def refused(registry: TenantRegistry, c: dict[str, Any]) -> str:
    with pytest.raises(IdentityRefused) as exc:
        principal_from_claims(registry, c)
    return str(exc.value)


def edit(file: Path, old: str, new: str) -> None:
    text = file.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {file}"
    file.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture(scope="module")
def registry() -> TenantRegistry:
    return TenantRegistry.load(TENANTS)


# -- demo logins -----------------------------------------------------------------------


def test_bob_is_an_acme_member(registry: TenantRegistry) -> None:
    p = principal_from_claims(registry, claims("bob@acme.example"))
    assert p == Principal("acme", "acme-bob", "bob@acme.example", "Bob Baker", ("member",),
                          "ui")
    assert p.user_id == "bob@acme.example"


def test_alice_is_an_acme_admin(registry: TenantRegistry) -> None:
    p = principal_from_claims(registry, claims("alice@acme.example"))
    assert (p.tenant, p.roles) == ("acme", ("admin",))


def test_dave_is_a_globex_auditor(registry: TenantRegistry) -> None:
    p = principal_from_claims(registry, claims("dave@globex.example"))
    assert (p.tenant, p.subject, p.roles) == ("globex", "globex-dave", ("auditor",))


def test_roles_come_from_groups_claim(registry: TenantRegistry) -> None:
    # erin has no explicit assignment: her roles come from the groups claim only
    editor = claims("erin@acme.example", groups=["acme-editors", "acme-staff"])
    assert principal_from_claims(registry, editor).roles == ("editor", "member")


def test_groups_claim_as_a_string(registry: TenantRegistry) -> None:
    p = principal_from_claims(registry, claims("erin@acme.example", groups="acme-admins"))
    assert p.roles == ("admin",)


@pytest.mark.parametrize("groups", [["some-other-team"], [], ..., None, "nobody"])
def test_unknown_groups_fall_back_to_default_roles(registry: TenantRegistry,
                                                   groups: Any) -> None:
    p = principal_from_claims(registry, claims("erin@acme.example", groups=groups))
    assert p.roles == ("member",)


def test_email_is_lower_cased(registry: TenantRegistry) -> None:
    p = principal_from_claims(registry, claims("bob@acme.example", email="Bob@ACME.example"))
    assert (p.tenant, p.email, p.roles) == ("acme", "bob@acme.example", ("member",))


def test_name_defaults_to_the_email_local_part(registry: TenantRegistry) -> None:
    p = principal_from_claims(registry, claims("bob@acme.example", name=...))
    assert p.name == "bob"


def test_org_claim_as_a_list(registry: TenantRegistry) -> None:
    p = principal_from_claims(registry, claims("bob@acme.example", org=["partners", "acme"]))
    assert p.tenant == "acme"


# -- refusals --------------------------------------------------------------------------


def test_carol_through_the_acme_provider_is_refused(registry: TenantRegistry) -> None:
    assert "carol@globex.example" in refused(registry, claims("carol@globex.example",
                                                              provider="acme"))


def test_acme_user_through_the_globex_provider_is_refused(registry: TenantRegistry) -> None:
    refused(registry, claims("bob@acme.example", provider="globex"))


@pytest.mark.parametrize("org", ["globex", "Acme", "", ..., ["globex"]])
def test_wrong_org_claim_is_refused(registry: TenantRegistry, org: Any) -> None:
    refused(registry, claims("bob@acme.example", org=org))


def test_email_domain_not_allowed_is_refused(registry: TenantRegistry) -> None:
    msg = refused(registry, claims("mallory@evil.example", provider="acme", org="acme"))
    assert "mallory@evil.example" in msg


def test_lookalike_domain_is_refused(registry: TenantRegistry) -> None:
    refused(registry, claims("bob@acme.example", email="bob@sub.acme.example"))
    refused(registry, claims("bob@acme.example", email="bob@acme.example.evil"))


@pytest.mark.parametrize("email", [..., None, "", "bob", 42, " bob@acme.example"])
def test_missing_or_malformed_email_is_refused(registry: TenantRegistry, email: Any) -> None:
    assert "email" in refused(registry, claims("bob@acme.example", email=email))


def test_unverified_email_is_refused(registry: TenantRegistry) -> None:
    assert "not verified" in refused(registry, claims("bob@acme.example",
                                                      email_verified=False))


def test_missing_subject_is_refused(registry: TenantRegistry) -> None:
    assert "sub" in refused(registry, claims("bob@acme.example", sub=""))


def test_not_logged_in_is_refused(registry: TenantRegistry) -> None:
    refused(registry, {"is_logged_in": False})


@pytest.mark.parametrize("exp", [..., int(time.time()) - 1, "9999999999", None, True])
def test_expired_or_missing_exp_is_refused(registry: TenantRegistry, exp: Any) -> None:
    assert "expired" in refused(registry, claims("bob@acme.example", exp=exp))


def test_is_expired() -> None:
    assert not is_expired({"exp": 1000}, now=999.5)
    assert is_expired({"exp": 1000}, now=1000)
    assert is_expired({"exp": 1000.0}, now=1001)
    assert is_expired({}, now=0)
    assert is_expired({"exp": "1000"}, now=0)
    assert is_expired({"exp": False}, now=-1)
    assert not is_expired({"exp": int(time.time()) + 60})
    assert is_expired({"exp": int(time.time()) - 60})


def test_login_with_explicit_now(registry: TenantRegistry) -> None:
    c = claims("bob@acme.example", exp=2_000)
    assert principal_from_claims(registry, c, now=1_999).tenant == "acme"
    with pytest.raises(IdentityRefused):
        principal_from_claims(registry, c, now=2_000)


# -- rules that need modified tenants --------------------------------------------------


def test_ambiguous_match_is_refused(tenants_copy: Path) -> None:
    # acme-two accepts the same domain, provider and org claim as acme
    shutil.copytree(tenants_copy / "acme", tenants_copy / "acme-two")
    registry = TenantRegistry.load(tenants_copy)
    msg = refused(registry, claims("bob@acme.example"))
    assert "acme," in msg and "acme-two" in msg and "ambiguous" in msg
    with pytest.raises(IdentityRefused, match="acme-two"):
        principal_from_email(registry, "acme", "bob@acme.example")


def test_tenant_claim_separates_tenants_on_one_provider(tenants_copy: Path) -> None:
    # same provider and domain; only the org claim tells the two tenants apart
    shutil.copytree(tenants_copy / "acme", tenants_copy / "acme-two")
    edit(tenants_copy / "acme-two" / "tenant.toml", 'tenant_claim_value = "acme"',
         'tenant_claim_value = "acme-two"')
    registry = TenantRegistry.load(tenants_copy)
    assert principal_from_claims(registry, claims("bob@acme.example")).tenant == "acme"
    two = principal_from_claims(registry, claims("bob@acme.example", org="acme-two"))
    assert two.tenant == "acme-two"


def test_pinned_issuer_must_match(tenants_copy: Path) -> None:
    edit(tenants_copy / "acme" / "tenant.toml", 'provider = "acme"',
         f'provider = "acme"\nissuer = "{ISSUER}/"')
    registry = TenantRegistry.load(tenants_copy)
    assert principal_from_claims(registry, claims("bob@acme.example")).tenant == "acme"
    refused(registry, claims("bob@acme.example", iss="https://evil.example"))
    refused(registry, claims("bob@acme.example", iss=...))


@pytest.mark.parametrize("status", ["suspended", "expired", "archived"])
def test_inactive_tenant_refuses_login(tenants_copy: Path, status: str) -> None:
    edit(tenants_copy / "acme" / "tenant.toml", 'status = "active"', f'status = "{status}"')
    registry = TenantRegistry.load(tenants_copy)
    msg = refused(registry, claims("alice@acme.example"))
    assert "Acme Corporation" in msg and status in msg
    with pytest.raises(IdentityRefused, match=status):
        principal_from_email(registry, "acme", "alice@acme.example")
    # the other tenant is unaffected
    assert principal_from_claims(registry, claims("dave@globex.example")).tenant == "globex"


# -- CLI: principal_from_email ---------------------------------------------------------


def test_principal_from_email(registry: TenantRegistry) -> None:
    p = principal_from_email(registry, "globex", "dave@globex.example")
    assert (p.tenant, p.email, p.subject, p.roles, p.channel) == (
        "globex", "dave@globex.example", "email:dave@globex.example", ("auditor",), "cli")
    assert principal_from_email(registry, "acme", "erin@acme.example", "api").roles == (
        "member",)


def test_principal_from_email_wrong_tenant_is_refused(registry: TenantRegistry) -> None:
    with pytest.raises(IdentityRefused, match="globex"):
        principal_from_email(registry, "globex", "bob@acme.example")
    with pytest.raises(IdentityRefused):
        principal_from_email(registry, "acme", "eve@evil.example")


def test_principal_from_email_normalises_case(registry: TenantRegistry) -> None:
    p = principal_from_email(registry, "acme", "ALICE@Acme.Example")
    assert (p.tenant, p.email, p.user_id, p.roles) == (
        "acme", "alice@acme.example", "alice@acme.example", ("admin",))


# -- pseudonymous ids ------------------------------------------------------------------


def test_user_hash_differs_across_tenants(tenants_copy: Path) -> None:
    # globex also accepts acme.example addresses; the provider and org decide the tenant
    edit(tenants_copy / "globex" / "tenant.toml", '["globex.example"]',
         '["globex.example", "acme.example"]')
    registry = TenantRegistry.load(tenants_copy)
    at_acme = principal_from_claims(registry, claims("bob@acme.example"))
    at_globex = principal_from_claims(registry, claims("bob@acme.example", provider="globex",
                                                       org="globex"))
    assert (at_acme.tenant, at_globex.tenant) == ("acme", "globex")
    assert at_acme.email == at_globex.email
    assert at_acme.user_hash != at_globex.user_hash
    for h in (at_acme.user_hash, at_globex.user_hash):
        assert len(h) == 16 and "bob" not in h


def test_user_hash_is_stable_and_per_user(registry: TenantRegistry) -> None:
    bob = principal_from_claims(registry, claims("bob@acme.example"))
    assert bob.user_hash == principal_from_email(registry, "acme", "bob@acme.example").user_hash
    alice = principal_from_claims(registry, claims("alice@acme.example"))
    assert alice.user_hash != bob.user_hash
