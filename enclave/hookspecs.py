"""Every hook of Enclave, typed, with its contract.

Implement hooks with ``from enclave import hookimpl``. All hooks take keyword arguments;
an implementation may accept any subset of them. A plugin only runs for tenants that
enable it in ``tenant.toml`` (``[plugins.<name>]``); only the built-in modules
``enclave.plugins.default_*`` run for every tenant. Observer hooks (after-turn, alert,
lifecycle) call each plugin on its own: one that raises is logged and skipped.
See docs/plugins.md for examples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pluggy

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from enclave.identity import Principal
    from enclave.keys import KeyProvider
    from enclave.tenants import Assistant, Tenant
    from enclave.turns import Token, TurnRecord, TurnRequest, Usage

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
    """Returned by ``enclave_quota_check`` to refuse a turn: ``limit`` names the limit
    (e.g. ``"requests_per_minute"``), ``message`` is shown to the user."""

    limit: str
    message: str
    retry_after: float | None = None


@dataclass(frozen=True)
class Alert:
    kind: str
    severity: Literal["info", "warning", "critical"]
    message: str
    figures: dict[str, Any] = field(default_factory=dict)


@hookspec
def enclave_register_model_providers(register: Callable[[str, ModelFactory], None]) -> None:
    """Register model providers by name: ``register("name", factory)``.

    Called when a tenant first needs a model (cached per set of enabled plugins); each
    implementation is called on its own, with ``register`` only. ``factory(endpoint)`` returns a
    LangChain chat model that supports ``.stream``. A tenant picks its provider with
    ``[model] provider = "name"``. A name registered by two plugins is an error, except
    that a plugin may replace a built-in (built-ins register last).
    """


@hookspec
def enclave_validate_settings(tenant: Tenant) -> None:
    """Check this plugin's settings for ``tenant``; raise ``TenantInvalid`` naming the
    tenant file and the setting when they are wrong.

    Called for every tenant that enables the plugin when the workspace starts and by
    ``enclave tenants validate``, so a bad setting fails early instead of on every turn.
    Return value is ignored.
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
                      request: TurnRequest) -> Iterator[Token | Usage] | None:
    """Run the model for a turn and return an iterator of ``Token`` and ``Usage`` events
    (the core adds ``Final`` itself).

    firstresult: the first non-None result is the turn (the built-in calls the tenant's
    model provider). Use ``@hookimpl(wrapper=True)`` to wrap it: ``events = yield`` gives
    the iterator, and the wrapper returns an iterator of its own (for timing, logging
    or filtering tokens). Errors surface while the iterator is consumed, not at ``yield``;
    raise ``ModelUnavailable`` for a clear user-facing error.
    """


@hookspec
def enclave_after_turn(tenant: Tenant, principal: Principal, record: TurnRecord) -> None:
    """Observe a finished turn (ok, refused or failed), for logging and analytics.

    Called once per turn: after the answer is complete and stored, just before the
    ``Final`` event, or when the turn is refused or fails. Keep it fast (queue slow
    work); an exception is logged and does not affect the turn or other plugins.
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
    ``resumed``, ``expired``, ``archived``, ``restored``, or ``loaded`` (the workspace
    loaded the tenant at start-up; ``previous_status`` is then its current status).

    Called after the change took effect; ``previous_status`` is None for a new tenant.
    """


@hookspec(firstresult=True)
def enclave_key_provider(tenant: Tenant) -> KeyProvider | None:
    """Return the ``KeyProvider`` (an external KMS) that wraps and unwraps ``tenant``'s
    data and audit keys, or None to use the deployment master key.

    firstresult: the first non-None provider wins. Called whenever the tenant's keys are
    opened, created or rotated. Keys created (or rotated with ``enclave keys rotate``)
    while a provider is enabled are wrapped by it and record its ``name``; they cannot
    be unwrapped without it. ``unwrap`` errors surface as ``KeyUnavailable``.
    """
