"""The configured blob sources (config/sources.yaml), shared by migration, retention and usage.

Everything is validated before any run touches data: identifiers must be plain SQL identifiers (they
are interpolated into SQL as quoted names, never as values), JSON paths must parse, source names are
unique (a source's name is part of the identity of every reference and quarantine record it makes, so it
must stay stable), and `check_against_database` refuses tables or columns that do not exist, with a
message saying which.

A source's owner is a column of its own table (`owner_column`) or of a parent row reached through one
join (`owner_join`: e.g. `photos.album_id -> albums.id`, owner `albums.owner_email`). `owner_sql`
renders either as one SQL expression over the source row, so every reader asks the same question.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.config import ConfigError, config_path, load_config

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


def _identifier(value: str) -> str:
    return plain_identifier(value, "identifier")


Identifier = Annotated[str, AfterValidator(_identifier)]


def _q(name: str) -> str:
    return f'"{name}"'


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class OwnerJoin(_Model):
    """The owner lives on a parent row: `<source table>.<via> = <schema>.<table>.<key>`, owner `<column>`."""

    via: Identifier
    table: Identifier
    key: Identifier = "id"
    column: Identifier
    db_schema: Identifier | None = Field(None, alias="schema")  # None: the source's schema


class BlobSource(_Model):
    name: Identifier
    db_schema: Identifier = Field("public", alias="schema")
    table: Identifier
    primary_key: Identifier = "id"
    owner_column: Identifier | None = None
    owner_join: OwnerJoin | None = None
    column: Identifier
    format: Format
    json_paths: tuple[str, ...] = ()
    accept: Accept = "images"
    reference: Reference = "key"
    soft_delete_column: Identifier | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_json_path(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "json_path" in raw:
            raw = dict(raw)
            path = raw.pop("json_path")
            if raw.get("json_paths"):
                raise SourceConfigError("give json_path or json_paths, not both")
            raw["json_paths"] = [path] if path else []
        return raw

    @model_validator(mode="after")
    def _consistent(self) -> BlobSource:
        where = f"source {self.name!r}"
        if (self.owner_column is None) == (self.owner_join is None):
            raise SourceConfigError(f"{where}: give exactly one of owner_column or owner_join")
        if self.format in ("json_text", "jsonb"):
            if not self.json_paths:
                raise SourceConfigError(f"{where}: a {self.format} source needs json_path or json_paths")
            for path in self.json_paths:
                parse_json_path(path)
        elif self.json_paths:
            raise SourceConfigError(f"{where}: json_path only applies to json_text and jsonb sources")
        return self

    @property
    def schema(self) -> str:  # type: ignore[override]
        return self.db_schema

    @property
    def allowed_kinds(self) -> frozenset[str]:
        return ACCEPTED_KINDS[self.accept]

    @property
    def qualified_table(self) -> str:
        return f"{_q(self.db_schema)}.{_q(self.table)}"

    @property
    def identity(self) -> dict[str, str]:
        """The source's part of a reference's / quarantine record's identity (the row adds pk and path)."""
        return {
            "source_name": self.name,
            "source_schema": self.db_schema,
            "source_table": self.table,
            "source_column": self.column,
        }

    def owner_sql(self, alias: str = "s") -> str:
        """SQL for the owner of the source row `alias` (a column of it, or of its parent row)."""
        if self.owner_column is not None:
            return f"{alias}.{_q(self.owner_column)}"
        join = self.owner_join
        assert join is not None
        parent = f"{_q(join.db_schema or self.db_schema)}.{_q(join.table)}"
        return (
            f"(SELECT p.{_q(join.column)} FROM {parent} p "
            f"WHERE p.{_q(join.key)} = {alias}.{_q(join.via)} LIMIT 1)"
        )

    @property
    def owner_description(self) -> str:
        if self.owner_column is not None:
            return f"{self.table}.{self.owner_column}"
        join = self.owner_join
        assert join is not None
        return f"{self.table}.{join.via} -> {join.table}.{join.key}, owner {join.table}.{join.column}"


