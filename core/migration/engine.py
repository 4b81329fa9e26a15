"""Migrate one configured source: verify, then switch, one row at a time, resumable at any point.

Per blob (in a bounded thread pool, because storage calls wait on I/O): decode -> detect the real type
from magic bytes -> SHA-256 -> `store_verified` (content-addressed upload + confirmation of size and
checksum). Then per row, in ONE transaction: catalog object + reference rows for every verified blob,
quarantine rows for every refused value, and the row rewrite guarded by the row version (`xmin`), so a
row the app changed meanwhile is left for the next pass. No row is rewritten unless its objects are
verified; a refused value stays in the row as it was.

Memory does not follow the data: a row whose column is over `stream_above_bytes` is never fetched
whole but read in slices (core.migration.stream): plain base64 is decoded slice by slice into a spool,
JSON is tokenised as it streams and each blob handed to the workers on its own, within a byte budget
(`in_flight_bytes`) of base64 not yet decoded. Smaller rows come in keyset batches of `batch_bytes`.

If retention purges an object between its verification and the row's commit, `upsert_object` notices
(ObjectVanished), the transaction rolls back and the row is processed again at the end of the pass.

Progress (last primary key, rows scanned) is persisted after every batch. A run killed at any moment
resumes from there; rows already rewritten are recognised by their references and objects already
stored are found by their content address, so nothing is stored twice and nothing is lost. A pass that
reaches the end of the table clears its progress, so the next run is a fresh pass that picks up rows the
app wrote with base64 since (hybrid mode) and moves nothing else.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert

from core.blobcodec import Base64Decoder, CorruptBase64, decode_blob_text, parse_data_uri, set_json_path
from core.catalog.models import MigrationProgress, ObjectReference, QuarantineRecord, StoredObject
from core.ingest import (
    ObjectVanished,
    PlaceReference,
    StoredBlob,
    record_quarantine,
    store_verified,
    store_verified_file,
    upsert_object,
    upsert_objects,
    upsert_reference,
    upsert_references,
)
from core.keys import InvalidOwnerId, validate_owner_id
from core.lineage import RunLineage
from core.media_types import (
    MediaInfo,
    MediaRejected,
    inspect_media,
    inspect_media_parts,
)
from core.migration.memory import limit_heap_fragmentation
from core.migration.references import (
    CATALOG_PREFIX,
    URL_SCHEME,
    is_reference,
    make_reference,
    quarantine_of,
    references_of,
)
from core.migration.scan import SourceRow, UnreadableRow, dump_document, fetch_rows, iter_batches, parse_row
from core.migration.scan import validate_source as validate_source
from core.migration.settings import DEFAULTS
from core.migration.stream import (
    BadJson,
    RowChanged,
    Skeleton,
    Spool,
    read_slices,
    scan_json,
    splice_sql,
    text_slices,
)
from core.migration.totals import remaining_totals, stored_bytes
from core.objectstore.base import ObjectStore
from core.progress import ProgressReporter
from core.sources import BlobSource

#: Finished rows committed together (one transaction, a savepoint per row) while a batch is still being
#: planned; at the end of a batch every finished row at the front commits as one group.
COMMIT_GROUP_ROWS = 16
_KNOWN_VERIFIED_SQL = (
    f"SELECT 1 FROM {StoredObject.__table__.fullname} "  # type: ignore[attr-defined]
    "WHERE sha256 = %(sha256)s AND status = 'verified'"
)


def _text_array(values: set[str] | list[str]) -> sa.BindParameter[list[str]]:
    """One array parameter (`= ANY(...)`) instead of an IN list of one parameter per value."""
    return sa.bindparam(None, list(values), type_=ARRAY(sa.Text))


#: Hook for tests and tracing: called with "object_stored" (from a worker thread), "row_updated" (inside
#: the transaction, before commit), "row_committed" and "batch_done".
EventHook = Callable[[str], None]


@dataclass(frozen=True)
class MigrationSettings:
    """The engine's settings in bytes; every default is config/migration.yaml's model's (one default)."""

    batch_rows: int = DEFAULTS.batch_rows
    batch_bytes: int = DEFAULTS.batch_bytes
    workers: int = DEFAULTS.workers
    #: Rows whose column is bigger than this are read in slices, never whole (core.migration.stream).
    stream_above_bytes: int = DEFAULTS.stream_above_bytes
    #: Base64 text handed to the workers and not yet decoded, at most (bounds memory on streamed rows).
    in_flight_bytes: int = DEFAULTS.in_flight_bytes
    max_blob_bytes: int = DEFAULTS.max_blob_bytes
    #: source name -> column holding the app's declared MIME type (e.g. files.mime_type)
    declared_type_columns: tuple[tuple[str, str], ...] = ()

    def declared_type_column(self, source_name: str) -> str | None:
        return dict(self.declared_type_columns).get(source_name)


