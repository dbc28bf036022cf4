# The Temporal worker image, one for all three queues: `heysh worker ai|storage|general`
# and the rest of the CLI. No torch and no models; those live in the Ray image.
#   docker build -f docker/worker.Dockerfile -t heysh-worker .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY orchestration ./orchestration
COPY ray_serve ./ray_serve
COPY storage_tier ./storage_tier
COPY general_tier ./general_tier
# The workers extra adds what the storage and general tiers parse and store with; the
# AI tier needs only the base install, which this includes.
# The project's own pins are in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install '.[workers]'

# Blob URIs are file:// paths, so every worker mounts the shared blob store here. The
# directory is created owned by the worker's user so that a fresh volume is too.
RUN useradd --uid 10001 --user-group --create-home heysh \
    && mkdir -p /var/lib/heysh/blobs \
    && chown heysh:heysh /var/lib/heysh/blobs
ENV HEYSH_BLOB_ROOT=/var/lib/heysh/blobs \
    HEYSH_STATE_DIR=/tmp/heysh
USER 10001:10001

CMD ["heysh", "worker", "general"]
