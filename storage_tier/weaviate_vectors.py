"""Vector store on Weaviate: one collection of chunk objects with vectors we provide.

Each chunk's object id is a UUID5 of its key (document, model version, position), so
writing the same chunk again replaces the object instead of adding one. Document names
and completion live in PostgreSQL's document rows, which search consults.
"""

import logging
from collections.abc import Collection, Sequence
from typing import Any

from weaviate import WeaviateAsyncClient
from weaviate.classes.config import (
    Configure,
    DataType,
    Property,
    Tokenization,
    VectorConfigCreate,
    VectorDistances,
)
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter, FilterReturn, MetadataQuery
from weaviate.exceptions import UnexpectedStatusCodeError
from weaviate.util import generate_uuid5

from orchestration.models import Analysis, Chunk
from storage_tier.documents import DocumentRepository
from storage_tier.vectors import SearchHit

logger = logging.getLogger(__name__)

VECTOR_NAME = "embedding"
# Objects per batch request: a 384-dimension chunk is a few kB, so a batch stays well
# under Weaviate's request limits.
BATCH_SIZE = 200
# Weaviate answers at most this many objects past the offset of one query
# (QUERY_MAXIMUM_RESULTS, 10,000 unless the server says otherwise).
MAX_RESULTS = 10_000


class VectorWriteError(Exception):
    """Weaviate refused some objects of a batch; retrying the activity rewrites them."""


def chunk_key(document_id: str, model_version: str, index: int) -> str:
    return f"{document_id}:{model_version}:{index}"


def chunk_uuid(document_id: str, model_version: str, index: int) -> str:
    return generate_uuid5(chunk_key(document_id, model_version, index))


def chunk_properties() -> list[Property]:
    """The collection's schema. Keys are tokenized as whole fields, so an equality
    filter on `model_version` never matches a version that merely shares a word."""
    return [
        Property(
            name="document_id",
            data_type=DataType.TEXT,
            tokenization=Tokenization.FIELD,
            index_filterable=True,
            index_searchable=False,
        ),
        Property(
            name="model_name",
            data_type=DataType.TEXT,
            tokenization=Tokenization.FIELD,
            index_filterable=True,
            index_searchable=False,
        ),
        Property(
            name="model_version",
            data_type=DataType.TEXT,
            tokenization=Tokenization.FIELD,
            index_filterable=True,
            index_searchable=False,
        ),
        Property(name="chunk_index", data_type=DataType.INT, index_filterable=True),
        Property(name="text", data_type=DataType.TEXT),
        Property(name="start_char", data_type=DataType.INT, index_filterable=False),
        Property(name="end_char", data_type=DataType.INT, index_filterable=False),
    ]


def vector_config() -> VectorConfigCreate:
    """No vectorizer: the AI tier computes embeddings; cosine, like pgvector's."""
    return Configure.Vectors.self_provided(
        name=VECTOR_NAME,
        vector_index_config=Configure.VectorIndex.hnsw(
            distance_metric=VectorDistances.COSINE
        ),
    )


def collection_schema(name: str) -> dict[str, Any]:
    """What `collections.create` is given for the chunk collection."""
    return {
        "name": name,
        "description": "Chunks of Hey.sh documents with their embeddings.",
        "properties": chunk_properties(),
        "vector_config": vector_config(),
    }


def chunk_filter(
    model_version: str | None = None,
    document_ids: Collection[str] | None = None,
    from_index: int | None = None,
) -> FilterReturn:
    """Chunks of one model version, of some documents, from a position on."""
    filters = []
    if document_ids is not None:
        ids = sorted(document_ids)
        filters.append(
            Filter.by_property("document_id").equal(ids[0])
            if len(ids) == 1
            else Filter.by_property("document_id").contains_any(ids)
        )
    if model_version is not None:
        filters.append(Filter.by_property("model_version").equal(model_version))
    if from_index is not None:
        filters.append(Filter.by_property("chunk_index").greater_or_equal(from_index))
    return Filter.all_of(filters)


def chunk_object(analysis: Analysis, chunk: Chunk) -> DataObject[Any, Any]:
    return DataObject(
        properties={
            "document_id": analysis.document_id,
            "model_name": analysis.model.name,
            "model_version": analysis.model.version,
            "chunk_index": chunk.index,
            "text": chunk.text,
            "start_char": chunk.start,
            "end_char": chunk.end,
        },
        uuid=chunk_uuid(analysis.document_id, analysis.model.version, chunk.index),
        vector={VECTOR_NAME: chunk.embedding},
    )


