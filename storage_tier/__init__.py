"""Storage queue: PostgreSQL rows, the vector index, the document graph and blobs."""
