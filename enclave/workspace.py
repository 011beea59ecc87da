"""The workspace service: the one enforcement point that the UI, the CLI and the API call.

principal -> authorize -> build messages (tenant prompt, assistant, plugins) -> quota
-> model (streamed) -> store the turn (batched, off the hot path) -> after-turn hooks.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from langchain_core.language_models import BaseChatModel

from enclave.config import Settings
from enclave.conversations import MIGRATIONS as CONVERSATION_MIGRATIONS
from enclave.conversations import Conversation, Conversations, StoredMessage
from enclave.errors import (
    BadInput,
    EnclaveError,
    ModelUnavailable,
    QuotaExceeded,
    TenantInvalid,
    TenantUnavailable,
)
from enclave.hookspecs import Alert, ModelEndpoint
from enclave.identity import Principal
from enclave.keys import KeyRing, load_master_key
from enclave.metering import MIGRATIONS as METERING_MIGRATIONS
from enclave.metering import Metering
from enclave.model import estimate_tokens, resolve_endpoint
from enclave.plugins.host import PluginHost, notify
from enclave.rbac import Permission, authorize
from enclave.store import TenantStore
from enclave.tenants import Assistant, Tenant, TenantRegistry
from enclave.turns import ChatMessage, Event, Final, Token, TurnRecord, TurnRequest, Usage

log = logging.getLogger(__name__)
MAX_PROMPT_CHARS = 32_000
# Every table of a tenant store; names are unique across areas ("<nnn>_<area>...").
TENANT_MIGRATIONS = [*CONVERSATION_MIGRATIONS]


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
        self.keys = KeyRing(settings.data_dir, load_master_key(settings.data_dir))
        self._stores: dict[str, TenantStore] = {}
        self._models: dict[tuple[str, ModelEndpoint], BaseChatModel] = {}
        self._lock = threading.Lock()
        self._metering: Metering | None = None
        atexit.register(self.close)
        for tenant in self.tenants:
            notify(self.plugins.hooks(tenant).enclave_tenant_lifecycle, tenant=tenant,
                   event="loaded", previous_status=tenant.status)

    def alert(self, tenant: Tenant, alert: Alert) -> None:
        """Deliver an alert to every alert plugin the tenant runs."""
        notify(self.plugins.hooks(tenant).enclave_alert, tenant=tenant, alert=alert)

    # -- tenants, stores, models -------------------------------------------------------
    def tenant_for(self, principal: Principal) -> Tenant:
        tenant = self.tenants.get(principal.tenant)
        if not tenant.active:
            raise TenantUnavailable(f"{tenant.name} is {tenant.status}.")
        return tenant

    def _store(self, tenant: Tenant) -> TenantStore:
        store = self._stores.get(tenant.slug)
        if store is None:
            with self._lock:
                store = self._stores.get(tenant.slug)
                if store is None:
                    path = self.settings.data_dir / "tenants" / tenant.slug / "store.duckdb"
                    store = TenantStore(path, self.keys.data_key(tenant.slug),
                                        TENANT_MIGRATIONS)
                    self._stores[tenant.slug] = store
        return store

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
        with self._lock:
            platform = [("platform", self._metering.store)] if self._metering else []
            for slug, store in [*self._stores.items(), *platform]:
                try:
                    store.close()
                except EnclaveError:
                    log.exception("closing the store of %s failed", slug)
            self._stores.clear()
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
        for denial in hooks.enclave_quota_check(tenant=tenant, principal=principal,
                                                request=request):
            if denial is not None:
                self._after(hooks, tenant, principal, request, "refused", stored_prompt, "",
                            None, started, denial.message)
                raise QuotaExceeded(denial.message, denial.retry_after)
        events = hooks.enclave_chat_turn(tenant=tenant, principal=principal, request=request)
        if events is None:
            raise ModelUnavailable("No plugin ran this turn.")
        return self._stream(tenant, principal, hooks, request, convs, conv,
                            conversation_id is None, stored_prompt, events, started)

    def _stream(self, tenant: Tenant, principal: Principal, hooks: Any, request: TurnRequest,
                convs: Conversations, conv: Conversation, new: bool, prompt: str,
                events: Iterator[Event], started: float) -> Iterator[Event]:
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
            self._after(hooks, tenant, principal, request, "model_error", prompt,
                        "".join(parts), usage, started, str(e))
            raise
        answer = "".join(parts)
        if not answer.strip():
            self._after(hooks, tenant, principal, request, "model_error", prompt, "", usage,
                        started, "empty answer")
            raise ModelUnavailable("The model returned an empty answer. Please try again.")
        if usage is None:
            usage = Usage(estimate_tokens(request.messages), len(parts), True)
            yield usage
        message_id = convs.append_turn(principal.user_id, conv, prompt, answer,
                                       request.endpoint.model, usage, new=new)
        latency = self._after(hooks, tenant, principal, request, "ok", prompt, answer, usage,
                              started, None)
        yield Final(conv.id, message_id, answer, usage, request.endpoint.model, latency)

    def _after(self, hooks: Any, tenant: Tenant, principal: Principal, request: TurnRequest,
               outcome: Any, prompt: str, response: str, usage: Usage | None,
               started: float, error: str | None) -> float:
        latency = (time.perf_counter() - started) * 1000
        record = TurnRecord(tenant.slug, principal.user_hash, principal.channel,
                            request.conversation_id, request.assistant, request.endpoint.model,
                            outcome, prompt, response, usage, latency, error)
        self.metering.record(record)
        notify(hooks.enclave_after_turn, tenant=tenant, principal=principal, record=record)
        return latency
