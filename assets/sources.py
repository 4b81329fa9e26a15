"""External (source) assets, built from config/sources.yaml: one per configured source table, one for the
owners table and one for the uploads area. The platform reads them but does not produce them, so they sit
at the top of the lineage graph. Keys are schema-qualified (`legacy/<schema>/<table>`), so two tables of
the same name in two schemas stay two assets, and another MEDIA_CONFIG_DIR shows its own tables."""

from __future__ import annotations

from dagster import AssetKey, AssetSpec

from core.sources import BlobSource, SourcesConfig, load_sources_config

OWNER = "team:data-platform"
GROUP = "legacy_app"

UPLOADS_AREA_KEY = AssetKey(["object_store", "uploads"])


def legacy_table_key(schema: str, table: str) -> AssetKey:
    return AssetKey(["legacy", schema, table])


def owners_table_key(config: SourcesConfig) -> AssetKey:
    return legacy_table_key(config.owners.schema, config.owners.table)


def parent_table_key(source: BlobSource) -> AssetKey | None:
    """The table an `owner_join` reads the owner from (e.g. albums for photos), if any."""
    join = source.owner_join
    return legacy_table_key(join.db_schema or source.schema, join.table) if join else None


def tables_read(source: BlobSource) -> list[AssetKey]:
    """What a source's inventory and migration read: its table, and the owner's parent table if joined."""
    parent = parent_table_key(source)
    return [legacy_table_key(source.schema, source.table), *([parent] if parent else [])]


def source_table_keys(config: SourcesConfig) -> list[AssetKey]:
    """Every table the configuration names (owners first), each once, in configuration order."""
    keys = [owners_table_key(config)]
    for source in config.sources:
        keys.extend(key for key in tables_read(source) if key not in keys)
    return keys


def build_source_specs(config: SourcesConfig) -> list[AssetSpec]:
    owners = config.owners
    specs: dict[AssetKey, AssetSpec] = {
        owners_table_key(config): AssetSpec(
            owners_table_key(config),
            description="The app's owners table: owner of every object; activity and soft-delete drive "
            "retention, tiers drive quotas.",
            group_name=GROUP,
            owners=[OWNER],
            kinds={"postgres"},
            metadata={"table": f"{owners.schema}.{owners.table}", "role": "owners"},
        )
    }
    for source in config.sources:
        parent = parent_table_key(source)
        if parent is not None and parent not in specs:
            specs[parent] = AssetSpec(
                parent,
                description=f"App table holding the owner of source `{source.name}`'s rows (owner_join).",
                group_name=GROUP,
                owners=[OWNER],
                kinds={"postgres"},
                metadata={"table": ".".join(parent.path[1:]), "role": "owner parent"},
            )
        key = legacy_table_key(source.schema, source.table)
        columns = [s for s in config.sources if (s.schema, s.table) == (source.schema, source.table)]
        if key in specs:
            continue
        specs[key] = AssetSpec(
            key,
            description="App table holding base64 blobs: "
            + "; ".join(f"`{s.column}` ({s.format}) for source `{s.name}`" for s in columns),
            group_name=GROUP,
            owners=[OWNER],
            kinds={"postgres"},
            metadata={
                "table": f"{source.schema}.{source.table}",
                "sources": ", ".join(s.name for s in columns),
            },
        )
    return [
        *specs.values(),
        AssetSpec(
            UPLOADS_AREA_KEY,
            description="Originals the app uploads straight to object storage under uploads/YYYY/MM/DD/.",
            group_name=GROUP,
            owners=[OWNER],
            kinds={"s3"},
        ),
    ]


SOURCES = load_sources_config()
LEGACY_KEYS = source_table_keys(SOURCES)
OWNERS_KEY = owners_table_key(SOURCES)
source_specs = build_source_specs(SOURCES)
