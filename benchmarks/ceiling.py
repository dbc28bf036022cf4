"""The ceiling: the embedding model called in-process, at each batch size.

The replica's model class is constructed outside Ray, so the ceiling runs exactly the
code the Serve replica runs (tokenizer, length-sorted sub-batches, mean pooling).
"""

import gc
import os
import time
from dataclasses import dataclass, field
from typing import Any

BATCH_SIZES = (1, 4, 8, 16, 32, 64)


def load_embedder(num_threads: int = 2) -> Any:
    """The model the Embedder replica runs, constructed in this process."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ray_serve.embedder import EmbeddingModel

    return EmbeddingModel(num_threads=num_threads)


def embed_seconds(embedder: Any, texts: list[str], batch_size: int) -> float:
    # A plain count of texts per forward pass: no token budget on top.
    embedder.max_texts_per_forward = batch_size
    embedder.max_tokens_per_forward = 1 << 30
    started = time.perf_counter()
    embedder.embed_requests([texts])
    return time.perf_counter() - started


@dataclass
class Ceiling:
    """The best rate over the batch-size sweep, re-measured on the full set."""

    rate: float
    best_batch_size: int
    texts: int
    sweep: dict[int, float] = field(default_factory=dict)


def measure_ceiling(
    embedder: Any,
    texts: list[str],
    sample: list[str],
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
) -> Ceiling:
    embed_seconds(embedder, sample[:8], 8)  # first call allocates; not measured
    sweep = {
        size: len(sample) / embed_seconds(embedder, sample, size)
        for size in batch_sizes
    }
    best = max(sweep, key=lambda size: sweep[size])
    rate = len(texts) / embed_seconds(embedder, texts, best)
    return Ceiling(rate=rate, best_batch_size=best, texts=len(texts), sweep=sweep)


def release(embedder: Any) -> None:
    del embedder
    gc.collect()
