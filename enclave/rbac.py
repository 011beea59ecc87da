"""Roles and permissions inside a tenant. Checked in the core, fail closed."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from enclave.errors import AccessDenied

if TYPE_CHECKING:
    from enclave.identity import Principal


class Permission(StrEnum):
    CHAT = "chat"
    OWN_HISTORY = "own_history"
    KNOWLEDGE_EDIT = "knowledge_edit"
    ASSISTANTS_EDIT = "assistants_edit"
    TENANT_SETTINGS = "tenant_settings"
    ROLES_MANAGE = "roles_manage"
    USAGE_VIEW = "usage_view"
    LOGS_READ = "logs_read"
    AUDIT_READ = "audit_read"


_MEMBER = {Permission.CHAT, Permission.OWN_HISTORY}
_EDITOR = _MEMBER | {Permission.KNOWLEDGE_EDIT, Permission.ASSISTANTS_EDIT}
_AUDITOR = {Permission.LOGS_READ, Permission.AUDIT_READ, Permission.USAGE_VIEW}
ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "member": frozenset(_MEMBER),
    "editor": frozenset(_EDITOR),
    "admin": frozenset(_EDITOR | _AUDITOR | {Permission.TENANT_SETTINGS,
                                             Permission.ROLES_MANAGE}),
    "auditor": frozenset(_AUDITOR),
}


def permissions(roles: tuple[str, ...] | frozenset[str]) -> frozenset[Permission]:
    """Union of the permissions of known roles; unknown roles grant nothing."""
    out: set[Permission] = set()
    for r in roles:
        out |= ROLE_PERMISSIONS.get(r, frozenset())
    return frozenset(out)


def can(principal: Principal | None, permission: Permission) -> bool:
    return principal is not None and permission in permissions(principal.roles)


def authorize(principal: Principal | None, permission: Permission) -> None:
    """Raise AccessDenied unless ``principal`` holds ``permission``. None is denied."""
    if not can(principal, permission):
        who = principal.email if principal else "anonymous"
        raise AccessDenied(f"{who} may not {permission.value.replace('_', ' ')}")
