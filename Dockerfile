# syntax=docker/dockerfile:1
# The engine's one image: the worker, the HTTP API with the dashboard, the codec server and the
# migration job; the command names the role (deploy/entrypoint.sh). Build from the repository root:
#   docker build -t referrals:$(git describe --always) .
# Only the runtime dependencies are installed: not the test or bench extras, and not the embedded
# stack's Temporal and PostgreSQL binaries (`make run` installs those), since a deployment is given
# its Temporal cluster and PostgreSQL server.
ARG PYTHON_IMAGE=python:3.11-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/referrals
WORKDIR /src
# .dockerignore lets in only the packages, worker.py, pyproject.toml and the entrypoint.
COPY . .
RUN /opt/referrals/bin/pip install --no-cache-dir . \
    && /opt/referrals/bin/python -m compileall -q /opt/referrals/lib

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 referrals \
    && useradd --system --uid 10001 --gid referrals --home-dir /var/lib/referrals --create-home \
       --shell /usr/sbin/nologin referrals
COPY --from=build /opt/referrals /opt/referrals
COPY deploy/entrypoint.sh /usr/local/bin/referrals-entrypoint
# Inside a container the servers listen on every interface; logs are JSON lines; nothing is
# written beside the code (DATA_DIR holds no key in a deployment: every secret is given).
ENV PATH=/opt/referrals/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LOG_FORMAT=json \
    API_HOST=0.0.0.0 \
    CODEC_SERVER_HOST=0.0.0.0 \
    DATA_DIR=/var/lib/referrals
WORKDIR /var/lib/referrals
USER 10001:10001
# The API and dashboard, the codec server, the worker's metrics and health.
EXPOSE 8000 8081 9464
# Each role answers on its own port and path: compose and Kubernetes probe each (`probe` below).
HEALTHCHECK NONE
ENTRYPOINT ["referrals-entrypoint"]
CMD ["worker"]
