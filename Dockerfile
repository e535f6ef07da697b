# One image for ingest, classify and notify: `redalert ingest|classify|notify`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN useradd --create-home --uid 10001 redalert

# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p shared services && touch shared/__init__.py services/__init__.py \
    && pip install -e . \
    && rm -rf shared services

COPY shared ./shared
COPY services ./services
COPY config ./config
COPY examples ./examples

USER redalert
ENV REDALERT_HTTP_HOST=0.0.0.0 \
    REDALERT_DATA_DIR=/tmp/redalert
EXPOSE 8080
CMD ["redalert", "ingest"]
