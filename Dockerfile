# syntax=docker/dockerfile:1
# points-service: build the wheels with the compilers, run them without.
#   docker build -t points-service .
#   docker run -p 8000:8000 -e REDIS_URL=... -e DATABASE_URL=... points-service
# With neither URL set it serves on the embedded defaults (SQLite + embedded Redis in
# /data), which suits a trial, not a cluster: see deploy/RUNBOOK.md.

FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY points_service ./points_service
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 points \
    && useradd --system --uid 10001 --gid points --home-dir /app --shell /usr/sbin/nologin points
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels points-service \
    && rm -rf /wheels
WORKDIR /app
COPY rules ./rules
COPY leaderboards ./leaderboards
RUN mkdir /data && chown points:points /data
ENV POINTS_HOST=0.0.0.0 \
    POINTS_PORT=8000 \
    POINTS_DATA_DIR=/data \
    POINTS_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
USER points:points
EXPOSE 8000
VOLUME ["/data"]
# SIGTERM: stop taking requests, finish those in flight, flush the group commit, stop.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2).status != 200)"]
CMD ["points-service", "serve"]
