"""Rows too big to hold: read in slices, find the blobs as they pass, splice the references in on the server.

A legacy row can hold 50-100 MB of base64 (a story with twenty 4 MP pages in one JSON document). Holding
it whole costs several copies of the row at once (driver buffer, str, parsed document), so peak memory
would follow the biggest row instead of staying flat. Here such a row is read with a server-side cursor in
fixed-size byte slices of `textsend(column)`, which PostgreSQL detoasts once per row:

- a plain base64 or `data:` URI column is decoded slice by slice (`Base64Decoder`) into a `Spool`
  (hashed as it is written, in memory up to a few MB, then a temporary file), so one blob never needs to be
  in memory whole;
- a JSON column is tokenised as it streams (`scan_json`): each string at a configured path is handed out
  on its own (one blob, not the row) with its byte span in the document, and the row is later rewritten
  on the server by splicing the references into those spans (`splice_sql`), so the rest of the document
  stays byte-for-byte what the app wrote.

Both reads and the rewrite are guarded by the row version (`xmin`): if the app changes the row meanwhile,
nothing of it is rewritten this pass.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa

from core.sources import BlobSource, parse_json_path

#: Bytes per slice read from the server (each slice is a few copies in memory while it is decoded).
SLICE_BYTES = 2 * 1024 * 1024
#: A spooled blob stays in memory up to this size, then moves to a temporary file.
SPOOL_MEMORY_BYTES = 4 * 1024 * 1024
#: Trailer kept for the truncation checks (JPEG/PNG/GIF end markers).
TAIL_BYTES = 64 * 1024
HEAD_BYTES = 64
#: The bytes around the blobs of one JSON row are kept (to write the new row without re-reading it)
#: up to this size; past it the rewrite splices on the server instead.
SKELETON_LIMIT_BYTES = 4 * 1024 * 1024


class RowChanged(Exception):
    """The row's version changed (or it vanished) while it was being read."""


def _q(name: str) -> str:
    return f'"{name}"'


def _text_expr(source: BlobSource) -> str:
    column = _q(source.column)
    return f"{column}::text" if source.format == "jsonb" else column


def read_slices(engine: sa.Engine, source: BlobSource, pk: Any, xmin: str) -> Iterator[bytes]:
    """The column of one row version as UTF-8 bytes, in slices; RowChanged if that version is gone.

    `textsend` runs once in a subquery (OFFSET 0 keeps it from being inlined per slice), so the value is
    detoasted once and each slice is a cheap byte substring; the binary protocol avoids bytea hex text.
    """
    sql = (
        f"SELECT s, substring(x.b FROM s FOR %(n)s) FROM "
        f"(SELECT textsend({_text_expr(source)}) AS b FROM {source.qualified_table} "
        f"WHERE {_q(source.primary_key)} = %(pk)s AND xmin::text = %(xmin)s OFFSET 0) x, "
        f"generate_series(1, octet_length(x.b), %(n)s) AS s"
    )
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor(name="migration_slices", binary=True) as cursor:  # type: ignore[attr-defined]
            cursor.itersize = 2
            cursor.execute(sql, {"n": SLICE_BYTES, "pk": pk, "xmin": xmin})
            expected = 1
            for position, chunk in cursor:
                if position != expected:  # pragma: no cover - generate_series emits in order
                    raise RuntimeError(f"slice at byte {position} arrived, expected {expected}")
                expected += len(chunk)
                yield bytes(chunk)
            if expected == 1:
                raise RowChanged(f"{source.table} {pk}: row changed or vanished while being read")
        conn.rollback()


