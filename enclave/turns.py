"""The data of one chat turn: messages in, events out, a record after."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from enclave.hookspecs import ModelEndpoint

MessageRole = Literal["system", "user", "assistant"]


@dataclass
class ChatMessage:
    role: MessageRole
    content: str


@dataclass(frozen=True)
class Token:
    """A piece of the streamed answer."""

    text: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    estimated: bool

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Citation:
    """A knowledge chunk the answer was grounded on (``number`` is its ``[n]`` in the
    prompt)."""

    number: int
    chunk_id: str
    title: str
    page: int | None
    section: str | None
    snippet: str
    score: float


@dataclass(frozen=True)
class Final:
    """The last event of a successful turn."""

    conversation_id: str
    message_id: str
    text: str
    usage: Usage
    model: str
    latency_ms: float
    citations: tuple[Citation, ...] = ()


Event = Token | Usage | Final


@dataclass
class TurnRequest:
    """What the model is asked. Plugins may change ``messages`` in place.

    ``endpoint`` and ``chat_model`` (a LangChain chat model) are resolved by the core from
    the tenant's settings and model provider before ``enclave_chat_turn`` is called.
    """

    conversation_id: str
    assistant: str
    messages: list[ChatMessage]
    endpoint: ModelEndpoint
    chat_model: Any = None
    retrieved_chunk_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class TurnRecord:
    """What happened, handed to ``enclave_after_turn``."""

    tenant: str
    user_hash: str
    channel: str
    conversation_id: str
    assistant: str
    model: str
    outcome: Literal["ok", "refused", "model_error", "error"]
    prompt: str
    response: str
    usage: Usage | None
    latency_ms: float
    error: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