class OwnersTable(_Model):
    table: Identifier = "users"
    db_schema: Identifier = Field("public", alias="schema")
    primary_key: Identifier = "id"
    #: When the owner was last active; without it the inactive-users policy is off (never guessed).
    last_active_column: Identifier | None = None
    soft_delete_column: Identifier | None = None

    @property
    def schema(self) -> str:  # type: ignore[override]
        return self.db_schema

    @property
    def qualified_table(self) -> str:
        return f"{_q(self.db_schema)}.{_q(self.table)}"


class SourcesConfig(_Model):
    """config/sources.yaml. A top-level `schema:` is the default schema of the owners table and sources."""

    db_schema: Identifier = Field("public", alias="schema")
    owners: OwnersTable = OwnersTable()
    sources: tuple[BlobSource, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _default_schema(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        schema = raw.get("schema", "public")
        raw = dict(raw)
        if isinstance(raw.get("owners"), dict) or raw.get("owners") is None:
            raw["owners"] = {"schema": schema, **(raw.get("owners") or {})}
        if isinstance(raw.get("sources"), list):
            raw["sources"] = [
                {"schema": schema, **item} if isinstance(item, dict) else item for item in raw["sources"]
            ]
        elif raw.get("sources") is None:
            raw["sources"] = []
        return raw

    @model_validator(mode="after")
    def _unique_names(self) -> SourcesConfig:
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise SourceConfigError(f"source names must be unique, got {names}")
        return self

    @property
    def schema(self) -> str:  # type: ignore[override]
        return self.db_schema

    def by_name(self, name: str) -> BlobSource:
        for source in self.sources:
            if source.name == name:
                return source
        raise SourceConfigError(f"no source named {name!r}; configured: {[s.name for s in self.sources]}")


def _refused(exc: ValidationError, what: str) -> SourceConfigError:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or 'top level'}: "
        f"{error['msg'].removeprefix('Value error, ')}"
        for error in exc.errors()
    )
    return SourceConfigError(f"{what}: {problems}")


def parse_source(raw: dict[str, Any], schema: str = "public") -> BlobSource:
    try:
        return BlobSource.model_validate({"schema": schema, **raw})
    except ValidationError as exc:
        raise _refused(exc, f"source {raw.get('name')!r}") from None


def parse_sources_config(raw: dict[str, Any], what: str = "sources configuration") -> SourcesConfig:
    try:
        return SourcesConfig.model_validate(raw)
    except ValidationError as exc:
        raise _refused(exc, what) from None


def load_sources_config() -> SourcesConfig:
    return parse_sources_config(load_config("sources"), str(config_path("sources")))


def check_against_database(conn: sa.Connection, config: SourcesConfig) -> None:
    """Refuse, before anything runs, a source naming a table or column the database does not have
    (its owner's parent table and columns included)."""
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
        join = source.owner_join
        check(
            source.schema,
            source.table,
            [
                source.primary_key,
                source.owner_column,
                join.via if join else None,
                source.column,
                source.soft_delete_column,
            ],
            f"source {source.name!r}",
        )
        if join is not None:
            check(
                join.db_schema or source.schema,
                join.table,
                [join.key, join.column],
                f"source {source.name!r} owner_join",
            )
    if problems:
        raise SourceConfigError("; ".join(problems))


def check_owner_joins(conn: sa.Connection, config: SourcesConfig) -> None:
    """Refuse, before a sweep or GDPR job runs, an `owner_join` of an existing source table whose parent
    table or columns do not exist (a source whose own table is missing is skipped by those jobs)."""
    inspector = sa.inspect(conn)
    problems: list[str] = []
    for source in config.sources:
        join = source.owner_join
        if join is None or not inspector.has_table(source.table, schema=source.schema):
            continue
        schema = join.db_schema or source.schema
        if not inspector.has_table(join.table, schema=schema):
            problems.append(f"source {source.name!r} owner_join: table {schema}.{join.table} does not exist")
            continue
        existing = {c["name"] for c in inspector.get_columns(join.table, schema=schema)}
        own = {c["name"] for c in inspector.get_columns(source.table, schema=source.schema)}
        problems.extend(
            f"source {source.name!r} owner_join: column {where}.{column} does not exist"
            for where, column, columns in (
                (f"{schema}.{join.table}", join.key, existing),
                (f"{schema}.{join.table}", join.column, existing),
                (f"{source.schema}.{source.table}", join.via, own),
            )
            if column not in columns
        )
    if problems:
        raise SourceConfigError("; ".join(problems))
