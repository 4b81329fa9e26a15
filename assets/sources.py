"""External (source) assets, built from config/sources.yaml: one per configured source table, one for the
owners table and one for the uploads area. The platform reads them but does not produce them, so they sit
at the top of the lineage graph. Keys are schema-qualified (`legacy/<schema>/<table>`), so two tables of
the same name in two schemas stay two assets, and another MEDIA_CONFIG_DIR shows its own tables."""

from __future__ import annotations

from dagster import AssetKey, AssetSpec

from core.sources import SourcesConfig, load_sources_config

OWNER = "team:data-platform"
GROUP = "legacy_app"

UPLOADS_AREA_KEY = AssetKey(["object_store", "uploads"])


def legacy_table_key(schema: str, table: str) -> AssetKey:
    return AssetKey(["legacy", schema, table])


def owners_table_key(config: SourcesConfig) -> AssetKey:
    return legacy_table_key(config.owners.schema, config.owners.table)


def source_table_keys(config: SourcesConfig) -> list[AssetKey]:
    """Every table the configuration names (owners first), each once, in configuration order."""
    keys = [owners_table_key(config)]
    for source in config.sources:
        key = legacy_table_key(source.schema, source.table)
        if key not in keys:
            keys.append(key)
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
