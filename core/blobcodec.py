"""Base64 text in, bytes out, strictly: the tolerant-but-honest decoder and the JSON path walker.

Real legacy data holds base64 that went through many hands: MIME line breaks every 76 characters, the
URL-safe alphabet, stripped padding, `data:` URIs. All of those decode. Anything else (stray characters,
mixed alphabets, padding in the middle, an impossible length) is corrupt and says why, so it can be
quarantined with a reason instead of being "repaired" into different bytes.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.sources import parse_json_path

_WHITESPACE = re.compile(r"\s+")
#: What `\s` matches among ASCII characters, deleted with bytes.translate (30x faster than a regex).
_WHITESPACE_ASCII = b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f "
_DATA_URI = re.compile(
    r"data:(?P<mime>[A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+)?(?P<params>(?:;[A-Za-z0-9._-]+=[^;,]*)*)"
    r"(?P<base64>;base64)?,",
    re.IGNORECASE,
)
#: How far into a value a data URI header may reach (mime type plus parameters).
_DATA_URI_HEADER_MAX = 256


class CorruptBase64(ValueError):
    """The text is not base64 we can decode without guessing; `code` is stable for metrics."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class DecodedBlob:
    data: bytes
    declared_mime: str | None  # from a data: URI; informative only, magic bytes decide the real type
    encoded_length: int  # characters as stored in the database


_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_"
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


class Base64Decoder:
    """`decode_base64` for a value read in slices: feed the text in pieces, get the bytes in pieces.

    Same rules and the same refusals as decoding the whole value at once, but memory is one slice, not
    the value (a row can hold 50 MB of base64). Bytes returned by `feed` are provisional: the value is
    only valid once `finish` returns without raising (a stray character at the very end refuses all of
    it), so callers hash and spool them, and store nothing before `finish`.
    """

    def __init__(self) -> None:
        self._carry = b""  # 0-3 characters that do not yet make a 4-character group
        self._pending_padding = 0  # '=' at the end of what was fed so far: padding, or '=' mid-value
        self._body_length = 0  # non-whitespace characters so far, excluding the pending '='
        self._standard = False  # saw + or /
        self._urlsafe = False  # saw - or _
        self._invalid: tuple[int, str] | None = None  # first non-base64 character and its position
        self._seen_any = False

    def feed(self, text: str | bytes) -> bytes:
        """Decode the next piece; bytes must be ASCII (a slice of a UTF-8 value that is pure ASCII)."""
        if isinstance(text, str) and text.isascii():
            text = text.encode("ascii")
        if isinstance(text, bytes):
            compact_bytes = text.translate(None, _WHITESPACE_ASCII)
            body_bytes = compact_bytes.rstrip(b"=")
            padding = len(compact_bytes) - len(body_bytes)
            raw, body = body_bytes, None
        else:
            compact = _WHITESPACE.sub("", text)
            body = compact.rstrip("=")
            padding = len(compact) - len(body)
            try:
                raw = body.encode("ascii")
            except UnicodeEncodeError:
                raw = None
        if not padding and not (raw if raw is not None else body):
            return b""
        self._seen_any = True
        if self._pending_padding:  # more characters after '=': it was not padding
            if self._invalid is None:
                self._invalid = (self._body_length, "=")
            self._body_length += self._pending_padding
        self._pending_padding = padding
        if raw is None:
            assert body is not None
            bad = True
            self._standard = self._standard or "+" in body or "/" in body
            self._urlsafe = self._urlsafe or "-" in body or "_" in body
        else:
            bad = bool(raw.translate(None, _ALPHABET))
            self._standard = self._standard or b"+" in raw or b"/" in raw
            self._urlsafe = self._urlsafe or b"-" in raw or b"_" in raw
        length = len(raw) if raw is not None else len(body or "")
        if bad and self._invalid is None:
            chars = body if body is not None else raw.decode("ascii")  # type: ignore[union-attr]
            position, char = next(
                (i, c) for i, c in enumerate(chars) if not (c.isascii() and (c.isalnum() or c in "+/-_"))
            )
            self._invalid = (self._body_length + position, char)
        self._body_length += length
        if self._invalid is not None:
            self._carry = b""
            return b""  # refused at finish(); only keep counting, for the same reason as a whole decode
        assert raw is not None
        if self._urlsafe:
            raw = raw.translate(_TO_STANDARD)
        data = self._carry + raw if self._carry else raw
        cut = len(data) - len(data) % 4
        self._carry = data[cut:]
        if not cut:
            return b""
        return binascii.a2b_base64(data[:cut] if cut < len(data) else data)

    def finish(self) -> bytes:
        """The last bytes, or CorruptBase64 for the whole value (checks in decode_base64's order)."""
        if not self._seen_any:
            return b""
        padding, length = self._pending_padding, self._body_length
        if padding > 2:
            raise CorruptBase64("bad_padding", f"{padding} '=' characters at the end (at most 2 allowed)")
        if self._standard and self._urlsafe:
            raise CorruptBase64("mixed_alphabet", "mixes the standard (+/) and URL-safe (-_) alphabets")
        if self._invalid is not None:
            position, char = self._invalid
            raise CorruptBase64(
                "invalid_character",
                f"character {char!r} at position {position} is not base64"
                + (" ('=' padding may only end the value)" if char == "=" else ""),
            )
        if length % 4 == 1:
            raise CorruptBase64(
                "bad_length", f"{length} base64 characters cannot encode whole bytes (length mod 4 is 1)"
            )
        if padding and (length + padding) % 4:
            raise CorruptBase64("bad_padding", "padding does not complete a 4-character group")
        tail = self._carry
        if not tail:
            return b""
        try:
            return binascii.a2b_base64(tail + b"=" * (-len(tail) % 4))
        except (binascii.Error, ValueError) as exc:  # pragma: no cover - the checks above should catch all
            raise CorruptBase64("undecodable", str(exc)) from exc


