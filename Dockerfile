# notifyq: one image for every role (api, worker, simulator); pick the role with the command.
FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY src ./src
RUN uv sync --frozen --no-dev

FROM python:3.11-slim
RUN useradd --system --uid 10001 notifyq
WORKDIR /app
COPY --from=build /app /app
ENV PATH="/app/.venv/bin:$PATH" NOTIFYQ_LOG_FORMAT=json NOTIFYQ_DATA_DIR=/tmp/notifyq
USER notifyq
EXPOSE 8080 9108
ENTRYPOINT ["notifyq"]
CMD ["api", "--host", "0.0.0.0"]
