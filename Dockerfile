# secretsync container image: a small, non-root, read-only-root friendly sidecar.
#   docker build -t secretsync:0.1.0 --build-arg VERSION=0.1.0 .
# Run: mount sync.yaml at /etc/secretsync/sync.yaml and a volume where the
# outputs go (/etc/kafka in sync.yaml.example). See packaging/README.md.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# -- build: wheels for secretsync and every dependency, then a venv from them -------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md CHANGELOG.md sync.yaml.example ./
COPY daemon ./daemon
RUN pip wheel --wheel-dir /wheels . \
 && python -m venv --without-pip /opt/secretsync \
 && pip --python /opt/secretsync/bin/python install --no-index --find-links /wheels /wheels/secretsync_sidecar-*.whl \
 && /opt/secretsync/bin/python -m compileall -q /opt/secretsync

# -- runtime: the same Python, the venv, nothing else ---------------------------------
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="secretsync" \
      org.opencontainers.image.description="Sidecar that keeps Java Kafka/Schema Registry client.properties files in step with AWS Secrets Manager" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/secretsync/secretsync" \
      org.opencontainers.image.documentation="https://github.com/secretsync/secretsync/blob/main/README.md#deploying"

# A fixed numeric uid/gid, so Kubernetes runAsNonRoot can check it and volumes
# can be prepared for it; no home directory, no shell.
RUN groupadd --system --gid 10001 secretsync \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin secretsync \
 && install -d -o 10001 -g 10001 -m 0750 /etc/kafka \
 && install -d -m 0755 /etc/secretsync

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