@dataclass
class MigrationStats:
    source: str
    resumed_from_pk: str | None = None
    rows_scanned: int = 0
    rows_rewritten: int = 0
    rows_changed_concurrently: int = 0
    rows_retried: int = 0  # processed again because retention purged their object mid-way
    blobs_moved: int = 0
    bytes_moved: int = 0  # decoded bytes of the moved blobs
    encoded_bytes_moved: int = 0  # characters of base64 removed from the rows
    objects_uploaded: int = 0
    duplicates_stored_once: int = 0  # moved blobs whose content the catalog already had
    already_migrated: int = 0  # references found from earlier passes
    #: references a row holds whose catalog reference was missing (e.g. lost to the old identity's
    #: collisions) and has been recorded again
    references_restored: int = 0
    #: "pk path" of references a row holds to an object that is gone: nothing to restore; the app's
    #: value needs attention
    dangling_references: list[str] = field(default_factory=list)
    quarantined: int = 0
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    elapsed_seconds: float = 0.0

    @property
    def mb_per_second(self) -> float:
        return self.bytes_moved / 1_000_000 / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0


@dataclass(frozen=True)
class _Stored:
    path: str
    blob: StoredBlob
    info: MediaInfo
    encoded_length: int


@dataclass(frozen=True)
class _Refused:
    path: str
    code: str
    reason: str
    sha256: str | None = None
    size: int | None = None


class _RowChanged(Exception):
    """The app rewrote the row while we worked on it; roll back and leave it for the next pass."""


@dataclass(frozen=True)
class _Changed:
    """Outcome of a streamed read that found the row changed (or gone) under it."""


@dataclass(frozen=True)
class _AlreadyMigrated:
    """Outcome of a streamed read that found a reference, not base64."""

    value: str = ""


def process_value(
    value: Any,
    path: str,
    source: BlobSource,
    store: ObjectStore,
    settings: MigrationSettings,
    declared_mime: str | None = None,
    catalog_knows: Callable[[str], bool] | None = None,
) -> _Stored | _Refused:
    """Decode, identify, hash and store one value; a refusal is a result, not an exception.
    `catalog_knows`: see `store_verified` (content the catalog holds is not sent again)."""
    if not isinstance(value, str):
        return _Refused(path, "not_text", f"expected base64 text, found JSON {type(value).__name__}")
    try:
        decoded = decode_blob_text(value)
    except CorruptBase64 as exc:
        return _Refused(path, "corrupt_base64", f"{exc.code}: {exc.reason}")
    data = decoded.data
    sha256 = hashlib.sha256(data).hexdigest() if data else None
    try:
        info = inspect_media(
            data,
            allowed_kinds=source.allowed_kinds,
            max_bytes=settings.max_blob_bytes,
        )
    except MediaRejected as exc:
        return _Refused(path, exc.code, exc.reason, sha256, len(data))
    mislabelled = _mislabelled(path, decoded.declared_mime or declared_mime, info, sha256, len(data))
    if mislabelled is not None:
        return mislabelled
    assert sha256 is not None  # inspect_media refuses empty data
    blob = store_verified(store, data, sha256, info, catalog_knows=catalog_knows)
    return _Stored(path, blob, info, decoded.encoded_length)


def _mislabelled(
    path: str, declared_mime: str | None, info: MediaInfo, sha256: str | None, size: int
) -> _Refused | None:
    declared = (declared_mime or "").strip().lower()
    if declared.startswith("image/") and info.kind != "image":
        # The app labels it an image and would serve it as one; content says otherwise.
        return _Refused(
            path,
            "not_image",
            f"declared {declared} but the content is {info.mime_type} (from magic bytes)",
            sha256,
            size,
        )
    return None


def process_streamed_text(
    engine: sa.Engine,
    row: SourceRow,
    source: BlobSource,
    store: ObjectStore,
    settings: MigrationSettings,
) -> _Stored | _Refused | _AlreadyMigrated:
    """`process_value` for a plain base64 / data: URI column read in slices: decoded into a Spool, so
    neither the text nor the bytes are ever whole in memory. RowChanged if the row changes meanwhile."""
    slices = text_slices(read_slices(engine, source, row.pk, row.xmin))
    try:
        head = next(slices, "")
        first = head.decode("ascii") if isinstance(head, bytes) else head
        del head
        length = len(first)
        if is_reference(first):
            return _AlreadyMigrated(first)
        payload, declared_mime = first, row.declared_mime
        if first[:5].lower() == "data:":
            try:
                declared_mime, payload = parse_data_uri(first)
            except CorruptBase64 as exc:
                return _Refused("", "corrupt_base64", f"{exc.code}: {exc.reason}")
            declared_mime = declared_mime or row.declared_mime
        del first
        decoder = Base64Decoder()
        with Spool() as spool:
            spool.write(decoder.feed(payload))
            del payload
            for text in slices:
                length += len(text)
                spool.write(decoder.feed(text))
            try:
                spool.write(decoder.finish())
            except CorruptBase64 as exc:
                return _Refused("", "corrupt_base64", f"{exc.code}: {exc.reason}")
            sha256 = spool.sha256 if spool.size else None
            try:
                info = inspect_media_parts(
                    spool.size,
                    spool.head,
                    spool.tail,
                    spool.open,
                    allowed_kinds=source.allowed_kinds,
                    max_bytes=settings.max_blob_bytes,
                )
            except MediaRejected as exc:
                return _Refused("", exc.code, exc.reason, sha256, spool.size)
            mislabelled = _mislabelled("", declared_mime, info, sha256, spool.size)
            if mislabelled is not None:
                return mislabelled
            assert sha256 is not None
            data = spool.in_memory()
            if data is not None:
                blob = store_verified(store, data, sha256, info)
            else:
                blob = store_verified_file(store, spool.file_path(), spool.size, sha256, info)
            return _Stored("", blob, info, length)
    finally:
        slices.close()


