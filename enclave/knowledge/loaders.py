"""Document loaders: detect the type from the content, then extract text as sections
(text with its page number or heading). Every refusal is an ``UploadRejected`` naming
the file."""

from __future__ import annotations

import csv
import io
import logging
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath

from enclave.errors import UploadRejected

logging.getLogger("pypdf").setLevel(logging.ERROR)  # damaged files are reported to the user
KINDS = ("pdf", "docx", "html", "markdown", "text", "csv")
MAX_NAME = 200
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_HTML_START = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body)", re.I)
_HTML_TAGS = re.compile(r"</?(p|div|h[1-6]|table|ul|li|span|br)\b[^>]*>", re.I)


@dataclass(frozen=True)
class Section:
    text: str
    page: int | None = None
    heading: str | None = None


@dataclass(frozen=True)
class Parsed:
    title: str
    kind: str
    sections: list[Section]


def clean_name(name: str) -> str:
    """The upload's file name, refused if it could be a path or hide characters."""
    if not isinstance(name, str) or not name.strip():
        raise UploadRejected("A file has no name.")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise UploadRejected(f"{name!r}: file names may not contain path separators.")
    if any(not c.isprintable() for c in name):
        raise UploadRejected(f"{name!r}: the file name contains control characters.")
    if len(name) > MAX_NAME:
        raise UploadRejected(f"{name[:40]}...: the file name is longer than {MAX_NAME} "
                             "characters.")
    return name.strip()


