"""Variants in the catalog: which originals lack their current variant set, and rendering + recording them.

An original "has its set" when every spec in config/variants.yaml has a row with the spec's current
`spec_hash` and status ready or skipped (a skip carries its reason). A failed row with the current hash
is not retried automatically (a corrupt original would fail every run); `retry_failed` re-attempts them.
Changing one spec changes one hash, so only that variant is re-rendered.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from core.catalog.models import StoredObject, Upload, Variant
from core.imaging import (
    DECODABLE_MIME_TYPES,
    ImageDecodeError,
    RenderedVariant,
    RenderResult,
    VariantPlan,
    VariantSpec,
    render_variants,
)
from core.keys import variant_key
from core.lineage import NO_RUN, RunLineage
from core.objectstore.base import ObjectStore, ObjectStoreError
from core.objectstore.retry import retry_transient
from core.progress import ProgressReporter

logger = logging.getLogger(__name__)

#: Statuses that count as "done" for a spec hash (failed counts too unless retry_failed).
DONE = ("ready", "skipped")


@dataclass(frozen=True)
class Original:
    id: int
    sha256: str
    storage_key: str
    size_bytes: int
    mime_type: str


@dataclass
class VariantStats:
    """What one batch did; summed across batches for the run's metadata."""

    images: int = 0
    variants_ready: int = 0
    variants_skipped: int = 0
    variants_failed: int = 0
    images_failed: int = 0
    images_deferred: int = 0  # storage still failing after retries: left for the next run
    images_busy: int = 0  # another process was rendering it (its render lock was held): left to that one
    # originals' bytes next to what their full-size WebP / AVIF weigh, for "bytes saved" metadata
    bytes_original_webp: int = 0
    bytes_webp: int = 0
    bytes_original_avif: int = 0
    bytes_avif: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def merge(self, other: VariantStats) -> VariantStats:
        for name in self.__dataclass_fields__:
            value = getattr(other, name)
            if name == "errors":
                self.errors.extend(value[: max(0, 20 - len(self.errors))])
            else:
                setattr(self, name, getattr(self, name) + value)
        return self

    @property
    def variants(self) -> int:
        return self.variants_ready + self.variants_skipped + self.variants_failed


def _missing_condition(plan: VariantPlan, retry_failed: bool) -> sa.ColumnElement[bool]:
    """SQL: the original lacks at least one (name, current hash) in a done status."""
    statuses = DONE if retry_failed else (*DONE, "failed")
    done = (
        sa.select(sa.func.count())
        .select_from(Variant)
        .where(
            Variant.parent_object_id == StoredObject.id,
            Variant.status.in_(statuses),
            sa.tuple_(Variant.variant_name, Variant.spec_hash).in_(plan.spec_pairs()),
        )
        .scalar_subquery()
    )
    return done < len(plan.specs)


def originals_query(
    plan: VariantPlan,
    *,
    created_before: datetime | None,
    retry_failed: bool = False,
    uploads_processed_since: datetime | None = None,
):
    """Image originals (migrated and uploaded alike) lacking their current variant set, by id.

    `uploads_processed_since`: leave out the originals of uploads processed since then. Their upload run
    renders their full sets right after the batch's thumbnails; a variants run taking them too would
    render the same images on the same cores (a crashed upload run is retried by Dagster; what it still
    missed is taken once the window has passed)."""
    query = sa.select(
        StoredObject.id,
        StoredObject.sha256,
        StoredObject.storage_key,
        StoredObject.size_bytes,
        StoredObject.mime_type,
    ).where(
        StoredObject.kind == "image",
        StoredObject.status == "verified",
        StoredObject.mime_type.in_(DECODABLE_MIME_TYPES),
        _missing_condition(plan, retry_failed),
    )
    if created_before is not None:
        query = query.where(StoredObject.created_at < created_before)
    if uploads_processed_since is not None:
        in_flight = sa.select(Upload.object_id).where(
            # upload days older than the re-check window are never processed again (index on the day)
            Upload.upload_date >= (uploads_processed_since - timedelta(days=2)).date(),
            Upload.status == "processed",
            Upload.processed_at >= uploads_processed_since,
            Upload.object_id.is_not(None),
        )
        query = query.where(StoredObject.id.not_in(in_flight))
    return query.order_by(StoredObject.id)


