"""In a real browser: alice (acme admin) uploads a document on the Knowledge page, bob
(member) has no such page and asks about it on the chat page: the answer shows the
citation, and the chunk reached the model's prompt."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import plaintext_hits
from tests.e2e.conftest import Stack
from tests.e2e.test_browser import WAIT, sign_in, sign_out

pytestmark = pytest.mark.e2e
POLICY = ("# Parking policy\n\n## Visitor parking\n\n"
          "Visitors park on level minus two, bay kestrel-nine, for free up to four hours.\n")


def test_alice_uploads_and_bob_sees_the_citation(stack: Stack, browser: Browser) -> None:
    page = browser.new_page()
    sign_in(page, stack, "Acme Corporation", "acme-alice")
    page.get_by_role("link", name="Knowledge").click(timeout=WAIT)
    expect(page.get_by_role("heading", name="Knowledge")).to_be_visible(timeout=WAIT)
    page.locator("input[type=file]").set_input_files(files=[
        {"name": "parking.md", "mimeType": "text/markdown", "buffer": POLICY.encode()},
        {"name": "empty.txt", "mimeType": "text/plain", "buffer": b""}])
    page.get_by_role("button", name="Add to knowledge").click(timeout=WAIT)
    expect(page.get_by_text("parking.md: added (1 chunks).")).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("empty.txt: the file is empty.")).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("Documents (1)")).to_be_visible(timeout=WAIT)
    page.get_by_role("link", name="Chat").click()
    sign_out(page)

    stack.fake.reply = "Visitors park on level minus two [1]."
    sign_in(page, stack, "Acme Corporation", "acme-bob")
    expect(page.get_by_role("heading", name="Acme Workspace")).to_be_visible(timeout=WAIT)
    assert page.get_by_role("link", name="Knowledge").count() == 0
    page.get_by_role("textbox").last.fill("Where do visitors park?")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Visitors park on level minus two [1].")).to_be_visible(
        timeout=WAIT)
    citation = page.get_by_text(re.compile(r"\[1\] Parking policy · Visitor parking"))
    expect(citation).to_be_visible(timeout=WAIT)
    citation.click()
    expect(page.get_by_text(re.compile("bay kestrel-nine"))).to_be_visible(timeout=WAIT)
    system = stack.fake.requests[-1]["messages"][0]["content"]
    assert "bay kestrel-nine" in system and "[1] Parking policy (Visitor parking)" in system
    page.goto(stack.url + "/knowledge")
    expect(page.get_by_role("textbox").last).to_be_visible(timeout=WAIT)
    assert page.locator("input[type=file]").count() == 0
    page.close()
    assert not plaintext_hits(stack.data_dir, "kestrel-nine")
