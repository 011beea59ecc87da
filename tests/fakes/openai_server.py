"""A fake OpenAI-compatible chat completions server speaking the real HTTP/SSE protocol.

Use in tests::

    with FakeOpenAI() as fake:
        client = openai.OpenAI(base_url=fake.base_url, api_key="x")

or standalone for benchmarks::

    python -m tests.fakes.openai_server --port 8799 --token-delay 0.005 --tokens 20

Behaviours can be set on the instance (``fail_status``, ``token_delay``, ``no_usage``,
``hang_before_first_token``) or per request via the model name: ``fail-429``, ``fail-500``,
``slow`` (2 s per token), ``no-usage``; markers can be combined with ``+`` (``slow+no-usage``).

Usage accounting: ``prompt_tokens`` is the number of whitespace-separated words across the
text of all request messages; ``completion_tokens`` is the number of reply tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL_ID = "fake-model"
SLOW_TOKEN_DELAY = 2.0


def split_tokens(text: str) -> list[str]:
    """Split into words keeping their leading whitespace, so ``"".join(tokens) == text``."""
    tokens = re.findall(r"\s*\S+(?:\s+$)?", text)
    return tokens or ([text] if text else [])


def _text(content: Any) -> str:
    """Text of a message ``content`` (a string or a list of content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _error(status: int, message: str, type_: str, code: str | None) -> JSONResponse:
    headers = {"retry-after": "1"} if status == 429 else None
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


class FakeOpenAI:
    """Fake OpenAI server on 127.0.0.1, run by uvicorn in a background thread.

    Behaviour attributes may be reassigned at any time (from any thread); each request reads
    them once when it arrives.
    """

    reply: str | None  # fixed reply text instead of "You said: ..."
    tokens: int | None  # reply with exactly this many tokens (words cycled/truncated)
    token_delay: float  # seconds per token (before each streamed token; summed if non-streaming)
    fail_status: int | None  # answer every chat request with this HTTP error status
    no_usage: bool  # never send a usage chunk, even if asked (like llama.cpp)
    hang_before_first_token: float  # seconds to wait before the first byte of the reply

    def __init__(
        self,
        *,
        port: int = 0,
        reply: str | None = None,
        tokens: int | None = None,
        token_delay: float = 0.0,
        fail_status: int | None = None,
        no_usage: bool = False,
        hang_before_first_token: float = 0.0,
    ) -> None:
        self._defaults = (
            reply,
            tokens,
            token_delay,
            fail_status,
            no_usage,
            hang_before_first_token,
        )
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self.reset()
        self._port = port
        self._stopping = False
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
            ]
        )

    # -- state ---------------------------------------------------------------------------
    @property
    def requests(self) -> list[dict[str, Any]]:
        """Snapshot of recorded chat requests: JSON body plus ``headers`` (lower-cased)."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Clear recorded requests and restore all constructor settings."""
        with self._lock:
            self._requests.clear()
        (
            self.reply,
            self.tokens,
            self.token_delay,
            self.fail_status,
            self.no_usage,
            self.hang_before_first_token,
        ) = self._defaults

    def reply_tokens(self, messages: list[dict[str, Any]]) -> list[str]:
        """``reply`` (or "You said: <last user message>") as tokens, cycled/cut to ``tokens``."""
        if self.reply is not None:
            text = self.reply
        else:
            last: dict[str, Any] = next(
                (m for m in reversed(messages) if m.get("role") == "user"), {}
            )
            text = f"You said: {_text(last.get('content'))}"
        base = split_tokens(text)
        if self.tokens is None:
            return base
        words = [t.strip() for t in base if t.strip()] or ["lorem"]
        return [(" " if i else "") + words[i % len(words)] for i in range(self.tokens)]

    async def _sleep(self, seconds: float) -> bool:
        """``asyncio.sleep`` that wakes early when stopping; returns False if stopping."""
        end = time.monotonic() + seconds
        while not self._stopping and (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.05))
        return not self._stopping

    # -- endpoints -----------------------------------------------------------------------
    async def _models(self, request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "fake"}],
            }
        )

    async def _chat(self, request: Request) -> Response:
        try:
            body = await request.json()
            assert isinstance(body, dict)
        except Exception:
            return _error(400, "Request body must be a JSON object", "invalid_request_error", None)
        with self._lock:
            self._requests.append(
                {**body, "headers": {k.lower(): v for k, v in request.headers.items()}}
            )

        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(
                401, "Missing or invalid API key", "invalid_request_error", "invalid_api_key"
            )

        model = str(body.get("model", MODEL_ID))
        markers = set(model.split("+"))
        fail_status = self.fail_status
        for status in (429, 500):
            if f"fail-{status}" in markers:
                fail_status = status
        if fail_status == 429:
            return _error(429, "Rate limit reached", "requests", "rate_limit_exceeded")
        if fail_status:
            return _error(fail_status, "The server had an error", "server_error", None)

        delay = max(self.token_delay, SLOW_TOKEN_DELAY if "slow" in markers else 0.0)
        hang = self.hang_before_first_token
        messages = body.get("messages") or []
        tokens = self.reply_tokens(messages)
        prompt_tokens = sum(len(_text(m.get("content")).split()) for m in messages)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(tokens),
            "total_tokens": prompt_tokens + len(tokens),
        }
        meta = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "created": int(time.time()),
            "model": model,
        }

        if not body.get("stream"):
            await self._sleep(hang + delay * len(tokens))
            message = {"role": "assistant", "content": "".join(tokens)}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            return JSONResponse(
                {**meta, "object": "chat.completion", "choices": [choice], "usage": usage}
            )

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        include_usage = include_usage and not self.no_usage and "no-usage" not in markers

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            data: dict[str, Any] = {**meta, "object": "chat.completion.chunk", "choices": [choice]}
            if include_usage:
                data["usage"] = None
            return f"data: {json.dumps(data)}\n\n"

        async def events() -> AsyncIterator[str]:
            if not await self._sleep(hang):
                return
            yield chunk({"role": "assistant", "content": ""})
            for tok in tokens:
                if not await self._sleep(delay):
                    return  # server stopping: end the stream early
                yield chunk({"content": tok})
            yield chunk({}, "stop")
            if include_usage:
                final = {**meta, "object": "chat.completion.chunk", "choices": [], "usage": usage}
                yield f"data: {json.dumps(final)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
        )

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def _config(self, port: int) -> uvicorn.Config:
        return uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=port,
            loop="asyncio",
            lifespan="off",
            log_level="warning",
            timeout_graceful_shutdown=1,
        )

    def start(self) -> FakeOpenAI:
        """Bind a socket (port 0 = any free port) and serve in a daemon thread."""
        self._stopping = False
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self._port = sock.getsockname()[1]
        self._server = server = uvicorn.Server(self._config(self._port))
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake OpenAI server failed to start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop uvicorn; in-flight streams end early (without ``[DONE]``)."""
        if self._server and self._thread:
            self._stopping = True
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Run in the foreground (used by :func:`main`); Ctrl+C stops."""
        uvicorn.Server(self._config(self._port)).run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible chat server")
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds per streamed token")
    parser.add_argument("--tokens", type=int, default=None, help="reply with exactly N tokens")
    parser.add_argument("--reply", default=None, help="fixed reply text")
    args = parser.parse_args(argv)
    fake = FakeOpenAI(
        port=args.port, reply=args.reply, tokens=args.tokens, token_delay=args.token_delay
    )
    print(f"Fake OpenAI server on {fake.base_url}", flush=True)
    try:
        fake.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
