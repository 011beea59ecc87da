"""Oversight of a tenant's data: the audit trail, reading turn logs and other people's
conversations (auditors and admins, every read audited), operator break-glass, log
retention, and key rotation. Mixed into the Workspace, whose stores it uses."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from enclave import rotation
from enclave.audit import AuditEntry, AuditTrail, Verification
from enclave.conversations import Conversation, Conversations, StoredMessage
from enclave.errors import BadInput
from enclave.identity import Principal
from enclave.keys import KeyProvider, KeyRing
from enclave.rbac import Permission, authorize
from enclave.store import TenantStore
from enclave.tenants import Tenant, TenantRegistry
from enclave.turnlog import LogEntry, LogFilter, TurnLog, export

log = logging.getLogger(__name__)


class Oversight:
    if TYPE_CHECKING:  # provided by the Workspace
        tenants: TenantRegistry
        keys: KeyRing
        _lock: threading.Lock
        _stores: dict[str, TenantStore]
        _trails: dict[str, AuditTrail]
        _paused: set[str]
        _stopping: threading.Event

        def tenant_for(self, principal: Principal) -> Tenant: ...
        def _store(self, tenant: Tenant) -> TenantStore: ...
        def _store_path(self, tenant: Tenant) -> Path: ...
        def _key_provider(self, tenant: Tenant) -> KeyProvider | None: ...
        def _conversations(self, tenant: Tenant) -> Conversations: ...

    def _trail(self, tenant: Tenant) -> AuditTrail:
        trail = self._trails.get(tenant.slug)
        if trail is None:
            store = self._store(tenant)
            with self._lock:
                trail = self._trails.get(tenant.slug)
                if trail is None:
                    key = self.keys.audit_key(tenant.slug, self._key_provider(tenant))
                    trail = AuditTrail(store, key, store.path.with_name("audit.anchor.json"))
                    self._trails[tenant.slug] = trail
        return trail

    # -- audit trail -----------------------------------------------------------------------
    @staticmethod
    def operator(slug: str, name: str, roles: tuple[str, ...] = ()) -> Principal:
        """A platform operator acting on a tenant from the CLI (no tenant roles unless
        given by :meth:`break_glass`)."""
        return Principal(slug, f"operator:{name}", f"operator:{name}", name, roles, "cli")

    def audit(self, tenant: Tenant, actor: Principal | None, action: str, target: str,
              detail: dict[str, Any] | None = None) -> AuditEntry:
        """Record one entry in the tenant's audit trail (``actor`` None: the system);
        committed before it returns, so a read is audited before its data is shown."""
        who, channel = (actor.email, actor.channel) if actor else ("system", "system")
        return self._trail(tenant).append(who, channel, action, target, detail)

    def break_glass(self, slug: str, operator: str, reason: str) -> Principal:
        """An operator principal that may read one tenant's logs and audit trail; the
        break-glass and its reason are audited first, and each read after it."""
        reason = " ".join(str(reason).split())
        if len(reason) < 8:
            raise BadInput("break-glass access needs a reason of at least 8 characters "
                           "(e.g. the incident ticket)")
        tenant = self.tenants.get(slug)
        principal = self.operator(slug, operator, ("auditor",))
        self.audit(tenant, principal, "break_glass", f"tenant:{slug}", {"reason": reason})
        return principal

    def _reader(self, principal: Principal, permission: Permission) -> Tenant:
        authorize(principal, permission)
        return self.tenant_for(principal)

    def audit_trail(self, principal: Principal, limit: int | None = None
                    ) -> tuple[list[AuditEntry], Verification]:
        """The trail (newest ``limit`` entries) and its verification; the view is audited."""
        tenant = self._reader(principal, Permission.AUDIT_READ)
        trail = self._trail(tenant)
        result, entries = trail.verify(), trail.entries(limit)
        self.audit(tenant, principal, "audit.view", "audit_log",
                   {"entries": len(entries), "verified": result.ok})
        return entries, result

    def verify_audit(self, slug: str) -> Verification:
        """Check a tenant's trail (operators; shows no content, so not audited)."""
        return self._trail(self.tenants.get(slug)).verify()

    # -- turn logs and other people's conversations (auditor, admin) ------------------------
    def read_logs(self, principal: Principal, f: LogFilter | None = None) -> list[LogEntry]:
        f = f or LogFilter()
        tenant = self._reader(principal, Permission.LOGS_READ)
        rows = TurnLog(self._store(tenant)).rows(f)
        self.audit(tenant, principal, "logs.view", "turn_log", f.describe() | {"rows": len(rows)})
        return rows

    def log_entry(self, principal: Principal, entry_id: str) -> LogEntry:
        tenant = self._reader(principal, Permission.LOGS_READ)
        entry = TurnLog(self._store(tenant)).get(entry_id)
        self.audit(tenant, principal, "logs.open", f"turn:{entry_id}", {"user": entry.user_id})
        return entry

    def export_logs(self, principal: Principal, fmt: str, f: LogFilter | None = None) -> str:
        """The matching turns as CSV or JSON text; the export is audited."""
        f = f or LogFilter()
        tenant = self._reader(principal, Permission.LOGS_READ)
        rows = TurnLog(self._store(tenant)).rows(f)
        text = export(rows, fmt)
        self.audit(tenant, principal, "logs.export", "turn_log",
                   f.describe() | {"format": fmt, "rows": len(rows)})
        return text

    def user_conversations(self, principal: Principal, user_id: str) -> list[Conversation]:
        tenant = self._reader(principal, Permission.LOGS_READ)
        convs = self._conversations(tenant).of_user(user_id.lower())
        self.audit(tenant, principal, "conversations.list", f"user:{user_id.lower()}",
                   {"conversations": len(convs)})
        return convs

    def user_messages(self, principal: Principal, user_id: str, conversation_id: str
                      ) -> list[StoredMessage]:
        """Another person's conversation, read by an auditor or admin (audited)."""
        tenant = self._reader(principal, Permission.LOGS_READ)
        messages = self._conversations(tenant).messages(user_id.lower(), conversation_id)
        self.audit(tenant, principal, "conversation.read", f"conversation:{conversation_id}",
                   {"user": user_id.lower(), "messages": len(messages)})
        return messages

    # -- retention ---------------------------------------------------------------------------
    def prune_logs(self, now: datetime | None = None) -> dict[str, int]:
        """Remove logged turns older than each tenant's ``retention_days``; returns the rows
        removed per tenant (tenants without a store yet are skipped)."""
        now = now or datetime.now(UTC)
        removed: dict[str, int] = {}
        for tenant in self.tenants:
            if not self._store_path(tenant).exists():
                continue
            days = tenant.logging.retention_days
            n = TurnLog(self._store(tenant)).prune(now - timedelta(days=days))
            if n:
                self.audit(tenant, None, "logs.prune", "turn_log",
                           {"rows": n, "retention_days": days})
            removed[tenant.slug] = n
        return removed

    def _prune_loop(self, every: float) -> None:
        while not self._stopping.wait(every):
            try:
                self.prune_logs()
            except Exception:  # keep the schedule; the next run retries
                log.exception("scheduled turn log pruning failed")

    # -- keys --------------------------------------------------------------------------------
    def rotate_data_key(self, slug: str, operator: str) -> None:
        """Re-encrypt a tenant's store under a new data key. The tenant is paused in this
        process meanwhile (its requests are refused with a clear message); other tenants
        keep serving. Audited."""
        tenant = self.tenants.get(slug)
        with self._lock:
            if slug in self._paused:
                raise BadInput(f"the data key of {slug} is already being rotated")
            self._paused.add(slug)
            store = self._stores.pop(slug, None)
            self._trails.pop(slug, None)
        try:
            if store is not None:
                store.close()
            rotation.rotate(self.keys, slug, self._store_path(tenant), self._key_provider(tenant))
        finally:
            with self._lock:
                self._paused.discard(slug)
        self.audit(tenant, self.operator(slug, operator), "keys.rotate", f"tenant:{slug}")

    def rotate_master_key(self, operator: str) -> dict[str, int]:
        """Rewrap every key under the new master key; audited in every tenant's trail."""
        counts = self.keys.rotate_master()
        for tenant in self.tenants:
            if self._store_path(tenant).exists():
                self.audit(tenant, self.operator(tenant.slug, operator), "keys.rotate_master",
                           "master_key", counts)
        return counts
