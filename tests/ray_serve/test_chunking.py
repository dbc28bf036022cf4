"""Chunking: word boundaries, offsets, overlap and the model's token budget."""

import pytest

from ray_serve.chunking import chunk_text, words_for_tokens


def test_chunks_cover_the_text_with_exact_offsets() -> None:
    text = " ".join(f"word{i}" for i in range(1000))
    chunks = chunk_text(text, max_words=100, overlap_words=10)
    assert chunks[0].start == 0
    assert chunks[-1].end == len(text)
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert len(chunk.text.split()) <= 100
    assert [c.index for c in chunks] == list(range(len(chunks)))
    # Consecutive chunks share the overlap.
    assert chunks[1].text.split()[:10] == chunks[0].text.split()[-10:]


def test_short_text_is_one_chunk() -> None:
    chunks = chunk_text("  just a few words  ", max_words=50)
    assert [(c.text, c.start) for c in chunks] == [("just a few words", 2)]


def test_empty_text_has_no_chunks() -> None:
    assert chunk_text("   \n ", max_words=50) == []


def test_budget_leaves_room_for_word_pieces() -> None:
    assert words_for_tokens(256) == 160
    assert words_for_tokens(10) == 16


def test_overlap_must_be_smaller_than_the_chunk() -> None:
    with pytest.raises(ValueError):
        chunk_text("a b c", max_words=5, overlap_words=5)
