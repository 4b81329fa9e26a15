"""The configured blob sources (config/sources.yaml), shared by migration, retention and usage.

Everything is validated before any run touches data: identifiers must be plain SQL identifiers (they
are interpolated into SQL as quoted names, never as values), JSON paths must parse, and
`check_against_database` refuses tables or columns that do not exist, with a message saying which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from core.config import ConfigError, load_config

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_PATH_STEP = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<index>\[(?:\*|\d+)\])?")

Format = Literal["base64", "data_uri", "json_text", "jsonb"]
Accept = Literal["images", "documents", "any"]
Reference = Literal["key", "url", "catalog_id"]

ACCEPTED_KINDS: dict[str, frozenset[str]] = {
    "images": frozenset({"image"}),
    "documents": frozenset({"image", "document"}),
    "any": frozenset({"image", "document", "archive", "other"}),
}


class SourceConfigError(ConfigError):
    """A source definition is unusable; nothing has run."""


def plain_identifier(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise SourceConfigError(
            f"{what} must be a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*), got {value!r}"
        )
    return value


def parse_json_path(path: str) -> list[tuple[str, str | None]]:
    """`images[*].data` -> [("images", "*"), ("data", None)]; `pages[0].image` -> [("pages", "0"), ...]."""
    steps: list[tuple[str, str | None]] = []
    for part in path.split("."):
        match = _PATH_STEP.fullmatch(part)
        if not match:
            raise SourceConfigError(f"JSON path {path!r}: step {part!r} is not name, name[*] or name[N]")
        index = match.group("index")
        steps.append((match.group("name"), index[1:-1] if index else None))
    return steps


@dataclass(frozen=True)
class BlobSource:
    name: str
    table: str
    primary_key: str
    owner_column: str
    column: str
    format: Format
    json_paths: tuple[str, ...]
    accept: Accept
    reference: Reference
    soft_delete_column: str | None
    schema: str = "public"

    @property
    def allowed_kinds(self) -> frozenset[str]:
        return ACCEPTED_KINDS[self.accept]

    @property
    def qualified_table(self) -> str:
        return f'"{self.schema}"."{self.table}"'


@dataclass(frozen=True)
class OwnersTable:
    table: str
    primary_key: str
    last_active_column: str
    soft_delete_column: str | None
    schema: str = "public"


@dataclass(frozen=True)
class SourcesConfig:
    owners: OwnersTable
    sources: tuple[BlobSource, ...]

    def by_name(self, name: str) -> BlobSource:
        for source in self.sources:
            if source.name == name:
                return source
        raise SourceConfigError(f"no source named {name!r}; configured: {[s.name for s in self.sources]}")


def _choice(value: Any, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise SourceConfigError(f"{what} must be one of {list(allowed)}, got {value!r}")
    return str(value)


def parse_source(raw: dict[str, Any], schema: str = "public") -> BlobSource:
    name = plain_identifier(raw.get("name"), "source name")
    where = f"source {name!r}"
    fmt = _choice(raw.get("format"), ("base64", "data_uri", "json_text", "jsonb"), f"{where}: format")
    paths = raw.get("json_paths") or ([raw["json_path"]] if raw.get("json_path") else [])
    if fmt in ("json_text", "jsonb"):
        if not paths:
            raise SourceConfigError(f"{where}: a {fmt} source needs json_path or json_paths")
        for path in paths:
            parse_json_path(path)
    elif paths:
        raise SourceConfigError(f"{where}: json_path only applies to json_text and jsonb sources")
    soft = raw.get("soft_delete_column")
    return BlobSource(
        name=name,
        table=plain_identifier(raw.get("table"), f"{where}: table"),
        primary_key=plain_identifier(raw.get("primary_key", "id"), f"{where}: primary_key"),
        owner_column=plain_identifier(raw.get("owner_column"), f"{where}: owner_column"),
        column=plain_identifier(raw.get("column"), f"{where}: column"),
        format=fmt,  # type: ignore[arg-type]
        json_paths=tuple(paths),
        accept=_choice(raw.get("accept", "images"), ("images", "documents", "any"), f"{where}: accept"),  # type: ignore[arg-type]
        reference=_choice(raw.get("reference", "key"), ("key", "url", "catalog_id"), f"{where}: reference"),  # type: ignore[arg-type]
        soft_delete_column=plain_identifier(soft, f"{where}: soft_delete_column") if soft else None,
        schema=plain_identifier(raw.get("schema", schema), f"{where}: schema"),
    )


def parse_sources_config(raw: dict[str, Any]) -> SourcesConfig:
    owners_raw = raw.get("owners") or {}
    schema = plain_identifier(raw.get("schema", "public"), "schema")
    owners = OwnersTable(
        table=plain_identifier(owners_raw.get("table", "users"), "owners.table"),
        primary_key=plain_identifier(owners_raw.get("primary_key", "id"), "owners.primary_key"),
        last_active_column=plain_identifier(
            owners_raw.get("last_active_column", "last_login_at"), "owners.last_active_column"
        ),
        soft_delete_column=plain_identifier(owners_raw["soft_delete_column"], "owners.soft_delete_column")
        if owners_raw.get("soft_delete_column")
        else None,
        schema=schema,
    )
    sources = tuple(parse_source(item, schema) for item in raw.get("sources") or [])
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise SourceConfigError(f"source names must be unique, got {names}")
    return SourcesConfig(owners=owners, sources=sources)


def load_sources_config() -> SourcesConfig:
    return parse_sources_config(load_config("sources"))


def check_against_database(conn: sa.Connection, config: SourcesConfig) -> None:
    """Refuse, before anything runs, a source naming a table or column the database does not have."""
    inspector = sa.inspect(conn)
    problems: list[str] = []

    def check(schema: str, table: str, columns: list[str | None], where: str) -> None:
        if not inspector.has_table(table, schema=schema):
            problems.append(f"{where}: table {schema}.{table} does not exist")
            return
        existing = {c["name"] for c in inspector.get_columns(table, schema=schema)}
        problems.extend(
            f"{where}: column {schema}.{table}.{column} does not exist"
            for column in columns
            if column and column not in existing
        )

    owners = config.owners
    check(
        owners.schema,
        owners.table,
        [owners.primary_key, owners.last_active_column, owners.soft_delete_column],
        "owners",
    )
    for source in config.sources:
        check(
            source.schema,
            source.table,
            [source.primary_key, source.owner_column, source.column, source.soft_delete_column],
            f"source {source.name!r}",
        )
    if problems:
        raise SourceConfigError("; ".join(problems))
