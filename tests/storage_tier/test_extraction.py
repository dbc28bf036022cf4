"""Text extraction from the sample documents and the broken ones."""

import pytest

from orchestration.errors import DocumentError
from orchestration.models import MediaType
from storage_tier.extraction import ExtractionError, extract
from tests.conftest import BAD_INPUT, SAMPLES


def test_pdf_pages_and_text() -> None:
    pages_seen: list[int] = []
    document = extract(
        (SAMPLES / "durable-workflows.pdf").read_bytes(),
        MediaType.PDF,
        None,
        pages_seen.append,
    )
    assert document.pages == 3
    assert pages_seen == [1, 2, 3]
    assert "idempot" in document.text.lower()
    assert len(document.text.split()) > 800


def test_html_drops_scripts_and_styles_and_keeps_the_title() -> None:
    document = extract(
        (SAMPLES / "gpu-inference-batching.html").read_bytes(), MediaType.HTML, "utf-8"
    )
    assert document.title
    assert "SCRIPT_BLOCK_SHOULD_NOT_BE_EXTRACTED" not in document.text
    assert "STYLE_BLOCK_SHOULD_NOT_BE_EXTRACTED" not in document.text
    assert "batch" in document.text.lower()


def test_markdown_loses_its_markup() -> None:
    document = extract(
        (SAMPLES / "vector-search-primer.md").read_bytes(), MediaType.MARKDOWN, "utf-8"
    )
    assert document.title
    assert "](" not in document.text
    assert "\n# " not in document.text
    assert "cosine" in document.text.lower()


def test_text_keeps_non_ascii() -> None:
    document = extract(
        (SAMPLES / "field-notes-coffee.txt").read_bytes(), MediaType.TEXT, "utf-8"
    )
    assert "é" in document.text


@pytest.mark.parametrize(
    ("name", "media_type", "error"),
    [
        ("truncated.pdf", MediaType.PDF, DocumentError.CORRUPT_PDF),
        ("encrypted.pdf", MediaType.PDF, DocumentError.ENCRYPTED_PDF),
        ("no-text-layer.pdf", MediaType.PDF, DocumentError.NO_TEXT_CONTENT),
        ("only-scripts.html", MediaType.HTML, DocumentError.NO_TEXT_CONTENT),
    ],
)
def test_unreadable_documents_name_their_problem(
    name: str, media_type: MediaType, error: DocumentError
) -> None:
    with pytest.raises(ExtractionError) as caught:
        extract((BAD_INPUT / name).read_bytes(), media_type, "utf-8")
    assert caught.value.error is error
