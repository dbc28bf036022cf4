"""Decide what a document is from its bytes, and refuse what cannot be processed.

The type is sniffed from the content, never from the file name: a PNG named `.txt` is
refused as binary, a PDF named `.md` is read as a PDF.
"""

import re
from dataclasses import dataclass

from charset_normalizer import from_bytes

from orchestration.errors import DocumentError
from orchestration.models import MediaType

SNIFF_BYTES = 8192

# Signatures of formats we recognise but do not process, so the error can name them.
_BINARY_SIGNATURES: list[tuple[bytes, str]] = [
    (b"PK\x03\x04", "zip archive (or an Office document)"),
    (b"PK\x05\x06", "empty zip archive"),
    (b"\x1f\x8b", "gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-zip archive"),
    (b"Rar!\x1a\x07", "rar archive"),
    (b"ustar", "tar archive"),
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "Windows executable"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "OLE document (legacy Office)"),
    (b"{\\rtf", "RTF document"),
    (b"%!PS", "PostScript document"),
]

_HTML_START = re.compile(
    rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S
)
_HTML_TAGS = re.compile(
    rb"</?(p|div|span|h[1-6]|ul|ol|li|a|table|section|article)\b", re.I
)
_MARKDOWN_SIGNALS = [
    re.compile(r"^#{1,6} \S", re.M),
    re.compile(r"^\s*[-*+] \S", re.M),
    re.compile(r"^\s*\d+\. \S", re.M),
    re.compile(r"\[[^\]]+\]\([^)]+\)"),
    re.compile(r"^```", re.M),
    re.compile(r"^\|.*\|\s*$", re.M),
    re.compile(r"\*\*[^*\n]+\*\*"),
]


class InvalidDocument(Exception):
    """Bad input: the error names the problem and is never retried."""

    def __init__(self, error: DocumentError, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_line_chars: int = 100_000


@dataclass(frozen=True)
class Verdict:
    media_type: MediaType
    encoding: str | None


def check_size(size: int, limits: Limits) -> None:
    if size == 0:
        raise InvalidDocument(DocumentError.EMPTY_DOCUMENT, "the document is empty")
    if size > limits.max_bytes:
        raise InvalidDocument(
            DocumentError.DOCUMENT_TOO_LARGE,
            f"the document has {size} bytes; the limit is {limits.max_bytes}",
        )


def validate(data: bytes, limits: Limits) -> Verdict:
    check_size(len(data), limits)
    head = data[:SNIFF_BYTES]

    if b"%PDF-" in head[:1024]:
        return Verdict(MediaType.PDF, None)
    for signature, kind in _BINARY_SIGNATURES:
        if head.startswith(signature) or (
            kind == "tar archive" and data[257:262] == signature
        ):
            raise InvalidDocument(
                DocumentError.UNSUPPORTED_TYPE, f"unsupported document type: {kind}"
            )
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InvalidDocument(
            DocumentError.UNSUPPORTED_TYPE,
            "unsupported document type: binary content (NUL bytes)",
        )

    text, encoding = decode_text(data)
    if not text.strip():
        raise InvalidDocument(
            DocumentError.EMPTY_DOCUMENT, "the document holds only whitespace"
        )
    _check_text_is_readable(text)

    if _HTML_START.match(head) or len(_HTML_TAGS.findall(head)) >= 3:
        return Verdict(MediaType.HTML, encoding)
    longest = max((len(line) for line in text.splitlines()), default=0)
    if longest > limits.max_line_chars:
        raise InvalidDocument(
            DocumentError.LINE_TOO_LONG,
            f"a line of {longest} characters exceeds the limit of "
            f"{limits.max_line_chars}",
        )
    if sum(1 for signal in _MARKDOWN_SIGNALS if signal.search(text)) >= 2:
        return Verdict(MediaType.MARKDOWN, encoding)
    return Verdict(MediaType.TEXT, encoding)


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode text as UTF-8 (or UTF-16 with a BOM); accept a legacy single encoding
    only when no UTF-8 is mixed in and the guess is confident."""
    for bom, codec in (
        (b"\xef\xbb\xbf", "utf-8-sig"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(codec), codec
            except UnicodeDecodeError as err:
                raise _undecodable(codec, err) from err
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as err:
        utf8_error = err

    if _has_utf8_sequences(data):
        raise InvalidDocument(
            DocumentError.UNDECODABLE_TEXT,
            "mixed encodings: valid UTF-8 sequences beside bytes that are not UTF-8 "
            f"(first bad byte at offset {utf8_error.start})",
        )
    matches = from_bytes(data[: 256 * 1024])
    best = matches.best()
    if best is None or best.chaos > 0.2 or best.encoding in ("utf_8", "ascii"):
        raise _undecodable("utf-8", utf8_error)
    # Single-byte encodings are ambiguous; when a Western one reads as cleanly as the
    # best guess, it is by far the likelier.
    encoding = best.encoding
    for match in matches:
        if match.encoding in _WESTERN and match.chaos <= best.chaos + 0.02:
            encoding = "cp1252" if match.encoding == "latin_1" else match.encoding
            break
    try:
        return data.decode(encoding), encoding
    except (UnicodeDecodeError, LookupError) as err:
        raise _undecodable(encoding, err) from err


_WESTERN = ("cp1252", "latin_1", "iso8859_15")


def _undecodable(codec: str, err: Exception) -> InvalidDocument:
    return InvalidDocument(
        DocumentError.UNDECODABLE_TEXT, f"the text cannot be decoded as {codec}: {err}"
    )


_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


def _has_utf8_sequences(data: bytes) -> bool:
    return len(_UTF8_MULTIBYTE.findall(data[: 256 * 1024])) >= 2


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\ufffd]")


def _check_text_is_readable(text: str) -> None:
    sample = text[:SNIFF_BYTES]
    controls = len(_CONTROL.findall(sample))
    if controls > max(8, len(sample) // 100):
        raise InvalidDocument(
            DocumentError.UNDECODABLE_TEXT,
            f"the text is not readable: {controls} control characters in the first "
            f"{len(sample)}",
        )
