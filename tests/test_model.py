"""The model layer: deployment settings from the environment, per-tenant endpoint
resolution, streaming through LangChain against the fake server, clear errors, and usage
(exact when the endpoint reports it, estimated when not)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from enclave.config import LOCAL_MODEL_NAME, LOCAL_MODEL_URL, Settings
from enclave.errors import ModelUnavailable, TenantInvalid
from enclave.hookspecs import ModelEndpoint
from enclave.model import estimate_tokens, openai_chat_model, resolve_endpoint, stream_model
from enclave.tenants import Tenant, load_tenant
from enclave.turns import ChatMessage, Event, Final, Token, Usage
from enclave.workspace import Workspace
from tests.conftest import TENANTS, as_user, free_port, make_settings
from tests.fakes.openai_server import FakeOpenAI

API_KEY = "sk-test-model-secret-0123456789"
MESSAGES = [ChatMessage("system", "Be brief."), ChatMessage("user", "hello there")]


def edit(file: Path, old: str, new: str) -> None:
    text = file.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {file}"
    file.write_text(text.replace(old, new, 1), encoding="utf-8")


def set_model(tenant_dir: Path, *lines: str) -> None:
    """Add ``lines`` to the ``[model]`` table of ``tenant_dir/tenant.toml``."""
    edit(tenant_dir / "tenant.toml", "[model]\n", "[model]\n" + "".join(f"{x}\n" for x in lines))


def endpoint(base_url: str, model: str = "fake-model", timeout: float = 10,
             retries: int = 0) -> ModelEndpoint:
    return ModelEndpoint(provider="openai", base_url=base_url, api_key=API_KEY, model=model,
                         temperature=0.2, max_tokens=64, timeout_seconds=timeout,
                         max_retries=retries)


def stream(ep: ModelEndpoint, messages: list[ChatMessage] = MESSAGES) -> list[Event]:
    return list(stream_model(openai_chat_model(ep), ep, messages))


def stream_error(ep: ModelEndpoint) -> str:
    """The message of the ModelUnavailable raised by streaming ``ep``; checked for leaks."""
    with pytest.raises(ModelUnavailable) as exc:
        stream(ep)
    message = str(exc.value)
    assert_clean(message)
    return message


def assert_clean(message: str) -> None:
    assert message and "\n" not in message, message
    assert "Traceback" not in message and API_KEY not in message, message


# -- Settings.from_env -------------------------------------------------------------------


def test_no_openai_variables_means_the_local_model() -> None:
    s = Settings.from_env({})
    assert s.default_base_url == LOCAL_MODEL_URL == "http://127.0.0.1:8765/v1"
    assert s.default_model == LOCAL_MODEL_NAME
    assert s.default_is_local is True
    assert s.default_api_key  # a placeholder; the OpenAI client refuses an empty key


def test_base_url_and_key_are_used() -> None:
    s = Settings.from_env({"OPENAI_BASE_URL": "http://llm.internal/v1", "OPENAI_API_KEY": API_KEY})
    assert (s.default_base_url, s.default_api_key) == ("http://llm.internal/v1", API_KEY)
    assert s.default_is_local is False
    assert s.default_model == "gpt-4o-mini"


def test_key_only_means_api_openai_com() -> None:
    s = Settings.from_env({"OPENAI_API_KEY": API_KEY})
    assert s.default_base_url == "https://api.openai.com/v1"
    assert (s.default_api_key, s.default_is_local) == (API_KEY, False)


def test_base_url_only_is_not_local() -> None:
    s = Settings.from_env({"OPENAI_BASE_URL": "http://llm.internal/v1"})
    assert (s.default_base_url, s.default_is_local) == ("http://llm.internal/v1", False)


@pytest.mark.parametrize("env", [{}, {"OPENAI_API_KEY": API_KEY}])
def test_enclave_model_sets_the_model(env: dict[str, str]) -> None:
    assert Settings.from_env({**env, "ENCLAVE_MODEL": "my-model"}).default_model == "my-model"


def test_directories_come_from_the_environment(tmp_path: Path) -> None:
    s = Settings.from_env({"ENCLAVE_DATA_DIR": str(tmp_path / "d"),
                      "ENCLAVE_TENANTS_DIR": str(tmp_path / "t")})
    assert (s.data_dir, s.tenants_dir) == (tmp_path / "d", tmp_path / "t")
    assert Settings.from_env({}).tenants_dir == TENANTS


# -- resolve_endpoint --------------------------------------------------------------------


@pytest.fixture
def deployment(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", "http://deployment.example/v1",
                         model="deployment-model")


def acme(tenants_dir: Path = TENANTS) -> Tenant:
    return load_tenant(tenants_dir / "acme")


def test_the_deployment_default_is_used_without_tenant_settings(deployment: Settings) -> None:
    t = acme()
    ep = resolve_endpoint(deployment, t, t.default_assistant)
    assert (ep.base_url, ep.model, ep.api_key) == ("http://deployment.example/v1",
                                                   "deployment-model", "test-key")
    assert (ep.provider, ep.temperature, ep.max_tokens, ep.timeout_seconds) == \
        ("openai", 0.3, 256, 60)
    assert API_KEY not in repr(ep) and "test-key" not in repr(ep)


def test_tenant_model_settings_override_the_deployment(deployment: Settings,
                                                       tenants_copy: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_GATEWAY_KEY", "acme-own-key")
    set_model(tenants_copy / "acme", 'base_url = "http://acme-gateway.example/v1"',
              'api_key_env = "ACME_GATEWAY_KEY"', 'name = "acme-model"', "max_retries = 3")
    t = acme(tenants_copy)
    ep = resolve_endpoint(deployment, t, t.assistant("helpdesk"))
    assert (ep.base_url, ep.model, ep.max_retries, ep.api_key) == (
        "http://acme-gateway.example/v1", "acme-model", 3, "acme-own-key")


def test_tenant_base_url_without_its_own_key_is_refused(tenants_copy: Path) -> None:
    set_model(tenants_copy / "acme", 'base_url = "http://acme-gateway.example/v1"')
    with pytest.raises(TenantInvalid, match=r"tenant\.toml.*model.*api_key_env"):
        acme(tenants_copy)


def test_assistant_model_overrides_the_tenants(deployment: Settings,
                                               tenants_copy: Path) -> None:
    set_model(tenants_copy / "acme", 'name = "acme-model"')
    with (tenants_copy / "acme" / "assistants" / "hr-buddy.toml").open("a") as f:
        f.write('\nmodel = "hr-model"\n')
    t = acme(tenants_copy)
    assert resolve_endpoint(deployment, t, t.assistant("hr-buddy")).model == "hr-model"
    assert resolve_endpoint(deployment, t, t.assistant("helpdesk")).model == "acme-model"


def test_api_key_env_missing_is_tenant_invalid(deployment: Settings, tenants_copy: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACME_GATEWAY_KEY", raising=False)
    set_model(tenants_copy / "acme", 'api_key_env = "ACME_GATEWAY_KEY"')
    t = acme(tenants_copy)
    with pytest.raises(TenantInvalid) as exc:
        resolve_endpoint(deployment, t, t.default_assistant)
    assert "ACME_GATEWAY_KEY" in str(exc.value) and "Acme Corporation" in str(exc.value)


def test_api_key_env_present_is_used(deployment: Settings, tenants_copy: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_GATEWAY_KEY", "sk-acme-gateway")
    set_model(tenants_copy / "acme", 'api_key_env = "ACME_GATEWAY_KEY"')
    t = acme(tenants_copy)
    assert resolve_endpoint(deployment, t, t.default_assistant).api_key == "sk-acme-gateway"


# -- streaming and errors against the fake ------------------------------------------------


def test_stream_yields_tokens_then_exact_usage(llm: FakeOpenAI) -> None:
    events = stream(endpoint(llm.base_url))
    tokens = [e.text for e in events if isinstance(e, Token)]
    assert "".join(tokens) == "You said: hello there"
    # the fake counts prompt words over all messages (2 + 2) and one token a reply word
    assert events[-1] == Usage(4, 4, False)
    assert sum(isinstance(e, Usage) for e in events) == 1
    req = llm.requests[0]
    assert req["stream_options"] == {"include_usage": True}
    assert req["model"] == "fake-model"
    assert req.get("max_tokens", req.get("max_completion_tokens")) == 64
    assert req["headers"]["authorization"] == f"Bearer {API_KEY}"


def test_no_usage_endpoint_gives_an_estimate(llm: FakeOpenAI) -> None:
    events = stream(endpoint(llm.base_url, model="no-usage"))
    assert events[-1] == Usage(estimate_tokens(MESSAGES), 4, True)


def test_rate_limited(llm: FakeOpenAI) -> None:
    llm.fail_status = 429
    message = stream_error(endpoint(llm.base_url))
    assert "busy" in message and "rate limited" in message


def test_server_error(llm: FakeOpenAI) -> None:
    assert "HTTP 500" in stream_error(endpoint(llm.base_url, model="fail-500"))


def test_connection_refused() -> None:
    message = stream_error(endpoint(f"http://127.0.0.1:{free_port()}/v1"))
    assert "cannot be reached" in message


def test_timeout_before_the_first_token(llm: FakeOpenAI) -> None:
    llm.hang_before_first_token = 3
    message = stream_error(endpoint(llm.base_url, timeout=0.5))
    assert "0.5 seconds" in message


def test_retries_are_made(llm: FakeOpenAI) -> None:
    llm.fail_status = 500
    stream_error(endpoint(llm.base_url, retries=1))
    assert len(llm.requests) == 2


def test_estimate_tokens_grows_with_text() -> None:
    short = [ChatMessage("user", "hi")]
    longer = [ChatMessage("user", "hi " * 100)]
    assert 0 < estimate_tokens(short) < estimate_tokens(longer)
    assert estimate_tokens(short + longer) > estimate_tokens(longer)
    assert estimate_tokens([]) == 0


# -- through the workspace ---------------------------------------------------------------

OpenWorkspace = Callable[..., Workspace]


@pytest.fixture
def workspace(tmp_path: Path, llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
              ) -> Iterator[OpenWorkspace]:
    """``workspace(model=..., tenants_dir=...)``: a Workspace on the fake, closed after."""
    monkeypatch.delenv("ENCLAVE_MASTER_KEY", raising=False)
    opened: list[Workspace] = []

    def open_workspace(model: str = "fake-model", tenants_dir: Path = TENANTS) -> Workspace:
        opened.append(Workspace(make_settings(tmp_path / "data", llm.base_url, tenants_dir,
                                              model)))
        return opened[-1]
    yield open_workspace
    for ws in opened:
        ws.close()


@pytest.fixture
def fast_failing_tenants(tenants_copy: Path) -> Path:
    """Acme with a 0.5 s model timeout and no retries."""
    edit(tenants_copy / "acme" / "tenant.toml", "timeout_seconds = 60",
         "timeout_seconds = 0.5\nmax_retries = 0")
    return tenants_copy


def turn_error(ws: Workspace) -> str:
    """The clean message of the ModelUnavailable that bob's turn ends with."""
    with pytest.raises(ModelUnavailable) as exc:
        list(ws.chat(as_user(ws, "acme", "bob@acme.example"), "hello"))
    assert_clean(str(exc.value))
    return str(exc.value)


