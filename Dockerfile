# secretsync container image: a small, non-root, read-only-root friendly sidecar.
#   docker build -t secretsync:0.3.0 --build-arg VERSION=0.3.0 .
# Run: mount sync.yaml at /etc/secretsync/sync.yaml and a volume where the
# outputs go (/etc/kafka in sync.yaml.example). See packaging/README.md.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# -- build: a venv with the locked dependencies, then secretsync itself ---------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# Dependencies first, from the lock only (exact versions, every file's hash checked),
# so this layer is reused until requirements.lock changes (`make lock`).
COPY requirements.lock ./
RUN python -m venv --without-pip /opt/secretsync \
 && pip --python /opt/secretsync/bin/python install \
      --require-hashes --no-deps --only-binary=:all: -r requirements.lock
# Then the project, without resolving anything again; `pip check` fails the build
# if the lock misses a dependency of secretsync or of a locked package.
COPY pyproject.toml README.md CHANGELOG.md LICENSE sync.yaml.example ./
COPY daemon ./daemon
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip --python /opt/secretsync/bin/python install --no-deps --no-index /wheels/secretsync_sidecar-*.whl \
 && pip --python /opt/secretsync/bin/python check \
 && /opt/secretsync/bin/python -m compileall -q /opt/secretsync

# -- runtime: the same Python, the venv, nothing else ---------------------------------
FROM ${PYTHON_IMAGE}
ARG VERSION=0.3.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="secretsync" \
      org.opencontainers.image.description="Sidecar that keeps Java Kafka/Schema Registry client.properties files in step with AWS Secrets Manager" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/secretsync/secretsync" \
      org.opencontainers.image.documentation="https://github.com/secretsync/secretsync/blob/main/README.md#path-to-production"

# A fixed numeric uid/gid, so Kubernetes runAsNonRoot can check it and volumes
# can be prepared for it; no home directory, no shell.
# /etc/kafka, the output directory, is owned by 10001:10001 with mode 0750: the
# app reads the files as the same uid (both ECS containers and both pod
# containers run as 10001), nobody else gets in.
RUN groupadd --system --gid 10001 secretsync \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin secretsync \
 && install -d -o 10001 -g 10001 -m 0750 /etc/kafka \
 && install -d -m 0755 /etc/secretsync
# Declared after the directory exists with its owner: a new Docker volume (and an
# ECS task volume without host.sourcePath, on Fargate too) mounted here starts as
# a copy of it, 10001:10001 0750, instead of root:root 0755, which uid 10001
# cannot write. Bind mounts of a host directory get no such copy (ecs/README.md).
# Nothing may be added under /etc/kafka after this line.
VOLUME ["/etc/kafka"]

COPY --from=build /opt/secretsync /opt/secretsync
COPY sync.yaml.example /usr/share/doc/secretsync/sync.yaml.example

# Nothing is written at run time but the output files: no bytecode, no caches.
# The config is read from /etc/secretsync/sync.yaml (the CLI's default).
ENV PATH=/opt/secretsync/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/nonexistent

USER 10001:10001
WORKDIR /
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["secretsync", "health"]
ENTRYPOINT ["secretsync"]
CMD ["run"]
