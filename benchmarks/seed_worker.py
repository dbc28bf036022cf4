"""The seed design: an AI worker that runs the embedding model inside its activity.

This is what the project replaced: each of the worker's five activity slots calls the
model in its own process, with no batching across documents. The activity code is the
AI tier's own `analyze_document`; only the inference client is swapped for the model
itself. Run as `python -m benchmarks.seed_worker TASK_QUEUE` with the `HEYSH_*`
settings of the stack.
"""

import asyncio
import logging
import signal
import sys
from typing import Any, cast

from orchestration.blobs import open_blob_store
from orchestration.client import connect
from orchestration.config import Settings
from orchestration.models import ModelInfo
from orchestration.queues import LIMITS, Queue
from orchestration.worker import build_worker
from ray_serve.activities import AIActivities
from ray_serve.inference_client import Embeddings, InferenceClient, ModelCard

logger = logging.getLogger(__name__)


class InProcessModel:
    """Answers the inference client's embedding calls with the model in this process."""

    embedding_model = "embedder"

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self.model = ModelInfo(name=embedder.spec.name, version=embedder.spec.version)

    async def embed(self, texts: list[str]) -> Embeddings:
        # The model blocks; a thread keeps the worker's event loop polling meanwhile.
        (outcome,) = await asyncio.to_thread(self.embedder.embed_requests, [texts])
        return Embeddings(
            vectors=outcome.vectors,
            model=self.model,
            prompt_tokens=outcome.prompt_tokens,
        )

    async def models(self) -> dict[str, ModelCard]:
        card = ModelCard(
            id=self.embedding_model,
            name=self.model.name,
            version=self.model.version,
            kind="embedding",
            max_input_tokens=self.embedder.max_tokens,
            dimensions=self.embedder.dimensions,
        )
        return {card.id: card}

    async def aclose(self) -> None:
        return None


async def run_seed_worker(task_queue: str, settings: Settings) -> None:
    from benchmarks.ceiling import load_embedder

    model = InProcessModel(load_embedder())
    activities = AIActivities(
        cast(InferenceClient, model),
        open_blob_store(settings.blob_store_url),
        settings.summary_max_tokens,
        settings.summary_input_chars,
    )
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    worker = build_worker(
        client, Queue.AI, [activities.analyze_document], task_queue=task_queue
    )
    async with worker:
        logger.info(
            "worker polling %s with the model in-process (%d activities)",
            task_queue,
            LIMITS[Queue.AI].max_concurrent_activities,
        )
        await stop.wait()


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(run_seed_worker(sys.argv[1], Settings()))
