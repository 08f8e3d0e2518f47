# syntax=docker/dockerfile:1
#
# Retail Sync Gateway container image.
#
#   docker build -t retail-sync-gateway .
#
# `retail-gateway serve` refuses to start on an unmigrated database, so the schema must be
# migrated ONCE before any replica starts, e.g. as an init job / one-off container against the
# same DATABASE_URL (or the same /app/var volume for the embedded SQLite store):
#
#   docker run --rm -v gateway-var:/app/var retail-sync-gateway retail-gateway migrate
#   docker run -d -p 8000:8000 -v gateway-var:/app/var retail-sync-gateway
#
# Settings come from the environment: GATEWAY_* (see gateway_infra/settings.py), plus
# DATABASE_URL (default sqlite:///./var/gateway.db, i.e. /app/var/gateway.db) and REDIS_URL.

############################
# Stage 1: build the wheels #
############################
FROM python:3.12-slim AS builder

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src

RUN pip install --no-cache-dir "pip==24.3.1"

# Only what the build needs; .dockerignore keeps caches, tests and the venv out of the context.
COPY pyproject.toml gateway.py ./
COPY contracts/ contracts/
COPY gateway_infra/ gateway_infra/
COPY system_api/ system_api/
COPY process_api/ process_api/
COPY partner_api/ partner_api/

# The project's own wheel first (no deps), then the wheels of all its dependencies, into /wheels,
# with the `tracing` extra (the OTLP exporter) so GATEWAY_OTEL_EXPORTER=otlp works in the image.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && pip wheel --no-cache-dir --wheel-dir /wheels --find-links /wheels \
       "$(ls /wheels/retail_sync_gateway-*.whl)[tracing]"

##########################
# Stage 2: runtime image #
##########################
FROM python:3.12-slim AS runtime

LABEL org.opencontainers.image.title="retail-sync-gateway" \
      org.opencontainers.image.description="Integration gateway that governs order, inventory, price and return synchronisation between ERP, WMS and marketplaces." \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.source="https://example.com/retail-sync-gateway" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000

# Fixed, unprivileged uid/gid so volume ownership is predictable across rebuilds.
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --no-log-init --uid 10001 --gid gateway \
       --home-dir /app --no-create-home --shell /usr/sbin/nologin gateway

# Install from the builder's wheels only (no index, no compilers); the wheels are bind-mounted
# so they never land in an image layer.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels \
      "$(ls /wheels/retail_sync_gateway-*.whl)[tracing]"

WORKDIR /app

# Writable state directory for the embedded SQLite store (sqlite:///./var/gateway.db).
RUN mkdir -p /app/var \
    && chown -R gateway:gateway /app
VOLUME ["/app/var"]

USER 10001:10001

EXPOSE 8000

# Liveness probe in Python: slim images ship no curl/wget. Exec form (no shell), so the port
# comes from the GATEWAY_PORT environment variable inside Python; any failure (connection
# error, timeout, non-2xx via HTTPError, non-200) exits with status 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request\ntry:\n    r = urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GATEWAY_PORT', '8000') + '/healthz', timeout=4)\n    sys.exit(0 if r.status == 200 else 1)\nexcept Exception:\n    sys.exit(1)"]

CMD ["retail-gateway", "serve"]
