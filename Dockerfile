# notifyq: one image for every role; the first argument picks it (deploy/docker-entrypoint.sh):
# api, worker, applier, simulator or migrate. docs/deploy.md shows it in compose and in Kubernetes.
# The base is pinned to an exact Python patch release and Debian release: a rebuild gets the same one.
ARG PYTHON_IMAGE=python:3.11.17-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY src ./src
RUN uv sync --frozen --no-dev

FROM ${PYTHON_IMAGE}
# uid and gid 10001, numeric in USER, so Kubernetes' runAsNonRoot can check them without /etc/passwd
RUN groupadd --system --gid 10001 notifyq \
    && useradd --system --uid 10001 --gid 10001 --no-create-home notifyq \
    && install -d -o 10001 -g 10001 /var/lib/notifyq
WORKDIR /app
COPY --from=build /app /app
COPY --chmod=0755 deploy/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# NOTIFYQ_DATA_DIR holds only the entrypoint's note for the health check when Redis and the database are
# set; Kubernetes mounts an emptyDir there, the root filesystem being read-only
ENV PATH="/app/.venv/bin:$PATH" NOTIFYQ_LOG_FORMAT=json NOTIFYQ_DATA_DIR=/var/lib/notifyq
USER 10001:10001
# the API (and the simulator on 8099, in staging), the worker's /metrics and /healthz
EXPOSE 8080 8099 9108
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["docker-entrypoint.sh", "healthcheck"]
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["api"]
