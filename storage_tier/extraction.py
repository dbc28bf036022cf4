"""Text extraction from PDF, HTML, Markdown and plain text.

Failures that no retry can fix (encrypted, truncated or text-less documents) raise
`ExtractionError` with the name of the problem.
"""

import io
import re
from collections.abc import Callable
from dataclasses import dataclass

from bs4 import BeautifulSoup
from markdown_it import MarkdownIt
from pypdf import PdfReader
from pypdf.errors import PdfReadError

from orchestration.errors import DocumentError
from orchestration.models import MediaType


class ExtractionError(Exception):
    def __init__(self, error: DocumentError, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


@dataclass(frozen=True)
class ExtractedDocument:
    text: str
    pages: int | None
    title: str | None


def extract(
    data: bytes,
    media_type: MediaType,
    encoding: str | None,
    on_page: Callable[[int], None] | None = None,
) -> ExtractedDocument:
    if media_type is MediaType.PDF:
        document = _extract_pdf(data, on_page)
    else:
        text = data.decode(encoding or "utf-8")
        if media_type is MediaType.HTML:
            document = _extract_html(text)
        elif media_type is MediaType.MARKDOWN:
            document = _extract_markdown(text)
        else:
            document = ExtractedDocument(_normalise(text), None, None)

    if not document.text.strip():
        raise ExtractionError(
            DocumentError.NO_TEXT_CONTENT,
            f"no text could be extracted from this {media_type.name} document"
            + (
                " (it may be scanned images without a text layer)"
                if document.pages
                else ""
            ),
        )
    return document


def _extract_pdf(
    data: bytes, on_page: Callable[[int], None] | None
) -> ExtractedDocument:
    # pypdf recovers what it can from a damaged file; a missing end marker means the
    # file was cut short, and half a document must not pass as a whole one.
    if b"%%EOF" not in data[-2048:]:
        raise ExtractionError(
            DocumentError.CORRUPT_PDF, "the PDF is truncated: no %%EOF end marker"
        )
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionError(
                DocumentError.ENCRYPTED_PDF, "the PDF is encrypted with a password"
            )
        pages = []
        for number, page in enumerate(reader.pages, start=1):
            pages.append(page.extract_text() or "")
            if on_page:
                on_page(number)
        title = reader.metadata.title if reader.metadata else None
    except ExtractionError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as err:
        raise ExtractionError(
            DocumentError.CORRUPT_PDF, f"the PDF cannot be read: {err}"
        ) from err
    text = "\n\n".join(_normalise(page) for page in pages)
    return ExtractedDocument(text, len(pages), title or None)


_INVISIBLE_TAGS = [
    "script",
    "style",
    "noscript",
    "template",
    "head",
    "nav",
    "svg",
    "iframe",
]


def _extract_html(html: str) -> ExtractedDocument:
    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(strip=True) if soup.title else None
    for tag in soup(_INVISIBLE_TAGS):
        tag.decompose()
    text = soup.get_text("\n")
    return ExtractedDocument(_normalise(text), None, title or None)


_markdown = MarkdownIt("commonmark").enable("table")


def _extract_markdown(source: str) -> ExtractedDocument:
    blocks: list[str] = []
    title = None
    tokens = _markdown.parse(source)
    for position, token in enumerate(tokens):
        if token.type == "inline":
            text = "".join(
                child.content
                for child in token.children or []
                if child.type in ("text", "code_inline")
            )
            blocks.append(text)
            if title is None and position > 0 and tokens[position - 1].tag == "h1":
                title = text
        elif token.type in ("fence", "code_block"):
            blocks.append(token.content)
    return ExtractedDocument(_normalise("\n\n".join(blocks)), None, title)


_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()
