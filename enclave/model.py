"""Calling the model: resolve a tenant's endpoint, stream through LangChain, map failures
to clear errors, and count tokens when the endpoint reports no usage."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import httpx
import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from enclave.config import Settings
from enclave.errors import ModelUnavailable, TenantInvalid
from enclave.hookspecs import ModelEndpoint
from enclave.tenants import Assistant, Tenant
from enclave.turns import ChatMessage, Event, Token, Usage

_LC = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}


def resolve_endpoint(settings: Settings, tenant: Tenant, assistant: Assistant) -> ModelEndpoint:
    """The tenant's model settings, else the deployment default, else the local model."""
    m = tenant.model
    api_key = settings.default_api_key
    if m.api_key_env:
        api_key = os.environ.get(m.api_key_env, "")
        if not api_key:
            raise TenantInvalid(f"{tenant.name}: the model key variable {m.api_key_env} "
                                "is not set on this deployment")
    return ModelEndpoint(
        provider=m.provider,
        base_url=m.base_url or settings.default_base_url,
        api_key=api_key,
        model=assistant.model or m.name or settings.default_model,
        temperature=m.temperature,
        max_tokens=m.max_tokens,
        timeout_seconds=m.timeout_seconds,
        max_retries=m.max_retries,
    )


def openai_chat_model(endpoint: ModelEndpoint) -> BaseChatModel:
    """LangChain ChatOpenAI for any OpenAI-compatible endpoint, streaming with usage."""
    return ChatOpenAI(
        model=endpoint.model, base_url=endpoint.base_url, api_key=endpoint.api_key,  # type: ignore[arg-type]
        temperature=endpoint.temperature, max_tokens=endpoint.max_tokens,  # type: ignore[call-arg]
        timeout=endpoint.timeout_seconds, max_retries=endpoint.max_retries,
        streaming=True, stream_usage=True,
    )


def estimate_tokens(messages: list[ChatMessage]) -> int:
    """A rough count (4 characters a token, 4 tokens overhead a message)."""
    return sum(math.ceil(len(m.content) / 4) + 4 for m in messages)


def _friendly(err: Exception, endpoint: ModelEndpoint) -> ModelUnavailable:
    if isinstance(err, openai.APITimeoutError | httpx.TimeoutException):
        return ModelUnavailable(f"The model did not answer within {endpoint.timeout_seconds:g} "
                                "seconds. Please try again.")
    if isinstance(err, openai.APIConnectionError | httpx.TransportError):
        return ModelUnavailable("The model service cannot be reached right now. "
                                "Please try again later.")
    if isinstance(err, openai.RateLimitError):
        return ModelUnavailable("The model service is busy (rate limited). "
                                "Please try again in a minute.")
    if isinstance(err, openai.AuthenticationError | openai.PermissionDeniedError):
        return ModelUnavailable("The model service refused this workspace's credentials. "
                                "Tell your administrator.")
    if isinstance(err, openai.APIStatusError):
        return ModelUnavailable(f"The model service failed (HTTP {err.status_code}). "
                                "Please try again.")
    return ModelUnavailable(f"The model service failed unexpectedly ({type(err).__name__}).")


def _chunks(chat_model: BaseChatModel, messages: list[BaseMessage]) -> Iterator[BaseMessage]:
    """Message chunks from the model. Uses ``_stream``, LangChain's extension point for
    streaming models, which skips ``.stream``'s per-chunk callback and merge work (~2 ms a
    turn, see bench/chat_overhead.py); models that only implement ``.stream`` use it."""
    if type(chat_model)._stream is BaseChatModel._stream:
        yield from chat_model.stream(messages)
    else:
        for generation in chat_model._stream(messages):
            yield generation.message


def stream_model(chat_model: BaseChatModel, endpoint: ModelEndpoint,
                 messages: list[ChatMessage]) -> Iterator[Event]:
    """Stream ``Token`` events, then exactly one ``Usage`` event (estimated if needed)."""
    lc: list[BaseMessage] = [_LC[m.role](content=m.content) for m in messages]
    chunks = 0
    usage: Usage | None = None
    try:
        for chunk in _chunks(chat_model, lc):
            text = chunk.content if isinstance(chunk.content, str) else ""
            if text:
                chunks += 1
                yield Token(text)
            meta = getattr(chunk, "usage_metadata", None)
            if meta and meta.get("output_tokens"):
                usage = Usage(meta["input_tokens"], meta["output_tokens"], False)
    except (openai.OpenAIError, httpx.HTTPError) as e:
        raise _friendly(e, endpoint) from e
    yield usage or Usage(estimate_tokens(messages), chunks, True)
