"""The workspace service: the one enforcement point that the UI, the CLI and the API call.

principal -> authorize -> build messages (tenant prompt, assistant, plugins) -> quota
-> model (streamed) -> store the turn (batched, off the hot path) -> after-turn hooks.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from enclave import rotation
from enclave.audit import MIGRATIONS as AUDIT_MIGRATIONS
from enclave.audit import AuditEntry, AuditTrail, Verification
from enclave.config import Settings
from enclave.conversations import MIGRATIONS as CONVERSATION_MIGRATIONS
from enclave.conversations import Conversation, Conversations, StoredMessage
from enclave.errors import (
    BadInput,
    EnclaveError,
    ModelUnavailable,
    QuotaExceeded,
    QuotaUnavailable,
    TenantInvalid,
    TenantUnavailable,
)
from enclave.hookspecs import Alert, ModelEndpoint
from enclave.identity import Principal
from enclave.keys import KeyProvider, KeyRing, load_master_key, load_previous_master_key
from enclave.knowledge.index import VectorIndex
from enclave.knowledge.repository import MIGRATIONS as KNOWLEDGE_MIGRATIONS
from enclave.knowledge.retrieval import Hit
from enclave.knowledge.service import KnowledgeBase
from enclave.metering import MIGRATIONS as METERING_MIGRATIONS
from enclave.metering import Metering
from enclave.model import estimate_tokens, resolve_endpoint
from enclave.plugins.host import PluginHost, notify
from enclave.quota.anomaly import AnomalyScanner
from enclave.quota.book import MIGRATIONS as QUOTA_MIGRATIONS
from enclave.quota.book import QuotaBook
from enclave.quota.engine import QuotaEngine, Reservation
from enclave.rbac import Permission, authorize
from enclave.store import TenantStore
from enclave.tenants import Assistant, Tenant, TenantRegistry
from enclave.turnlog import MIGRATIONS as TURNLOG_MIGRATIONS
from enclave.turnlog import LogEntry, LogFilter, TurnLog, export
from enclave.turns import ChatMessage, Event, Final, Token, TurnRecord, TurnRequest, Usage
from enclave.usage import period_used

log = logging.getLogger(__name__)
MAX_PROMPT_CHARS = 32_000
# Every table of a tenant store; names are unique across areas ("<nnn>_<area>...").
TENANT_MIGRATIONS = [*CONVERSATION_MIGRATIONS, *TURNLOG_MIGRATIONS, *AUDIT_MIGRATIONS,
                     *QUOTA_MIGRATIONS, *KNOWLEDGE_MIGRATIONS]


def clean_prompt(text: str) -> str:
    """Strip control characters (but newlines and tabs) and surrounding space."""
    if not isinstance(text, str):
        raise BadInput("The message must be text.")
    text = "".join(c for c in text if c in "\n\t" or c.isprintable()).strip()
    if not text:
        raise BadInput("The message is empty.")
    if len(text) > MAX_PROMPT_CHARS:
        raise BadInput(f"The message is too long ({len(text):,} characters; the limit is "
                       f"{MAX_PROMPT_CHARS:,}).")
    return text


class Workspace:
    def __init__(self, settings: Settings, tenants: TenantRegistry | None = None,
                 plugins: PluginHost | None = None) -> None:
        self.settings = settings
        self.tenants = tenants or TenantRegistry.load(settings.tenants_dir)
        self.plugins = plugins or PluginHost(settings.plugins_dir)
        for tenant in self.tenants:
            self.plugins.check(tenant)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.keys = KeyRing(settings.data_dir, load_master_key(settings.data_dir),
                            load_previous_master_key())
        self._stores: dict[str, TenantStore] = {}
        self._trails: dict[str, AuditTrail] = {}
        self._knowledge_bases: dict[str, KnowledgeBase] = {}
        self.vector_index = VectorIndex.from_env(settings.data_dir)  # connects on first use
        self._paused: set[str] = set()  # tenants whose data key is being rotated
        self._stopping = threading.Event()
        self._pruner: threading.Thread | None = None
        if settings.log_prune_seconds > 0:
            self._pruner = threading.Thread(target=self._prune_loop, daemon=True,
                                            args=(settings.log_prune_seconds,),
                                            name="turn-log-pruner")
            self._pruner.start()
        self._models: dict[tuple[str, ModelEndpoint], BaseChatModel] = {}
        self._lock = threading.Lock()
        self._metering: Metering | None = None
        self.quota = QuotaEngine(alert=self.alert, seed=lambda t, scope, limit, since:
                                 period_used(self.metering, t, scope, limit, since))
        self.anomalies = AnomalyScanner(lambda: self.metering, self.quota,
                                        lambda t: self.quota_book(t).users())
        atexit.register(self.close)
        for tenant in self.tenants:
            notify(self.plugins.hooks(tenant).enclave_tenant_lifecycle, tenant=tenant,
                   event="loaded", previous_status=tenant.status)

    def alert(self, tenant: Tenant, alert: Alert) -> None:
        """Keep an alert open in the tenant's store (the admins' banner, until cleared),
        then deliver it to every alert plugin the tenant runs."""
        try:
            self.quota_book(tenant).add(alert)
        except EnclaveError:
            log.exception("keeping an alert of %s failed", tenant.slug)
        notify(self.plugins.hooks(tenant).enclave_alert, tenant=tenant, alert=alert)

    def quota_book(self, tenant: Tenant) -> QuotaBook:
        """The tenant's open alerts and known users (callers authorize first)."""
        return QuotaBook(self._store(tenant))

    # -- tenants, stores, models -------------------------------------------------------
    def tenant_for(self, principal: Principal) -> Tenant:
        tenant = self.tenants.get(principal.tenant)
        if not tenant.active:
            raise TenantUnavailable(f"{tenant.name} is {tenant.status}.")
        return tenant

    def _store_path(self, tenant: Tenant) -> Path:
        return self.settings.data_dir / "tenants" / tenant.slug / "store.duckdb"

    def _key_provider(self, tenant: Tenant) -> KeyProvider | None:
        provider: KeyProvider | None = self.plugins.hooks(tenant).enclave_key_provider(
            tenant=tenant)
        return provider

    def _store(self, tenant: Tenant) -> TenantStore:
        store = self._stores.get(tenant.slug)
        if store is None:
            with self._lock:
                if tenant.slug in self._paused:
                    raise TenantUnavailable(f"{tenant.name}: its data key is being rotated; "
                                            "try again in a minute.")
                store = self._stores.get(tenant.slug)
                if store is None:
                    path, provider = self._store_path(tenant), self._key_provider(tenant)
                    done = rotation.recover(self.keys, tenant.slug, path, provider)
                    if done:
                        log.warning("store of %s: %s", tenant.slug, done)
                    store = TenantStore(path, self.keys.data_key(tenant.slug, provider),
                                        TENANT_MIGRATIONS)
                    self._stores[tenant.slug] = store
        return store

    def _knowledge(self, tenant: Tenant) -> KnowledgeBase:
        """The tenant's knowledge base, over its own store and Chroma tenant."""
        store = self._store(tenant)
        kb = self._knowledge_bases.get(tenant.slug)
        if kb is None or kb.store is not store:  # first use, or the store was reopened
            with self._lock:
                kb = self._knowledge_bases.get(tenant.slug)
                if kb is None or kb.store is not store:
                    kb = KnowledgeBase(
                        tenant, store, lambda: self.vector_index.for_tenant(tenant.slug),
                        lambda actor, action, target, detail: self.audit(
                            tenant, actor, action, target, detail))
                    self._knowledge_bases[tenant.slug] = kb
        return kb

    def knowledge(self, principal: Principal) -> KnowledgeBase:
        """The principal's tenant's knowledge base, to manage it (editors and admins)."""
        authorize(principal, Permission.KNOWLEDGE_EDIT)
        return self._knowledge(self.tenant_for(principal))

    def _ground(self, tenant: Tenant, assistant: Assistant, request: TurnRequest
                ) -> list[Hit]:
        """Retrieve from the tenant's knowledge for the (transformed) user message and
        add the excerpts, with their numbers and chunk ids, to the system message."""
        last = request.messages[-1]
        if last.role != "user":
            return []
        block, hits = self._knowledge(tenant).grounding(last.content, assistant)
        if block is None:
            return []
        first = request.messages[0]
        if first.role == "system":
            first.content = f"{first.content}\n\n{block}"
        else:
            request.messages.insert(0, ChatMessage("system", block))
        request.retrieved_chunk_ids = tuple(h.chunk_id for h in hits)
        return hits

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

    @property
    def metering(self) -> Metering:
        """The platform metering store, opened on first use."""
        if self._metering is None:
            with self._lock:
                if self._metering is None:
                    path = self.settings.data_dir / "platform" / "metering.duckdb"
                    self._metering = Metering(TenantStore(path, self.keys.platform_key(),
                                                          METERING_MIGRATIONS))
        return self._metering

    def _conversations(self, tenant: Tenant) -> Conversations:
        return Conversations(self._store(tenant))

    def _chat_model(self, tenant: Tenant, endpoint: ModelEndpoint) -> BaseChatModel:
        key = (tenant.slug, endpoint)
        model = self._models.get(key)
        if model is None:
            factory = self.plugins.model_providers(tenant).get(endpoint.provider)
            if factory is None:
                raise TenantInvalid(f"{tenant.name}: no model provider named "
                                    f"'{endpoint.provider}'")
            model = self._models[key] = factory(endpoint)
        return model

    def close(self) -> None:
        """Flush and close every open tenant store (also run at exit)."""
        self._stopping.set()
        if self._pruner is not None and self._pruner is not threading.current_thread():
            self._pruner.join(10)
        with self._lock:
            platform = [("platform", self._metering.store)] if self._metering else []
            for slug, store in [*self._stores.items(), *platform]:
                try:
                    store.close()
                except EnclaveError:
                    log.exception("closing the store of %s failed", slug)
            self._stores.clear()
            self._trails.clear()
            self._metering = None

    # -- conversations (own history only) ----------------------------------------------
    def _own(self, principal: Principal) -> tuple[Tenant, Conversations]:
        authorize(principal, Permission.OWN_HISTORY)
        tenant = self.tenant_for(principal)
        return tenant, self._conversations(tenant)

    def list_conversations(self, principal: Principal) -> list[Conversation]:
        return self._own(principal)[1].of_user(principal.user_id)

    def new_conversation(self, principal: Principal, assistant: str | None = None
                         ) -> Conversation:
        tenant, convs = self._own(principal)
        return convs.create(principal.user_id, tenant.assistant(assistant).slug)

    def rename_conversation(self, principal: Principal, conversation_id: str, title: str
                            ) -> None:
        self._own(principal)[1].rename(principal.user_id, conversation_id, title)

    def delete_conversation(self, principal: Principal, conversation_id: str) -> None:
        self._own(principal)[1].delete(principal.user_id, conversation_id)

    def messages(self, principal: Principal, conversation_id: str) -> list[StoredMessage]:
        return self._own(principal)[1].messages(principal.user_id, conversation_id)

    # -- chat ----------------------------------------------------------------------------
    def system_prompt(self, tenant: Tenant, principal: Principal, assistant: Assistant) -> str:
        parts = [tenant.system_prompt, f"## Assistant: {assistant.name}\n\n"
                                       f"{assistant.instructions}"]
        contributions = self.plugins.hooks(tenant).enclave_system_prompt(
            tenant=tenant, principal=principal, assistant=assistant)
        parts.extend(c.strip() for c in contributions if c and c.strip())
        return "\n\n".join(parts)

    def chat(self, principal: Principal, text: str, conversation_id: str | None = None,
             assistant: str | None = None) -> Iterator[Event]:
        """Check and prepare a turn now (raising EnclaveError), then stream its events:
        ``Token``..., one ``Usage``, one ``Final``."""
        started = time.perf_counter()
        authorize(principal, Permission.CHAT)
        tenant = self.tenant_for(principal)
        prompt = clean_prompt(text)
        convs = self._conversations(tenant)
        if conversation_id:
            conv, history = convs.with_history(principal.user_id, conversation_id,
                                               tenant.model.history_messages)
        else:
            conv, history = convs.draft(tenant.assistant(assistant).slug), []
        asst = tenant.assistant(assistant or conv.assistant)
        endpoint = resolve_endpoint(self.settings, tenant, asst)
        request = TurnRequest(
            conversation_id=conv.id, assistant=asst.slug, endpoint=endpoint,
            chat_model=self._chat_model(tenant, endpoint),
            messages=[ChatMessage("system", self.system_prompt(tenant, principal, asst)),
                      *history, ChatMessage("user", prompt)])
        hooks = self.plugins.hooks(tenant)
        hooks.enclave_transform_messages(tenant=tenant, principal=principal, request=request)
        last = request.messages[-1]
        stored_prompt = last.content if last.role == "user" else prompt
        hits = self._ground(tenant, asst, request)
        for denial in hooks.enclave_quota_check(tenant=tenant, principal=principal,
                                                request=request):
            if denial is not None:
                self._after(hooks, tenant, principal, request, "refused", stored_prompt, "",
                            None, started, denial.message)
                raise QuotaExceeded(denial.message, denial.retry_after)
        try:  # the built-in limits: hold the estimate now, settle after the model
            reservation = self.quota.reserve(tenant, principal, endpoint.model,
                                             estimate_tokens(request.messages),
                                             endpoint.max_tokens)
        except (QuotaExceeded, QuotaUnavailable) as e:
            self._after(hooks, tenant, principal, request, "refused", stored_prompt, "", None,
                        started, str(e))
            raise
        self.quota_book(tenant).remember_user(principal.user_hash, principal.email)
        try:
            events = hooks.enclave_chat_turn(tenant=tenant, principal=principal,
                                             request=request)
            if events is None:
                raise ModelUnavailable("No plugin ran this turn.")
        except BaseException:
            self.quota.release(reservation)
            raise
        stream = self._stream(tenant, principal, hooks, request, convs, conv,
                              conversation_id is None, stored_prompt, events, started,
                              reservation, hits)
        weakref.finalize(stream, self.quota.release, reservation)  # never consumed
        return stream

    def _stream(self, tenant: Tenant, principal: Principal, hooks: Any, request: TurnRequest,
                convs: Conversations, conv: Conversation, new: bool, prompt: str,
                events: Iterator[Event], started: float, reservation: Reservation,
                hits: list[Hit]) -> Iterator[Event]:
        parts: list[str] = []
        usage: Usage | None = None
        try:
            for event in events:
                if isinstance(event, Token):
                    parts.append(event.text)
                elif isinstance(event, Usage):
                    usage = event
                yield event
        except ModelUnavailable as e:
            self.quota.release(reservation)
            self._after(hooks, tenant, principal, request, "model_error", prompt,
                        "".join(parts), usage, started, str(e))
            raise
        except BaseException:  # abandoned (GeneratorExit) or failed: give the budgets back
            self.quota.release(reservation)
            raise
        answer = "".join(parts)
        if not answer.strip():
            self.quota.release(reservation)
            self._after(hooks, tenant, principal, request, "model_error", prompt, "", usage,
                        started, "empty answer")
            raise ModelUnavailable("The model returned an empty answer. Please try again.")
        late_usage = usage is None
        if usage is None:
            usage = Usage(estimate_tokens(request.messages), len(parts), True)
        self.quota.settle(reservation, usage)
        if late_usage:
            yield usage
        message_id = convs.append_turn(principal.user_id, conv, prompt, answer,
                                       request.endpoint.model, usage, new=new)
        latency = self._after(hooks, tenant, principal, request, "ok", prompt, answer, usage,
                              started, None)
        yield Final(conv.id, message_id, answer, usage, request.endpoint.model, latency,
                    KnowledgeBase.citations(hits, answer))

    def _after(self, hooks: Any, tenant: Tenant, principal: Principal, request: TurnRequest,
               outcome: Any, prompt: str, response: str, usage: Usage | None,
               started: float, error: str | None) -> float:
        latency = (time.perf_counter() - started) * 1000
        record = TurnRecord(tenant.slug, principal.user_hash, principal.channel,
                            request.conversation_id, request.assistant, request.endpoint.model,
                            outcome, prompt, response, usage, latency, error)
        TurnLog(self._store(tenant)).record(record, principal.user_id,
                                            request.retrieved_chunk_ids,
                                            tenant.logging.content == "full")
        self.metering.record(record)
        notify(hooks.enclave_after_turn, tenant=tenant, principal=principal, record=record)
        self.anomalies.maybe_scan(tenant)
        return latency

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
