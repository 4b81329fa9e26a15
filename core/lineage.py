"""Per-object lineage: which run produced each catalog row, and everything that happened to one object.

Writers tag what they write with a `RunLineage` (run id, asset key, partition key; the Dagster layer
builds it from its context, core functions take it as a plain parameter). `lineage_of` answers "where did
this come from, which run wrote it, which backups hold it, why was it deleted" for a storage key, a
SHA-256, a source place (`table:pk[:json path]`) or an owner (`owner:<id>`), reading the catalog's
`object_lineage` view (migrations/versions/0008_lineage.py) so the command and SQL tell the same story.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from core.catalog.models import CATALOG_SCHEMA as C


@dataclass(frozen=True)
class RunLineage:
    """The run (and asset, partition) that writes a row; all None outside a run (a script, a test)."""

    run_id: str | None = None
    asset_key: str | None = None
    partition_key: str | None = None

    def columns(self) -> dict[str, str | None]:
        """The catalog columns recording it (same names in every table that has them)."""
        return {"run_id": self.run_id, "asset_key": self.asset_key, "partition_key": self.partition_key}


NO_RUN = RunLineage()

TargetKind = Literal["storage_key", "sha256", "place", "owner", "object_id"]
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
#: most objects listed for one owner; the rest are counted, not described
OWNER_OBJECT_LIMIT = 50


class UnknownTarget(ValueError):
    """The argument is not a storage key, SHA-256, `table:pk[:json path]` or `owner:<id>` we can find."""


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    value: str
    pk: str | None = None  # place: the row's primary key
    json_path: str | None = None  # place: None = every path of the row

    @property
    def text(self) -> str:
        if self.kind == "place":
            return ":".join(p for p in (self.value, self.pk, self.json_path) if p is not None)
        return f"{self.kind}:{self.value}" if self.kind in ("owner", "object_id") else self.value


def parse_target(argument: str) -> Target:
    """Tell the four kinds of argument apart (plus what migrated rows hold: `media://<key>`,
    `catalog:<id>`). A storage key has a `/` before any `:`; a place has `table:pk`."""
    arg = argument.strip()
    if not arg:
        raise UnknownTarget("empty argument")
    if arg.startswith("media://"):
        return Target("storage_key", arg.removeprefix("media://"))
    if arg.startswith("owner:") and len(arg) > len("owner:"):
        return Target("owner", arg.removeprefix("owner:"))
    if arg.startswith("catalog:") and arg.removeprefix("catalog:").isdigit():
        return Target("object_id", arg.removeprefix("catalog:"))
    if SHA256.match(arg):
        return Target("sha256", arg.lower())
    colon, slash = arg.find(":"), arg.find("/")
    if slash != -1 and (colon == -1 or slash < colon):
        return Target("storage_key", arg)
    if colon > 0:
        table, _, rest = arg.partition(":")
        pk, sep, path = rest.partition(":")
        if pk:
            return Target("place", table, pk=pk, json_path=path if sep else None)
    raise UnknownTarget(
        f"{argument!r} is not a storage key (originals/..., variants/..., uploads/...), a SHA-256 "
        "(64 hex digits), a place (table:pk or table:pk:json.path) or an owner (owner:<id>)"
    )


@dataclass(frozen=True)
class RunRef:
    """A run, its asset and partition, and its page in the Dagster UI (when the UI's address is known)."""

    run_id: str
    asset_key: str | None
    partition_key: str | None
    url: str | None

    def text(self) -> str:
        where = "/".join(p for p in (self.asset_key, self.partition_key) if p)
        return " ".join(p for p in (f"run {self.run_id}", f"({where})" if where else "", self.url or "") if p)


@dataclass(frozen=True)
class LineageEvent:
    """One row of `object_lineage`: something that happened to the object, and the run that did it."""

    event: str  # stored | reference | variant | backup_copy | backup_manifest | retention | quarantine
    state: str | None  # verified/deleted, live/released, ready/failed/skipped, deleted/would_delete, ...
    item_key: str | None  # the variant's, copy's or manifest's storage key
    owner_id: str | None
    place: str | None  # table:pk[:json path] of a reference or quarantine record (+ source if named apart)
    column: str | None  # schema.table.column holding the place, when it is a column of the app's tables
    detail: str | None
    at: datetime | None
    run: RunRef | None  # None = written before lineage was recorded (or outside a run)


@dataclass(frozen=True)
class ObjectLineage:
    object_id: int
    sha256: str
    storage_key: str
    status: str
    events: list[LineageEvent]

    def of(self, event: str) -> list[LineageEvent]:
        return [e for e in self.events if e.event == event]

    @property
    def stored(self) -> LineageEvent | None:
        found = self.of("stored")
        return found[0] if found else None


@dataclass(frozen=True)
class LineageReport:
    """Everything known about what the argument names; `unattached` holds quarantine and retention rows
    about the place or owner that concern no stored object (a refused value, a deleted row)."""

    target: Target
    objects: list[ObjectLineage]
    unattached: list[LineageEvent] = field(default_factory=list)
    more_objects: int = 0  # an owner's objects beyond OWNER_OBJECT_LIMIT

    @property
    def found(self) -> bool:
        return bool(self.objects or self.unattached)

    def as_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list):
                return [plain(v) for v in value]
            return value

        return plain(asdict(self))