def ids_needing_variants(
    engine: sa.Engine,
    plan: VariantPlan,
    *,
    created_before: datetime | None = None,
    retry_failed: bool = False,
    uploads_processed_since: datetime | None = None,
    page_size: int = 5000,
) -> Iterator[list[tuple[int, int]]]:
    """Pages of (original id, size in bytes), keyset by id so memory stays flat however big the catalog."""
    after = 0
    base = originals_query(
        plan,
        created_before=created_before,
        retry_failed=retry_failed,
        uploads_processed_since=uploads_processed_since,
    )
    while True:
        with engine.connect() as conn:
            page = [
                (row.id, row.size_bytes)
                for row in conn.execute(base.where(StoredObject.id > after).limit(page_size))
            ]
        if not page:
            return
        yield page
        after = page[-1][0]


def load_originals(engine: sa.Engine, ids: list[int]) -> list[Original]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                StoredObject.id,
                StoredObject.sha256,
                StoredObject.storage_key,
                StoredObject.size_bytes,
                StoredObject.mime_type,
            )
            .where(StoredObject.id.in_(ids))
            .order_by(StoredObject.id)
        ).all()
    return [Original(r.id, r.sha256.strip(), r.storage_key, r.size_bytes, r.mime_type) for r in rows]


def specs_to_render(
    conn: sa.Connection, original_id: int, plan: VariantPlan, retry_failed: bool
) -> list[VariantSpec]:
    statuses = DONE if retry_failed else (*DONE, "failed")
    have = set(
        conn.execute(
            sa.select(Variant.variant_name, Variant.spec_hash).where(
                Variant.parent_object_id == original_id, Variant.status.in_(statuses)
            )
        ).tuples()
    )
    return [spec for spec in plan.specs if (spec.name, spec.spec_hash) not in have]


#: The key of a variant row (`uq_variants_parent_name`) and every other column `_row` fills: each row
#: carries all of them, so the upsert below is one statement whatever the rows hold.
_ROW_KEY = ("parent_object_id", "variant_name")
_ROW_VALUES = (
    "spec_hash",
    "status",
    "storage_key",
    "sha256",
    "mime_type",
    "size_bytes",
    "width",
    "height",
    "error",
    "deleted_at",
    *NO_RUN.columns(),
)


def _row(original_id: int, spec: VariantSpec, lineage: RunLineage, **values: object) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(_ROW_KEY + _ROW_VALUES)
    row.update(
        parent_object_id=original_id,
        variant_name=spec.name,
        spec_hash=spec.spec_hash,
        status="failed",
        **lineage.columns(),
    )
    row.update(values)
    return row


@cache
def _upsert_variants_statement() -> sa.Insert:
    """Built once, executed with a list of rows (psycopg sends them as one multi-row INSERT): a
    `.values(rows)` statement was a new statement for SQLAlchemy to compile on every call, twice per
    upload (measured: 1.8 ms against 0.8 ms of CPU for three rows)."""
    stmt = insert(Variant)
    return stmt.on_conflict_do_update(
        constraint="uq_variants_parent_name",
        set_={name: stmt.excluded[name] for name in _ROW_VALUES} | {"created_at": sa.func.now()},
    )


def upsert_variant_rows(conn: sa.Connection, rows: list[dict[str, object]]) -> None:
    if rows:
        conn.execute(_upsert_variants_statement(), rows)


def _put(store: ObjectStore, key: str, variant: RenderedVariant) -> None:
    data = variant.data
    assert data is not None
    sha256 = variant.sha256 or ""
    info = retry_transient(
        lambda: store.put_bytes(key, data, sha256=sha256, content_type=variant.spec.mime_type)
    )
    if info.size != len(data):
        raise ObjectStoreError(f"{key}: stored {info.size} bytes, wrote {len(data)}")


