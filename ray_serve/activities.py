"""Activities of the AI queue: thin clients of the Ray Serve application.

They hold no model and import no model code: they read text from the blob store, send
inference to Serve over HTTP and store the large results back as blobs, returning only
references and small summaries to the workflow. Serve batches what all of them send.
"""

import asyncio

import numpy as np
from temporalio import activity
from temporalio.exceptions import ApplicationError

from orchestration.blobs import BlobStore, analysis_key
from orchestration.errors import DocumentError
from orchestration.heartbeat import heartbeating
from orchestration.models import (
    Analysis,
    AnalysisInput,
    AnalysisResult,
    Chunk,
    KeyPhrase,
    ModelInfo,
    SummaryInput,
    SummaryResult,
)
from orchestration.telemetry import (
    CHUNKS_EMBEDDED,
    SUMMARIES_GENERATED,
    count_model_output,
)
from ray_serve import keyphrases
from ray_serve.chunking import chunk_text, words_for_tokens
from ray_serve.inference_client import InferenceClient, InferenceRejectedError

SUMMARY_PROMPT = (
    "You write short, factual summaries. Summarize the document the user gives in two "
    "or three sentences. Do not add anything that is not in it."
)


class AIActivities:
    def __init__(
        self,
        client: InferenceClient,
        blobs: BlobStore,
        summary_max_tokens: int,
        summary_input_chars: int,
        embed_request_size: int = 32,
    ) -> None:
        self.client = client
        self.blobs = blobs
        self.summary_max_tokens = summary_max_tokens
        self.summary_input_chars = summary_input_chars
        self.embed_request_size = embed_request_size
        self._chunk_words: int | None = None

    @activity.defn(name="analyze_document")
    async def analyze_document(self, request: AnalysisInput) -> AnalysisResult:
        text = (await self.blobs.aread(request.text_uri)).decode()
        max_words = await self._words_per_chunk()
        chunks = chunk_text(text, max_words, overlap_words=max_words // 8)

        chunk_texts = [chunk.text for chunk in chunks]
        candidates = keyphrases.candidates(text)
        # The key-phrase candidates go to Serve with the chunks: one round trip per
        # document, and the replica sorts the short texts into passes of their own.
        embedded, model = await self._embed_all(chunk_texts + candidates)
        vectors = embedded[: len(chunks)]
        matrix = np.asarray(vectors, dtype=np.float32)
        phrases = _key_phrases(
            candidates,
            np.asarray(embedded[len(chunks) :], dtype=np.float32),
            matrix,
            chunk_texts,
        )

        analysis = Analysis(
            document_id=request.document_id,
            model=model,
            dimensions=matrix.shape[1],
            chunks=[
                Chunk(
                    index=chunk.index,
                    text=chunk.text,
                    start=chunk.start,
                    end=chunk.end,
                    embedding=vector,
                )
                for chunk, vector in zip(chunks, vectors, strict=True)
            ],
            key_phrases=phrases,
        )
        uri = await self.blobs.aput(
            analysis_key(request.document_id, model.version),
            analysis.model_dump_json().encode(),
        )
        count_model_output(CHUNKS_EMBEDDED, len(chunks), model.name, model.version)
        activity.logger.info(
            "document %s: %d chunks embedded by %s",
            request.document_id,
            len(chunks),
            model,
        )
        return AnalysisResult(
            analysis_uri=uri,
            chunk_count=len(chunks),
            key_phrases=[phrase.phrase for phrase in phrases],
            embedding_model=model,
        )

    @activity.defn(name="generate_summary")
    async def generate_summary(self, request: SummaryInput) -> SummaryResult:
        text = (await self.blobs.aread(request.text_uri)).decode()
        excerpt = _excerpt(text, self.summary_input_chars)
        messages = [
            {"role": "system", "content": SUMMARY_PROMPT},
            {"role": "user", "content": excerpt},
        ]
        async with heartbeating():
            summary, model = await _inference(
                self.client.chat(
                    messages, request.max_tokens or self.summary_max_tokens
                )
            )
        count_model_output(SUMMARIES_GENERATED, 1, model.name, model.version)
        activity.logger.info(
            "document %s: %d-character summary by %s",
            request.document_id,
            len(summary),
            model,
        )
        return SummaryResult(summary=summary, model=model)

    @activity.defn(name="describe_model")
    async def describe_model(self, model_id: str) -> ModelInfo:
        """The name and version a model's replicas serve now."""
        cards = await self.client.models()
        card = cards.get(model_id)
        if card is None:
            raise ApplicationError(
                f"Serve has no model {model_id!r} (it has {sorted(cards)})",
                type=DocumentError.INVALID_INPUT,
                non_retryable=True,
            )
        return ModelInfo(name=card.name, version=card.version)

    async def _words_per_chunk(self) -> int:
        if self._chunk_words is None:
            cards = await self.client.models()
            card = cards.get(self.client.embedding_model)
            max_tokens = (
                card.max_input_tokens if card and card.max_input_tokens else 256
            )
            self._chunk_words = words_for_tokens(max_tokens)
        return self._chunk_words

    async def _embed_all(self, texts: list[str]) -> tuple[list[list[float]], ModelInfo]:
        """Embed in requests of a bounded size, concurrently; Serve batches them with
        everyone else's. All vectors of a document must come from one model version."""
        groups = [
            texts[first : first + self.embed_request_size]
            for first in range(0, len(texts), self.embed_request_size)
        ]

        embedded = [0]

        async def embed(group: list[str]):
            result = await _inference(self.client.embed(group))
            embedded[0] += len(group)
            return result

        # Heartbeats go on while requests wait in Serve's queue behind other documents.
        async with heartbeating(lambda: embedded[0]):
            results = await asyncio.gather(*(embed(group) for group in groups))
        versions = {result.model.version for result in results}
        if len(versions) > 1:
            # A rollout happened between two requests: start over on one version.
            raise ApplicationError(
                f"embedding model changed mid-document: {sorted(versions)}",
                type="ModelVersionChanged",
            )
        vectors = [vector for result in results for vector in result.vectors]
        return vectors, results[0].model


def _key_phrases(
    candidates: list[str],
    candidate_vectors: np.ndarray,
    chunk_vectors: np.ndarray,
    chunk_texts: list[str],
) -> list[KeyPhrase]:
    """The candidates nearest in meaning to the whole document."""
    if not candidates:
        return []
    document_vector = chunk_vectors.mean(axis=0)
    document_vector /= np.linalg.norm(document_vector) or 1.0
    ranked = keyphrases.rank(candidates, candidate_vectors, document_vector)
    return [
        KeyPhrase(
            phrase=phrase,
            score=score,
            chunk_indexes=keyphrases.mentions(phrase, chunk_texts),
        )
        for phrase, score in ranked
    ]


async def _inference(call):
    try:
        return await call
    except InferenceRejectedError as err:
        raise ApplicationError(
            str(err), type=DocumentError.INFERENCE_REJECTED, non_retryable=True
        ) from err


def _excerpt(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    cut = text.rfind(" ", 0, max_chars)
    return text[: cut if cut > 0 else max_chars]
