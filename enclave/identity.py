"""Principals: who is acting, for which tenant, with which roles.

A principal is bound to exactly one tenant: the IdP (Streamlit provider name, and issuer
when the tenant pins one) that authenticated it and the tenant's own mapping rules
(email domain, optional tenant claim). No match, or more than one, is refused.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from enclave.errors import IdentityRefused
from enclave.tenants import Tenant, TenantRegistry

Channel = Literal["ui", "cli", "api"]


@dataclass(frozen=True)
class Principal:
    tenant: str
    subject: str
    email: str
    name: str
    roles: tuple[str, ...]
    channel: Channel = "ui"

    @property
    def user_id(self) -> str:
        """Stable key of this user inside the tenant (the lower-cased email)."""
        return self.email

    @property
    def user_hash(self) -> str:
        """Pseudonymous id for platform-wide metering (no content, no email)."""
        return hashlib.sha256(f"{self.tenant}:{self.email}".encode()).hexdigest()[:16]


def _email(claims: Mapping[str, Any]) -> str:
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email or email != email.strip():
        raise IdentityRefused("The identity provider sent no usable email address.")
    if claims.get("email_verified") is False:
        raise IdentityRefused(f"The email address {email} is not verified by your provider.")
    return email.lower()


def _claim_matches(value: Any, expected: str) -> bool:
    if isinstance(value, list | tuple):
        return expected in value
    return value == expected


def _rules_match(tenant: Tenant, email: str, claims: Mapping[str, Any] | None) -> bool:
    ident = tenant.identity
    if email.rsplit("@", 1)[1] not in ident.allowed_email_domains:
        return False
    if claims is None:  # CLI: operator-trusted, email rules only
        return True
    if claims.get("provider") != ident.provider:
        return False
    if ident.issuer and str(claims.get("iss", "")).rstrip("/") != ident.issuer.rstrip("/"):
        return False
    if ident.tenant_claim and not _claim_matches(claims.get(ident.tenant_claim),
                                                 ident.tenant_claim_value or ""):
        return False
    return True


def roles_for(tenant: Tenant, email: str, claims: Mapping[str, Any] | None) -> tuple[str, ...]:
    """Roles from the IdP roles claim (via role_map), explicit assignments and defaults."""
    ident = tenant.identity
    roles: set[str] = set()
    if claims is not None and ident.roles_claim:
        raw = claims.get(ident.roles_claim) or []
        for group in [raw] if isinstance(raw, str) else raw:
            roles.update(ident.role_map.get(str(group), ()))
    for a in ident.assignments:
        if a.email.lower() == email:
            roles.update(a.roles)
    if not roles:
        roles.update(ident.default_roles)
    return tuple(sorted(roles))


def _bind(registry: TenantRegistry, email: str, claims: Mapping[str, Any] | None) -> Tenant:
    matches = [t for t in registry if _rules_match(t, email, claims)]
    if not matches:
        raise IdentityRefused(f"{email} does not belong to any organisation on this workspace "
                              "for the provider you used.")
    if len(matches) > 1:
        names = ", ".join(sorted(t.slug for t in matches))
        raise IdentityRefused(f"{email} matches more than one organisation ({names}); "
                              "refusing an ambiguous login. Ask your administrator.")
    tenant = matches[0]
    if not tenant.active:
        raise IdentityRefused(f"{tenant.name} is {tenant.status}; sign-in is disabled.")
    return tenant


def principal_from_claims(registry: TenantRegistry, claims: Mapping[str, Any],
                          now: float | None = None) -> Principal:
    """Resolve an OIDC login (Streamlit ``st.user``) to a principal, or refuse."""
    if not claims.get("is_logged_in", True):
        raise IdentityRefused("You are not signed in.")
    if is_expired(claims, now):
        raise IdentityRefused("Your sign-in has expired. Please sign in again.")
    email = _email(claims)
    tenant = _bind(registry, email, claims)
    sub = str(claims.get("sub") or "")
    if not sub:
        raise IdentityRefused("The identity provider sent no subject (sub) claim.")
    name = str(claims.get("name") or email.split("@")[0])
    return Principal(tenant.slug, sub, email, name, roles_for(tenant, email, claims), "ui")


def principal_from_email(registry: TenantRegistry, tenant_slug: str, email: str,
                         channel: Channel = "cli") -> Principal:
    """Resolve ``--as EMAIL`` for a tenant with the same rules as login (minus the IdP)."""
    email = _email({"email": email})
    tenant = _bind(registry, email, None)
    if tenant.slug != tenant_slug:
        raise IdentityRefused(f"{email} does not belong to tenant '{tenant_slug}'.")
    return Principal(tenant.slug, f"email:{email}", email, email.split("@")[0],
                     roles_for(tenant, email, None), channel)


def is_expired(claims: Mapping[str, Any], now: float | None = None) -> bool:
    """True when the ID token's ``exp`` has passed. A missing ``exp`` counts as expired."""
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return True
    return (time.time() if now is None else now) >= exp
