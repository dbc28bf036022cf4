-- Schema of the embedded default: relational rows, pgvector chunks and the graph, all
-- in one PostgreSQL. Every statement is idempotent; workers apply it on start-up.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE IF NOT EXISTS documents (
    id text PRIMARY KEY,
    name text NOT NULL,
    content_hash text NOT NULL,
    blob_uri text NOT NULL,
    size_bytes bigint NOT NULL,
    status text NOT NULL DEFAULT 'processing',
    media_type text,
    encoding text,
    title text,
    pages integer,
    chars integer,
    body text,
    chunk_count integer,
    key_phrases jsonb,
    summary text,
    embedding_model text,
    embedding_model_version text,
    summary_model text,
    summary_model_version text,
    error_type text,
    error_message text,
    workflow_id text,
    duration_s double precision,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);
CREATE INDEX IF NOT EXISTS documents_content_hash ON documents (content_hash);

-- Which document owns a content hash: the first one registered. Another name for the
-- same bytes is a duplicate of it.
CREATE TABLE IF NOT EXISTS document_contents (
    content_hash text PRIMARY KEY,
    document_id text NOT NULL REFERENCES documents (id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS chunks (
    document_id text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    model_version text NOT NULL,
    chunk_index integer NOT NULL,
    model_name text NOT NULL,
    body text NOT NULL,
    start_char integer NOT NULL,
    end_char integer NOT NULL,
    embedding vector(384) NOT NULL,
    PRIMARY KEY (document_id, model_version, chunk_index)
);
CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw
    ON chunks USING hnsw (embedding vector_cosine_ops);

CREATE TABLE IF NOT EXISTS graph_nodes (
    id text PRIMARY KEY,
    kind text NOT NULL,
    label text NOT NULL,
    properties jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE IF NOT EXISTS graph_edges (
    source_id text NOT NULL REFERENCES graph_nodes (id) ON DELETE CASCADE,
    target_id text NOT NULL REFERENCES graph_nodes (id) ON DELETE CASCADE,
    kind text NOT NULL,
    weight real NOT NULL DEFAULT 1.0,
    PRIMARY KEY (source_id, target_id, kind)
);
CREATE INDEX IF NOT EXISTS graph_edges_target ON graph_edges (target_id);

-- Notifications the webhook never took, with the last reason: kept so that none is
-- lost silently, and so they can be sent again once the endpoint is back.
CREATE TABLE IF NOT EXISTS notifications (
    document_id text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    status text NOT NULL,
    delivered boolean NOT NULL,
    error text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (document_id, status)
);
