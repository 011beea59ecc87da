"""The quota engine through the workspace: exact admission under concurrency (memory and
Redis), budgets that never overspend, reservations released on refusal, failure and
abandonment, window and period rollover, storage down, alert dedup."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from enclave.errors import ModelUnavailable, QuotaExceeded, QuotaUnavailable
from enclave.identity import Principal
from enclave.quota.engine import QuotaEngine, in_words
from enclave.turns import Final
from enclave.usage import period_used
from enclave.workspace import Workspace
from tests.conftest import as_user
from tests.fakes.openai_server import FakeOpenAI
from tests.quota.conftest import RedisServer

MakeWs = Callable[..., Workspace]
BACKENDS = ["memory", "redis"]


def backend_url(name: str, request: pytest.FixtureRequest) -> str:
    if name == "memory":
        return "memory://"
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


def concurrently(ws: Workspace, principal: Principal, n: int, text: str = "hello"
                 ) -> list[Final | QuotaExceeded]:
    """``n`` turns started at the same instant; each result is its Final or refusal.
    Every turn is admitted or refused (``chat()`` reserves) before any answer is read,
    so no early settlement frees budget for a later turn."""
    start, admitted = threading.Barrier(n), threading.Barrier(n)

    def turn(_: int) -> Final | QuotaExceeded:
        start.wait()
        try:
            stream = ws.chat(principal, text)
        except QuotaExceeded as e:
            admitted.wait()
            return e
        admitted.wait()
        final = list(stream)[-1]
        assert isinstance(final, Final)
        return final

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(turn, range(n)))


def budget_used(ws: Workspace, principal: Principal, limit: str) -> int:
    tenant = ws.tenant_for(principal)
    return next(used for c, used in ws.quota.consumption(tenant, principal)
                if c.limit == limit)


def reservation_of(llm: FakeOpenAI, max_tokens: int = 256) -> int:
    """What one turn reserved: the prompt estimate (4 characters a token, 4 a message)
    plus the tenant's max output."""
    messages = llm.requests[0]["messages"]
    return sum(math.ceil(len(m["content"]) / 4) + 4 for m in messages) + max_tokens


@pytest.mark.parametrize("backend", BACKENDS)
def test_32_concurrent_turns_against_a_limit_of_10_admit_exactly_10(
        backend: str, make_ws: MakeWs, llm: FakeOpenAI, request: pytest.FixtureRequest
        ) -> None:
    ws = make_ws("[quotas]\nrequests_per_minute = 10", backend_url(backend, request))
    results = concurrently(ws, as_user(ws, "acme", "bob@acme.example"), 32)
    refused = [r for r in results if isinstance(r, QuotaExceeded)]
    assert len(results) - len(refused) == 10
    assert len(llm.requests) == 10, "a refused turn never reaches the model"
    assert {r.limit for r in refused} == {"requests_per_minute"}
    assert all(0 < (r.retry_after or 0) <= 60 for r in refused)
    assert "You have reached 10 requests per minute. Try again in" in str(refused[0])
    assert refused[0].headers["Retry-After"] == str(math.ceil(refused[0].retry_after or 0))
    outcomes = [r["outcome"] for r in ws.metering.rows(tenant="acme")]
    assert outcomes.count("ok") == 10 and outcomes.count("refused") == 22


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_token_budget_is_never_overspent_under_concurrency(
        backend: str, make_ws: MakeWs, llm: FakeOpenAI, request: pytest.FixtureRequest
        ) -> None:
    budget = 6000
    ws = make_ws(f"[quotas]\ntokens_per_day = {budget}", backend_url(backend, request))
    bob = as_user(ws, "acme", "bob@acme.example")
    results = concurrently(ws, bob, 32)
    admitted = [r for r in results if isinstance(r, Final)]
    reserve = reservation_of(llm)
    assert len(admitted) == budget // reserve, "exactly as many turns as the budget holds"
    assert {r.limit for r in results if isinstance(r, QuotaExceeded)} == {"tokens_per_day"}
    real = sum(f.usage.total_tokens for f in admitted)
    assert real <= budget
    assert budget_used(ws, bob, "tokens_per_day") == real, "settled to the real usage"


