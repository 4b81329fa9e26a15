# The user-code image for Kubernetes (deploy/k8s/values.yaml): the platform, dagster-k8s, Pillow with WebP
# and AVIF (Pillow's wheels bundle libwebp and libavif), and pg_dump/pg_restore of the database server's
# major version for the backups (PostgreSQL's own apt repository; set PG_MAJOR to your server's).
#
#   docker build --build-arg PG_MAJOR=16 -t registry.example.com/media-platform:<tag> .
FROM python:3.11-slim-bookworm

ARG PG_MAJOR=16
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl gnupg \
 && install -d /usr/share/postgresql-common/pgdg \
 && curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
      https://www.postgresql.org/media/keys/ACCC4CF8.asc \
 && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
      > /etc/apt/sources.list.d/pgdg.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}" \
 && apt-get purge -y curl gnupg && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
# Backups use these binaries (core/backups/pgtools.py: PG_BIN_DIR before the embedded ones and PATH).
ENV PG_BIN_DIR=/usr/lib/postgresql/${PG_MAJOR}/bin \
    PYTHONUNBUFFERED=1 \
    MEDIA_EXECUTOR=k8s \
    MEDIA_CONFIG_DIR=/etc/media-platform/config

WORKDIR /opt/media-platform
COPY pyproject.toml README.md alembic.ini ./
COPY core core
COPY assets assets
COPY resources resources
COPY schedules schedules
COPY orchestration orchestration
COPY migrations migrations
COPY config config
COPY deploy deploy
# Editable: the code finds alembic.ini, migrations/ and deploy/ beside itself, as in a checkout.
RUN pip install --no-cache-dir -e ".[k8s]" \
 && python -c "from PIL import features; assert features.check('webp') and features.check('avif'), 'Pillow lacks WebP/AVIF'" \
 && "${PG_BIN_DIR}/pg_dump" --version && "${PG_BIN_DIR}/pg_restore" --version

# The Helm chart runs `dagster api grpc --module-name orchestration.definitions --attribute defs` here.
EXPOSE 3030
CMD ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", "3030", "--module-name", "orchestration.definitions", "--attribute", "defs"]
