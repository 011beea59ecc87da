"""Every hook of Enclave, typed, with its contract.

Implement hooks with ``from enclave import hookimpl``. All hooks take keyword arguments;
an implementation may accept any subset of them. A plugin only runs for tenants that
enable it in ``tenant.toml`` (``[plugins.<name>]``); built-in ``default_*`` plugins run
for every tenant. See docs/plugins.md for examples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from enclave.identity import Principal
    from enclave.tenants import Assistant, Tenant
    from enclave.turns import Event, TurnRecord, TurnRequest

hookspec = pluggy.HookspecMarker("enclave")
hookimpl = pluggy.HookimplMarker("enclave")


@dataclass(frozen=True)
class ModelEndpoint:
    """Where and how to call a model for one turn (already resolved for the tenant)."""

    provider: str
    base_url: str
    api_key: str = field(repr=False)
    model: str
    temperature: float
    max_tokens: int
    timeout_seconds: float
    max_retries: int


ModelFactory = Callable[[ModelEndpoint], "BaseChatModel"]


@dataclass(frozen=True)
class QuotaDenial:
    """Returned by ``enclave_quota_check`` to refuse a turn."""

    limit: str
    message: str
    retry_after: float | None = None


@dataclass(frozen=True)
class Alert:
    kind: str
    severity: str  # "info" | "warning" | "critical"
    message: str
    figures: dict[str, Any] = field(default_factory=dict)


@hookspec
def enclave_register_model_providers(register: Callable[[str, ModelFactory], None]) -> None:
    """Register model providers by name: ``register("name", factory)``.

    Called once per tenant when its first turn runs. ``factory(endpoint)`` returns a
    LangChain chat model that supports ``.stream``. A tenant picks its provider with
    ``[model] provider = "name"``. A name registered by two plugins is an error, except
    that a plugin may replace a built-in (built-ins register last).
    """


@hookspec
def enclave_system_prompt(tenant: Tenant, principal: Principal,
                          assistant: Assistant) -> str | None:
    """Contribute text to the system prompt of a turn (custom assistant behaviour).

    Called on every turn after the tenant prompt and the assistant instructions are
    assembled. Return a string to append (one paragraph per plugin), or None.
    """


@hookspec
def enclave_transform_messages(tenant: Tenant, principal: Principal,
                               request: TurnRequest) -> None:
    """Change the messages just before the model call, in place (``request.messages``).

    Called on every turn, after the system prompt is built and before the quota check.
    Use it to redact, rewrite or add messages. What the plugin leaves is what is sent,
    stored and logged. Return value is ignored.
    """


@hookspec(firstresult=True)
def enclave_chat_turn(tenant: Tenant, principal: Principal,
                      request: TurnRequest) -> Iterator[Event] | None:
    """Run the model for a turn and return an iterator of ``Token`` and ``Usage`` events.

    firstresult: the first non-None result is the turn (the built-in calls the tenant's
    model provider). Use ``@hookimpl(wrapper=True)`` to wrap it: ``events = yield`` gives
    the iterator, and the wrapper returns an iterator of its own (for timing, logging
    or filtering tokens). Raise ``ModelUnavailable`` for a clear user-facing error.
    """


@hookspec
def enclave_after_turn(tenant: Tenant, principal: Principal, record: TurnRecord) -> None:
    """Observe a finished turn (ok, refused or failed), for logging and analytics.

    Called once per turn after the last event, off the user's critical path as far as
    possible; keep it fast and never raise (errors are logged and swallowed).
    """


@hookspec
def enclave_quota_check(tenant: Tenant, principal: Principal,
                        request: TurnRequest) -> QuotaDenial | None:
    """Allow or refuse a turn before any model call.

    Not firstresult: every enabled plugin is asked, and any ``QuotaDenial`` refuses the
    turn (the first denial's message is shown). Return None to allow.
    """


@hookspec
def enclave_alert(tenant: Tenant, alert: Alert) -> None:
    """Deliver an alert (quota threshold, breach, anomaly) for a tenant.

    Called by the core when an alert is raised; every enabled plugin receives it.
    """


@hookspec
def enclave_tenant_lifecycle(tenant: Tenant, event: str, previous_status: str | None) -> None:
    """Observe a lifecycle event of a tenant: ``provisioned``, ``suspended``,
    ``resumed``, ``expired``, ``archived``, ``restored``, ``loaded``.

    Called after the change took effect; ``previous_status`` is None for a new tenant.
    """
