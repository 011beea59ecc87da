"""Built-in chat turn: stream the tenant's model for the request."""

from __future__ import annotations

from collections.abc import Iterator

from enclave import hookimpl
from enclave.identity import Principal
from enclave.model import stream_model
from enclave.tenants import Tenant
from enclave.turns import Event, TurnRequest


@hookimpl(trylast=True)
def enclave_chat_turn(tenant: Tenant, principal: Principal,
                      request: TurnRequest) -> Iterator[Event]:
    if request.chat_model is None:
        raise RuntimeError("the workspace did not resolve a model for this turn")
    return stream_model(request.chat_model, request.endpoint, request.messages)