class WeaviateVectorStore:
    def __init__(
        self,
        client: WeaviateAsyncClient,
        collection: str,
        documents: DocumentRepository,
    ) -> None:
        self.client = client
        self.name = collection
        self.collection = client.collections.use(collection)
        self.documents = documents

    async def create_collection(self) -> None:
        """Create the collection with its schema unless it exists; several workers may
        start at once."""
        if await self.client.collections.exists(self.name):
            return
        try:
            await self.client.collections.create(**collection_schema(self.name))
        except UnexpectedStatusCodeError:
            if not await self.client.collections.exists(self.name):
                raise
        logger.info("created Weaviate collection %s", self.name)

    async def upsert(self, analysis: Analysis) -> tuple[int, int]:
        """Batches of upserts, then the stale chunks.

        Not one transaction (Weaviate has none): a failure between the two leaves
        stale chunks beyond the new count, which the retried activity removes;
        sync_database holds the document back until the count is right.
        """
        objects = [chunk_object(analysis, chunk) for chunk in analysis.chunks]
        for start in range(0, len(objects), BATCH_SIZE):
            result = await self.collection.data.insert_many(
                objects[start : start + BATCH_SIZE]
            )
            if result.has_errors:
                first = next(iter(result.errors.values()))
                raise VectorWriteError(
                    f"Weaviate refused {len(result.errors)} chunks of document "
                    f"{analysis.document_id}: {first.message}"
                )
        removed = await self._delete(
            chunk_filter(
                analysis.model.version,
                document_ids=[analysis.document_id],
                from_index=len(objects),
            )
        )
        return len(objects), removed

    async def delete_document(self, document_id: str) -> int:
        return await self._delete(chunk_filter(document_ids=[document_id]))

    async def delete_other_versions(self, document_id: str, model_version: str) -> int:
        return await self._delete(
            Filter.all_of(
                [
                    chunk_filter(document_ids=[document_id]),
                    Filter.by_property("model_version").not_equal(model_version),
                ]
            )
        )

    async def count(self, document_id: str, model_version: str) -> int:
        """Known limit: on a replicated Weaviate a count can lag a write just made;
        sync_database then fails retryably and converges."""
        result = await self.collection.aggregate.over_all(
            filters=chunk_filter(model_version, document_ids=[document_id]),
            total_count=True,
        )
        return result.total_count or 0

    async def search(
        self,
        vector: Sequence[float],
        model_version: str,
        limit: int = 5,
        document_ids: Collection[str] | None = None,
    ) -> list[SearchHit]:
        """Nearest chunks, kept only if their document's row says completed.

        Pages further down the ranking while chunks of unfinished documents crowd
        the page. Known limit: gives up after Weaviate's result window (10,000
        objects), so a search swamped by unfinished documents may return fewer hits.
        """
        if document_ids is not None and not document_ids:
            return []
        filters = chunk_filter(model_version, document_ids=document_ids)
        page = max(limit * 4, 20)
        hits: list[SearchHit] = []
        offset = 0
        while len(hits) < limit and offset + page <= MAX_RESULTS:
            response = await self.collection.query.near_vector(
                near_vector=list(vector),
                target_vector=VECTOR_NAME,
                limit=page,
                offset=offset,
                filters=filters,
                return_metadata=MetadataQuery(distance=True),
                return_properties=["document_id", "chunk_index", "text"],
            )
            found = response.objects
            names = await self.documents.completed_names(
                {str(item.properties["document_id"]) for item in found}
            )
            for item in found:
                document_id = str(item.properties["document_id"])
                index = item.properties["chunk_index"]
                distance = item.metadata.distance
                if document_id not in names:
                    continue
                assert isinstance(index, int) and distance is not None
                hits.append(
                    SearchHit(
                        document_id,
                        names[document_id],
                        index,
                        str(item.properties["text"]),
                        1.0 - distance,
                    )
                )
            if len(found) < page:
                break
            offset += page
        return hits[:limit]

    async def _delete(self, filters: FilterReturn) -> int:
        """Delete everything that matches; one call deletes at most the server's
        result window, so repeat until nothing matches."""
        removed = 0
        while True:
            result = await self.collection.data.delete_many(where=filters)
            if result.failed:
                raise VectorWriteError(
                    f"Weaviate failed to delete {result.failed} of {result.matches} "
                    "chunks"
                )
            removed += result.successful
            if result.successful == 0:
                return removed
