"""Uploads: the app's request -> upload -> confirm flow, discovery of new upload objects, and validation.

Layout: the app (or the platform on its behalf) builds every key server-side with `core.keys.upload_key`:
`uploads/YYYY/MM/DD/<owner>/<upload_id>-<name>`. Two ways in:
- request/confirm: `request_upload` writes a `pending` row with its key, the app PUTs the bytes, then
  `confirm_upload` marks it `confirmed`. A row never confirmed stays `pending`: the platform does not
  process it and leaves it to the retention capability (which may mark it `abandoned` and delete it).
- straight to storage: an object appearing under `uploads/` with no row is registered as `confirmed`
  (its existence is the confirmation).

Discovery lists only day prefixes. Keys inside a day are NOT time-ordered (the owner segment comes
before the upload id), so a `start_after` cursor alone would miss a key that sorts before the last one
seen. Each tick therefore re-lists the recent days (today and `recheck_days` before it) and compares
with the registered rows (new key -> register; size or last_modified changed on a processed key ->
register again); `start_after` resumes a day whose listing hit the per-tick budget. Days older than the
window are never listed again, so a tick costs O(recent uploads), never O(bucket).

Owners: the owner id is kept exactly (`core.keys.validate_owner_id`; ints and UUIDs become `str()`); the
key's owner segment is injective (`core.keys.owner_segment`), so distinct owners never share a folder. An
object found straight in storage takes its owner from a plain segment; an encoded segment (`slug+hash`)
cannot be read back, so such an upload is rejected as `unresolvable_owner` rather than guessed.

Queueing: confirmed rows become `queued` with a `batch_key` (the run_key), in the same transaction that
selects them, so a row is requested once. The run key names the batch's rows and the moment it was
queued: a batch whose uploads were all deferred (storage down) comes back as a new batch with a new run
key, because Dagster never runs a run key twice. A batch still queued after `requeue_after_minutes` is
requested again: with the same run key when no run of it exists (the request was lost), with a new one
(`rekey_batch`) when its runs all ended without processing it, not at all while a run is in flight.
A batch's run also takes on the day's uploads confirmed after it was queued (`take_confirmed`, SKIP
LOCKED, `min_batch` at a time up to `batch_size` a round), moving them into its batch: a burst still
arriving goes to the runs already started, and `uploads.batch_key` still names the run of every upload.
Upload runs share the full-set work (each original under a render lock), and a run whose work is done
waits `linger_seconds` for the next uploads before it ends (`process_uploads`).

Rejected bytes: moved (verified copy, then delete) to `quarantine/<upload key>`, which no URL can grant;
the quarantine row records the key and the `quarantined_uploads` retention policy deletes it later. An
upload processed once and then overwritten with refused content releases its earlier reference (with an
audit row saying why), so retention collects the old original and its variants.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import secrets
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from core.catalog.models import ObjectReference, QuarantineRecord, RetentionAudit, StoredObject, Upload
from core.imaging import (
    ImageDecodeError,
    RenderResult,
    UploadLimits,
    VariantPlan,
    VariantSpec,
    render_variants,
)
from core.ingest import (
    ObjectVanished,
    StoredBlob,
    record_quarantine,
    store_verified,
    upsert_object,
    upsert_reference,
)
from core.keys import owner_from_segment, quarantine_key, upload_key, validate_owner_id
from core.lineage import RunLineage
from core.media_types import MediaInfo, MediaRejected, inspect_media
from core.objectstore.base import ObjectInfo, ObjectNotFound, ObjectStore, ObjectStoreError, sha256_hex
from core.objectstore.retry import retry_transient
from core.variants import Original, VariantStats, originals_query, process_batch, process_original

logger = logging.getLogger(__name__)

UPLOADS_PREFIX = "uploads"
SOURCE_NAME = "uploads"
_KEY = re.compile(r"uploads/(\d{4})/(\d{2})/(\d{2})/([^/]+)/([A-Za-z0-9][A-Za-z0-9_-]{0,63}?)-([^/]+)")


@dataclass(frozen=True)
class ParsedUploadKey:
    day: dt.date
    owner_id: str
    upload_id: str
    filename: str


def parse_upload_key(key: str) -> ParsedUploadKey | None:
    match = _KEY.fullmatch(key)
    if not match:
        return None
    year, month, day, owner, upload_id, filename = match.groups()
    try:
        return ParsedUploadKey(dt.date(int(year), int(month), int(day)), owner, upload_id, filename)
    except ValueError:
        return None


def _printable(value: str | None, limit: int = 255) -> str | None:
    """Untrusted text kept for display only: control characters (NUL breaks Postgres TEXT) removed."""
    if value is None:
        return None
    return "".join(ch for ch in value if ch.isprintable())[:limit]


def day_prefix(day: dt.date) -> str:
    return f"{UPLOADS_PREFIX}/{day.year:04d}/{day.month:02d}/{day.day:02d}/"


# -- the app's side: request -> upload -> confirm -------------------------------------------------------


def request_upload(
    conn: sa.Connection,
    *,
    owner_id: str | int,
    filename: str,
    declared_mime: str | None,
    day: dt.date,
    upload_id: str | None = None,
) -> tuple[int, str]:
    """Reserve a server-built key for an upload (status `pending`); returns (row id, key to PUT to).

    The owner id is stored exactly as given (an int or UUID as `str()`); an owner id or file name that
    cannot be kept exactly raises `InvalidOwnerId` / `InvalidFileName` (both `ValueError`s) before any row.
    """
    owner = validate_owner_id(owner_id)
    upload_id = upload_id or secrets.token_hex(8)
    key = upload_key(day, owner, upload_id, filename)
    row_id = conn.execute(
        insert(Upload)
        .values(
            upload_key=key,
            owner_id=owner,
            declared_name=_printable(filename),
            declared_mime=_printable(declared_mime, 100),
            upload_date=day,
            status="pending",
        )
        .returning(Upload.id)
    ).scalar_one()
    return int(row_id), key


def confirm_upload(conn: sa.Connection, key: str) -> bool:
    """The app says the bytes are there; only a pending row moves (a repeat confirm is a no-op)."""
    result = conn.execute(
        sa.update(Upload)
        .where(Upload.upload_key == key, Upload.status == "pending")
        .values(status="confirmed", confirmed_at=sa.func.now())
    )
    return result.rowcount == 1


# -- discovery (the sensor) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadCursor:
    """`through`: the last day fully listed; `resume_*`: a day whose listing stopped at the budget."""

    through: dt.date | None = None
    resume_day: dt.date | None = None
    resume_after: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "through": self.through.isoformat() if self.through else None,
                "resume_day": self.resume_day.isoformat() if self.resume_day else None,
                "resume_after": self.resume_after,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: str | None) -> UploadCursor:
        if not raw:
            return cls()
        data = json.loads(raw)

        def day(name: str) -> dt.date | None:
            return dt.date.fromisoformat(data[name]) if data.get(name) else None

        return cls(day("through"), day("resume_day"), data.get("resume_after"))


@dataclass
class Discovery:
    cursor: UploadCursor
    days_listed: list[dt.date] = field(default_factory=list)
    keys_listed: int = 0
    registered: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


def _same_time(a: dt.datetime | None, b: dt.datetime) -> bool:
    return a is not None and abs((a - b).total_seconds()) < 1e-3


def _register_day(
    engine: sa.Engine,
    store: ObjectStore,
    day: dt.date,
    start_after: str | None,
    budget: int,
    found: Discovery,
) -> str | None:
    """List one day prefix and register new/changed keys; returns the last key if the budget ran out."""
    with engine.connect() as conn:
        known = {
            row.upload_key: row
            for row in conn.execute(
                sa.select(
                    Upload.id, Upload.upload_key, Upload.size_bytes, Upload.object_modified_at, Upload.status
                ).where(Upload.upload_date == day)
            )
        }
    new_rows: list[dict[str, object]] = []
    changed_ids: list[tuple[int, ObjectInfo]] = []
    stopped_at: str | None = None
    listed = 0
    last_key = start_after or ""
    for info in store.list_objects(day_prefix(day), start_after=start_after):
        if listed >= budget:
            stopped_at = last_key  # resume after the last key handled ("" = from the day's start)
            break
        listed += 1
        last_key = info.key
        row = known.get(info.key)
        if row is None:
            parsed = parse_upload_key(info.key)
            # An encoded owner segment is kept as it is and refused at processing (unresolvable_owner).
            owner = (owner_from_segment(parsed.owner_id) or parsed.owner_id) if parsed else "unknown"
            new_rows.append(
                {
                    "upload_key": info.key,
                    "owner_id": owner,
                    "declared_name": parsed.filename if parsed else None,
                    "size_bytes": info.size,
                    "upload_date": day,
                    "status": "confirmed",
                    "confirmed_at": dt.datetime.now(dt.UTC),
                    "object_modified_at": info.last_modified,
                }
            )
        elif row.status in ("processed", "rejected") and (
            row.size_bytes != info.size or not _same_time(row.object_modified_at, info.last_modified)
        ):
            changed_ids.append((row.id, info))
    with engine.begin() as conn:
        if new_rows:
            conn.execute(
                insert(Upload).values(new_rows).on_conflict_do_nothing(index_elements=["upload_key"])
            )
        for row_id, info in changed_ids:
            conn.execute(
                sa.update(Upload)
                .where(Upload.id == row_id, Upload.status.in_(("processed", "rejected")))
                .values(
                    status="confirmed",
                    size_bytes=info.size,
                    object_modified_at=info.last_modified,
                    processed_at=None,
                    error=None,
                    batch_key=None,
                )
            )
    found.keys_listed += listed
    found.registered.extend(str(r["upload_key"]) for r in new_rows)
    found.changed.extend(info.key for _, info in changed_ids)
    return stopped_at


def discover_uploads(
    engine: sa.Engine, store: ObjectStore, cursor: UploadCursor, today: dt.date, limits: UploadLimits
) -> Discovery:
    """Register upload objects of the days since the cursor (plus the re-check window)."""
    found = Discovery(cursor=cursor)
    window_start = today - dt.timedelta(days=limits.recheck_days)
    if cursor.resume_day is not None:
        start, start_after = cursor.resume_day, cursor.resume_after
    elif cursor.through is not None:
        start, start_after = min(cursor.through, window_start), None
    else:
        start, start_after = today - dt.timedelta(days=limits.first_days), None
    budget = limits.max_keys_per_tick
    day = start
    while day <= today:
        found.days_listed.append(day)
        stopped_at = _register_day(engine, store, day, start_after, budget - found.keys_listed, found)
        if stopped_at is not None:
            found.cursor = UploadCursor(cursor.through, day, stopped_at or None)
            return found
        start_after = None
        day += dt.timedelta(days=1)
    found.cursor = UploadCursor(through=today)
    return found


@dataclass(frozen=True)
class UploadBatch:
    day: dt.date
    run_key: str
    upload_ids: list[int]
    #: A batch still queued after `requeue_after_minutes`, requested again: its run may exist already.
    reissue: bool = False


def batch_sizes(count: int, limits: UploadLimits, parallel_runs: int = 1) -> list[int]:
    """How many uploads each run of a backlog of `count` takes: sized for latency.

    A backlog is spread over the runs that can run at once (`parallel_runs`), so a burst's last uploads
    do not wait in the queue behind the first runs' full sets; no share is smaller than `min_batch` (a run
    costs seconds of start-up: a trickle of uploads stays one run) and none bigger than `batch_size`."""
    if count <= 0:
        return []
    runs = max(-(-count // limits.batch_size), min(parallel_runs, count // limits.min_batch), 1)
    share, extra = divmod(count, runs)
    return [share + (i < extra) for i in range(runs)]


def queue_batches(
    engine: sa.Engine,
    limits: UploadLimits,
    *,
    now: dt.datetime | None = None,
    max_batches: int = 50,
    parallel_runs: int = 1,
) -> list[UploadBatch]:
    """Turn confirmed rows into queued batches (`batch_sizes` per day) and re-issue stale queued batches."""
    now = now or dt.datetime.now(dt.UTC)
    batches: list[UploadBatch] = []
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(Upload.id, Upload.upload_date, Upload.object_modified_at)
            .where(Upload.status == "confirmed")
            .order_by(Upload.upload_date, Upload.id)
            .limit(limits.batch_size * max_batches)
            .with_for_update(skip_locked=True)
        ).all()
        by_day: dict[dt.date, list[sa.Row]] = defaultdict(list)
        for row in rows:
            by_day[row.upload_date].append(row)
        for day, day_rows in by_day.items():
            start = 0
            for size in batch_sizes(len(day_rows), limits, parallel_runs):
                chunk, start = day_rows[start : start + size], start + size
                ids = [r.id for r in chunk]
                # The queueing moment makes the key unique per attempt: rows deferred back to `confirmed`
                # form a new batch that Dagster will run (it skips a run key it has seen).
                digest = hashlib.sha256(
                    ";".join(f"{r.id}@{r.object_modified_at}" for r in chunk).encode()
                ).hexdigest()[:16]
                run_key = f"uploads-{day.isoformat()}-{ids[0]}-{digest}-{now:%Y%m%dT%H%M%S%f}"
                conn.execute(
                    sa.update(Upload)
                    .where(Upload.id.in_(ids))
                    .values(status="queued", batch_key=run_key, queued_at=now)
                )
                batches.append(UploadBatch(day, run_key, ids))
        stale = conn.execute(
            sa.select(Upload.batch_key, Upload.upload_date, sa.func.array_agg(Upload.id))
            .where(
                Upload.status == "queued",
                Upload.queued_at < now - dt.timedelta(minutes=limits.requeue_after_minutes),
            )
            .group_by(Upload.batch_key, Upload.upload_date)
        ).all()
        for batch_key, day, ids in stale:
            conn.execute(
                sa.update(Upload)
                .where(Upload.batch_key == batch_key, Upload.status == "queued")
                .values(queued_at=now)
            )
            batches.append(UploadBatch(day, batch_key, sorted(ids), reissue=True))
    return batches


_RETRY_SUFFIX = "/retry-"
#: Uploads (then originals' full sets) one upload run works on at once: one renders while the other's
#: files and catalog rows are written, each fsync-ed (benchmarks/fresh_uploads.py: one at a time left a
#: run's core 10 % idle). Pillow's encoders release the GIL.
RENDERS_IN_FLIGHT = 2


def rekey_batch(engine: sa.Engine, batch: UploadBatch, now: dt.datetime) -> UploadBatch | None:
    """A new run key for a stale batch whose run ended without processing it (failed, retries spent):
    Dagster never runs a key twice, so the same key would leave its rows queued for good. None when no
    row of the batch is still queued."""
    run_key = f"{batch.run_key.split(_RETRY_SUFFIX)[0]}{_RETRY_SUFFIX}{now:%Y%m%dT%H%M%S%f}"
    with engine.begin() as conn:
        ids = conn.execute(
            sa.update(Upload)
            .where(Upload.batch_key == batch.run_key, Upload.status == "queued")
            .values(batch_key=run_key, queued_at=now)
            .returning(Upload.id)
        ).scalars()
        upload_ids = sorted(ids)
    return UploadBatch(batch.day, run_key, upload_ids, reissue=False) if upload_ids else None


# -- processing (the upload-processing asset) -------------------------------------------------------------


@dataclass
class UploadStats:
    uploads: int = 0
    accepted: int = 0
    rejected: int = 0
    deferred: int = 0
    documents: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    variants: VariantStats = field(default_factory=VariantStats)
    latencies: list[float] = field(default_factory=list)  # upload (last_modified) -> thumbnails recorded, s
    seconds: float = 0.0
    image_originals: list[int] = field(default_factory=list)  # rendered thumbnails first; full set next
    taken_on: int = 0  # confirmed after the batch was queued, taken on by its run (`take_confirmed`)
    rounds: int = 1  # 1 + the rounds of uploads that came while the run lingered (`process_uploads`)
    full_sets_shared: int = 0  # originals of other runs' uploads this run rendered the full sets of
    lingered_seconds: float = 0.0  # of `seconds`, spent waiting for new uploads (`_linger`)

    @property
    def busy_seconds(self) -> float:
        """The run's time minus its waits for new uploads: what a rate per second should divide by."""
        return max(0.0, self.seconds - self.lingered_seconds)

    def merge(self, other: UploadStats) -> None:
        """Add one upload's outcome (processed in a worker thread) to the run's."""
        for name in ("uploads", "accepted", "rejected", "deferred", "documents", "taken_on"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for code, count in other.rejected_by_reason.items():
            self.rejected_by_reason[code] = self.rejected_by_reason.get(code, 0) + count
        self.variants.merge(other.variants)
        self.latencies.extend(other.latencies)
        self.image_originals.extend(other.image_originals)


def validate_upload(data: bytes, limits: UploadLimits) -> MediaInfo:
    """OWASP checks: type from magic bytes (never the name or declared MIME), allowlist (images; PDF as
    a document), byte limits per kind; the image decision (pixel limit, structure, every frame decoded)
    is the migration's, from core.media_types."""
    info = inspect_media(
        data,
        allowed_kinds=frozenset({"image", "document"}),
        max_bytes=max(limits.max_image_bytes, limits.max_document_bytes),
    )
    if info.kind == "image" and len(data) > limits.max_image_bytes:
        raise MediaRejected(
            "too_large", f"{len(data):,}-byte image is over the {limits.max_image_bytes:,} limit"
        )
    if info.kind == "document" and len(data) > limits.max_document_bytes:
        raise MediaRejected(
            "too_large", f"{len(data):,}-byte document is over the {limits.max_document_bytes:,} limit"
        )
    return info


#: Audit policy name of a reference released because its upload was overwritten with refused content.
REPLACED_POLICY = "upload_replaced"


@dataclass(frozen=True)
class Quarantined:
    key: str
    sha256: str
    size: int


def copy_to_quarantine(store: ObjectStore, key: str, data: bytes | None) -> Quarantined | None:
    """Copy the bytes at `key` (or `data`, already read from it) to `quarantine/<key>` and verify the copy
    by reading it back; None when nothing is at `key`. The source key is left for the caller to delete
    once the catalog names the copy."""
    target = quarantine_key(key)
    content_type = "application/octet-stream"  # never what the file claims: nothing serves it anyway
    if data is not None:
        sha256, size = sha256_hex(data), len(data)
        retry_transient(lambda: store.put_bytes(target, data, sha256=sha256, content_type=content_type))
    else:
        with tempfile.TemporaryDirectory(prefix="quarantine-") as tmp:
            path = Path(tmp) / "bytes"
            try:
                sha256 = retry_transient(lambda: store.download_to(key, path))
            except ObjectNotFound:
                return None
            size = path.stat().st_size
            retry_transient(lambda: store.put_file(target, path, sha256=sha256, content_type=content_type))
    if not retry_transient(lambda: store.verify(target, sha256)):
        raise ObjectStoreError(f"quarantine copy {target} does not match the rejected bytes of {key}")
    return Quarantined(target, sha256, size)


def _drop_rejected_source(store: ObjectStore, key: str, seen: ObjectInfo | None) -> bool:
    """Delete the upload key once its bytes are in quarantine, unless the app overwrote it meanwhile
    (then the listing shows the change and the new bytes get their own decision)."""
    current = retry_transient(lambda: store.head(key))
    if current is None:
        return True
    changed = seen is not None and (
        current.size != seen.size or not _same_time(seen.last_modified, current.last_modified)
    )
    if changed:
        logger.warning("upload %s changed while it was being quarantined; left in place", key)
        return False
    failures = retry_transient(lambda: store.delete_keys([key]))
    if failures:
        logger.warning("upload %s quarantined but not deleted: %s", key, failures[0][1])
    return not failures


def _reject(
    engine: sa.Engine,
    store: ObjectStore,
    row: sa.Row,
    code: str,
    reason: str,
    *,
    data: bytes | None,
    info: ObjectInfo | None,
    lineage: RunLineage,
    keep_bytes: bool = True,
) -> None:
    """Record the refusal; move the refused bytes to the quarantine area (verified copy, catalog row,
    then the upload key is deleted); release what an earlier accepted version of this upload held."""
    if keep_bytes and info is None:
        info = retry_transient(lambda: store.head(row.upload_key))
    moved = copy_to_quarantine(store, row.upload_key, data) if keep_bytes and info is not None else None
    with engine.begin() as conn:
        if row.object_id is not None:
            released = conn.execute(
                sa.update(ObjectReference)
                .where(
                    ObjectReference.source_name == SOURCE_NAME,
                    ObjectReference.source_table == "uploads",
                    ObjectReference.source_pk == str(row.id),
                    ObjectReference.released_at.is_(None),
                )
                .values(released_at=sa.func.now())
                .returning(ObjectReference.id, ObjectReference.object_id)
            ).all()
            why = (
                f"upload {row.id} overwritten with refused content ({code}); the earlier accepted "
                f"version (object {row.object_id}) is released for retention"
            )
            for _ref_id, object_id in released:
                conn.execute(
                    sa.insert(RetentionAudit).values(
                        **{**lineage.columns(), "run_id": lineage.run_id or "upload-processing"},
                        policy=REPLACED_POLICY,
                        action="released",
                        target_type="reference",
                        target_id=f"{SOURCE_NAME}:{row.id}",
                        owner_id=row.owner_id,
                        reason=f"{why} (reference to object {object_id})",
                        dry_run=False,
                    )
                )
            reason = f"{reason}; {why}"
        record_quarantine(
            conn,
            source_name=SOURCE_NAME,
            source_table="uploads",
            source_pk=str(row.id),
            json_path=row.upload_key,
            reason_code=code,
            reason=reason,
            sha256=moved.sha256 if moved else (sha256_hex(data) if data else None),
            size_bytes=moved.size if moved else (len(data) if data is not None else None),
            lineage=lineage,
        )
        if moved is not None:
            conn.execute(
                sa.update(QuarantineRecord)
                .where(
                    QuarantineRecord.source_name == SOURCE_NAME,
                    QuarantineRecord.source_table == "uploads",
                    QuarantineRecord.source_pk == str(row.id),
                    QuarantineRecord.json_path == row.upload_key,
                )
                .values(storage_key=moved.key, quarantined_at=sa.func.now(), purged_at=None)
            )
        conn.execute(
            sa.update(Upload)
            .where(Upload.id == row.id)
            .values(
                status="rejected",
                error=f"{code}: {reason}",
                processed_at=sa.func.now(),
                object_id=None,
                size_bytes=info.size if info else row.size_bytes,
                object_modified_at=info.last_modified if info else row.object_modified_at,
            )
        )
    if moved is not None:
        _drop_rejected_source(store, row.upload_key, info)


def uploads_to_process(
    engine: sa.Engine,
    *,
    upload_ids: list[int] | None = None,
    day: dt.date | None = None,
    batch_key: str | None = None,
) -> list[sa.Row]:
    """The batch's rows still to do: `upload_ids`, plus (with `batch_key`) the rows the batch's run took
    on while it ran (`take_confirmed`), so a retry of that run finds them too; else the day's."""
    query = sa.select(
        Upload.id,
        Upload.upload_key,
        Upload.owner_id,
        Upload.size_bytes,
        Upload.object_modified_at,
        Upload.object_id,
    )
    query = query.where(Upload.status.in_(("confirmed", "queued")))
    if upload_ids or batch_key:
        wanted = []
        if upload_ids:
            wanted.append(Upload.id.in_(upload_ids))
        if batch_key:
            wanted.append(Upload.batch_key == batch_key)
        query = query.where(sa.or_(*wanted))
    elif day is not None:
        query = query.where(Upload.upload_date == day)
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(Upload.id)))