def test_a_refused_turn_and_a_failed_model_call_hold_nothing(make_ws: MakeWs,
                                                             llm: FakeOpenAI) -> None:
    ws = make_ws("[quotas]\ntokens_per_day = 100000\n[quotas.tenant]\n"
                 "tokens_per_month = 400")
    bob = as_user(ws, "acme", "bob@acme.example")
    with pytest.raises(QuotaExceeded, match="Acme Corporation") as refused:
        list(ws.chat(bob, "hello"))
    assert refused.value.limit == "tokens_per_month" and not llm.requests
    assert budget_used(ws, bob, "tokens_per_day") == 0, "no reservation left behind"

    ws2 = make_ws("[quotas]\ntokens_per_day = 100000")
    bob = as_user(ws2, "acme", "bob@acme.example")
    llm.fail_status = 500
    with pytest.raises(ModelUnavailable):
        list(ws2.chat(bob, "hello"))
    assert llm.requests
    assert budget_used(ws2, bob, "tokens_per_day") == 0, "a failed call releases its hold"
    llm.fail_status = None
    stream = ws2.chat(bob, "hello")
    next(stream)
    assert budget_used(ws2, bob, "tokens_per_day") == reservation_of(llm)
    stream.close()  # the reader went away mid-answer
    assert budget_used(ws2, bob, "tokens_per_day") == 0
    never_read = ws2.chat(bob, "hello")
    del never_read
    assert budget_used(ws2, bob, "tokens_per_day") == 0


def test_limits_per_role_per_user_and_per_api_key(make_ws: MakeWs) -> None:
    ws = make_ws("""
[quotas]
requests_per_minute = 5
[quotas.api_key]
requests_per_minute = 1
[quotas.roles.admin]
requests_per_minute = 50
[quotas.users."bob@acme.example"]
requests_per_minute = 2
""")
    acme = ws.tenants.get("acme")
    q = acme.quotas
    assert q.user_limits("alice@acme.example", ("admin",)).requests_per_minute == 50
    assert q.user_limits("bob@acme.example", ("member",)).requests_per_minute == 2
    assert q.user_limits("bob@acme.example", ("admin", "member")).requests_per_minute == 2
    assert q.user_limits("zoe@acme.example", ("member", "editor")).requests_per_minute == 5
    bob = as_user(ws, "acme", "bob@acme.example")
    list(ws.chat(bob, "one"))
    list(ws.chat(bob, "two"))
    with pytest.raises(QuotaExceeded, match="2 requests per minute"):
        list(ws.chat(bob, "three"))
    alice = as_user(ws, "acme", "alice@acme.example")
    ws.quota.reserve(acme, alice, "fake-model", 10, 10, api_key_id="key-1")
    with pytest.raises(QuotaExceeded, match="This API key has reached 1 requests per minute"):
        ws.quota.reserve(acme, alice, "fake-model", 10, 10, api_key_id="key-1")
    ws.quota.reserve(acme, alice, "fake-model", 10, 10, api_key_id="key-2")


def test_a_turn_larger_than_a_limit_says_so_without_a_retry_time(make_ws: MakeWs) -> None:
    ws = make_ws("[quotas]\ntokens_per_minute = 100")
    with pytest.raises(QuotaExceeded, match="needs about .* tokens, more than 100 tokens "
                       "per minute allows") as err:
        list(ws.chat(as_user(ws, "acme", "bob@acme.example"), "hello"))
    assert err.value.retry_after is None and err.value.headers == {}


def test_cost_budget_uses_the_model_price(make_ws: MakeWs, llm: FakeOpenAI) -> None:
    ws = make_ws("""
[quotas]
monthly_budget_usd = 1.0
[quotas.prices.default]
input_per_million = 1000
output_per_million = 2000
""")
    bob = as_user(ws, "acme", "bob@acme.example")
    final = list(ws.chat(bob, "hello"))[-1]
    assert isinstance(final, Final)
    cost = final.usage.prompt_tokens * 1000 + final.usage.completion_tokens * 2000
    assert budget_used(ws, bob, "monthly_budget_usd") == cost
    while True:
        try:
            list(ws.chat(bob, "hello"))
        except QuotaExceeded as e:
            assert "reached a monthly budget of $1.00" in str(e) and e.retry_after
            break
    assert budget_used(ws, bob, "monthly_budget_usd") <= 1_000_000


