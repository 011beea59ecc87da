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
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from enclave import rotation
from enclave.audit import MIGRATIONS as AUDIT_MIGRATIONS
from enclave.audit import AuditTrail
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
from enclave.oversight import Oversight
from enclave.plugins.host import PluginHost, notify
from enclave.quota.anomaly import AnomalyScanner
from enclave.quota.book import MIGRATIONS as QUOTA_MIGRATIONS
from enclave.quota.book import QuotaBook
from enclave.quota.engine import QuotaEngine, Reservation
from enclave.rbac import Permission, authorize
from enclave.store import TenantStore
from enclave.tenants import Assistant, Tenant, TenantRegistry
from enclave.turnlog import MIGRATIONS as TURNLOG_MIGRATIONS
from enclave.turnlog import TurnLog
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


class Workspace(Oversight):
    """Tenants, their stores and models, conversations and the chat turn; the audit
    trail, log reading, retention and keys come from :class:`Oversight`."""

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
        cited = KnowledgeBase.citations(hits, answer)
        message_id = convs.append_turn(principal.user_id, conv, prompt, answer,
                                       request.endpoint.model, usage, new=new, citations=cited)
        latency = self._after(hooks, tenant, principal, request, "ok", prompt, answer, usage,
                              started, None)
        yield Final(conv.id, message_id, answer, usage, request.endpoint.model, latency, cited)

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