def test_workspace_timeout_names_the_timeout(workspace: OpenWorkspace, llm: FakeOpenAI,
                                             fast_failing_tenants: Path) -> None:
    ws = workspace(model="slow", tenants_dir=fast_failing_tenants)
    assert "did not answer within 0.5 seconds" in turn_error(ws)
    assert len(llm.requests) == 1  # max_retries = 0
    assert ws.list_conversations(as_user(ws, "acme", "bob@acme.example")) == []


@pytest.mark.parametrize(("model", "fragment"), [("fail-429", "rate limited"),
                                                 ("fail-500", "HTTP 500")])
def test_workspace_model_errors(workspace: OpenWorkspace, fast_failing_tenants: Path,
                                model: str, fragment: str) -> None:
    assert fragment in turn_error(workspace(model=model, tenants_dir=fast_failing_tenants))


@pytest.mark.parametrize(("model", "estimated"), [("fake-model", False), ("no-usage", True)])
def test_workspace_final_usage(workspace: OpenWorkspace, llm: FakeOpenAI, model: str,
                               estimated: bool) -> None:
    ws = workspace(model=model)
    final = list(ws.chat(as_user(ws, "acme", "bob@acme.example"), "hello"))[-1]
    assert isinstance(final, Final)
    assert (final.model, final.usage.estimated) == (model, estimated)
    assert final.usage.completion_tokens == 3  # "You", " said:", " hello"
    sent = llm.requests[0]["messages"]
    if estimated:
        expected = estimate_tokens([ChatMessage(m["role"], m["content"]) for m in sent])
    else:  # the fake's count: words over all messages
        expected = sum(len(m["content"].split()) for m in sent)
    assert final.usage.prompt_tokens == expected