def process_original(
    store: ObjectStore,
    engine: sa.Engine,
    original: Original,
    plan: VariantPlan,
    *,
    data: bytes | None = None,
    retry_failed: bool = False,
    pool: ThreadPoolExecutor | None = None,
    prerendered: RenderResult | None = None,
    lineage: RunLineage = NO_RUN,
    conn: sa.Connection | None = None,
) -> VariantStats:
    """Render and store the variants `original` lacks, then record them in one transaction.

    Decode/encode failures become `failed` rows with the error; storage errors are retried and, if
    they persist, nothing is recorded so the next run picks the original up again. Each row records
    `lineage`, the run (asset, partition) that rendered it. With `conn` (in a transaction its caller
    commits: the render lock's), the lookup and the rows go through it instead of the engine's pool.
    """
    stats = VariantStats(images=1)
    with _through(conn, engine.connect) as lookup:
        specs = specs_to_render(lookup, original.id, plan, retry_failed)
    if not specs:
        return stats
    try:
        if prerendered is not None:  # uploads decode once for validation and reuse the renditions
            wanted = {spec.name for spec in specs}
            result = RenderResult(
                prerendered.width,
                prerendered.height,
                [v for v in prerendered.variants if v.spec.name in wanted],
            )
        else:
            if data is None:
                data = retry_transient(lambda: store.get_bytes(original.storage_key))
            result = render_variants(
                data,
                specs,
                original_size=original.size_bytes,
                threads=plan.threads,
            )
    except ObjectStoreError as exc:
        stats.images_deferred += 1
        stats.errors.append(f"object {original.id}: storage: {exc}")
        logger.warning("variants of object %s deferred: %s", original.id, exc)
        return stats
    except ImageDecodeError as exc:
        rows = [_row(original.id, spec, lineage, error=f"{exc.code}: {exc.reason}") for spec in specs]
        with _through(conn, engine.begin) as record:
            upsert_variant_rows(record, rows)
        stats.images_failed += 1
        stats.variants_failed += len(rows)
        stats.errors.append(f"object {original.id}: {exc}")
        return stats
    ready = [v for v in result.variants if v.status == "ready"]
    keys = {v.spec.name: variant_key(original.sha256, v.spec.name, v.spec.extension) for v in ready}
    try:
        if pool is not None and len(ready) > 1:
            list(pool.map(lambda v: _put(store, keys[v.spec.name], v), ready))
        else:
            for v in ready:
                _put(store, keys[v.spec.name], v)
    except ObjectStoreError as exc:
        stats.images_deferred += 1
        stats.errors.append(f"object {original.id}: storage: {exc}")
        logger.warning("variants of object %s deferred: %s", original.id, exc)
        return stats
    rows = []
    for v in result.variants:
        if v.status == "ready":
            assert v.data is not None
            rows.append(
                _row(
                    original.id,
                    v.spec,
                    lineage,
                    status="ready",
                    storage_key=keys[v.spec.name],
                    sha256=v.sha256,
                    mime_type=v.spec.mime_type,
                    size_bytes=len(v.data),
                    width=v.width,
                    height=v.height,
                )
            )
            stats.variants_ready += 1
            if v.spec.kind == "full":
                if v.spec.format == "webp":
                    stats.bytes_original_webp += original.size_bytes
                    stats.bytes_webp += len(v.data)
                elif v.spec.format == "avif":
                    stats.bytes_original_avif += original.size_bytes
                    stats.bytes_avif += len(v.data)
        else:
            rows.append(
                _row(
                    original.id,
                    v.spec,
                    lineage,
                    status="skipped",
                    width=v.width,
                    height=v.height,
                    error=v.reason,
                )
            )
            stats.variants_skipped += 1
    with _through(conn, engine.begin) as record:
        upsert_variant_rows(record, rows)
    return stats


def _through(
    conn: sa.Connection | None, open_one: Callable[[], AbstractContextManager[sa.Connection]]
) -> AbstractContextManager[sa.Connection]:
    """The caller's connection (its transaction, left open), else a pooled one from `open_one`."""
    return nullcontext(conn) if conn is not None else open_one()


#: First key of `pg_try_advisory_xact_lock(namespace, original)`: "rendering this original's variants".
RENDER_LOCK_NAMESPACE = 0x56415249  # "VARI"