def _run(row: Any, ui_base_url: str | None) -> RunRef | None:
    if not row.run_id:
        return None
    url = f"{ui_base_url.rstrip('/')}/runs/{row.run_id}" if ui_base_url else None
    return RunRef(row.run_id, row.asset_key, row.partition_key, url)


def _column(row: Any) -> str | None:
    if not getattr(row, "source_column", None):
        return None
    return ".".join(p for p in (row.source_schema, row.source_table, row.source_column) if p)


def _place(row: Any) -> str | None:
    """`table:pk[:json path]` (the command's own argument form), and the source's name when it differs."""
    if row.source_table is None:
        return None
    place = ":".join(str(p) for p in (row.source_table, row.source_pk, row.json_path) if p)
    return place if row.source_name == row.source_table else f"{place} (source {row.source_name})"


def _event(row: Any, ui_base_url: str | None) -> LineageEvent:
    return LineageEvent(
        event=row.event,
        state=row.state,
        item_key=row.item_key,
        owner_id=row.owner_id,
        place=_place(row),
        column=_column(row),
        detail=row.detail or None,
        at=row.at,
        run=_run(row, ui_base_url),
    )


_EVENT_ORDER = {
    "stored": 0,
    "reference": 1,
    "quarantine": 2,
    "variant": 3,
    "backup_copy": 4,
    "backup_manifest": 5,
    "retention": 6,
}


#: a place's table as the argument names it: the table, the source's name, or schema.table
_PLACE_TABLE = "(source_table = :t OR source_name = :t OR source_schema || '.' || source_table = :t)"


def _object_ids(conn: sa.Connection, target: Target) -> tuple[list[int], int]:
    """The stored objects the argument names (an owner's newest first, at most OWNER_OBJECT_LIMIT) and
    how many more there are. Keys and checksums are looked up where they usually are first (an original,
    by its unique index) and only then among variants, uploads and backup copies."""
    if target.kind == "owner":
        rows = conn.execute(
            sa.text(
                f"""SELECT object_id, count(*) OVER () FROM {C}.object_references WHERE owner_id = :v
                    GROUP BY object_id ORDER BY max(created_at) DESC, object_id LIMIT :n"""
            ),
            {"v": target.value, "n": OWNER_OBJECT_LIMIT},
        ).all()
        return [int(r[0]) for r in rows], (int(rows[0][1]) - len(rows)) if rows else 0
    if target.kind == "object_id":
        lookups = [f"SELECT id FROM {C}.stored_objects WHERE id = CAST(:v AS bigint)"]
    elif target.kind == "storage_key":
        lookups = [
            f"SELECT id FROM {C}.stored_objects WHERE storage_key = :v",
            f"SELECT object_id FROM {C}.uploads WHERE upload_key = :v AND object_id IS NOT NULL",
            f"SELECT DISTINCT parent_object_id FROM {C}.variants WHERE storage_key = :v",
            f"""SELECT o.id FROM {C}.backup_object_copies c JOIN {C}.stored_objects o ON o.sha256 = c.sha256
                WHERE c.backup_key = :v""",
        ]
    elif target.kind == "sha256":
        lookups = [
            f"SELECT id FROM {C}.stored_objects WHERE sha256 = :v",
            f"SELECT DISTINCT parent_object_id FROM {C}.variants WHERE sha256 = :v",
        ]
    else:
        lookups = [
            f"""SELECT DISTINCT object_id FROM {C}.object_references
                WHERE {_PLACE_TABLE} AND source_pk = :pk
                  AND (CAST(:path AS text) IS NULL OR json_path = :path)"""
        ]
    params = (
        {"t": target.value, "pk": target.pk, "path": target.json_path}
        if target.kind == "place"
        else {"v": target.value}
    )
    for sql in lookups:
        ids = [int(i) for (i,) in conn.execute(sa.text(sql), params)]
        if ids:
            return ids, 0
    return [], 0


