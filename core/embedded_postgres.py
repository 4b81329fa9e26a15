"""Embedded PostgreSQL for the quick start and the tests.

`pgserver` ships real PostgreSQL 16 binaries (including pg_dump/pg_restore), so a fresh machine needs no
system server. Production never uses this module: it sets DATABASE_URL instead.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

_HANDLES: list[object] = []  # keeps pgserver handles alive for the life of the process


@dataclass(frozen=True)
class EmbeddedPostgres:
    """A running embedded server: its data folder, socket folder and binaries."""

    data_dir: Path
    socket_dir: Path
    bin_dir: Path

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://postgres:@/{database}?host={quote(str(self.socket_dir), safe='/')}"

    def ensure_database(self, database: str) -> str:
        """Create `database` if missing and return its SQLAlchemy URL."""
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                exists = conn.execute(
                    sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": database}
                ).scalar()
                if not exists:
                    conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
        finally:
            engine.dispose()
        return self.url(database)


def start_embedded_postgres(
    data_dir: str | os.PathLike[str], *, delete_on_exit: bool = False
) -> EmbeddedPostgres:
    """Start (or attach to) the embedded server whose files live in `data_dir`.

    pgserver reference-counts processes attached to one data folder, so the quick start, `dagster dev`
    and every run worker share a single server.
    """
    # pgserver keeps its lock file in the user runtime dir; containers and CI often leave it unset.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = Path(tempfile.gettempdir()) / f"runtime-{os.getuid()}"
        runtime.mkdir(mode=0o700, exist_ok=True)
        runtime.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    import pgserver  # imported lazily: production code paths never need it
    from pgserver import _commands

    path = Path(data_dir).resolve()
    path.mkdir(parents=True, exist_ok=True)
    # The quick start leaves the server running between commands (cleanup_mode=None); the tests stop it
    # and delete its files when the last attached process exits.
    server = pgserver.get_server(str(path), cleanup_mode="delete" if delete_on_exit else None)
    _HANDLES.append(server)
    socket_dir = Path(server.get_uri().split("host=", 1)[1])
    return EmbeddedPostgres(data_dir=path, socket_dir=socket_dir, bin_dir=Path(_commands.POSTGRES_BIN_PATH))
