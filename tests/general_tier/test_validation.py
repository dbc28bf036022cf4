"""Content sniffing and refusal of bad input, on the fixture files."""

import pytest

from general_tier.validation import InvalidDocument, Limits, decode_text, validate
from orchestration.errors import DocumentError
from orchestration.models import MediaType
from tests.conftest import BAD_INPUT, SAMPLES

LIMITS = Limits(max_bytes=1_000_000)


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("durable-workflows.pdf", MediaType.PDF),
        ("gpu-inference-batching.html", MediaType.HTML),
        ("vector-search-primer.md", MediaType.MARKDOWN),
        ("incident-report.md", MediaType.MARKDOWN),
        ("field-notes-coffee.txt", MediaType.TEXT),
    ],
)
def test_samples_are_sniffed_by_content(name: str, media_type: MediaType) -> None:
    assert validate((SAMPLES / name).read_bytes(), LIMITS).media_type is media_type


def test_type_comes_from_content_not_name() -> None:
    pdf = (SAMPLES / "durable-workflows.pdf").read_bytes()
    assert validate(pdf, LIMITS).media_type is MediaType.PDF
    html = (SAMPLES / "gpu-inference-batching.html").read_bytes()
    assert validate(html, LIMITS).media_type is MediaType.HTML


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("empty.txt", DocumentError.EMPTY_DOCUMENT),
        ("whitespace-only.txt", DocumentError.EMPTY_DOCUMENT),
        ("binary-named.txt", DocumentError.UNSUPPORTED_TYPE),
        ("undecodable.txt", DocumentError.UNDECODABLE_TEXT),
        ("mixed-encodings.txt", DocumentError.UNDECODABLE_TEXT),
        ("archive.zip", DocumentError.UNSUPPORTED_TYPE),
        ("archive-named.md", DocumentError.UNSUPPORTED_TYPE),
        ("unsupported.rtf", DocumentError.UNSUPPORTED_TYPE),
        ("huge-single-line.txt", DocumentError.LINE_TOO_LONG),
    ],
)
def test_bad_input_is_refused_with_a_named_error(
    name: str, error: DocumentError
) -> None:
    with pytest.raises(InvalidDocument) as caught:
        validate((BAD_INPUT / name).read_bytes(), LIMITS)
    assert caught.value.error is error
    assert caught.value.message


def test_oversize_document_is_refused() -> None:
    with pytest.raises(InvalidDocument) as caught:
        validate(b"x " * 600, Limits(max_bytes=1000))
    assert caught.value.error is DocumentError.DOCUMENT_TOO_LARGE
    assert "1000" in caught.value.message


def test_a_legacy_single_encoding_is_accepted() -> None:
    text = "Le café était très animé ce matin-là, près de la fenêtre. " * 20
    decoded, _ = decode_text(text.encode("latin-1"))
    assert decoded == text


def test_utf8_with_bom() -> None:
    decoded, encoding = decode_text(b"\xef\xbb\xbfhello world")
    assert (decoded, encoding) == ("hello world", "utf-8-sig")
