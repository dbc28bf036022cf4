"""Split text into overlapping chunks that fit the embedding model's input.

Chunks follow word boundaries and keep their character offsets, so a search hit can
point back into the document. The budget is in model tokens; English text runs at
about 1.3 word-piece tokens per word, and the ratio below leaves room for the longer
words of technical text, so a chunk is not truncated by the model.
"""

import re
from dataclasses import dataclass

TOKENS_PER_WORD = 1.6
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class TextChunk:
    index: int
    text: str
    start: int
    end: int


def words_for_tokens(max_tokens: int) -> int:
    return max(16, int(max_tokens / TOKENS_PER_WORD))


def chunk_text(text: str, max_words: int, overlap_words: int = 0) -> list[TextChunk]:
    if not 0 <= overlap_words < max_words:
        raise ValueError("overlap must be smaller than the chunk")
    words = [(match.start(), match.end()) for match in _WORD.finditer(text)]
    chunks: list[TextChunk] = []
    step = max_words - overlap_words
    for first in range(0, len(words), step):
        span = words[first : first + max_words]
        start, end = span[0][0], span[-1][1]
        chunks.append(TextChunk(len(chunks), text[start:end], start, end))
        if first + max_words >= len(words):
            break
    return chunks