def decode_base64(text: str) -> bytes:
    """Decode standard or URL-safe base64, with or without padding and line breaks; else CorruptBase64."""
    if len(text) % 4 == 0:
        try:
            # Fast path: canonical base64 (what most apps write) decodes in one strict pass.
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            pass
    decoder = Base64Decoder()
    data = decoder.feed(text)
    return data + decoder.finish()


def parse_data_uri(text: str) -> tuple[str | None, str]:
    """Split `data:<mime>[;params];base64,<payload>` into (mime, payload); CorruptBase64 if not base64."""
    match = _DATA_URI.match(text, 0, min(len(text), _DATA_URI_HEADER_MAX))
    if not match:
        raise CorruptBase64("bad_data_uri", "starts with 'data:' but has no valid '<mime>;base64,' header")
    if not match.group("base64"):
        raise CorruptBase64("data_uri_not_base64", "data: URI is not base64-encoded (no ';base64')")
    mime = match.group("mime")
    return (mime.lower() if mime else None), text[match.end() :]


def decode_blob_text(text: str) -> DecodedBlob:
    """A stored value (plain base64 or a data: URI) to its bytes."""
    declared = None
    payload = text
    if text[:5].lower() == "data:":
        declared, payload = parse_data_uri(text)
    return DecodedBlob(decode_base64(payload), declared, len(text))


# -- JSON paths ----------------------------------------------------------------------------------------


def expand_json_path(doc: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every concrete path matching `path` with its value: `images[*].data` -> (`images[3].data`, v).

    Missing keys, wrong container types and out-of-range indexes simply match nothing: a story without
    images has no blobs, it is not an error.
    """
    steps = parse_json_path(path)

    def walk(node: Any, index: int, prefix: str) -> Iterator[tuple[str, Any]]:
        if index == len(steps):
            yield prefix, node
            return
        name, selector = steps[index]
        if not isinstance(node, dict) or name not in node:
            return
        here = f"{prefix}.{name}" if prefix else name
        child = node[name]
        if selector is None:
            yield from walk(child, index + 1, here)
            return
        if not isinstance(child, list):
            return
        positions = range(len(child)) if selector == "*" else [int(selector)]
        for position in positions:
            if 0 <= position < len(child):
                yield from walk(child[position], index + 1, f"{here}[{position}]")

    yield from walk(doc, 0, "")


def set_json_path(doc: Any, concrete_path: str, value: Any) -> None:
    """Replace the value at a concrete path (no [*]) in place; everything else in `doc` is untouched."""
    steps = parse_json_path(concrete_path)
    node = doc
    for position, (name, selector) in enumerate(steps):
        last = position == len(steps) - 1
        if selector == "*":
            raise ValueError(f"{concrete_path!r} is a pattern, not a concrete path")
        if not isinstance(node, dict) or name not in node:
            raise KeyError(f"{concrete_path!r}: {name!r} not found")
        if selector is None:
            if last:
                node[name] = value
                return
            node = node[name]
            continue
        items = node[name]
        index = int(selector)
        if not isinstance(items, list) or not 0 <= index < len(items):
            raise KeyError(f"{concrete_path!r}: no element {index} in {name!r}")
        if last:
            items[index] = value
            return
        node = items[index]