@dataclass
class _StreamedDoc:
    """Where a streamed JSON row's strings are: byte spans of the blobs, the paths of all wanted strings
    (holes) in document order, and the bytes around them when they were small enough to keep."""

    spans: dict[str, tuple[int, int]] = field(default_factory=dict)
    holes: list[str] = field(default_factory=list)
    skeleton: Skeleton = field(default_factory=Skeleton)

    def rebuild(self, replacements: list[tuple[str, str]]) -> str | None:
        """The new document when every hole gets a reference (else None: splice on the server)."""
        references = dict(replacements)
        if not self.skeleton.complete or set(references) != set(self.holes):
            return None
        if len(self.holes) != len(self.skeleton.segments) - 1:
            return None
        values = [json.dumps(references[path], ensure_ascii=False).encode("utf-8") for path in self.holes]
        return self.skeleton.fill(values).decode("utf-8")


#: A row between reading and commit: (row identity, parsed document, futures, refusals, where a streamed
#: JSON row's strings are, whether the row changed while it was read).
_Planned = tuple[SourceRow, Any, "list[Future[Any]]", "list[_Refused]", "_StreamedDoc | None", bool]


class _ByteBudget:
    """At most `limit` bytes of base64 text handed out and not yet processed (a bigger single value
    waits until nothing else is in flight)."""

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._used = 0
        self._cond = threading.Condition()

    def acquire(self, size: int) -> int:
        size = min(size, self._limit)
        with self._cond:
            self._cond.wait_for(lambda: self._used + size <= self._limit)
            self._used += size
        return size

    def release(self, size: int) -> None:
        with self._cond:
            self._used -= size
            self._cond.notify_all()


def _load_progress(conn: sa.Connection, name: str) -> tuple[str | None, int]:
    row = conn.execute(
        sa.select(MigrationProgress.last_pk, MigrationProgress.rows_scanned).where(
            MigrationProgress.source_name == name
        )
    ).first()
    return (row[0], int(row[1])) if row else (None, 0)


def _save_progress(
    conn: sa.Connection, name: str, last_pk: str, rows_scanned: int, run_id: str | None
) -> None:
    stmt = insert(MigrationProgress).values(
        source_name=name, last_pk=last_pk, rows_scanned=rows_scanned, run_id=run_id, updated_at=sa.func.now()
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[MigrationProgress.source_name],
            set_={
                "last_pk": last_pk,
                "rows_scanned": rows_scanned,
                "run_id": run_id,
                "updated_at": sa.func.now(),
            },
        )
    )


def reset_progress(engine: sa.Engine, source_name: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.delete(MigrationProgress).where(MigrationProgress.source_name == source_name))


