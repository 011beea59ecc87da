"""In a real browser: sign in through the local OIDC provider, chat, see the tenant's
branding, sign out; another tenant's admin sees none of it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import plaintext_hits
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e
WAIT = 60_000


def sign_in(page: Page, stack: Stack, organisation: str, idp_user: str) -> None:
    page.goto(stack.url)
    page.get_by_text("Sign in with your organisation").wait_for(timeout=WAIT)
    page.locator("[data-testid=stSelectbox]").first.click()
    page.get_by_role("option", name=organisation).click()
    page.get_by_role("button", name=f"Continue to {organisation} sign-in").click()
    page.get_by_role("button", name=idp_user).click(timeout=WAIT)


def sign_out(page: Page) -> None:
    """Sign out of Enclave and end the session at the IdP (RP-initiated logout)."""
    page.get_by_role("button", name="Sign out").first.click()
    page.get_by_role("button", name="End session").click(timeout=WAIT)
    page.get_by_text("Sign in with your organisation").wait_for(timeout=WAIT)


def test_bob_chats_with_acme_branding_and_carol_sees_none_of_it(
        stack: Stack, browser: Browser) -> None:
    page = browser.new_page()
    sign_in(page, stack, "Acme Corporation", "acme-bob")
    expect(page.get_by_role("heading", name="Acme Workspace")).to_be_visible(timeout=WAIT)
    expect(page).to_have_title(re.compile("Acme Workspace"))
    expect(page.locator(".stApp")).to_have_css("background-color", "rgb(255, 248, 242)")
    page.get_by_role("textbox").last.fill("What is our unique-canary-question about hotels?")
    page.keyboard.press("Enter")
    expect(page.get_by_text("The hotel cap is $185 per night.")).to_be_visible(timeout=WAIT)
    expect(page.get_by_role("button", name=re.compile("unique-canary-question"))) \
        .to_be_visible(timeout=WAIT)
    sent = stack.fake.requests[-1]["messages"]
    assert "Acme" in sent[0]["content"] and "Bob" in sent[0]["content"]
    assert sent[-1]["content"] == "What is our unique-canary-question about hotels?"
    sign_out(page)

    sign_in(page, stack, "Globex Industries", "globex-carol")
    expect(page.get_by_role("heading", name="Globex Intelligence Desk")) \
        .to_be_visible(timeout=WAIT)
    expect(page.get_by_text("No conversations yet.")).to_be_visible(timeout=WAIT)
    expect(page.locator(".stApp")).to_have_css("background-color", "rgb(243, 250, 244)")
    assert "unique-canary-question" not in page.content()
    assert "Acme Workspace" not in page.content()
    sign_out(page)
    page.close()
    assert not plaintext_hits(stack.data_dir, "unique-canary-question")


def test_user_of_another_tenant_is_refused_through_the_wrong_provider(
        stack: Stack, browser: Browser) -> None:
    page = browser.new_page()
    sign_in(page, stack, "Acme Corporation", "globex-carol")
    expect(page.get_by_text("Sign-in refused")).to_be_visible(timeout=WAIT)
    expect(page.get_by_text(re.compile("does not belong to any organisation"))) \
        .to_be_visible(timeout=WAIT)
    page.get_by_role("button", name="Sign out and use another account").click()
    page.get_by_role("button", name="End session").click(timeout=WAIT)
    page.get_by_text("Sign in with your organisation").wait_for(timeout=WAIT)
    page.close()


def test_auditor_has_no_chat_page(stack: Stack, browser: Browser) -> None:
    page = browser.new_page()
    sign_in(page, stack, "Globex Industries", "globex-dave")
    expect(page.get_by_text("Your account")).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("auditor")).to_be_visible(timeout=WAIT)
    page.goto(stack.url + "/chat")
    expect(page.get_by_text("Your account")).to_be_visible(timeout=WAIT)
    assert page.get_by_role("textbox").count() == 0
    page.close()
