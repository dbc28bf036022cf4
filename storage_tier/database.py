"""PostgreSQL connection pool with the pgvector codec, and the schema migration."""

import json
from importlib.resources import files

import asyncpg
import numpy as np

# Serialises concurrent migrations from several workers starting at once.
_MIGRATION_LOCK_ID = 0x6865797368


async def _init_connection(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
    )
    await connection.set_type_codec(
        "vector",
        encoder=_encode_vector,
        decoder=_decode_vector,
        schema="public",
        format="text",
    )


def _encode_vector(vector: "list[float] | np.ndarray") -> str:
    return "[" + ",".join(f"{float(x):.7g}" for x in vector) + "]"


def _decode_vector(text: str) -> np.ndarray:
    return np.array(json.loads(text), dtype=np.float32)


async def migrate(dsn: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_ID)
        try:
            schema = files("storage_tier").joinpath("schema.sql").read_text()
            await connection.execute(schema)
        finally:
            await connection.execute(
                "SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_ID
            )
    finally:
        await connection.close()


async def create_pool(dsn: str, size: int = 10) -> asyncpg.Pool:
    """Migrate, then open a pool whose connections know the vector type."""
    await migrate(dsn)
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=size, init=_init_connection
    )
    assert pool is not None
    return pool