def _decode(data: bytes) -> str | None:
    """Text when ``data`` is UTF-8/UTF-16 (BOM) text, else None."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def detect(name: str, data: bytes) -> str:
    """The document kind, from the content first and the extension second."""
    ext = PurePath(name).suffix.lower()
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                if "word/document.xml" in z.namelist():
                    return "docx"
        except zipfile.BadZipFile:
            raise UploadRejected(f"{name}: the file is a damaged zip/DOCX archive.") from None
        raise UploadRejected(f"{name}: zip archives other than DOCX are not supported.")
    if ext in (".pdf", ".docx"):
        raise UploadRejected(f"{name}: the content is not a {ext[1:].upper()} file.")
    text = _decode(data)
    if text is None:
        raise UploadRejected(f"{name}: unsupported file type (binary content). Supported: "
                             "PDF, DOCX, HTML, Markdown, plain text, CSV.")
    if _HTML_START.match(data[:1024]) or ext in (".html", ".htm") or (
            ext not in (".md", ".markdown", ".csv") and len(_HTML_TAGS.findall(text[:4096])) >= 3):
        return "html"
    if ext in (".md", ".markdown"):
        return "markdown"
    if ext in (".csv", ".tsv"):
        return "csv"
    return "text"


def _pdf(name: str, data: bytes, max_unpacked: int) -> Parsed:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UploadRejected(f"{name}: the PDF is encrypted (password protected).")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or ""
    except UploadRejected:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError,
            NotImplementedError, RecursionError) as e:
        if "encrypt" in str(e).lower() or "decrypt" in str(e).lower():
            raise UploadRejected(f"{name}: the PDF is encrypted (password protected).") from None
        raise UploadRejected(f"{name}: the PDF is damaged and cannot be read ({e}).") from None
    if sum(len(p) for p in pages) > max_unpacked:
        raise UploadRejected(f"{name}: the PDF's text is larger than the limit.")
    sections = [Section(text, page=i) for i, text in enumerate(pages, 1) if text.strip()]
    if not sections:
        raise UploadRejected(f"{name}: the PDF has no text layer (a scanned document?). "
                             "Text recognition (OCR) is not supported; upload a text PDF.")
    return Parsed(title.strip() or PurePath(name).stem, "pdf", sections)


def _docx(name: str, data: bytes, max_unpacked: int) -> Parsed:
    import docx

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        unpacked = sum(info.file_size for info in z.infolist())
    if unpacked > max_unpacked:
        raise UploadRejected(f"{name}: the DOCX unpacks to {unpacked / 2**20:.0f} MB, more "
                             f"than the limit of {max_unpacked / 2**20:.0f} MB.")
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as e:  # python-docx raises many kinds on a broken package
        raise UploadRejected(f"{name}: the DOCX is damaged and cannot be read ({e}).") from None
    sections: list[Section] = []
    heading: str | None = None
    lines: list[str] = []

    def close() -> None:
        if any(line.strip() for line in lines):
            sections.append(Section("\n".join(lines).strip(), heading=heading))
        lines.clear()

    for para in document.paragraphs:
        style = (para.style.name if para.style is not None else "") or ""
        if style.lower().startswith(("heading", "title")) and para.text.strip():
            close()
            heading = para.text.strip()
        else:
            lines.append(para.text)
    close()
    for table in document.tables:
        rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in table.rows]
        if any(r.strip(" |") for r in rows):
            sections.append(Section("\n".join(rows), heading=heading))
    if not sections:
        raise UploadRejected(f"{name}: the DOCX contains no text.")
    title = document.core_properties.title or next(
        (s.heading for s in sections if s.heading), None) or PurePath(name).stem
    return Parsed(title, "docx", sections)


def _html(name: str, text: str) -> Parsed:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    if soup.head:
        soup.head.decompose()
    root = soup.body or soup
    sections: list[Section] = []
    heading: str | None = None
    lines: list[str] = []
    for el in root.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "td",
                             "th", "blockquote", "dd", "dt"]):
        if el.find_parent(["p", "li", "pre", "td", "th", "blockquote", "dd", "dt"]):
            continue  # its text is in the enclosing block
        content = el.get_text(" ", strip=True)
        if not content:
            continue
        if el.name and el.name[0] == "h" and el.name[1:].isdigit():
            if lines:
                sections.append(Section("\n".join(lines), heading=heading))
                lines = []
            heading = content
            title = title or content
        else:
            lines.append(content)
    if lines:
        sections.append(Section("\n".join(lines), heading=heading))
    if not sections:  # text outside block elements
        loose = root.get_text("\n", strip=True)
        sections = [Section(loose)] if loose else []
    return Parsed(title or PurePath(name).stem, "html", sections)


def _markdown(name: str, text: str) -> Parsed:
    sections: list[Section] = []
    heading: str | None = None
    title: str | None = None
    lines: list[str] = []
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match:
            if any(x.strip() for x in lines):
                sections.append(Section("\n".join(lines).strip(), heading=heading))
            lines = []
            heading = match.group(2)
            if title is None and len(match.group(1)) == 1:
                title = heading
        else:
            lines.append(line)
    if any(x.strip() for x in lines):
        sections.append(Section("\n".join(lines).strip(), heading=heading))
    return Parsed(title or PurePath(name).stem, "markdown", sections)


def _csv(name: str, text: str) -> Parsed:
    sample = text[:4096]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, ",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [r for r in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in r)]
    except csv.Error as e:
        raise UploadRejected(f"{name}: the CSV cannot be read ({e}).") from None
    if not rows:
        return Parsed(PurePath(name).stem, "csv", [])
    header, body = rows[0], rows[1:] or [rows[0]]
    lines = ["; ".join(f"{h.strip()}: {v.strip()}" for h, v in zip(header, row, strict=False)
                       if v.strip()) for row in body]
    return Parsed(PurePath(name).stem, "csv",
                  [Section("\n".join(lines), heading=", ".join(h.strip() for h in header))])


def _text(name: str, text: str) -> Parsed:
    return Parsed(PurePath(name).stem, "text", [Section(text.strip())] if text.strip() else [])


_TEXT_LOADERS: dict[str, Callable[[str, str], Parsed]] = {
    "html": _html, "markdown": _markdown, "csv": _csv, "text": _text}


def load(name: str, data: bytes, *, max_bytes: int, max_unpacked: int) -> Parsed:
    """Parse one file (``name`` already checked by ``clean_name``), or raise
    ``UploadRejected`` naming it."""
    if len(data) > max_bytes:
        raise UploadRejected(f"{name}: the file is {len(data) / 2**20:.1f} MB, more than the "
                             f"limit of {max_bytes / 2**20:.0f} MB.")
    if not data.strip():
        raise UploadRejected(f"{name}: the file is empty.")
    kind = detect(name, data)
    if kind == "pdf":
        parsed = _pdf(name, data, max_unpacked)
    elif kind == "docx":
        parsed = _docx(name, data, max_unpacked)
    else:
        text = _decode(data) or ""
        parsed = _TEXT_LOADERS[kind](name, text)
    if not parsed.sections:
        raise UploadRejected(f"{name}: the file contains no text.")
    return parsed
