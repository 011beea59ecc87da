"""Conversations and their messages, in the tenant store. Every function is scoped to
one user of one tenant: the store is the tenant's, the user id is in every query."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

import duckdb

from enclave.errors import BadInput, NotFound
from enclave.store import Migration, Statement, TenantStore
from enclave.turns import ChatMessage, Citation, Usage

MAX_TITLE = 120
NEW_TITLE = "New chat"
TITLE_FROM_PROMPT = 60


def _m001_conversations(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""CREATE TABLE conversations (
        id VARCHAR PRIMARY KEY, user_id VARCHAR NOT NULL, title VARCHAR NOT NULL,
        assistant VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL, deleted BOOLEAN NOT NULL DEFAULT false)""")
    con.execute("""CREATE TABLE messages (
        id VARCHAR PRIMARY KEY, conversation_id VARCHAR NOT NULL, seq BIGINT NOT NULL,
        role VARCHAR NOT NULL, content VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL,
        model VARCHAR, prompt_tokens INTEGER, completion_tokens INTEGER,
        tokens_estimated BOOLEAN)""")


def _m002_message_citations(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("ALTER TABLE messages ADD COLUMN citations VARCHAR")  # JSON, answers only


MIGRATIONS: list[Migration] = [("001_conversations", _m001_conversations),
                               ("002_message_citations", _m002_message_citations)]


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    assistant: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StoredMessage:
    id: str
    role: str
    content: str
    created_at: datetime
    usage: Usage | None
    citations: tuple[Citation, ...] = ()


def _citations_json(cited: tuple[Citation, ...]) -> str | None:
    return json.dumps([asdict(c) for c in cited]) if cited else None


def _citations(text: str | None) -> tuple[Citation, ...]:
    return tuple(Citation(**c) for c in json.loads(text)) if text else ()


def _now() -> datetime:
    return datetime.now(UTC)


def _clean_title(title: str) -> str:
    title = " ".join(title.split())
    if not title:
        raise BadInput("A conversation title cannot be empty.")
    return title[:MAX_TITLE]


class Conversations:
    def __init__(self, store: TenantStore) -> None:
        self.store = store

    @staticmethod
    def draft(assistant: str, title: str = NEW_TITLE) -> Conversation:
        """A conversation not stored yet (its first turn stores it)."""
        now = _now()
        return Conversation(secrets.token_hex(16), _clean_title(title), assistant, now, now)

    def create(self, user_id: str, assistant: str, title: str = NEW_TITLE) -> Conversation:
        conv = self.draft(assistant, title)
        self.store.write(self._insert(user_id, conv))
        return conv

    @staticmethod
    def _insert(user_id: str, conv: Conversation) -> Statement:
        return ("INSERT INTO conversations VALUES (?, ?, ?, ?, ?, ?, false)",
                [conv.id, user_id, conv.title, conv.assistant, conv.created_at,
                 conv.updated_at])

    def of_user(self, user_id: str) -> list[Conversation]:
        """The user's conversations, most recently active first."""
        rows = self.store.query(
            "SELECT c.id, c.title, c.assistant, c.created_at, "
            "greatest(c.updated_at, max(m.created_at)) AS active FROM conversations c "
            "LEFT JOIN messages m ON m.conversation_id = c.id WHERE c.user_id = ? AND "
            "NOT c.deleted GROUP BY c.id, c.title, c.assistant, c.created_at, c.updated_at "
            "ORDER BY active DESC",
            [user_id])
        return [Conversation(*r) for r in rows]

    def get(self, user_id: str, conversation_id: str) -> Conversation:
        rows = self.store.query(
            "SELECT id, title, assistant, created_at, updated_at FROM conversations "
            "WHERE id = ? AND user_id = ? AND NOT deleted", [conversation_id, user_id])
        if not rows:
            raise NotFound("That conversation does not exist or is not yours.")
        return Conversation(*rows[0])

    def rename(self, user_id: str, conversation_id: str, title: str) -> None:
        self.get(user_id, conversation_id)
        self.store.write(("UPDATE conversations SET title = ?, updated_at = ? "
                          "WHERE id = ? AND user_id = ?",
                          [_clean_title(title), _now(), conversation_id, user_id]))

    def delete(self, user_id: str, conversation_id: str) -> None:
        """Delete a conversation: its messages are erased, not only hidden."""
        self.get(user_id, conversation_id)
        self.store.write(
            ("DELETE FROM messages WHERE conversation_id = ?", [conversation_id]),
            ("UPDATE conversations SET deleted = true, title = '', updated_at = ? "
             "WHERE id = ? AND user_id = ?", [_now(), conversation_id, user_id]))

    def messages(self, user_id: str, conversation_id: str) -> list[StoredMessage]:
        self.get(user_id, conversation_id)
        rows = self.store.query(
            "SELECT id, role, content, created_at, prompt_tokens, completion_tokens, "
            "tokens_estimated, citations FROM messages WHERE conversation_id = ? "
            "ORDER BY seq", [conversation_id])
        return [StoredMessage(r[0], r[1], r[2], r[3],
                              Usage(r[4], r[5], bool(r[6])) if r[4] is not None else None,
                              _citations(r[7]))
                for r in rows]

    def with_history(self, user_id: str, conversation_id: str, limit: int
                     ) -> tuple[Conversation, list[ChatMessage]]:
        """The conversation and its last ``limit`` messages, in one read."""
        conv = self.get(user_id, conversation_id)
        if limit <= 0:
            return conv, []
        rows = self.store.query(
            "SELECT role, content FROM (SELECT role, content, seq FROM messages "
            "WHERE conversation_id = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            [conversation_id, limit])
        return conv, [ChatMessage("user" if r[0] == "user" else "assistant", r[1])
                      for r in rows]

    def append_turn(self, user_id: str, conv: Conversation, prompt: str, answer: str,
                    model: str, usage: Usage, *, new: bool = False,
                    citations: tuple[Citation, ...] = ()) -> str:
        """Queue one turn as one unit: the conversation itself when ``new``, the user
        message and the answer (and a title for an untitled conversation). Returns the
        answer's id."""
        now = _now()
        seq = int(now.timestamp() * 1_000_000)
        answer_id = secrets.token_hex(16)
        untitled = conv.title == NEW_TITLE
        title = _clean_title(prompt)[:TITLE_FROM_PROMPT] if untitled else conv.title
        statements = [self._insert(user_id, replace(conv, title=title))] if new else []
        statements.append(("INSERT INTO messages (id, conversation_id, seq, role, content, "
                           "created_at, model, prompt_tokens, completion_tokens, "
                           "tokens_estimated, citations) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, "
                           "NULL, NULL, NULL), (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [secrets.token_hex(16), conv.id, seq, "user", prompt, now,
                            answer_id, conv.id, seq + 1, "assistant", answer, now, model,
                            usage.prompt_tokens, usage.completion_tokens, usage.estimated,
                            _citations_json(citations)]))
        if untitled and not new:
            statements.append(("UPDATE conversations SET title = ? WHERE id = ? AND "
                               "user_id = ?", [title, conv.id, user_id]))
        self.store.write(*statements)
        return answer_id