def _unattached(
    conn: sa.Connection, target: Target, ids: list[int], ui_base_url: str | None
) -> list[LineageEvent]:
    """Quarantine records and retention rows about the place, key or owner that the objects' own
    lineage (`ids`) does not already show: a refused value, a deleted row, an owner's erasure."""
    if target.kind == "place":
        quarantine_where = f"{_PLACE_TABLE} AND source_pk = :pk"
        quarantine_where += " AND (CAST(:path AS text) IS NULL OR json_path = :path)"
        audit_where = "target_type IN ('row', 'reference') AND (target_id = :t || ':' || :pk"
        audit_where += " OR target_id = :t || ':' || :pk || ':' || coalesce(:path, ''))"
        params: dict[str, Any] = {"t": target.value, "pk": target.pk, "path": target.json_path}
    elif target.kind == "storage_key":
        # a rejected upload's quarantine record is keyed by its upload key
        quarantine_where = "json_path = :v AND source_name = 'uploads'"
        audit_where = "storage_key = :v"
        params = {"v": target.value}
    elif target.kind == "sha256":
        quarantine_where = "sha256 = :v"
        audit_where = "FALSE"
        params = {"v": target.value}
    elif target.kind == "owner":
        quarantine_where = (
            "source_name = 'uploads' AND json_path IN "
            f"(SELECT upload_key FROM {C}.uploads WHERE owner_id = :v)"
        )
        audit_where = "owner_id = :v AND target_type IN ('owner', 'row')"
        params = {"v": target.value}
    else:
        return []
    rows = conn.execute(
        sa.text(
            f"""SELECT 'quarantine' AS event, reason_code AS state, NULL AS item_key, NULL AS owner_id,
                       source_name, source_schema, source_table, source_column, source_pk, json_path,
                       reason AS detail,
                       run_id, asset_key, partition_key, created_at AS at
                FROM {C}.quarantine q
                WHERE {quarantine_where}
                  AND NOT EXISTS (SELECT 1 FROM {C}.stored_objects o
                                  WHERE o.sha256 = q.sha256 AND o.id = ANY(CAST(:ids AS bigint[])))
                UNION ALL
                SELECT 'retention', action, storage_key, owner_id, NULL, NULL, NULL, NULL, NULL, NULL,
                       concat_ws(': ', policy, target_type || ' ' || target_id, reason),
                       run_id, asset_key, partition_key, created_at
                FROM {C}.retention_audit
                WHERE ({audit_where})
                  AND (target_type IN ('row', 'owner') OR cardinality(CAST(:ids AS bigint[])) = 0)
                ORDER BY at"""
        ),
        {**params, "ids": ids},
    ).all()
    return [_event(row, ui_base_url) for row in rows]


def lineage_of(conn: sa.Connection, argument: str | Target, *, ui_base_url: str | None) -> LineageReport:
    """Everything the catalog knows about what `argument` names; raises UnknownTarget for an argument
    that is malformed or names nothing at all."""
    target = parse_target(argument) if isinstance(argument, str) else argument
    ids, more = _object_ids(conn, target)
    objects: list[ObjectLineage] = []
    if ids:
        rows = conn.execute(
            sa.text(f"SELECT * FROM {C}.object_lineage WHERE object_id = ANY(:ids)"), {"ids": ids}
        ).all()
        by_object: dict[int, list[Any]] = {}
        for row in rows:
            by_object.setdefault(int(row.object_id), []).append(row)
        for object_id in ids:
            found = by_object.get(object_id, [])
            stored = next((r for r in found if r.event == "stored"), None)
            if stored is None:
                continue
            events = sorted(
                (_event(r, ui_base_url) for r in found),
                key=lambda e: (_EVENT_ORDER.get(e.event, 9), e.at.timestamp() if e.at else 0.0),
            )
            objects.append(
                ObjectLineage(object_id, stored.sha256.strip(), stored.storage_key, stored.state, events)
            )
    report = LineageReport(
        target, objects, _unattached(conn, target, [o.object_id for o in objects], ui_base_url), more
    )
    if not report.found:
        raise UnknownTarget(f"nothing in the catalog for {target.text!r} ({target.kind.replace('_', ' ')})")
    return report


def render_text(report: LineageReport) -> str:
    """The report for a person: one block per object, each line with the run that did it."""
    lines = [f"lineage of {report.target.text} ({report.target.kind.replace('_', ' ')})"]

    def run(event: LineageEvent) -> str:
        return event.run.text() if event.run else "run not recorded (before lineage was recorded)"

    for obj in report.objects:
        lines.append("")
        lines.append(f"object {obj.object_id} {obj.storage_key} [{obj.status}] sha256 {obj.sha256}")
        labels = {
            "stored": "stored",
            "reference": "reference",
            "quarantine": "quarantined",
            "variant": "variant",
            "backup_copy": "backup copy",
            "backup_manifest": "in backup",
            "retention": "retention",
        }
        for event in obj.events:
            what = " ".join(
                p
                for p in (
                    labels.get(event.event, event.event),
                    f"[{event.state}]" if event.state else "",
                    event.place or "",
                    f"in {event.column}" if event.column else "",
                    f"owner {event.owner_id}" if event.owner_id else "",
                    event.item_key if event.item_key and event.item_key != obj.storage_key else "",
                    f"- {event.detail}" if event.detail else "",
                )
                if p
            )
            when = event.at.strftime("%Y-%m-%d %H:%M:%S") if event.at else "?"
            lines.append(f"  {when}  {what}")
            lines.append(f"      {run(event)}")
    if report.more_objects:
        lines.append(f"\n... and {report.more_objects} more objects (newest {len(report.objects)} shown)")
    if report.unattached:
        lines.append("")
        lines.append("not tied to a stored object:")
        for event in report.unattached:
            when = event.at.strftime("%Y-%m-%d %H:%M:%S") if event.at else "?"
            what = " ".join(
                p
                for p in (
                    event.event,
                    f"[{event.state}]",
                    event.place or "",
                    event.column or "",
                    event.detail or "",
                )
                if p
            )
            lines.append(f"  {when}  {what}")
            lines.append(f"      {run(event)}")
    return "\n".join(lines)
