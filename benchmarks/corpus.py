"""The benchmark's corpus: seeded generated documents plus the sample documents.

The same seed gives the same bytes on every machine, so runs compare. Chunks are cut
exactly as the AI activity cuts them, so every row embeds the same texts.
"""

import random
from dataclasses import dataclass
from pathlib import Path

from orchestration.models import MediaType
from ray_serve.chunking import chunk_text, words_for_tokens
from storage_tier.extraction import extract

SEED = 1729
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SHORT_CHUNK_WORDS = 12

MEDIA_TYPES = {
    ".pdf": MediaType.PDF,
    ".html": MediaType.HTML,
    ".htm": MediaType.HTML,
    ".md": MediaType.MARKDOWN,
    ".txt": MediaType.TEXT,
}


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_TOPIC_WORDS = _words(
    """
    workflow activity worker queue retry backoff heartbeat timeout history replay
    signal query schedule deadline lease shard replica partition leader follower
    quorum snapshot journal ledger commit rollback transaction isolation index vector
    embedding token batch latency throughput budget window cursor buffer stream
    pipeline stage operator kernel tensor model inference serving request response
    payload schema migration upgrade rollout canary traffic gateway proxy cache
    eviction compaction checkpoint recovery failover outage incident alert metric
    trace span sampling histogram percentile capacity scaling autoscaler node cluster
    container image volume network bandwidth packet socket connection pool thread
    process memory allocator garbage collector runtime interpreter compiler
    document chunk paragraph summary phrase search ranking relevance similarity
    cosine distance neighbour graph edge vertex storage blob bucket object archive
"""
)
_LINK_WORDS = _words(
    """
    the a an of to and in for with on by from that which when while after before
    under over between across through during without because each every its their
    is are was were can will should must may often rarely always never then
"""
)
_VERBS = _words(
    """
    retries schedules batches stores reads writes replays drains fills measures
    tracks routes serves indexes embeds splits merges compacts restarts scales
    throttles buffers records reports recovers guards limits releases claims
"""
)


@dataclass(frozen=True)
class CorpusSize:
    documents: int
    min_words: int
    max_words: int
    short_texts: int
    latency_documents: int
    sweep_chunks: int


SIZES = {
    "default": CorpusSize(
        documents=40,
        min_words=700,
        max_words=2000,
        short_texts=2048,
        latency_documents=8,
        sweep_chunks=128,
    ),
    "quick": CorpusSize(
        documents=6,
        min_words=300,
        max_words=800,
        short_texts=512,
        latency_documents=3,
        sweep_chunks=48,
    ),
}


@dataclass(frozen=True)
class Document:
    name: str
    data: bytes
    media_type: MediaType
    text: str

    def variant(self, run: int) -> bytes:
        """The same document under the same name with other bytes, so a later run
        is not refused as a duplicate. Trailing newlines change no chunk."""
        return self.data + b"\n" * run


def _sentence(rng: random.Random) -> str:
    words = []
    for position in range(rng.randint(8, 22)):
        if position % 3 == 1:
            words.append(rng.choice(_LINK_WORDS))
        elif position % 5 == 2:
            words.append(rng.choice(_VERBS))
        else:
            words.append(rng.choice(_TOPIC_WORDS))
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice((".", ".", ".", "?", ";"))


def generated_text(rng: random.Random, words: int) -> str:
    paragraphs, count = [], 0
    while count < words:
        sentences = [_sentence(rng) for _ in range(rng.randint(3, 7))]
        paragraph = " ".join(sentences)
        count += len(paragraph.split())
        paragraphs.append(paragraph)
    return "\n\n".join(paragraphs) + "\n"


def generate(size: CorpusSize, seed: int = SEED) -> list[tuple[str, bytes]]:
    """Names and bytes of the generated documents: plain text and Markdown alternate."""
    rng = random.Random(seed)
    documents = []
    for number in range(size.documents):
        text = generated_text(rng, rng.randint(size.min_words, size.max_words))
        if number % 2:
            title = " ".join(rng.choice(_TOPIC_WORDS) for _ in range(3)).title()
            documents.append(
                (f"bench-{number:03d}.md", f"# {title}\n\n{text}".encode())
            )
        else:
            documents.append((f"bench-{number:03d}.txt", text.encode()))
    return documents


def load_corpus(size: CorpusSize, with_samples: bool = True) -> list[Document]:
    """The generated documents, then the samples, with their text extracted the way
    the storage tier extracts it."""
    named = generate(size)
    if with_samples:
        named += [
            (path.name, path.read_bytes())
            for path in sorted(SAMPLES.iterdir())
            if path.suffix in MEDIA_TYPES
        ]
    documents = []
    for name, data in named:
        media_type = MEDIA_TYPES[Path(name).suffix]
        text = extract(data, media_type, "utf-8").text
        documents.append(Document(name, data, media_type, text))
    return documents


def document_chunks(text: str, max_tokens: int) -> list[str]:
    """The chunk texts analyze_document embeds for this text."""
    max_words = words_for_tokens(max_tokens)
    return [c.text for c in chunk_text(text, max_words, overlap_words=max_words // 8)]


def corpus_chunks(documents: list[Document], max_tokens: int) -> list[str]:
    return [
        chunk
        for document in documents
        for chunk in document_chunks(document.text, max_tokens)
    ]


def short_texts(documents: list[Document], count: int) -> list[str]:
    """Short chunks (a dozen words) from the same documents, `count` of them."""
    pool = [
        chunk.text
        for document in documents
        for chunk in chunk_text(document.text, SHORT_CHUNK_WORDS)
    ]
    return [pool[i % len(pool)] for i in range(count)]


def evenly_spaced(items: list[str], count: int) -> list[str]:
    """`count` items spread over the whole list, so a sample mixes every length."""
    if count >= len(items):
        return list(items)
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]
