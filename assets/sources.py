"""External (source) assets: the app's legacy tables and the uploads area. The platform reads them but
does not produce them, so they sit at the top of the lineage graph with everything else below."""

from __future__ import annotations

from dagster import AssetKey, AssetSpec

OWNER = "team:data-platform"

LEGACY_TABLES: dict[str, str] = {
    "users": "App accounts: owners of every object; last login and soft-delete drive retention.",
    "stories": "Stories whose `data` TEXT holds JSON with base64 images (`images[*].data`).",
    "characters": "Characters whose `photo` is a `data:image/...;base64,` URI.",
    "files": "User files as plain base64 TEXT with a filename and a declared MIME type.",
    "story_jobs": "Generation jobs whose JSONB `result` holds base64 images.",
}


def legacy_table_key(table: str) -> AssetKey:
    return AssetKey(["legacy", table])


UPLOADS_AREA_KEY = AssetKey(["object_store", "uploads"])

legacy_table_specs = [
    AssetSpec(
        legacy_table_key(table),
        description=description,
        group_name="legacy_app",
        owners=[OWNER],
        kinds={"postgres"},
        metadata={"table": f"public.{table}"},
    )
    for table, description in LEGACY_TABLES.items()
]

uploads_area_spec = AssetSpec(
    UPLOADS_AREA_KEY,
    description="Originals the app uploads straight to object storage under uploads/YYYY/MM/DD/.",
    group_name="legacy_app",
    owners=[OWNER],
    kinds={"s3"},
)

source_specs = [*legacy_table_specs, uploads_area_spec]
