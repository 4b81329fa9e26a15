"""Source definitions are validated before anything runs."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.catalog.db import sqlalchemy_url
from core.sources import (
    SourceConfigError,
    check_against_database,
    load_sources_config,
    parse_json_path,
    parse_sources_config,
)

BASE = {"name": "s", "table": "t", "primary_key": "id", "owner_column": "user_id", "column": "data"}


def test_demo_config_covers_the_four_blob_tables() -> None:
    config = load_sources_config()
    assert {s.table for s in config.sources} == {"stories", "characters", "files", "story_jobs"}
    assert config.by_name("story_jobs").json_paths == ("pages[*].image.data", "cover")


@pytest.mark.parametrize(
    "bad",
    [
        {**BASE, "format": "base64", "table": "t; DROP TABLE users"},
        {**BASE, "format": "base64", "column": 'data"'},
        {**BASE, "format": "base64", "owner_column": "user id"},
        {**BASE, "format": "json_text"},  # json source without a path
        {**BASE, "format": "json_text", "json_path": "images[x].data"},
        {**BASE, "format": "base64", "json_path": "a.b"},  # path on a non-json source
        {**BASE, "format": "xml"},
        {**BASE, "format": "base64", "accept": "everything"},
    ],
)
def test_unusable_definitions_are_refused_with_a_message(bad: dict) -> None:
    with pytest.raises(SourceConfigError):
        parse_sources_config({"sources": [bad]})


def test_json_paths_walk_arrays_and_indexes() -> None:
    assert parse_json_path("images[*].data") == [("images", "*"), ("data", None)]
    assert parse_json_path("pages[0].image.data") == [("pages", "0"), ("image", None), ("data", None)]


def test_missing_tables_and_columns_are_named_before_anything_runs(database_url: str) -> None:
    engine = sa.create_engine(sqlalchemy_url(database_url))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE users (id int primary key, last_login_at timestamptz)"))
        conn.execute(sa.text("CREATE TABLE t (id int primary key, user_id int)"))
    config = parse_sources_config(
        {
            "sources": [
                {**BASE, "format": "base64"},
                {**BASE, "name": "u", "table": "nope", "format": "base64"},
            ]
        }
    )
    with engine.connect() as conn, pytest.raises(SourceConfigError) as refused:
        check_against_database(conn, config)
    engine.dispose()
    message = str(refused.value)
    assert "public.t.data does not exist" in message and "public.nope does not exist" in message


def test_the_readme_sources_example_is_a_valid_configuration() -> None:
    import re
    from pathlib import Path

    import yaml

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("### Sources") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    config = parse_sources_config(yaml.safe_load(block.group(1)))
    source = config.by_name("album_photos")
    assert (config.owners.schema, source.schema, source.owner_join and source.owner_join.db_schema) == (
        "app",
        "media",
        "app",
    )
    assert config.owners.last_active_column == "last_seen_at"


def test_source_names_are_required_and_unique() -> None:
    with pytest.raises(SourceConfigError, match="name"):
        parse_sources_config(
            {"sources": [{k: v for k, v in BASE.items() if k != "name"} | {"format": "base64"}]}
        )
    with pytest.raises(SourceConfigError, match="unique"):
        parse_sources_config({"sources": [{**BASE, "format": "base64"}, {**BASE, "format": "base64"}]})


def test_unknown_keys_are_refused_naming_the_file_and_field() -> None:
    with pytest.raises(SourceConfigError, match=r"sources\.yaml.*sources\.0\.colum"):
        parse_sources_config({"sources": [{**BASE, "format": "base64", "colum": "x"}]}, "config/sources.yaml")