def text_slices(chunks: Iterator[bytes]) -> Iterator[str | bytes]:
    """UTF-8 byte slices as pieces of text: pure-ASCII slices stay bytes (no copy; base64 is ASCII and
    Base64Decoder takes ASCII bytes), others are decoded (a character split across slices is joined)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    for chunk in chunks:
        if chunk.isascii() and not decoder.getstate()[0]:
            yield chunk
            continue
        text = decoder.decode(chunk)
        if text:
            yield text
    rest = decoder.decode(b"", final=True)
    if rest:
        yield rest


# -- the spool: one decoded blob, hashed as written, memory bounded -------------------------------------


class Spool:
    """Decoded bytes of one blob: SHA-256, size, head and tail as they arrive; the bytes in memory up to
    SPOOL_MEMORY_BYTES, then in a temporary file. Close it (or use `with`) to remove the file."""

    def __init__(self, memory_bytes: int = SPOOL_MEMORY_BYTES) -> None:
        self._memory_bytes = memory_bytes
        self._digest = hashlib.sha256()
        self._buffer: io.BytesIO | None = io.BytesIO()
        self._file: BinaryIO | None = None
        self.path: Path | None = None
        self.size = 0
        self.head = b""
        self.tail = b""

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._digest.update(data)
        self.size += len(data)
        if len(self.head) < HEAD_BYTES:
            self.head = (self.head + data[:HEAD_BYTES])[:HEAD_BYTES]
        self.tail = data[-TAIL_BYTES:] if len(data) >= TAIL_BYTES else (self.tail + data)[-TAIL_BYTES:]
        if self._buffer is not None and self.size > self._memory_bytes:
            handle = tempfile.NamedTemporaryFile(prefix="migrate-", suffix=".blob", delete=False)  # noqa: SIM115
            self.path = Path(handle.name)
            handle.write(self._buffer.getbuffer())
            self._buffer = None
            self._file = handle  # type: ignore[assignment]
        if self._buffer is not None:
            self._buffer.write(data)
        else:
            assert self._file is not None
            self._file.write(data)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def in_memory(self) -> bytes | None:
        """The bytes, when they never left memory; None when they are in `path`."""
        if self._buffer is None:
            return None
        return self._buffer.getvalue()

    def file_path(self) -> Path:
        """The temporary file holding the bytes, flushed (only when `in_memory` is None)."""
        assert self._file is not None and self.path is not None
        self._file.flush()
        return self.path

    def open(self) -> BinaryIO:
        """A fresh reader over the bytes (for the image header check)."""
        if self._buffer is not None:
            return io.BytesIO(self._buffer.getbuffer())
        assert self._file is not None and self.path is not None
        self._file.flush()
        return self.path.open("rb")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self.path = None
        self._buffer = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- JSON documents: find the blobs as the text streams by ----------------------------------------------


@dataclass(frozen=True)
class FoundValue:
    """A value at a configured path: the string (or a non-string's JSON type name) and its byte span."""

    path: str
    value: str | None  # None for JSON null
    type_name: str  # Python type name as json.loads would give it: str, int, float, bool, dict, list
    start: int  # byte offset of the value's first byte (the opening quote for a string)
    end: int  # byte offset just past the value


class BadJson(ValueError):
    """The document is not JSON."""


_SPACE = b" \t\r\n"
_SCALAR_END = b" \t\r\n,]}"


def _pattern_steps(pattern: str) -> tuple[tuple[str, str], ...]:
    steps: list[tuple[str, str]] = []
    for name, selector in parse_json_path(pattern):
        steps.append(("key", name))
        if selector is not None:
            steps.append(("index", selector))
    return tuple(steps)


@dataclass
class Skeleton:
    """The document's bytes outside the wanted strings: `segments[i]` precedes hole i, the last one
    follows the last hole. `complete` is False when it grew past its limit (then it is not kept)."""

    limit: int = SKELETON_LIMIT_BYTES
    segments: list[list[bytes]] = field(default_factory=lambda: [[]])
    size: int = 0
    complete: bool = True

    def add(self, piece: bytes) -> None:
        if not self.complete or not piece:
            return
        self.size += len(piece)
        if self.size > self.limit:
            self.complete, self.segments = False, [[]]
            return
        self.segments[-1].append(piece)

    def hole(self) -> None:
        if self.complete:
            self.segments.append([])

    def fill(self, values: list[bytes]) -> bytes:
        """The document with hole i replaced by values[i]."""
        assert self.complete and len(values) == len(self.segments) - 1
        out: list[bytes] = []
        for i, segment in enumerate(self.segments):
            out.extend(segment)
            if i < len(values):
                out.append(values[i])
        return b"".join(out)


class _Reader:
    """Bytes pulled from slices on demand; `offset` is the position in the whole document. Bytes
    outside holes (the wanted strings) are copied to `skeleton` before they are dropped."""

    def __init__(self, chunks: Iterator[bytes], skeleton: Skeleton | None = None) -> None:
        self._chunks = chunks
        self.buf = b""
        self.pos = 0
        self._base = 0
        self._skeleton = skeleton
        self._kept = 0  # document offset up to which the skeleton has the bytes
        self._in_hole = False

    @property
    def offset(self) -> int:
        return self._base + self.pos

    def keep_until(self, offset: int) -> None:
        if self._skeleton is None or self._in_hole or offset <= self._kept:
            return
        self._skeleton.add(self.buf[self._kept - self._base : offset - self._base])
        self._kept = offset

    def begin_hole(self, offset: int) -> None:
        self.keep_until(offset)
        self._in_hole = True
        if self._skeleton is not None:
            self._skeleton.hole()

    def end_hole(self, offset: int) -> None:
        self._in_hole = False
        self._kept = offset

    def more(self, keep_from: int | None = None) -> bool:
        """Append the next slice, dropping what is before `keep_from` (default: the current position)."""
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        cut = self.pos if keep_from is None else keep_from
        self.keep_until(self._base + cut)
        self.buf = self.buf[cut:] + chunk
        self._base += cut
        self.pos -= cut
        return True

    def peek(self) -> int:
        """The next non-space byte (not consumed), or -1 at the end."""
        while True:
            buf, pos = self.buf, self.pos
            while pos < len(buf) and buf[pos] in _SPACE:
                pos += 1
            self.pos = pos
            if pos < len(buf):
                return buf[pos]
            if not self.more():
                return -1

    def expect(self, char: bytes) -> None:
        if self.peek() != char[0]:
            raise BadJson(f"expected {char.decode()!r} at byte {self.offset}")
        self.pos += 1

    def string(self, keep: bool) -> bytes:
        """Consume a JSON string (the reader is at its quote) and return its raw content (escapes kept);
        with keep=False the content is skipped and b"" returned."""
        self.pos += 1
        parts: list[bytes] = []
        start = self.pos
        while True:
            quote = self.buf.find(b'"', self.pos)
            while quote != -1:
                backslashes = 0
                while quote - backslashes - 1 >= start and self.buf[quote - backslashes - 1] == 0x5C:
                    backslashes += 1
                if backslashes % 2 == 0:
                    break
                quote = self.buf.find(b'"', quote + 1)
            if quote != -1:
                if keep:
                    parts.append(self.buf[start:quote])
                self.pos = quote + 1
                return b"".join(parts)
            # No closing quote yet: keep a trailing run of backslashes, which may escape the next quote.
            end = len(self.buf)
            while end > start and self.buf[end - 1] == 0x5C:
                end -= 1
            if keep:
                parts.append(self.buf[start:end])
            self.pos = end
            if not self.more():
                raise BadJson("unterminated string")
            start = self.pos

    def scalar(self) -> bytes:
        """Consume a number or true/false/null and return its text."""
        start = self.pos
        while True:
            end = start
            buf = self.buf
            while end < len(buf) and buf[end] not in _SCALAR_END:
                end += 1
            if end < len(buf) or not self.more(keep_from=start):
                break
            start = self.pos
        token = self.buf[self.pos : end]
        self.pos = end
        return token


#: Control characters, which a JSON string may not hold raw (checked with translate: a regex scan of
#: megabytes of base64 is 30x slower).
_CONTROL = bytes(range(0x20))

Steps = tuple[tuple[str, str], ...]


def _unescape(raw: bytes) -> str:
    """A JSON string's raw content to its text (fast when there is nothing to unescape)."""
    if b"\\" not in raw and len(raw.translate(None, _CONTROL)) == len(raw):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadJson(f"bad string: {exc}") from exc
    try:
        value = json.loads(b'"' + raw + b'"')
    except ValueError as exc:
        raise BadJson(f"bad string: {exc}") from exc
    assert isinstance(value, str)
    return value


def _scalar_type(token: bytes) -> str:
    """json.loads' type name for a number or literal (BadJson if it is neither)."""
    literal = {b"true": "bool", b"false": "bool", b"null": "NoneType"}.get(token)
    if literal:
        return literal
    try:
        value = json.loads(token)
    except ValueError as exc:
        raise BadJson(f"bad value {token[:40]!r}") from exc
    if not isinstance(value, int | float):
        raise BadJson(f"bad value {token[:40]!r}")
    return type(value).__name__


def _step_matches(pattern: tuple[str, str], step: tuple[str, str]) -> bool:
    return pattern == step or (pattern == ("index", "*") and step[0] == "index")


def _path_text(steps: Steps) -> str:
    text = ""
    for kind, item in steps:
        text = f"{text}[{item}]" if kind == "index" else (f"{text}.{item}" if text else item)
    return text


def scan_json(
    chunks: Iterator[bytes], patterns: tuple[str, ...], skeleton: Skeleton | None = None
) -> Iterator[FoundValue]:
    """Yield every value at one of `patterns` (`images[*].data`, `cover`) in document order; BadJson
    when the text is not JSON (possibly after some values were yielded). With `skeleton`, the bytes
    around the wanted strings are collected (one hole per yielded string, in order)."""
    wanted = [_pattern_steps(p) for p in patterns]
    reader = _Reader(chunks, skeleton)

    def lead_somewhere(steps: Steps) -> tuple[bool, bool]:
        """(is a wanted value, may contain wanted values)."""
        hit = inside = False
        for pattern in wanted:
            if len(pattern) >= len(steps) and all(map(_step_matches, pattern, steps)):
                if len(pattern) == len(steps):
                    hit = True
                else:
                    inside = True
        return hit, inside

    def value(steps: Steps | None) -> Iterator[FoundValue]:
        char = reader.peek()
        start = reader.offset
        hit, inside = lead_somewhere(steps) if steps is not None else (False, False)
        hit = hit and bool(steps)
        if char == 0x22:  # "
            if not hit:
                reader.string(keep=False)
                return
            assert steps is not None
            reader.begin_hole(start)
            raw = reader.string(keep=True)
            reader.end_hole(reader.offset)
            yield FoundValue(_path_text(steps), _unescape(raw), "str", start, reader.offset)
            return
        if char == 0x7B:  # {
            reader.pos += 1
            if reader.peek() == 0x7D:
                reader.pos += 1
            else:
                while True:
                    if reader.peek() != 0x22:
                        raise BadJson(f"expected a key at byte {reader.offset}")
                    key = _unescape(reader.string(keep=True))
                    reader.expect(b":")
                    yield from value((*steps, ("key", key)) if inside and steps is not None else None)
                    char = reader.peek()
                    reader.pos += 1
                    if char == 0x7D:
                        break
                    if char != 0x2C:
                        raise BadJson(f"expected ',' or '}}' at byte {reader.offset - 1}")
            if hit:
                assert steps is not None
                yield FoundValue(_path_text(steps), None, "dict", start, reader.offset)
            return
        if char == 0x5B:  # [
            reader.pos += 1
            if reader.peek() == 0x5D:
                reader.pos += 1
            else:
                index = 0
                while True:
                    yield from value(
                        (*steps, ("index", str(index))) if inside and steps is not None else None
                    )
                    index += 1
                    char = reader.peek()
                    reader.pos += 1
                    if char == 0x5D:
                        break
                    if char != 0x2C:
                        raise BadJson(f"expected ',' or ']' at byte {reader.offset - 1}")
            if hit:
                assert steps is not None
                yield FoundValue(_path_text(steps), None, "list", start, reader.offset)
            return
        if char == -1:
            raise BadJson("unexpected end of document")
        type_name = _scalar_type(reader.scalar())
        if hit and type_name != "NoneType":
            assert steps is not None
            yield FoundValue(_path_text(steps), None, type_name, start, reader.offset)

    yield from value(())
    if reader.peek() != -1:
        raise BadJson(f"extra data at byte {reader.offset}")
    reader.keep_until(reader.offset)


def splice_sql(source: BlobSource, spans: list[tuple[int, int]]) -> str:
    """UPDATE that replaces the byte spans (sorted, non-overlapping) of the row's text with :r0, :r1, ...
    (UTF-8 bytes), guarded by :pk and :xmin; the rest of the document is kept byte for byte."""
    pieces: list[str] = []
    previous = 0
    for i, (start, end) in enumerate(spans):
        pieces.append(f"substring(x.b FROM {previous + 1} FOR {start - previous})")
        pieces.append(f":r{i}")
        previous = end
    pieces.append(f"substring(x.b FROM {previous + 1})")
    new_text = f"convert_from({' || '.join(pieces)}, 'UTF8')"
    if source.format == "jsonb":
        new_text = f"CAST({new_text} AS jsonb)"
    table, pk = source.qualified_table, _q(source.primary_key)
    return (
        f"UPDATE {table} SET {_q(source.column)} = {new_text} "
        f"FROM (SELECT textsend({_text_expr(source)}) AS b FROM {table} "
        f"WHERE {pk} = :pk AND xmin::text = :xmin OFFSET 0) x "
        f"WHERE {table}.{pk} = :pk AND {table}.xmin::text = :xmin"
    )
