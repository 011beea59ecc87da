"""Conversations and their messages, in the tenant store. Every function is scoped to
one user of one tenant: the store is the tenant's, the user id is in every query."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from enclave.errors import BadInput, NotFound
from enclave.store import Migration, TenantStore
from enclave.turns import ChatMessage, Usage

MAX_TITLE = 120
NEW_TITLE = "New chat"


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


MIGRATIONS: list[Migration] = [("001_conversations", _m001_conversations)]


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
        return Conversation(uuid.uuid4().hex, _clean_title(title), assistant, now, now)

    def create(self, user_id: str, assistant: str, title: str = NEW_TITLE) -> Conversation:
        conv = self.draft(assistant, title)
        self._insert(user_id, conv)
        return conv

    def _insert(self, user_id: str, conv: Conversation) -> None:
        self.store.write("INSERT INTO conversations VALUES (?, ?, ?, ?, ?, ?, false)",
                         [conv.id, user_id, conv.title, conv.assistant, conv.created_at,
                          conv.updated_at])

    def of_user(self, user_id: str) -> list[Conversation]:
        rows = self.store.query(
            "SELECT id, title, assistant, created_at, updated_at FROM conversations "
            "WHERE user_id = ? AND NOT deleted ORDER BY updated_at DESC", [user_id])
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
        self.store.write("UPDATE conversations SET title = ?, updated_at = ? "
                         "WHERE id = ? AND user_id = ?",
                         [_clean_title(title), _now(), conversation_id, user_id])

    def delete(self, user_id: str, conversation_id: str) -> None:
        """Delete a conversation: its messages are erased, not only hidden."""
        self.get(user_id, conversation_id)
        self.store.write("DELETE FROM messages WHERE conversation_id = ?", [conversation_id])
        self.store.write("UPDATE conversations SET deleted = true, title = '', updated_at = ? "
                         "WHERE id = ? AND user_id = ?", [_now(), conversation_id, user_id])

    def messages(self, user_id: str, conversation_id: str) -> list[StoredMessage]:
        self.get(user_id, conversation_id)
        rows = self.store.query(
            "SELECT id, role, content, created_at, prompt_tokens, completion_tokens, "
            "tokens_estimated FROM messages WHERE conversation_id = ? ORDER BY seq",
            [conversation_id])
        return [StoredMessage(r[0], r[1], r[2], r[3],
                              Usage(r[4], r[5], bool(r[6])) if r[4] is not None else None)
                for r in rows]

    def history(self, user_id: str, conversation_id: str, limit: int) -> list[ChatMessage]:
        if limit <= 0:
            return []
        msgs = self.messages(user_id, conversation_id)[-limit:]
        return [ChatMessage("user" if m.role == "user" else "assistant", m.content)
                for m in msgs]

    def append_turn(self, user_id: str, conv: Conversation, prompt: str, answer: str,
                    model: str, usage: Usage, *, new: bool = False) -> str:
        """Queue the user message and the answer of one turn (and the conversation itself
        when ``new``); returns the answer's id."""
        if new:
            self._insert(user_id, conv)
        now = _now()
        seq = now.timestamp() * 1_000_000
        answer_id = uuid.uuid4().hex
        sql = "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        self.store.write(sql, [uuid.uuid4().hex, conv.id, int(seq), "user", prompt, now,
                               None, None, None, None])
        self.store.write(sql, [answer_id, conv.id, int(seq) + 1, "assistant", answer, now,
                               model, usage.prompt_tokens, usage.completion_tokens,
                               usage.estimated])
        title_sql = ("UPDATE conversations SET updated_at = ?, title = CASE WHEN title = ? "
                     "THEN ? ELSE title END WHERE id = ? AND user_id = ?")
        self.store.write(title_sql, [now, NEW_TITLE, _clean_title(prompt)[:60], conv.id,
                                     user_id])
        return answer_id
