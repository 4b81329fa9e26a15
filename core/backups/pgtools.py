"""PostgreSQL client tools for backups: a pg_dump/pg_restore whose major version matches the server, and a
libpq connection string that keeps the password out of argv and logs.

pg_dump refuses servers newer than itself and an older pg_restore cannot read a newer archive, so a
mismatch must stop the backup instead of producing a broken or unreadable dump.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


class PgToolError(RuntimeError):
    """No usable, version-matched PostgreSQL client tool was found, or a tool failed."""


@dataclass(frozen=True)
class PgTool:
    """A client binary and the PostgreSQL major version it belongs to."""

    path: Path
    major: int
    version: str


@dataclass(frozen=True)
class LibpqTarget:
    """What a libpq tool needs to reach one database: a conninfo string without the password, and an
    environment carrying the password (PGPASSWORD) so it never appears on a command line."""

    conninfo: str
    env: dict[str, str]
    database: str

    def for_database(self, database: str) -> LibpqTarget:
        return libpq_target_from_parts(self._parts() | {"dbname": database}, self.env.get("PGPASSWORD"))

    def _parts(self) -> dict[str, str]:
        return dict(_parse_conninfo(self.conninfo))


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _parse_conninfo(conninfo: str) -> list[tuple[str, str]]:
    pairs = re.findall(r"(\w+)='((?:\\.|[^'\\])*)'", conninfo)
    return [(k, re.sub(r"\\(.)", r"\1", v)) for k, v in pairs]


def libpq_target_from_parts(parts: dict[str, str], password: str | None) -> LibpqTarget:
    conninfo = " ".join(f"{key}={_quote(value)}" for key, value in parts.items() if value != "")
    env = {**os.environ}
    env.pop("PGPASSWORD", None)
    if password:
        env["PGPASSWORD"] = password
    return LibpqTarget(conninfo=conninfo, env=env, database=parts.get("dbname", ""))


def libpq_target(url: str) -> LibpqTarget:
    """Translate a SQLAlchemy/DATABASE_URL-style URL into libpq keywords (host may be a socket folder)."""
    parsed = make_url(
        url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url
    )
    parts: dict[str, str] = {}
    if parsed.host:
        parts["host"] = parsed.host
    if parsed.port:
        parts["port"] = str(parsed.port)
    if parsed.username:
        parts["user"] = parsed.username
    if parsed.database:
        parts["dbname"] = parsed.database
    for key, value in parsed.query.items():
        parts[key] = value if isinstance(value, str) else value[-1]
    return libpq_target_from_parts(parts, parsed.password)


def server_major_version(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SHOW server_version_num")).scalar_one()) // 10000


def tool_version(path: Path) -> PgTool:
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise PgToolError(f"{path} --version failed: {exc}") from exc
    match = _VERSION.search(out.stdout)
    if not match:
        raise PgToolError(f"cannot read a PostgreSQL version from {path} --version: {out.stdout.strip()!r}")
    return PgTool(path=path, major=int(match.group(1)), version=out.stdout.strip())


def _embedded_bin_dir() -> Path | None:
    try:
        from pgserver import _commands  # the binaries the embedded server itself runs
    except ImportError:
        return None
    return Path(_commands.POSTGRES_BIN_PATH)


def candidate_dirs(configured: str | None) -> list[tuple[str, Path | None]]:
    """Where to look, in order: the configured folder (config or PG_BIN_DIR), pgserver's, then PATH."""
    candidates: list[tuple[str, Path | None]] = []
    chosen = configured or os.environ.get("PG_BIN_DIR")
    if chosen:
        candidates.append(("configured", Path(chosen)))
    candidates.append(("embedded", _embedded_bin_dir()))
    candidates.append(("PATH", None))
    return candidates


def find_tool(name: str, server_major: int, configured_dir: str | None = None) -> PgTool:
    """The first `name` (pg_dump, pg_restore) whose major version equals the server's.

    A configured folder is authoritative: if it holds a mismatched tool we fail rather than fall back, so a
    production setting can never be silently overridden.
    """
    seen: list[str] = []
    for source, folder in candidate_dirs(configured_dir):
        if folder is None:
            found = shutil.which(name)
            path = Path(found) if found else None
        else:
            path = folder / name
            if not path.exists():
                path = None
        if path is None:
            if source == "configured":
                raise PgToolError(f"configured PostgreSQL bin folder {folder} has no {name}")
            continue
        tool = tool_version(path)
        if tool.major == server_major:
            return tool
        if source == "configured":
            raise PgToolError(
                f"configured {name} at {path} is PostgreSQL {tool.major} but the server is {server_major}; "
                "set PG_BIN_DIR (or database.pg_bin_dir in config/backups.yaml) to matching binaries"
            )
        seen.append(f"{path} ({tool.major})")
    raise PgToolError(
        f"no {name} for PostgreSQL {server_major} found (saw: {', '.join(seen) or 'none'}); "
        "set PG_BIN_DIR to the server's client binaries"
    )