def process_original_alone(
    store: ObjectStore,
    engine: sa.Engine,
    original: Original,
    plan: VariantPlan,
    *,
    retry_failed: bool = False,
    pool: ThreadPoolExecutor | None = None,
    lineage: RunLineage = NO_RUN,
) -> VariantStats:
    """`process_original` holding the original's render lock (a Postgres advisory lock, released when the
    holding transaction ends, however the render ends). An original another process is rendering is left
    to it: upload runs share each other's full sets, and a variants run meeting one of them skips it,
    instead of two processes rendering the same image on the same cores."""
    with engine.begin() as lock:
        held = lock.scalar(
            sa.select(
                sa.func.pg_try_advisory_xact_lock(
                    sa.cast(RENDER_LOCK_NAMESPACE, sa.Integer),
                    sa.cast(original.id % 2**31, sa.Integer),  # int4 key; a collision only skips one
                )
            )
        )
        if not held:
            return VariantStats(images_busy=1)
        # The lock's holder committed its rows as it released it, so what is still missing is current;
        # this original's rows are committed with the lock's transaction, as the lock is released.
        return process_original(
            store, engine, original, plan, retry_failed=retry_failed, pool=pool, lineage=lineage, conn=lock
        )


def process_batch(
    store: ObjectStore,
    engine: sa.Engine,
    ids: list[int],
    plan: VariantPlan,
    *,
    retry_failed: bool = False,
    lineage: RunLineage = NO_RUN,
    progress: ProgressReporter | None = None,
    in_flight: int = 1,
) -> VariantStats:
    """Variants for a batch of originals, `in_flight` at a time (bounded memory); storage puts overlap in
    a small thread pool because they are I/O-bound. With `in_flight` 2, one original renders while the
    other waits for its storage writes and catalog commit (fsyncs), so one process keeps its core busy
    (Pillow's encoders release the GIL). Each original is rendered under its render lock
    (`process_original_alone`). `progress` is advanced per original."""
    started = time.perf_counter()
    total = VariantStats()
    in_flight = max(1, in_flight)
    with (
        ThreadPoolExecutor(max_workers=4, thread_name_prefix="variant-put") as pool,
        ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="variant-original") as workers,
    ):
        pending: deque[tuple[Original, Future[VariantStats]]] = deque()

        def collect_one() -> None:
            original, future = pending.popleft()
            total.merge(future.result())
            if progress is not None:
                progress.advance(1, original.size_bytes)

        for original in load_originals(engine, ids):
            future = workers.submit(
                process_original_alone,
                store,
                engine,
                original,
                plan,
                retry_failed=retry_failed,
                pool=pool,
                lineage=lineage,
            )
            pending.append((original, future))
            while len(pending) >= in_flight:
                collect_one()
        while pending:
            collect_one()
    total.seconds = time.perf_counter() - started
    if progress is not None:
        progress.finish()
    return total


def split_batches(
    ids: list[int], batch_size: int, parallelism: int, sizes: list[int] | None = None
) -> list[list[int]]:
    """A multiple of `parallelism` batches (so every core gets work in every round of steps), none larger
    than `batch_size`: 1,000 originals in batches of 200 on 2 cores were 5 steps, the last one alone on
    one core for a fifth of the run; now 6 of ~167.

    With `sizes` (bytes per original, a proxy for its pixels), the largest originals are placed first,
    each in the batch holding the fewest bytes so far: the batches run in parallel and the run lasts as
    long as its slowest one, so equal work matters more than equal counts.
    """
    if not ids:
        return []
    parallelism = max(1, parallelism)
    needed = max(parallelism, -(-len(ids) // batch_size))
    count = min(-(-needed // parallelism) * parallelism, len(ids))
    if sizes is None:
        return [ids[i::count] for i in range(count)]
    batches: list[list[int]] = [[] for _ in range(count)]
    loads = [(0, i) for i in range(count)]  # (bytes so far, batch index); a heap
    for size, original in sorted(zip(sizes, ids, strict=True), reverse=True):
        load, i = heapq.heappop(loads)
        batches[i].append(original)
        if len(batches[i]) < batch_size:
            heapq.heappush(loads, (load + size, i))
    return [sorted(batch) for batch in batches]


def variant_set_gaps(engine: sa.Engine, plan: VariantPlan) -> int:
    """Originals without their full current set, counting failed ones as gaps (for the asset check)."""
    query = originals_query(plan, created_before=None, retry_failed=True)
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one())


def failed_variant_rate(engine: sa.Engine) -> tuple[int, int]:
    """(failed, total) variant rows that are not deleted."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(
                sa.func.count().filter(Variant.status == "failed"),
                sa.func.count(),
            ).where(Variant.deleted_at.is_(None))
        ).one()
    return int(row[0]), int(row[1])