class SourceMigrator:
    """One pass over one source. Build it, call `run()`; see the module docstring for the guarantees."""

    def __init__(
        self,
        engine: sa.Engine,
        store: ObjectStore,
        source: BlobSource,
        *,
        settings: MigrationSettings | None = None,
        run_id: str | None = None,
        on_event: EventHook | None = None,
        lineage: RunLineage | None = None,
        progress: ProgressReporter | None = None,
    ) -> None:
        self.engine = engine
        self.progress = progress
        self.store = store
        self.source = source
        self.settings = settings or MigrationSettings()
        self.run_id = run_id
        # what the catalog rows record: the run, and the asset/partition when the caller knows them
        self.lineage = lineage or RunLineage(run_id=run_id)
        self.on_event = on_event or (lambda _event: None)
        self.stats = MigrationStats(source=source.name)
        self._budget = _ByteBudget(self.settings.in_flight_bytes)
        self._vanished: list[Any] = []  # rows to process again (see ObjectVanished)
        #: (pk, owner, path, reference) of references found in the rows of the current batch
        self._held: list[tuple[Any, Any, str, str]] = []
        self.declared_column = self.settings.declared_type_column(source.name)
        self._pk_type = "text"  # the primary key's SQL type, set by run()
        self._lookups: sa.Engine | None = None  # pool for the storage threads' catalog lookups (run())
        self._committed_count = 0  # planned rows taken off the queue (committed or left) so far

    def _event(self, name: str) -> None:
        self.on_event(name)

    def _process(
        self, value: Any, path: str, declared_mime: str | None, budget: tuple[_ByteBudget, int] | None = None
    ) -> _Stored | _Refused:
        try:
            outcome = process_value(
                value, path, self.source, self.store, self.settings, declared_mime, self._catalog_knows
            )
        finally:
            del value
            if budget is not None:
                budget[0].release(budget[1])
        if isinstance(outcome, _Stored):
            self._event("object_stored")
        return outcome

    def _catalog_knows(self, sha256: str) -> bool:
        """The catalog holds this content as verified (so its bytes need not be sent or checked again).
        Asked from the storage threads, on a pool of their own (no pre-ping, no waiting for the main
        pool), so the lookup costs one local round trip beside the remote request it saves."""
        with (self._lookups or self.engine).connect() as conn:
            # Plain driver SQL: asked once per blob from every storage thread, where SQLAlchemy's own
            # statement handling cost more CPU than the round trip.
            return conn.exec_driver_sql(_KNOWN_VERIFIED_SQL, {"sha256": sha256}).first() is not None

    def _process_streamed(self, row: SourceRow) -> _Stored | _Refused | _Changed | _AlreadyMigrated:
        try:
            outcome = process_streamed_text(self.engine, row, self.source, self.store, self.settings)
        except RowChanged:
            return _Changed()
        if isinstance(outcome, _Stored):
            self._event("object_stored")
        return outcome

    def run(self) -> MigrationStats:
        started = time.monotonic()
        limit_heap_fragmentation()
        with self.engine.connect() as conn:
            pk_type = validate_source(conn, self.source, self.declared_column)
            self._pk_type = pk_type
            last_pk, rows_scanned = _load_progress(conn, self.source.name)
            if self.progress is not None and self.progress.total is None:
                # What this pass has left (a resumed pass counts from where it resumes).
                self.progress.total, self.progress.total_bytes = remaining_totals(
                    conn, self.source, pk_type, last_pk
                )
        self.stats.resumed_from_pk = last_pk
        self._budget = _ByteBudget(self.settings.in_flight_bytes)
        # Autocommit: a lookup is one statement, so no BEGIN before it and no ROLLBACK when the
        # connection goes back to the pool (two round trips and most of the server's work per blob).
        self._lookups = sa.create_engine(
            self.engine.url,
            pool_size=min(8, self.settings.workers),
            max_overflow=0,
            pool_pre_ping=False,
            isolation_level="AUTOCOMMIT",
        )
        try:
            self._run_passes(pk_type, last_pk, rows_scanned)
        finally:
            self._lookups.dispose()
            self._lookups = None
        # A complete pass: the next run starts again from the top (hybrid mode picks up new base64 rows).
        reset_progress(self.engine, self.source.name)
        self.stats.elapsed_seconds = time.monotonic() - started
        if self.progress is not None:
            self.progress.finish()
        return self.stats

    def _run_passes(self, pk_type: str, last_pk: str | None, rows_scanned: int) -> None:
        with ThreadPoolExecutor(max_workers=self.settings.workers, thread_name_prefix="migrate") as pool:
            batches = iter_batches(
                self.engine,
                self.source,
                pk_type,
                after=last_pk,
                max_rows=self.settings.batch_rows,
                max_bytes=self.settings.batch_bytes,
                declared_mime_column=self.declared_column,
                stream_above=self.settings.stream_above_bytes,
            )
            # One batch stays in flight while the next is read and planned (no idle workers between
            # batches); a batch's progress is saved once every row of it has committed.
            planned: list[_Planned] = []
            #: (rows planned up to the batch's end, its last pk, rows scanned): saved once all are committed
            marks: list[tuple[int, str, int]] = []
            while (batch := next(batches, None)) is not None:
                batch_last_pk, batch_rows = str(batch[-1].pk), len(batch)
                batch_bytes = self._stored_bytes(pk_type, batch)
                before = self._committed_count + len(planned)  # rows planned so far, in all
                self._plan_batch(pool, batch, planned)  # empties `batch`, freeing its text as rows go
                del batch
                rows_scanned += batch_rows
                self.stats.rows_scanned += batch_rows
                marks.append((self._committed_count + len(planned), batch_last_pk, rows_scanned))
                # Wait for the previous batch's rows; this one's carry on while the next is read.
                # (rows committed while it was planned are already off the queue)
                this_batch = self._committed_count + len(planned) - before
                self._commit_planned(planned, wait=True, keep=min(len(planned), this_batch))
                self._restore_references()
                self._save_marks(marks)
                if self.progress is not None:
                    self.progress.advance(batch_rows, batch_bytes)
            self._commit_planned(planned, wait=True)
            self._restore_references()
            self._save_marks(marks)
            # Rows whose object retention purged between its verification and the commit: again, now
            # that their objects are known to be gone (store_verified uploads them anew).
            for _round in range(3):
                if not self._vanished:
                    break
                pks, self._vanished = [str(pk) for pk in self._vanished], []
                retry = fetch_rows(
                    self.engine,
                    self.source,
                    pk_type,
                    pks,
                    declared_mime_column=self.declared_column,
                    stream_above=self.settings.stream_above_bytes,
                )
                self.stats.rows_retried += len(retry)
                self._run_batch(pool, retry)
            if self._vanished:
                raise ObjectVanished(f"{self.source.name}: objects of rows {self._vanished} keep vanishing")

    def _stored_bytes(self, pk_type: str, batch: list[SourceRow]) -> int:
        """The batch's stored column bytes, for progress only (one indexed query, nothing detoasted)."""
        if self.progress is None:
            return 0
        with self.engine.connect() as conn:
            return stored_bytes(conn, self.source, pk_type, [row.pk for row in batch])

    def _submit(self, pool: ThreadPoolExecutor, value: Any, path: str, row: SourceRow) -> Future[Any]:
        """Hand one value to the workers; a streamed row's values wait for room in the byte budget."""
        if row.streamed and isinstance(value, str):
            held = self._budget.acquire(len(value))
            return pool.submit(self._process, value, path, row.declared_mime, (self._budget, held))
        return pool.submit(self._process, value, path, row.declared_mime)

    def _plan_streamed_json(
        self, pool: ThreadPoolExecutor, row: SourceRow
    ) -> tuple[list[Future[Any]], list[_Refused], _StreamedDoc, bool]:
        """Read a big JSON row in slices, submitting each blob as it passes; (futures, refusals, where
        the blobs are in the document, whether the row changed under us)."""
        futures: list[Future[Any]] = []
        refused: list[_Refused] = []
        streamed = _StreamedDoc()
        spans = streamed.spans
        chunks = read_slices(self.engine, self.source, row.pk, row.xmin)
        try:
            for found in scan_json(chunks, self.source.json_paths, streamed.skeleton):
                if found.type_name == "str":
                    streamed.holes.append(found.path)
                if found.type_name != "str":
                    reason = f"expected base64 text, found JSON {found.type_name}"
                    refused.append(_Refused(found.path, "not_text", reason))
                    continue
                if is_reference(found.value):
                    self.stats.already_migrated += 1
                    self._held.append((row.pk, row.owner, found.path, found.value))
                    continue
                spans[found.path] = (found.start, found.end)
                futures.append(self._submit(pool, found.value, found.path, row))
                del found
        except RowChanged:
            return futures, [], _StreamedDoc(), True
        except BadJson as exc:
            # Nothing of this row is rewritten; objects already stored stay content-addressed.
            unreadable = _Refused("", "unreadable_json", f"column is not valid JSON: {exc}")
            return futures, [unreadable], _StreamedDoc(), False
        finally:
            chunks.close()
        return futures, refused, streamed, False

    def _run_batch(self, pool: ThreadPoolExecutor, batch: list[SourceRow]) -> None:
        planned: list[_Planned] = []
        self._plan_batch(pool, batch, planned)
        self._commit_planned(planned, wait=True)
        self._restore_references()

    def _plan_batch(self, pool: ThreadPoolExecutor, batch: list[SourceRow], planned: list[_Planned]) -> None:
        """Hand a batch's blobs to the workers, row by row, committing finished rows on the way."""
        json_source = self.source.format in ("json_text", "jsonb")
        for row in batch:
            # Rows whose blobs are done commit while the workers carry on with the rows planned after.
            self._commit_planned(planned, wait=False)
            futures: list[Future[Any]] = []
            refused: list[_Refused] = []
            if row.owner is not None and (row.streamed or row.value is not None):
                try:
                    validate_owner_id(row.owner)
                except InvalidOwnerId as exc:
                    # An owner id that cannot be kept exactly (too long, an unsupported type) is never
                    # cleaned into someone else's: the row is refused whole. No owner at all: `no_owner`.
                    refused.append(_Refused("", "invalid_owner", str(exc)))
                    planned.append((replace(row, value=None), None, futures, refused, None, False))
                    continue
            if row.streamed and json_source:
                futures, refused, streamed, changed = self._plan_streamed_json(pool, row)
                if not changed and refused and refused[-1].code == "unreadable_json":
                    futures = []  # outcomes are not used: the row is quarantined whole
                planned.append((row, None, futures, refused, streamed, changed))
                continue
            if row.streamed:
                futures.append(pool.submit(self._process_streamed, row))
                planned.append((row, None, futures, refused, None, False))
                continue
            try:
                doc, candidates = parse_row(self.source, row.value)
            except UnreadableRow as exc:
                doc, candidates = None, []
                refused.append(_Refused("", "unreadable_json", str(exc)))
            for candidate in candidates:
                if candidate.value is None:
                    continue
                if is_reference(candidate.value):
                    self.stats.already_migrated += 1
                    self._held.append((row.pk, row.owner, candidate.path, candidate.value))
                    continue
                futures.append(self._submit(pool, candidate.value, candidate.path, row))
            # Keep the row's identity, not its text: the parsed document (or the futures) hold the blobs.
            planned.append((replace(row, value=None), doc, futures, refused, None, False))
        batch.clear()
        row = doc = candidates = candidate = None  # type: ignore[assignment]  # drop the last row's text

    def _restore_references(self) -> None:
        """Every reference a row already holds has its catalog reference, of exactly this place.

        Catalogs made before references were identified by source, schema and column lost some to
        collisions (two sources on one table, same-named tables): the object is still there, the row
        still names it, but nothing in the catalog says so, and the orphaned-objects policy would delete
        it. One query per batch finds the places without a live reference; each is recorded again under
        a share lock on its object, and only while the object is verified (a deleted one is reported)."""
        held, self._held = self._held, []
        if not held:
            return
        source = self.source
        places = {(str(pk), path): (owner, value) for pk, owner, path, value in held}
        with self.engine.begin() as conn:
            have = {
                (pk, path)
                for pk, path in conn.execute(
                    sa.select(ObjectReference.source_pk, ObjectReference.json_path).where(
                        *references_of(source),
                        ObjectReference.released_at.is_(None),
                        ObjectReference.source_pk.in_({pk for pk, _path in places}),
                    )
                )
            }
            for (pk, path), (owner, value) in places.items():
                if (pk, path) in have:
                    continue
                if owner is None:
                    self.stats.dangling_references.append(f"pk {pk} {path or source.column}: no owner")
                    continue
                if value.startswith(CATALOG_PREFIX):
                    where = StoredObject.id == int(value.removeprefix(CATALOG_PREFIX))
                else:
                    where = StoredObject.storage_key == value.removeprefix(URL_SCHEME)
                found = conn.execute(
                    sa.select(StoredObject.id, StoredObject.status).where(where).with_for_update(read=True)
                ).first()
                if found is None or found.status != "verified":
                    self.stats.dangling_references.append(f"pk {pk} {path or source.column}: {value}")
                    continue
                try:
                    owner_id = validate_owner_id(owner)
                except InvalidOwnerId as exc:
                    self.stats.dangling_references.append(f"pk {pk} {path or source.column}: {exc}")
                    continue
                upsert_reference(
                    conn,
                    object_id=int(found.id),
                    owner_id=owner_id,
                    origin="migration",
                    **source.identity,
                    source_pk=pk,
                    json_path=path,
                    lineage=self.lineage,
                )
                self.stats.references_restored += 1

    def _save_marks(self, marks: list[tuple[int, str, int]]) -> None:
        """Save the progress of the batches whose rows have all committed."""
        done = [mark for mark in marks if mark[0] <= self._committed_count]
        if not done:
            return
        del marks[: len(done)]
        _count, last_pk, rows_scanned = done[-1]
        with self.engine.begin() as conn:
            _save_progress(conn, self.source.name, last_pk, rows_scanned, self.run_id)
        for _mark in done:
            self._event("batch_done")

    def _commit_planned(self, planned: list[_Planned], *, wait: bool, keep: int = 0) -> None:
        """Commit planned rows in order, a group of rows per transaction (a savepoint per row).

        With `wait`, all of them: each group is the rows at the front whose blobs are done, so workers
        carry on with later rows while a group commits. Without, only a group of at least
        COMMIT_GROUP_ROWS finished rows (called between planning rows: no tiny transactions)."""
        keep = max(0, keep)
        while len(planned) > keep:
            ready = 0
            for entry in planned:
                if not all(f.done() for f in entry[2]):
                    break
                ready += 1
            if not wait and ready < COMMIT_GROUP_ROWS:
                return
            if wait:
                ready = min(ready, len(planned) - keep)
            if ready == 0:
                for future in planned[0][2]:
                    future.exception()  # block until the front row's blobs are done
                continue
            group: list[tuple[SourceRow, Any, list[_Stored], list[_Refused], _StreamedDoc | None]] = []
            for _ in range(ready):
                row, doc, futures, refused, streamed, changed = planned.pop(0)
                self._committed_count += 1
                outcomes = [f.result() for f in futures]  # a storage failure after retries ends the run
                for outcome in outcomes:
                    if isinstance(outcome, _AlreadyMigrated):
                        self.stats.already_migrated += 1
                        self._held.append((row.pk, row.owner, "", outcome.value))
                if changed or any(isinstance(o, _Changed) for o in outcomes):
                    self.stats.rows_changed_concurrently += 1
                    continue
                group.append(
                    (
                        row,
                        doc,
                        [o for o in outcomes if isinstance(o, _Stored)],
                        refused + [o for o in outcomes if isinstance(o, _Refused)],
                        streamed,
                    )
                )
            self._commit_rows(group)

    def _commit_rows(
        self, group: list[tuple[SourceRow, Any, list[_Stored], list[_Refused], _StreamedDoc | None]]
    ) -> None:
        """One transaction for a group of finished rows; each row in its own savepoint, so a row the app
        changed (or whose object retention purged) rolls back alone. Every row is still switched only
        after its own objects were verified; the group only shares the commit (and two lookups)."""
        group = [entry for entry in group if entry[2] or entry[3]]
        if not group:
            return
        committed: list[Callable[[], None]] = []
        with self.engine.begin() as conn:
            shas = {item.blob.sha256 for entry in group for item in entry[2]}
            seen = (
                set(
                    conn.execute(
                        sa.select(StoredObject.sha256).where(
                            StoredObject.sha256 == sa.any_(_text_array(shas))
                        )
                    ).scalars()
                )
                if shas
                else set()
            )
            pks = [str(entry[0].pk) for entry in group if entry[2]]
            quarantined = (
                {
                    (pk, path)
                    for pk, path in conn.execute(
                        sa.select(QuarantineRecord.source_pk, QuarantineRecord.json_path).where(
                            *quarantine_of(self.source),
                            QuarantineRecord.source_pk == sa.any_(_text_array(pks)),
                        )
                    )
                }
                if pks
                else set()
            )
            simple = [e for e in group if e[2] and not e[3] and e[4] is None and e[0].owner is not None]
            committed.extend(self._write_rows_together(conn, simple, seen, quarantined))
            together = {id(entry[0]) for entry in simple}
            for row, doc, stored, refused, streamed in group:
                if id(row) in together:
                    continue
                try:
                    with conn.begin_nested():
                        committed.append(
                            self._write_row(conn, row, doc, stored, refused, streamed, seen, quarantined)
                        )
                except _RowChanged:
                    self.stats.rows_changed_concurrently += 1
                except ObjectVanished:
                    self._vanished.append(row.pk)
        for apply in committed:
            self._event("row_committed")
            apply()

    def _write_rows_together(
        self,
        conn: sa.Connection,
        rows: list[tuple[SourceRow, Any, list[_Stored], list[_Refused], _StreamedDoc | None]],
        seen: set[str],
        quarantined: set[tuple[str, str]],
    ) -> list[Callable[[], None]]:
        """The common case of `_write_row` for many rows at once (owned rows whose every value was
        stored): one statement each for the catalog objects, the guarded row rewrites (UPDATE ... FROM
        unnest, each row still guarded by its own xmin) and the references. A row the app changed
        meanwhile is simply not updated (its object stays catalogued without a reference, for retention
        to collect, as after any interrupted run); a row whose object is no longer `verified` (retention
        marked it deleted after we checked) is left out and goes through `_write_row`, which re-checks the
        bytes under the row lock."""
        if not rows:
            return []
        source = self.source
        first: dict[str, _Stored] = {}
        for _row, _doc, stored, _refused, _streamed in rows:
            for item in stored:
                first.setdefault(item.blob.sha256, item)
        ids = upsert_objects(
            conn,
            [(item.blob, item.info) for item in first.values()],
            self.store.provider,
            lineage=self.lineage,
        )
        # Rows with an object that is not `verified` any more go row by row (revive or ObjectVanished).
        rows[:] = [entry for entry in rows if all(item.blob.sha256 in ids for item in entry[2])]
        if not rows:
            return []
        values: dict[str, str] = {}
        for row, doc, stored, _refused, _streamed in rows:
            replacements = [
                (item.path, make_reference(source.reference, item.blob.key, ids[item.blob.sha256]))
                for item in stored
            ]
            if doc is None:
                values[str(row.pk)] = replacements[0][1]
            else:
                for path, reference in replacements:
                    set_json_path(doc, path, reference)
                values[str(row.pk)] = dump_document(doc)
        cast = "CAST(v.val AS jsonb)" if source.format == "jsonb" else "v.val"
        updated = set(
            conn.execute(
                sa.text(
                    f'UPDATE {source.qualified_table} t SET "{source.column}" = {cast} '
                    f"FROM unnest(CAST(:pks AS {self._pk_type}[]), CAST(:xmins AS text[]), "
                    "CAST(:vals AS text[])) AS v(pk, xm, val) "
                    f'WHERE t."{source.primary_key}" = v.pk AND t.xmin::text = v.xm '
                    f'RETURNING t."{source.primary_key}"::text'
                ),
                {
                    "pks": [str(row.pk) for row, *_rest in rows],
                    "xmins": [str(row.xmin) for row, *_rest in rows],
                    "vals": [values[str(row.pk)] for row, *_rest in rows],
                },
            ).scalars()
        )
        references: list[PlaceReference] = []
        applied: list[Callable[[], None]] = []
        for row, _doc, stored, _refused, _streamed in rows:
            pk_text = str(row.pk)
            if pk_text not in updated:
                self.stats.rows_changed_concurrently += 1
                continue
            self._event("row_updated")
            for item in stored:
                references.append(
                    PlaceReference(ids[item.blob.sha256], validate_owner_id(row.owner), pk_text, item.path)
                )
            fixed = [item.path for item in stored if (pk_text, item.path) in quarantined]
            if fixed:
                # A value quarantined earlier and since fixed by the app is no longer in quarantine.
                conn.execute(
                    sa.delete(QuarantineRecord).where(
                        *quarantine_of(source),
                        QuarantineRecord.source_pk == pk_text,
                        QuarantineRecord.json_path.in_(fixed),
                    )
                )
            known = 0
            for item in stored:
                known += item.blob.sha256 in seen
                seen.add(item.blob.sha256)
            applied.append(self._stats_of(stored, [], known))
        upsert_references(conn, references, origin="migration", **source.identity, lineage=self.lineage)
        return applied

    def _stats_of(self, stored: list[_Stored], refused: list[_Refused], known: int) -> Callable[[], None]:
        def apply() -> None:
            stats = self.stats
            if stored:
                stats.rows_rewritten += 1
            stats.duplicates_stored_once += known
            for item in stored:
                stats.blobs_moved += 1
                stats.bytes_moved += item.blob.size
                stats.encoded_bytes_moved += item.encoded_length
                stats.objects_uploaded += int(item.blob.uploaded)
            for item in refused:
                stats.quarantined += 1
                stats.quarantine_reasons[item.code] += 1

        return apply

    def _write_row(
        self,
        conn: sa.Connection,
        row: SourceRow,
        doc: Any,
        stored: list[_Stored],
        refused: list[_Refused],
        streamed: _StreamedDoc | None,
        seen: set[str],
        quarantined: set[tuple[str, str]],
    ) -> Callable[[], None]:
        """Catalog rows, quarantine rows and the guarded rewrite of one row (inside the caller's
        savepoint); returns what to add to the stats once the transaction has committed."""
        source = self.source
        pk_text = str(row.pk)
        unowned: list[_Stored] = []
        if row.owner is None and stored:
            # Nobody to attribute it to (quotas, GDPR and retention are per owner): the value stays in the
            # row, quarantined; its object is catalogued unreferenced, so retention collects the bytes.
            reason = f"the row has no owner ({source.owner_description} is NULL)"
            refused = refused + [
                _Refused(item.path, "no_owner", reason, item.blob.sha256, item.blob.size) for item in stored
            ]
            unowned, stored = stored, []
        for item in unowned:
            upsert_object(
                conn, item.blob, item.info, self.store.provider, store=self.store, lineage=self.lineage
            )
        replacements: list[tuple[str, str]] = []
        known = 0
        added: set[str] = set()  # content this row adds to the catalog (kept only if the row commits)
        for item in stored:
            # Content the catalog already had (or an earlier blob of this group adds): stored once.
            known += item.blob.sha256 in seen or item.blob.sha256 in added
            added.add(item.blob.sha256)
            object_id = upsert_object(
                conn, item.blob, item.info, self.store.provider, store=self.store, lineage=self.lineage
            )
            upsert_reference(
                conn,
                object_id=object_id,
                owner_id=validate_owner_id(row.owner),
                origin="migration",
                **source.identity,
                source_pk=pk_text,
                json_path=item.path,
                lineage=self.lineage,
            )
            replacements.append((item.path, make_reference(source.reference, item.blob.key, object_id)))
        fixed = [item.path for item in stored if (pk_text, item.path) in quarantined]
        if fixed:
            # A value quarantined earlier and since fixed by the app is no longer in quarantine.
            conn.execute(
                sa.delete(QuarantineRecord).where(
                    *quarantine_of(source),
                    QuarantineRecord.source_pk == pk_text,
                    QuarantineRecord.json_path.in_(fixed),
                )
            )
        for item in refused:
            record_quarantine(
                conn,
                **source.identity,
                source_pk=pk_text,
                json_path=item.path,
                reason_code=item.code,
                reason=item.reason,
                sha256=item.sha256,
                size_bytes=item.size,
                lineage=self.lineage,
            )
        if replacements:
            whole = streamed.rebuild(replacements) if streamed is not None else None
            if streamed is not None and whole is None:
                # A streamed JSON row whose other bytes were not kept: splice on the server.
                spans = streamed.spans
                edits = sorted((spans[path], reference) for path, reference in replacements)
                params: dict[str, Any] = {
                    f"r{i}": json.dumps(reference, ensure_ascii=False).encode("utf-8")
                    for i, (_span, reference) in enumerate(edits)
                }
                statement = splice_sql(source, [span for span, _reference in edits])
            else:
                if whole is not None:
                    new_value = whole
                elif doc is None:
                    new_value = replacements[0][1]
                else:
                    for path, reference in replacements:
                        set_json_path(doc, path, reference)
                    new_value = dump_document(doc)
                cast = "CAST(:v AS jsonb)" if source.format == "jsonb" else ":v"
                statement = (
                    f'UPDATE {source.qualified_table} SET "{source.column}" = {cast} '
                    f'WHERE "{source.primary_key}" = :pk AND xmin::text = :xmin'
                )
                params = {"v": new_value}
            result = conn.execute(sa.text(statement), {**params, "pk": row.pk, "xmin": row.xmin})
            if result.rowcount != 1:
                raise _RowChanged
            self._event("row_updated")
        seen.update(added)
        return self._stats_of(stored, refused, known)


def migrate_source(
    engine: sa.Engine,
    store: ObjectStore,
    source: BlobSource,
    *,
    settings: MigrationSettings | None = None,
    run_id: str | None = None,
    on_event: EventHook | None = None,
    lineage: RunLineage | None = None,
    progress: ProgressReporter | None = None,
) -> MigrationStats:
    """Run one (possibly resumed) pass over `source`; see the module docstring. `lineage` (run, asset,
    partition) is recorded on the catalog rows written; by default just `run_id`. `progress`, when
    given, is told the rows and stored bytes left before the pass and advanced after every batch."""
    return SourceMigrator(
        engine,
        store,
        source,
        settings=settings,
        run_id=run_id,
        on_event=on_event,
        lineage=lineage,
        progress=progress,
    ).run()
