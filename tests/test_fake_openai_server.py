"""The fake OpenAI server speaks the wire protocol the real clients expect."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest
from langchain_openai import ChatOpenAI
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes.openai_server import FakeOpenAI, split_tokens

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "hello there world"},
]
EXPECTED = "You said: hello there world"


@pytest.fixture
def fake(llm: FakeOpenAI) -> FakeOpenAI:
    """The suite's fake server (tests/conftest.py), reset for each test."""
    return llm


def client(fake: FakeOpenAI, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0, **kwargs)  # type: ignore[arg-type]


def chat_model(fake: FakeOpenAI, **kwargs: object) -> ChatOpenAI:
    return ChatOpenAI(base_url=fake.base_url, api_key="x", model="m", **kwargs)  # type: ignore[arg-type]


def test_split_tokens_roundtrip() -> None:
    for text in ["You said: a  b\tc ", "", "  ", "one"]:
        assert "".join(split_tokens(text)) == text


def test_models(fake: FakeOpenAI) -> None:
    assert [m.id for m in client(fake).models.list()] == ["fake-model"]


def test_openai_streaming_with_usage(fake: FakeOpenAI) -> None:
    stream = client(fake).chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == EXPECTED
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (6, 5, 11)


def test_openai_streaming_without_usage_option(fake: FakeOpenAI) -> None:
    chunks = list(client(fake).chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert all(c.usage is None and c.choices for c in chunks)


def test_openai_non_streaming(fake: FakeOpenAI) -> None:
    resp = client(fake).chat.completions.create(model="m", messages=MESSAGES)
    assert resp.object == "chat.completion"
    assert resp.model == "m"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == EXPECTED
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.total_tokens == 11


def test_langchain_stream_usage(fake: FakeOpenAI) -> None:
    llm = chat_model(fake, stream_usage=True)
    chunks = list(llm.stream([("system", "You are terse."), ("user", "hello there world")]))
    assert "".join(str(c.content) for c in chunks) == EXPECTED
    # langchain-core appends an empty closing chunk; the usage chunk is the last one with data.
    with_usage = [i for i, c in enumerate(chunks) if c.usage_metadata]
    assert with_usage and with_usage[-1] > max(i for i, c in enumerate(chunks) if c.content)
    usage = chunks[with_usage[-1]].usage_metadata
    assert usage is not None
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (6, 5, 11)
    total = sum(chunks[1:], chunks[0])
    assert total.usage_metadata is not None and total.usage_metadata["total_tokens"] == 11
    assert fake.requests[-1]["stream_options"] == {"include_usage": True}


def test_langchain_invoke(fake: FakeOpenAI) -> None:
    llm = chat_model(fake)
    msg = llm.invoke("hi")
    assert msg.content == "You said: hi"
    assert msg.usage_metadata is not None and msg.usage_metadata["output_tokens"] == 3


@pytest.mark.parametrize("via_model", [True, False])
def test_rate_limit(fake: FakeOpenAI, via_model: bool) -> None:
    if not via_model:
        fake.fail_status = 429
    with pytest.raises(openai.RateLimitError) as exc:
        client(fake).chat.completions.create(
            model="fail-429" if via_model else "m", messages=MESSAGES
        )
    assert exc.value.response.headers["retry-after"] == "1"
    assert exc.value.code == "rate_limit_exceeded"


@pytest.mark.parametrize("via_model", [True, False])
def test_server_error(fake: FakeOpenAI, via_model: bool) -> None:
    if not via_model:
        fake.fail_status = 500
    with pytest.raises(openai.InternalServerError):
        client(fake).chat.completions.create(
            model="fail-500" if via_model else "m", messages=MESSAGES, stream=True
        )


def test_models_can_be_mixed(fake: FakeOpenAI) -> None:
    c = client(fake)
    with pytest.raises(openai.RateLimitError):
        c.chat.completions.create(model="fail-429", messages=MESSAGES)
    assert c.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content


@pytest.mark.parametrize("model,attr", [("no-usage", False), ("m", True)])
def test_no_usage(fake: FakeOpenAI, model: str, attr: bool) -> None:
    fake.no_usage = attr
    chunks = list(
        client(fake).chat.completions.create(
            model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == EXPECTED


def test_missing_auth_is_401(fake: FakeOpenAI) -> None:
    resp = httpx.post(f"{fake.base_url}/chat/completions", json={"model": "m", "messages": []})
    assert resp.status_code == 401
    assert set(resp.json()["error"]) >= {"message", "type", "code"}
    with pytest.raises(openai.AuthenticationError):
        client(fake, default_headers={"Authorization": ""}).chat.completions.create(
            model="m", messages=MESSAGES
        )


def test_requests_recorded(fake: FakeOpenAI) -> None:
    client(fake).chat.completions.create(model="m", messages=MESSAGES)
    [req] = fake.requests
    assert req["messages"][0] == {"role": "system", "content": "You are terse."}
    assert req["model"] == "m"
    assert req["headers"]["authorization"] == "Bearer x"
    fake.reset()
    assert fake.requests == []


def test_reply_and_tokens(fake: FakeOpenAI) -> None:
    c = client(fake)
    fake.reply = "fixed answer"
    assert c.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == (
        "fixed answer"
    )
    fake.tokens = 5
    chunks = list(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    tokens = [ch.choices[0].delta.content for ch in chunks[1:-1]]
    assert tokens == ["fixed", " answer", " fixed", " answer", " fixed"]


def test_slow_model_times_out(fake: FakeOpenAI) -> None:
    stream = client(fake, timeout=0.5).chat.completions.create(
        model="slow", messages=MESSAGES, stream=True
    )
    first = next(iter(stream))  # the role chunk comes at once, then 2 s per token
    assert first.choices[0].delta.role == "assistant"
    with pytest.raises(openai.APITimeoutError):
        list(stream)


def test_hang_before_first_token(fake: FakeOpenAI) -> None:
    fake.hang_before_first_token = 5
    with pytest.raises(openai.APITimeoutError):
        client(fake, timeout=0.5).chat.completions.create(model="m", messages=MESSAGES)


def test_many_concurrent_streams(fake: FakeOpenAI) -> None:
    fake.token_delay = 0.05
    fake.tokens = 10
    aclient = openai.AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0)

    async def one(i: int) -> str:
        messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": f"n{i}"}]
        stream = await aclient.chat.completions.create(model="m", messages=messages, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    async def run() -> list[str]:
        async with aclient:
            return await asyncio.gather(*(one(i) for i in range(50)))

    start = time.monotonic()
    texts = asyncio.run(run())
    assert time.monotonic() - start < 0.05 * 10 * 5  # far less than sequential (25 s)
    assert all(len(split_tokens(t)) == 10 for t in texts)
    assert len(fake.requests) == 50
