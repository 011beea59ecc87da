"""plugins/pii_redaction.py: loaded by file path, exercised with real Tenant objects."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave.config import ROOT
from enclave.errors import TenantInvalid
from enclave.hookspecs import ModelEndpoint
from enclave.identity import Principal
from enclave.turns import ChatMessage, MessageRole, TurnRequest
from tests.plugins.support import load_plugin, make_tenant, plugin_manager

ALL = ("email", "phone", "iban", "card")
plugin = load_plugin("pii_redaction")
redact = plugin.redact




PRINCIPAL = Principal("acme", "sub-1", "alice@acme.example", "Alice Smith", ("member",))


ENDPOINT = ModelEndpoint(provider="openai", base_url="http://127.0.0.1:9/v1", api_key="k",
                         model="m", temperature=0.3, max_tokens=256, timeout_seconds=5,
                         max_retries=0)


def request_of(*messages: tuple[MessageRole, str]) -> TurnRequest:
    return TurnRequest(conversation_id="c1", assistant="helpdesk", endpoint=ENDPOINT,
                       messages=[ChatMessage(role, content) for role, content in messages])


# --- redact(): each kind ---------------------------------------------------------------

@pytest.mark.parametrize("email", ["alice@acme.example", "alice.smith+tag@mail.co.uk",
                                   "j_doe-99@sub.domain.io"])
def test_email(email: str) -> None:
    assert redact(f"Write to {email}, please.", ["email"]) == "Write to [email], please."


@pytest.mark.parametrize("phone", [
    "+44 20 7946 0958", "+1 (555) 123-4567", "+33 6 12 34 56 78", "+4915112345678",
    "+44 (0)20 7946 0958", "+49-30-1234567", "(555) 123-4567", "555-123-4567",
    "555.123.4567", "555 123 4567", "06 12 34 56 78", "020 7946 0958", "020 79460958",
    "0171-1234567", "555-1234", "5551234567", "07700900123",
])
def test_phone(phone: str) -> None:
    assert redact(f"Call me at {phone}.", ["phone"]) == "Call me at [phone]."


@pytest.mark.parametrize("iban", ["DE89 3704 0044 0532 0130 00", "DE89370400440532013000",
                                  "GB82 WEST 1234 5698 7654 32", "gb82west12345698765432",
                                  "FR14 2004 1010 0505 0001 3M02 606", "NO9386011117947"])
def test_iban(iban: str) -> None:
    assert redact(f"IBAN: {iban} thanks", ["iban"]) == "IBAN: [iban] thanks"


@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "4111-1111-1111-1111",
                                  "4111111111111111", "5555555555554444",
                                  "3782 822463 10005", "378282246310005",
                                  "4222222222222", "6011 1111 1111 1117"])
def test_card(card: str) -> None:
    assert redact(f"Card {card}, exp 12/27", ["card"]) == "Card [card], exp 12/27"


def test_all_kinds_together() -> None:
    text = ("I'm alice@acme.example, +44 20 7946 0958, IBAN DE89 3704 0044 0532 0130 00, "
            "card 4111 1111 1111 1111.")
    assert redact(text, ALL) == "I'm [email], [phone], IBAN [iban], card [card]."


def test_phone_right_after_a_year() -> None:
    assert redact("In 2024 call 555-123-4567 or 2024 555-123-4567", ALL) == \
        "In 2024 call [phone] or 2024 [phone]"


# --- redact(): what must stay ----------------------------------------------------------

@pytest.mark.parametrize("text", [
    "In 2024 revenue grew, and in 1999 it fell.",
    "From 2019-2024 we grew 12%.",
    "We paid $1,500 and then $1,500,000.50 for 3 items.",
    "Budget: 1.500.000 EUR, € 100 000, 1 500 000 people, 12 345 678 units.",
    "Meeting on 2024-05-17 or 17.05.2024 or 17/05/2024 at 10:30.",
    "Order 12345, ticket 1234567, PIN 0000, room 42, pi 3.14159265.",
    "Server 192.168.100.200, version 10.0.19045, ISBN 978-3-16-148410-0.",
    "Account 123456789012 and ref 1234567890123456789012.",
    "Digits 4111 1111 1111 1112 and 1234567890123456 fail the Luhn check.",
    "Not an IBAN: DE00 3704 0044 0532 0130 00 (bad check digits), AB12 CODE.",
    "An @handle, a user@localhost and foo@bar are not addresses.",
])
def test_ordinary_text_is_kept(text: str) -> None:
    assert redact(text, ALL) == text


def test_non_luhn_card_is_not_a_phone_either() -> None:
    text = "ref 4111 1111 1111 1112"
    assert redact(text, ["card", "phone"]) == text


def test_kinds_subset() -> None:
    text = "alice@acme.example 555-123-4567 4111111111111111"
    assert redact(text, ["phone"]) == "alice@acme.example [phone] 4111111111111111"
    assert redact(text, ["email", "card"]) == "[email] 555-123-4567 [card]"
    assert redact(text, []) == text


def test_redact_unknown_kind() -> None:
    with pytest.raises(ValueError, match="ssn"):
        redact("x", ["email", "ssn"])


# --- the hook --------------------------------------------------------------------------

def test_hook_redacts_only_user_messages_in_place(tmp_path: Path) -> None:
    tenant = make_tenant(tmp_path, "[plugins.pii_redaction]")
    pii = "mail alice@acme.example or call +1 (555) 123-4567, card 4111111111111111"
    request = request_of(("system", f"System sees {pii}"), ("user", pii),
                         ("assistant", f"Earlier I said {pii}"), ("user", "no pii in 2024"))
    messages = request.messages
    first = messages[1]
    assert plugin.enclave_transform_messages(tenant=tenant, principal=PRINCIPAL,
                                             request=request) is None
    assert request.messages is messages and messages[1] is first
    assert [m.content for m in messages] == [
        f"System sees {pii}", "mail [email] or call [phone], card [card]",
        f"Earlier I said {pii}", "no pii in 2024"]


def test_hook_uses_redact_setting(tmp_path: Path) -> None:
    tenant = make_tenant(tmp_path, '[plugins.pii_redaction]\nredact = ["email", "iban"]')
    request = request_of(("user", "a@b.example DE89370400440532013000 555-123-4567 "
                                  "4111111111111111"))
    plugin.enclave_transform_messages(tenant=tenant, principal=PRINCIPAL, request=request)
    assert request.messages[0].content == "[email] [iban] 555-123-4567 4111111111111111"


def test_shipped_acme_settings(tmp_path: Path) -> None:
    tenant = make_tenant(tmp_path, None)  # acme: redact = ["email", "phone", "iban"]
    request = request_of(("user", "bob@acme.example 555-123-4567 4111111111111111"))
    plugin.enclave_transform_messages(tenant=tenant, principal=PRINCIPAL, request=request)
    assert request.messages[0].content == "[email] [phone] 4111111111111111"


@pytest.mark.parametrize(("setting", "match"), [
    ('redact = ["email", "ssn"]', "unknown kind.*'ssn'.*email, phone, iban, card"),
    ('redact = "email"', "must be a list"),
    ('redact = [1]', "must be a list"),
    ('redcat = ["email"]', "plugins.pii_redaction.redcat"),
])
def test_invalid_settings(tmp_path: Path, setting: str, match: str) -> None:
    tenant = make_tenant(tmp_path, f"[plugins.pii_redaction]\n{setting}")
    with pytest.raises(TenantInvalid, match=match) as err:
        plugin.enclave_transform_messages(tenant=tenant, principal=PRINCIPAL,
                                          request=request_of(("user", "hi")))
    assert "'acme'" in str(err.value)


def test_works_through_pluggy(tmp_path: Path) -> None:
    pm = plugin_manager(plugin)
    tenant = make_tenant(tmp_path, "[plugins.pii_redaction]")
    request = request_of(("user", "alice@acme.example"))
    pm.hook.enclave_transform_messages(tenant=tenant, principal=PRINCIPAL, request=request)
    assert request.messages[0].content == "[email]"


def test_runs_only_for_tenants_that_enable_it(tmp_path: Path) -> None:
    from enclave.plugins.host import PluginHost

    host = PluginHost(ROOT / "plugins", entry_points=False)
    acme = make_tenant(tmp_path / "a", None, "acme")  # enables pii_redaction
    globex = make_tenant(tmp_path / "g", None, "globex")  # does not
    for tenant, expected in ((acme, "[email]"), (globex, "alice@acme.example")):
        request = request_of(("user", "alice@acme.example"))
        host.hooks(tenant).enclave_transform_messages(tenant=tenant, principal=PRINCIPAL,
                                                      request=request)
        assert request.messages[0].content == expected
