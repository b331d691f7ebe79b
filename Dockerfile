# One image for the nodes. The base is a build argument so the image builds on any slim Python
# base; the JavaScript client is installed in its own stage; no compiler or test tool ships.
ARG BASE_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS web
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error \
    && mkdir -p vendor && cp node_modules/socket.io-client/dist/socket.io.min.js vendor/

FROM ${BASE_IMAGE} AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY requirements.lock /tmp/requirements.lock
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --no-deps --only-binary=:all: \
       -r /tmp/requirements.lock \
    && /opt/venv/bin/pip check

FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    BIND=0.0.0.0:8000
RUN groupadd --system rooms && useradd --system --gid rooms --home-dir /app --no-create-home rooms
WORKDIR /app
COPY --from=deps /opt/venv /opt/venv
COPY service ./service
COPY --from=web /build/vendor ./service/static/vendor
USER rooms
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["gunicorn", "-c", "service/node/gunicorn_conf.py", "service.node.wsgi:app"]
