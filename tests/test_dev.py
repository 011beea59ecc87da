"""``enclave dev``: the demo users, the Streamlit auth secrets, and the embedded mock OIDC
provider driven through a real authorization-code flow with httpx."""

from __future__ import annotations

import base64
import json
import stat
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import authlib.deprecate  # noqa: F401  (see below)
import httpx
import pytest

from enclave.config import ROOT
from enclave.dev import app_command, demo_users, run_idp, write_secrets
from enclave.errors import IdentityRefused
from enclave.identity import principal_from_claims
from enclave.tenants import TenantRegistry
from tests.conftest import TENANTS

# Importing authlib installs an "always" filter for its deprecation warnings. Done here, at
# collection, the project's filterwarnings (pyproject.toml) still take precedence in the
# tests; done inside run_idp's first call, it would override them.

APP_URL = "http://localhost:8599"
REDIRECT_URI = f"{APP_URL}/oauth2callback"


@pytest.fixture(scope="module")
def tenants() -> TenantRegistry:
    return TenantRegistry.load(TENANTS)


@pytest.fixture(scope="module")
def idp(tenants: TenantRegistry) -> Iterator[str]:
    """The mock OIDC provider with the demo users, on a free port; its issuer URL."""
    with run_idp(demo_users(tenants), port=0, token_max_age=900) as issuer:
        yield issuer


def b64url_json(segment: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def login(issuer: str, sub: str, client_id: str) -> dict[str, Any]:
    """Sign ``sub`` in through the provider's own pages; the ID token's payload."""
    with httpx.Client(timeout=10) as http:
        config = http.get(f"{issuer}/.well-known/openid-configuration").raise_for_status().json()
        params = {"client_id": client_id, "redirect_uri": REDIRECT_URI,
                  "scope": "openid email profile", "state": "st-123", "nonce": "n-456",
                  "response_type": "code"}
        form = http.get(config["authorization_endpoint"], params=params).raise_for_status()
        assert f'value="{sub}"' in form.text  # the predefined user's one-click button
        # The login page posts its form back to the same URL with the chosen ``sub``.
        answer = http.post(str(form.url), data={"sub": sub})
        assert answer.status_code in (302, 303), answer.text
        location = answer.headers["location"]
        assert location.startswith(REDIRECT_URI)
        query = parse_qs(urlsplit(location).query)
        assert query["state"] == ["st-123"]
        tokens = http.post(config["token_endpoint"], data={
            "grant_type": "authorization_code", "code": query["code"][0],
            "redirect_uri": REDIRECT_URI, "client_id": client_id,
            "client_secret": "any-secret"}).raise_for_status().json()
    header, payload, signature = tokens["id_token"].split(".")
    assert b64url_json(header)["alg"] == "RS256" and signature
    return b64url_json(payload)


# -- demo users and secrets --------------------------------------------------------------


def test_demo_users_are_the_four_with_their_tenants(tenants: TenantRegistry) -> None:
    users = {u["email"]: u for u in demo_users(tenants)}
    assert {e: u["tenant"] for e, u in users.items()} == {
        "alice@acme.example": "acme", "bob@acme.example": "acme",
        "carol@globex.example": "globex", "dave@globex.example": "globex"}
    assert users["bob@acme.example"] == {
        "tenant": "acme", "sub": "acme-bob", "email": "bob@acme.example", "name": "Bob Baker",
        "org": "acme", "groups": ["acme-staff"]}


def test_write_secrets(tmp_path: Path, tenants: TenantRegistry) -> None:
    issuer = "http://127.0.0.1:9499"
    path = write_secrets(tmp_path / "dev" / "secrets.toml", tenants, issuer, APP_URL)
    assert path == tmp_path / "dev" / "secrets.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    auth = tomllib.loads(path.read_text())["auth"]
    assert auth["redirect_uri"] == REDIRECT_URI
    assert len(auth["cookie_secret"]) >= 32
    providers = {k: v for k, v in auth.items() if isinstance(v, dict)}
    assert set(providers) == {"acme", "globex"}
    for name, p in providers.items():
        assert p["server_metadata_url"] == f"{issuer}/.well-known/openid-configuration"
        assert p["client_id"] == f"enclave-{name}" and p["client_secret"]
        assert p["client_kwargs"] == {"prompt": "login"}
    assert providers["acme"]["client_secret"] != providers["globex"]["client_secret"]


def test_write_secrets_makes_new_secrets_each_time(tmp_path: Path,
                                                   tenants: TenantRegistry) -> None:
    def cookie() -> str:
        path = write_secrets(tmp_path / "s.toml", tenants, "http://idp", APP_URL)
        return str(tomllib.loads(path.read_text())["auth"]["cookie_secret"])
    assert cookie() != cookie()


def test_app_command(tmp_path: Path) -> None:
    cmd = app_command(tmp_path / "secrets.toml", 8600)
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert cmd[4] == str(ROOT / "app.py")
    assert cmd[cmd.index("--secrets.files") + 1] == str(tmp_path / "secrets.toml")
    assert cmd[cmd.index("--server.port") + 1] == "8600"
    assert cmd[cmd.index("--server.headless") + 1] == "true"


# -- the mock identity provider ----------------------------------------------------------


def test_discovery_document_names_the_yielded_issuer(idp: str) -> None:
    config = httpx.get(f"{idp}/.well-known/openid-configuration", timeout=10).json()
    assert config["issuer"] == idp
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        assert config[key].startswith(idp + "/")


def test_bob_logs_in_and_becomes_an_acme_member(idp: str, tenants: TenantRegistry) -> None:
    before = int(time.time())
    claims = login(idp, "acme-bob", "enclave-acme")
    assert claims["sub"] == "acme-bob" and claims["iss"] == idp
    assert claims["aud"] in ("enclave-acme", ["enclave-acme"])
    assert claims["nonce"] == "n-456"
    assert (claims["email"], claims["name"]) == ("bob@acme.example", "Bob Baker")
    assert (claims["org"], claims["groups"]) == ("acme", ["acme-staff"])
    assert before + 900 - 5 <= claims["exp"] <= int(time.time()) + 900 + 5  # token_max_age
    p = principal_from_claims(tenants, {**claims, "provider": "acme", "is_logged_in": True})
    assert (p.tenant, p.email, p.subject, p.name, p.roles) == \
        ("acme", "bob@acme.example", "acme-bob", "Bob Baker", ("member",))


def test_bobs_login_through_the_globex_provider_is_refused(idp: str,
                                                           tenants: TenantRegistry) -> None:
    claims = login(idp, "acme-bob", "enclave-globex")
    with pytest.raises(IdentityRefused) as exc:
        principal_from_claims(tenants, {**claims, "provider": "globex", "is_logged_in": True})
    assert "bob@acme.example" in str(exc.value)


def test_dave_logs_in_as_a_globex_auditor(idp: str, tenants: TenantRegistry) -> None:
    claims = login(idp, "globex-dave", "enclave-globex")
    p = principal_from_claims(tenants, {**claims, "provider": "globex", "is_logged_in": True})
    assert (p.tenant, p.roles) == ("globex", ("auditor",))


def test_the_provider_stops_when_the_context_exits(tenants: TenantRegistry) -> None:
    with run_idp(demo_users(tenants), port=0) as issuer:
        assert httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=5).is_success
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2)
