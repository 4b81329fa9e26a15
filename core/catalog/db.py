"""Catalog engine and schema upgrades (Alembic, applied automatically and safely from many processes)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from core.catalog.models import CATALOG_SCHEMA

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"
#: pg_advisory_lock key so concurrent run workers do not race on the schema upgrade
_UPGRADE_LOCK_KEY = 0x6D65_6469_6131  # "media1"


def sqlalchemy_url(url: str) -> str:
    """Normalise postgres:// and postgresql:// URLs to the psycopg 3 driver SQLAlchemy should use."""
    parsed = make_url(
        url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url
    )
    if parsed.drivername in ("postgresql", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


@lru_cache(maxsize=16)
def get_engine(url: str) -> sa.Engine:
    """One pooled engine per URL per process."""
    return sa.create_engine(sqlalchemy_url(url), pool_pre_ping=True, pool_size=5, max_overflow=5)


def alembic_config(url: str) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.attributes["database_url"] = sqlalchemy_url(url)
    return config


def upgrade_catalog(url: str, revision: str = "head") -> None:
    """Bring the catalog schema to `revision`; serialised by an advisory lock across processes."""
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _UPGRADE_LOCK_KEY})
            try:
                config = alembic_config(url)
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
                conn.commit()
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _UPGRADE_LOCK_KEY})
                conn.commit()
    finally:
        engine.dispose()


def downgrade_catalog(url: str, revision: str = "base") -> None:
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            config = alembic_config(url)
            config.attributes["connection"] = conn
            command.downgrade(config, revision)
            conn.commit()
    finally:
        engine.dispose()


def _revision(conn: sa.Connection) -> str | None:
    exists = conn.execute(
        sa.text("SELECT to_regclass(:t)"), {"t": f"{CATALOG_SCHEMA}.alembic_version"}
    ).scalar()
    if not exists:
        return None
    return conn.execute(sa.text(f"SELECT version_num FROM {CATALOG_SCHEMA}.alembic_version")).scalar()


def current_revision(url: str) -> str | None:
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return _revision(conn)
    finally:
        engine.dispose()


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest revision in migrations/, parsed once per process."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(Config(str(ALEMBIC_INI))).get_current_head()
    if head is None:
        raise RuntimeError(f"no catalog migrations found through {ALEMBIC_INI}")
    return head


def ensure_catalog_current(url: str) -> bool:
    """Upgrade the catalog to head unless it is there already; return whether an upgrade ran.

    Every step process of a run calls this when its Postgres resource starts. A current catalog costs
    two one-row queries on the pooled connection the step goes on to use, instead of Alembic's upgrade
    machinery and the advisory lock (~0.15 s per step). A catalog that is behind, or mid-upgrade in another
    process, takes the locked `upgrade_catalog` path.
    """
    with get_engine(url).connect() as conn:
        current = _revision(conn)
    if current == head_revision():
        return False
    upgrade_catalog(url)
    return True