def take_confirmed(engine: sa.Engine, *, day: dt.date, batch_key: str, limit: int) -> list[int]:
    """Move up to `limit` of the day's `confirmed` uploads into the running batch `batch_key`, in one
    statement: rows the sensor or another run is taking at the same moment are skipped (SKIP LOCKED), so
    each upload joins exactly one batch, and `uploads.batch_key` still names the run that did it."""
    if limit <= 0:
        return []
    # A CTE, evaluated once: as an `IN (subquery)` Postgres may run the LIMIT ... SKIP LOCKED subquery
    # again per row and take more than `limit` rows.
    chosen = (
        sa.select(Upload.id)
        .where(Upload.status == "confirmed", Upload.upload_date == day)
        .order_by(Upload.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("chosen")
    )
    with engine.begin() as conn:
        taken = conn.execute(
            sa.update(Upload)
            .where(Upload.id == chosen.c.id)
            .values(status="queued", batch_key=batch_key, queued_at=sa.func.now())
            .returning(Upload.id)
        ).scalars()
        return sorted(taken)


#: How often a lingering upload run looks for newly confirmed uploads (one indexed UPDATE ... SKIP LOCKED).
LINGER_POLL_SECONDS = 0.5


def process_uploads(
    engine: sa.Engine,
    store: ObjectStore,
    plan: VariantPlan,
    *,
    upload_ids: list[int] | None = None,
    day: dt.date | None = None,
    run_id: str | None = None,
    lineage: RunLineage | None = None,
    batch_key: str | None = None,
    linger_seconds: float = 0.0,
) -> UploadStats:
    """Validate a batch of uploads, store the valid ones as content-addressed originals with their
    variants, quarantine the rest with the reason; one bad upload never stops the batch. Catalog rows
    record `lineage` (the run, asset and partition; by default just `run_id`).

    With `batch_key` and `day` (a sensor batch's run), the run works in rounds. A round takes on the
    day's uploads confirmed since, `min_batch` at a time up to `batch_size`, rendering their thumbnails,
    then renders their full sets, then the full sets other runs' uploads still lack (`_share_full_sets`):
    a burst still arriving goes to the runs already started instead of waiting for a tick and a run
    start-up (seconds of CPU) per batch, and no run idles while another has a queue. Then it waits up to
    `linger_seconds` for new uploads (the next round) and ends when none come, or once it has run
    `run_minutes`: a trickle or a follow-on burst meets a running run."""
    lineage = lineage or RunLineage(run_id=run_id)
    limits = plan.uploads
    started = time.perf_counter()
    stats = UploadStats()
    rows = uploads_to_process(engine, upload_ids=upload_ids, day=day, batch_key=batch_key)
    with_full_set = 0  # stats.image_originals[:with_full_set] have had their full sets rendered
    with ThreadPoolExecutor(max_workers=RENDERS_IN_FLIGHT, thread_name_prefix="upload") as workers:
        while rows:
            round_start = stats.uploads
            while rows:
                _process_rows(engine, store, plan, rows, lineage, workers, stats)
                if day is None or batch_key is None or stats.deferred:  # storage failing: take on no more
                    break
                room = min(limits.min_batch, limits.batch_size - (stats.uploads - round_start))
                rows = _take_on(engine, day, batch_key, room, stats)
            originals = stats.image_originals[with_full_set:]
            _render_rest_of_the_set(engine, store, plan, originals, stats, lineage)
            with_full_set = len(stats.image_originals)
            if day is None or batch_key is None or stats.deferred:
                break
            _share_full_sets(engine, store, plan, stats, lineage, day=day, batch_key=batch_key)
            if time.perf_counter() - started >= limits.run_minutes * 60:
                break
            rows = _linger(engine, day, batch_key, limits.min_batch, linger_seconds, stats)
    stats.seconds = time.perf_counter() - started
    return stats


def _process_rows(
    engine: sa.Engine,
    store: ObjectStore,
    plan: VariantPlan,
    rows: list[sa.Row],
    lineage: RunLineage,
    workers: ThreadPoolExecutor,
    stats: UploadStats,
) -> None:
    """Validate, store and thumbnail `rows`, two at a time: one renders while the other's files and
    catalog rows are written."""
    outcomes = [(row, workers.submit(_process_one_upload, engine, store, plan, row, lineage)) for row in rows]
    for row, outcome in outcomes:
        stats.uploads += 1
        try:
            stats.merge(outcome.result())
        except ObjectStoreError as exc:
            # Storage still failing after retries: back to `confirmed` so the next tick re-batches it.
            logger.warning("upload %s deferred: %s", row.upload_key, exc)
            with engine.begin() as conn:
                conn.execute(
                    sa.update(Upload).where(Upload.id == row.id).values(status="confirmed", batch_key=None)
                )
            stats.deferred += 1


def _take_on(engine: sa.Engine, day: dt.date, batch_key: str, room: int, stats: UploadStats) -> list[sa.Row]:
    taken = take_confirmed(engine, day=day, batch_key=batch_key, limit=room)
    stats.taken_on += len(taken)
    return uploads_to_process(engine, upload_ids=taken) if taken else []


def _linger(
    engine: sa.Engine, day: dt.date, batch_key: str, room: int, seconds: float, stats: UploadStats
) -> list[sa.Row]:
    """The next round's first uploads, as soon as any is confirmed within `seconds`; none: the run ends."""
    began = time.monotonic()
    deadline = began + seconds
    rows: list[sa.Row] = []
    while not rows and time.monotonic() < deadline:
        time.sleep(min(LINGER_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        rows = _take_on(engine, day, batch_key, room, stats)
    stats.lingered_seconds += time.monotonic() - began
    stats.rounds += 1 if rows else 0
    return rows


def _render_rest_of_the_set(
    engine: sa.Engine,
    store: ObjectStore,
    plan: VariantPlan,
    originals: list[int],
    stats: UploadStats,
    lineage: RunLineage,
) -> None:
    """The round's full-size WebP and AVIF, in the same run, after every upload's thumbnails are recorded:
    thumbnails come seconds after an upload, and the full set never waits on another run being
    triggered (an automation tick that misses the batch must not leave it without its set)."""
    if not originals:
        return
    rest = process_batch(store, engine, originals, plan, lineage=lineage, in_flight=RENDERS_IN_FLIGHT)
    rest.images = 0  # the same originals, counted once already by their thumbnails
    rest.seconds = 0.0
    stats.variants.merge(rest)


def full_sets_left_by_other_runs(
    engine: sa.Engine,
    plan: VariantPlan,
    *,
    day: dt.date,
    batch_key: str,
    since: dt.datetime,
    before_upload_id: int | None = None,
    limit: int = 50,
) -> list[tuple[int, int]]:
    """(upload id, original id) of `day`'s uploads processed since `since` by other runs whose originals
    still lack their variant set, newest first: their own runs render them oldest first, so a run that
    shares the work meets its owner in the middle."""
    query = (
        originals_query(plan, created_before=None)
        .order_by(None)
        .join(Upload, Upload.object_id == StoredObject.id)
        .add_columns(Upload.id.label("upload_id"))
        .where(
            Upload.upload_date == day,
            Upload.status == "processed",
            Upload.processed_at >= since,
            Upload.batch_key.is_distinct_from(batch_key),
        )
    )
    if before_upload_id is not None:
        query = query.where(Upload.id < before_upload_id)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(Upload.id.desc()).limit(limit)).all()
    return [(row.upload_id, row.id) for row in rows]


def _share_full_sets(
    engine: sa.Engine,
    store: ObjectStore,
    plan: VariantPlan,
    stats: UploadStats,
    lineage: RunLineage,
    *,
    day: dt.date,
    batch_key: str,
) -> None:
    """Render the full sets the day's other upload runs have not reached yet, one pass, in pages from the
    newest uploads down (within a page `process_batch` goes by original id). Each original is rendered
    under its render lock (`process_original_alone`): one its own run is rendering is skipped, and its
    run skips the ones rendered here."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=plan.uploads.requeue_after_minutes)
    before: int | None = None
    while page := full_sets_left_by_other_runs(
        engine, plan, day=day, batch_key=batch_key, since=since, before_upload_id=before
    ):
        before = page[-1][0]
        shared = process_batch(
            store,
            engine,
            list({original for _, original in page}),
            plan,
            lineage=lineage,
            in_flight=RENDERS_IN_FLIGHT,
        )
        stats.full_sets_shared += shared.images
        shared.images, shared.seconds = 0, 0.0  # other runs' originals: counted by their runs
        stats.variants.merge(shared)


def _catalog_upload(
    engine: sa.Engine,
    store: ObjectStore,
    data: bytes,
    sha256: str,
    info: MediaInfo,
    owner_id: str,
    upload_id: int,
    lineage: RunLineage,
) -> tuple[int, StoredBlob]:
    """Store (or find) the original and record it; uploads again if retention purged it in between."""
    for attempt in range(3):
        blob = store_verified(store, data, sha256, info)
        try:
            with engine.begin() as conn:
                object_id = upsert_object(conn, blob, info, store.provider, store=store, lineage=lineage)
                upsert_reference(
                    conn,
                    object_id=object_id,
                    owner_id=owner_id,
                    origin="upload",
                    source_name=SOURCE_NAME,
                    source_table="uploads",
                    source_pk=str(upload_id),
                    lineage=lineage,
                )
            return object_id, blob
        except ObjectVanished:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def inline_specs(plan: VariantPlan) -> list[VariantSpec]:
    """The variants rendered as each upload is processed: the thumbnails (a quarter of the render cost),
    so a fresh upload has them within seconds. The full-size WebP and AVIF follow in the same run once
    the whole batch has its thumbnails (`_render_rest_of_the_set`)."""
    return [spec for spec in plan.specs if spec.kind == "thumbnail"]


def _process_one_upload(
    engine: sa.Engine, store: ObjectStore, plan: VariantPlan, row: sa.Row, lineage: RunLineage
) -> UploadStats:
    """One upload's outcome, on stats of its own (uploads run two at a time in worker threads; the run
    merges them)."""
    stats = UploadStats()

    def reject(
        code: str,
        reason: str,
        data: bytes | None = None,
        info: ObjectInfo | None = None,
        *,
        keep_bytes: bool = True,
    ) -> None:
        _reject(
            engine, store, row, code, reason, data=data, info=info, lineage=lineage, keep_bytes=keep_bytes
        )
        stats.rejected += 1
        stats.rejected_by_reason[code] = stats.rejected_by_reason.get(code, 0) + 1

    parsed = parse_upload_key(row.upload_key)
    if parsed is None:
        reject(
            "invalid_upload_key",
            "key is not uploads/YYYY/MM/DD/<owner>/<id>-<name> (not built by the server)",
        )
        return stats
    if row.owner_id == parsed.owner_id and owner_from_segment(parsed.owner_id) is None:
        reject(
            "unresolvable_owner",
            f"owner segment {parsed.owner_id!r} is encoded (the owner id is not plain) and cannot be read "
            "back; upload through request_upload so the exact owner id is recorded",
        )
        return stats
    head = retry_transient(lambda: store.head(row.upload_key))
    if head is None:
        reject(
            "missing_object",
            "the upload was confirmed but no object exists under its key",
            keep_bytes=False,
        )
        return stats
    limits = plan.uploads
    if head.size > max(limits.max_image_bytes, limits.max_document_bytes):  # refuse before reading it
        reject("too_large", f"{head.size:,} bytes is over every upload limit", info=head)
        return stats
    data = retry_transient(lambda: store.get_bytes(row.upload_key))
    try:
        info = validate_upload(data, limits)
        rendered: RenderResult | None = None
        if info.kind == "image":
            # inspect_media decoded every frame (an image whose pixels cannot be decoded never becomes
            # an original); the thumbnails are rendered here so they are ready seconds after the upload.
            rendered = render_variants(data, inline_specs(plan), threads=plan.threads)
    except MediaRejected as exc:
        reject(exc.code, exc.reason, data, head)
        return stats
    except ImageDecodeError as exc:
        reject(exc.code, exc.reason, data, head)
        return stats
    sha256 = sha256_hex(data)
    object_id, blob = _catalog_upload(engine, store, data, sha256, info, row.owner_id, row.id, lineage)
    if rendered is not None:
        original = Original(object_id, sha256, blob.key, blob.size, info.mime_type)
        stats.variants.merge(
            process_original(store, engine, original, plan, prerendered=rendered, lineage=lineage)
        )
        stats.image_originals.append(object_id)
    else:
        stats.documents += 1
    with engine.begin() as conn:
        conn.execute(
            sa.update(Upload)
            .where(Upload.id == row.id)
            .values(
                status="processed",
                object_id=object_id,
                processed_at=sa.func.now(),
                error=None,
                size_bytes=head.size,
                object_modified_at=head.last_modified,
                declared_mime=sa.func.coalesce(Upload.declared_mime, info.mime_type),
            )
        )
    stats.accepted += 1
    stats.latencies.append((dt.datetime.now(dt.UTC) - head.last_modified).total_seconds())
    return stats


def pending_uploads(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(Upload).where(Upload.status == "pending")
            ).scalar_one()
        )


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]