class Clock:
    def __init__(self, at: datetime) -> None:
        self.now = at.timestamp()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


@pytest.mark.parametrize("backend", BACKENDS)
def test_windows_and_periods_roll_over(backend: str, make_ws: MakeWs,
                                      monkeypatch: pytest.MonkeyPatch,
                                      request: pytest.FixtureRequest) -> None:
    ws = make_ws("[quotas]\nrequests_per_minute = 3\ntokens_per_day = 2000",
                 backend_url(backend, request))
    clock = Clock(datetime(2031, 5, 31, 23, 58, 0, tzinfo=UTC))
    for module in ("enclave.quota.engine", "enclave.quota.counters", "limits.storage.memory"):
        monkeypatch.setattr(f"{module}.time", clock)
    acme = ws.tenants.get("acme")
    bob = as_user(ws, "acme", "bob@acme.example")
    for _ in range(3):
        ws.quota.reserve(acme, bob, "m", 10, 10)
    with pytest.raises(QuotaExceeded) as err:
        ws.quota.reserve(acme, bob, "m", 10, 10)
    assert err.value.limit == "requests_per_minute" and err.value.retry_after == 60
    clock.now += 30
    with pytest.raises(QuotaExceeded) as err:
        ws.quota.reserve(acme, bob, "m", 10, 10)
    assert err.value.retry_after == 30
    clock.now += 31  # the moving window has moved past the first three
    r = ws.quota.reserve(acme, bob, "m", 900, 900)
    with pytest.raises(QuotaExceeded) as err:
        ws.quota.reserve(acme, bob, "m", 100, 100)
    assert err.value.limit == "tokens_per_day"
    assert err.value.retry_after == pytest.approx(59, abs=1)  # midnight UTC
    clock.now += 120  # a new day: a new budget, the old day's hold settles on the old day
    ws.quota.settle(r, _usage(100, 100))
    ws.quota.reserve(acme, bob, "m", 900, 900)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tokens_per_minute_is_a_moving_window_of_turn_weights(
        backend: str, make_ws: MakeWs, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    ws = make_ws("[quotas]\ntokens_per_minute = 1000", backend_url(backend, request))
    clock = Clock(datetime(2031, 5, 31, 12, 0, 0, tzinfo=UTC))
    for module in ("enclave.quota.engine", "enclave.quota.counters", "limits.storage.memory"):
        monkeypatch.setattr(f"{module}.time", clock)
    acme = ws.tenants.get("acme")
    bob = as_user(ws, "acme", "bob@acme.example")
    ws.quota.reserve(acme, bob, "m", 200, 200)  # 400 tokens at t=0
    clock.now += 20
    ws.quota.reserve(acme, bob, "m", 300, 200)  # 500 tokens at t=20: 900 held
    assert budget_used(ws, bob, "tokens_per_minute") == 900
    with pytest.raises(QuotaExceeded) as err:
        ws.quota.reserve(acme, bob, "m", 100, 100)  # 200 more would make 1100
    assert err.value.limit == "tokens_per_minute"
    assert err.value.retry_after == pytest.approx(40)  # when the t=0 turn leaves
    clock.now += 41
    ws.quota.reserve(acme, bob, "m", 100, 100)  # 500 + 200 held
    assert budget_used(ws, bob, "tokens_per_minute") == 700
    with pytest.raises(QuotaExceeded) as err:
        ws.quota.reserve(acme, bob, "m", 300, 300)  # 1300: fits once the t=20 turn leaves
    assert err.value.retry_after == pytest.approx(19)
    with pytest.raises(QuotaExceeded) as err:
        ws.quota.reserve(acme, bob, "m", 450, 450)  # 1600: fits once both have left
    assert err.value.retry_after == pytest.approx(60)
    clock.now += 61
    assert budget_used(ws, bob, "tokens_per_minute") == 0


def _usage(prompt: int, completion: int) -> Any:
    from enclave.turns import Usage

    return Usage(prompt, completion, False)


def test_redis_stopped_fails_closed_by_default(make_ws: MakeWs, llm: FakeOpenAI) -> None:
    server = RedisServer()
    try:
        ws = make_ws("[quotas]\nrequests_per_minute = 10", server.url)
        bob = as_user(ws, "acme", "bob@acme.example")
        list(ws.chat(bob, "while redis is up"))
    finally:
        server.stop()
    with pytest.raises(QuotaUnavailable, match="Usage limits cannot be checked"):
        list(ws.chat(bob, "while redis is down"))
    assert len(llm.requests) == 1, "no model call when failing closed"


def test_redis_stopped_fails_open_with_a_logged_alert(make_ws: MakeWs, llm: FakeOpenAI,
                                                     caplog: pytest.LogCaptureFixture
                                                     ) -> None:
    server = RedisServer()
    server.stop()
    ws = make_ws('[quotas]\nrequests_per_minute = 10\non_storage_error = "open"', server.url)
    bob = as_user(ws, "acme", "bob@acme.example")
    with caplog.at_level(logging.WARNING, logger="enclave.alerts"):
        for _ in range(3):
            assert isinstance(list(ws.chat(bob, "hello"))[-1], Final)
    assert len(llm.requests) == 3
    alerts = ws.quota_book(ws.tenants.get("acme")).alerts()
    assert [a.kind for a in alerts] == ["quota_storage_down"], "one alert, not one per turn"
    assert "runs without limits" in caplog.text


def test_thresholds_and_breaches_alert_once_per_window(make_ws: MakeWs) -> None:
    ws = make_ws("[quotas]\ntokens_per_day = 3000\n[quotas.alerts]\nthresholds = [0.5, 1.0]")
    bob = as_user(ws, "acme", "bob@acme.example")
    refusals = 0
    while refusals < 5:
        try:
            list(ws.chat(bob, "hello"))
        except QuotaExceeded:
            refusals += 1
    alerts = ws.quota_book(ws.tenants.get("acme")).alerts()
    kinds = sorted((a.kind, a.figures.get("threshold")) for a in alerts)
    assert kinds == [("quota_breach", None), ("quota_threshold", 0.5)]
    assert "bob@acme.example used" in next(a.message for a in alerts
                                           if a.kind == "quota_threshold")


def test_alert_dedup_is_shared_across_engines_on_redis(redis_server: RedisServer) -> None:
    a, b = QuotaEngine(redis_server.url), QuotaEngine(redis_server.url)
    assert a.once("acme/x", 60) and not b.once("acme/x", 60) and not a.once("acme/x", 60)
    assert b.once("acme/y", 60)


def test_a_bad_limits_url_is_a_clear_error() -> None:
    with pytest.raises(QuotaUnavailable, match="ENCLAVE_LIMITS_URL=nosuch://x"):
        QuotaEngine("nosuch://x")


def test_durations_in_words() -> None:
    assert [in_words(s) for s in (0.2, 59, 119, 150, 7300, 3 * 86400)] == [
        "1 second", "59 seconds", "119 seconds", "2 minutes", "2 hours", "3 days"]


def test_memory_budgets_start_from_the_metering_rows(make_ws: MakeWs) -> None:
    """memory:// counters start empty in a new process; budgets are filled from the
    metering rows of their period, so a restart does not reset a day or a month."""
    ws = make_ws("[quotas]\ntokens_per_day = 100000")
    bob = as_user(ws, "acme", "bob@acme.example")
    final = list(ws.chat(bob, "hello"))[-1]
    assert isinstance(final, Final)
    fresh = QuotaEngine("memory://", seed=lambda t, scope, limit, since:
                        period_used(ws.metering, t, scope, limit, since))
    used = {c.limit: u for c, u in fresh.consumption(ws.tenants.get("acme"), bob)}
    assert used["tokens_per_day"] == final.usage.total_tokens
