"""Each loader on a real file of its kind, type detection from content, and every bad
input refused with a message naming the file."""

from __future__ import annotations

import pytest

from enclave.errors import UploadRejected
from enclave.knowledge.loaders import clean_name, detect, load
from tests.knowledge import files

MB = 2**20


def parse(name: str, data: bytes, max_bytes: int = 25 * MB, max_unpacked: int = 200 * MB):
    return load(name, data, max_bytes=max_bytes, max_unpacked=max_unpacked)


def rejected(name: str, data: bytes, **limits: int) -> str:
    with pytest.raises(UploadRejected) as e:
        parse(clean_name(name), data, **limits)
    assert name in str(e.value) or repr(name) in str(e.value)
    return str(e.value)


def test_pdf_has_one_section_per_page_with_its_number() -> None:
    parsed = parse("policy.pdf", files.pdf("Hotels cost at most 185 dollars.", "",
                                           "Skates are fast."))
    assert parsed.kind == "pdf"
    assert [(s.page, s.text) for s in parsed.sections] == [
        (1, "Hotels cost at most 185 dollars."), (3, "Skates are fast.")]


def test_docx_keeps_headings_as_section_metadata() -> None:
    data = files.docx(("heading", "Travel"), ("para", "Book trains early."),
                      ("heading", "Hotels"), ("para", "The cap is 185."), title="Handbook")
    parsed = parse("handbook.docx", data)
    assert parsed.title == "Handbook" and parsed.kind == "docx"
    assert [(s.heading, s.text) for s in parsed.sections] == [
        ("Travel", "Book trains early."), ("Hotels", "The cap is 185.")]


def test_html_drops_scripts_and_keeps_headings() -> None:
    html = (b"<html><head><title>FAQ</title><script>var secret=1</script></head><body>"
            b"<h1>Returns</h1><p>Within <b>30</b> days.</p><h2>Repairs</h2><ul><li>Free</li>"
            b"</ul></body></html>")
    parsed = parse("faq.html", html)
    assert parsed.title == "FAQ" and parsed.kind == "html"
    assert [(s.heading, s.text) for s in parsed.sections] == [
        ("Returns", "Within 30 days."), ("Repairs", "Free")]


def test_markdown_sections_ignore_hashes_in_code_fences() -> None:
    md = b"# Guide\n\nIntro.\n\n## Setup\n\n```\n# not a heading\n```\nRun it.\n"
    parsed = parse("guide.md", md)
    assert parsed.title == "Guide" and parsed.kind == "markdown"
    assert [s.heading for s in parsed.sections] == ["Guide", "Setup"]
    assert "# not a heading" in parsed.sections[1].text


def test_plain_text_and_utf16() -> None:
    assert parse("notes.txt", b"Plain words.").sections[0].text == "Plain words."
    assert parse("w.txt", "Grüße".encode("utf-16")).sections[0].text == "Grüße"


def test_csv_rows_become_labelled_lines() -> None:
    parsed = parse("prices.csv", b"item,price\nskates,199\nhelmet,49\n")
    assert parsed.kind == "csv"
    assert parsed.sections[0].text == "item: skates; price: 199\nitem: helmet; price: 49"
    assert parsed.sections[0].heading == "item, price"


@pytest.mark.parametrize(("name", "data", "kind"), [
    ("report.txt", files.pdf("x"), "pdf"),  # content wins over the extension
    ("page.txt", b"<!DOCTYPE html><html><body><p>x</p></body></html>", "html"),
    ("letter", files.docx(("para", "x")), "docx"),
    ("README.md", b"# Title\ntext", "markdown"),
    ("data.csv", b"a,b\n1,2\n", "csv"),
    ("notes", b"just text", "text"),
])
def test_type_is_detected_from_content(name: str, data: bytes, kind: str) -> None:
    assert detect(name, data) == kind


def test_empty_files_are_refused() -> None:
    assert "empty" in rejected("empty.txt", b"")
    assert "empty" in rejected("blank.md", b"  \n\n ")


def test_corrupt_pdf_is_refused() -> None:
    assert "damaged" in rejected("broken.pdf", files.pdf("hello world")[:400])


def test_encrypted_pdf_is_refused() -> None:
    assert "encrypted" in rejected("locked.pdf", files.pdf("secret", encrypt="pw"))


def test_scanned_pdf_without_text_says_so() -> None:
    assert "no text layer" in rejected("scan.pdf", files.pdf("", ""))


def test_files_over_the_size_limit_are_refused() -> None:
    message = rejected("big.txt", b"x" * (2 * MB), max_bytes=1 * MB)
    assert "limit of 1 MB" in message


def test_docx_zip_bomb_is_refused_before_unpacking() -> None:
    message = rejected("bomb.docx", files.zip_bomb_docx(8 * MB), max_unpacked=1 * MB)
    assert "unpacks to 8 MB" in message


@pytest.mark.parametrize(("name", "data", "fragment"), [
    ("tool.exe", b"MZ\x90\x00\x03\x00\x00\x00" * 50, "unsupported"),
    ("archive.zip", files.plain_zip(), "zip archives"),
    ("fake.pdf", b"this is not a pdf", "not a PDF"),
    ("fake.docx", b"plain text", "not a DOCX"),
])
def test_unsupported_and_mislabelled_types_are_refused(name: str, data: bytes,
                                                       fragment: str) -> None:
    assert fragment in rejected(name, data)


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b.txt", "a\\b.txt", "bell\x07.txt",
                                  "new\nline.txt", "", ".."])
def test_unsafe_file_names_are_refused(name: str) -> None:
    with pytest.raises(UploadRejected):
        clean_name(name)
