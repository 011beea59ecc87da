"""Real documents of every supported kind, built in memory for the tests."""

from __future__ import annotations

import io
import zipfile


def pdf(*pages: str, encrypt: str | None = None) -> bytes:
    """A text PDF, one page per string (an empty string makes a page without text)."""
    from fpdf import FPDF

    doc = FPDF()
    doc.set_font("helvetica", size=12)
    for text in pages:
        doc.add_page()
        if text:
            doc.multi_cell(0, 8, text)
    data = bytes(doc.output())
    if encrypt is None:
        return data
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=encrypt, owner_password=encrypt)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx(*blocks: tuple[str, str], title: str | None = None) -> bytes:
    """A DOCX of ``("heading", text)`` and ``("para", text)`` blocks."""
    import docx as python_docx

    document = python_docx.Document()
    if title:
        document.core_properties.title = title
    for kind, text in blocks:
        if kind == "heading":
            document.add_heading(text, level=1)
        else:
            document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def zip_bomb_docx(unpacked_bytes: int) -> bytes:
    """A DOCX-looking zip whose content unpacks to ``unpacked_bytes`` (mostly zeros)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", b"\0" * unpacked_bytes)
    return out.getvalue()


def plain_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("notes.txt", "hello")
    return out.getvalue()
