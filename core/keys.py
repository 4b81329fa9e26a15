"""Server-side object keys: the only place keys are built, and the gate every key passes before storage.

Keys end up as S3 object names and as local file paths, so anything that could walk out of the store
(`..`, absolute paths, backslashes), hide a file (leading dot; reserved for sidecars and temp files) or
confuse tools (control characters, odd unicode) is refused instead of being "cleaned up" silently.
"""

from __future__ import annotations

import datetime
import re
import unicodedata

#: Longest allowed key, in UTF-8 bytes (S3's own limit).
MAX_KEY_BYTES = 1024
#: Longest allowed segment; keeps every segment a legal file name (NAME_MAX is 255) with room for temp names.
MAX_SEGMENT_LEN = 200

_SEGMENT_CHARS = re.compile(r"[A-Za-z0-9._=+-]+")
_UNSAFE_SEGMENT_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_EXTENSION = re.compile(r"[a-z0-9]{1,8}")
_RAW_EXTENSION = re.compile(r"[A-Za-z0-9]{1,16}")
_UPLOAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_FALLBACK_SEGMENT = "unnamed"
#: Every rule of validate_key in one pass, for the common case of a plainly valid (ASCII) key: segments of
#: allowed characters, none empty, none starting with '.', none over MAX_SEGMENT_LEN.
_SEGMENT_PATTERN = rf"[A-Za-z0-9_=+-][A-Za-z0-9._=+-]{{0,{MAX_SEGMENT_LEN - 1}}}"
_VALID_KEY = re.compile(rf"{_SEGMENT_PATTERN}(?:/{_SEGMENT_PATTERN})*")


class InvalidKeyError(ValueError):
    """A key (or a part of one) is not acceptable as an object key."""


def _show(value: str, limit: int = 60) -> str:
    """A bounded, escaped rendering for error messages (keys may be huge or hold control characters)."""
    if len(value) > limit:
        return repr(value[:limit]) + f"... ({len(value)} chars)"
    return repr(value)


def _check_segment(segment: str, key: str) -> None:
    if segment == "":
        raise InvalidKeyError(f"key {_show(key)} has an empty segment (leading, trailing or doubled '/')")
    if segment in (".", ".."):
        raise InvalidKeyError(f"key {_show(key)} has a relative segment {segment!r}")
    if segment.startswith("."):
        raise InvalidKeyError(
            f"key {_show(key)} has a segment starting with '.' ({_show(segment)}); those are reserved"
        )
    if len(segment) > MAX_SEGMENT_LEN:
        raise InvalidKeyError(
            f"key {_show(key)} has a segment of {len(segment)} chars (max {MAX_SEGMENT_LEN})"
        )


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a safe object key; raise InvalidKeyError saying why otherwise."""
    if not isinstance(key, str):
        raise InvalidKeyError(f"key must be a str, not {type(key).__name__}")
    if len(key) <= MAX_KEY_BYTES and _VALID_KEY.fullmatch(key):
        return key  # fast path (hot in sweeps and listings); the checks below only explain refusals
    if key == "":
        raise InvalidKeyError("key is empty")
    size = len(key.encode("utf-8", errors="surrogatepass"))
    if size > MAX_KEY_BYTES:
        raise InvalidKeyError(f"key {_show(key)} is {size} UTF-8 bytes (max {MAX_KEY_BYTES})")
    if key.startswith("/"):
        raise InvalidKeyError(f"key {_show(key)} is an absolute path")
    if "\\" in key:
        raise InvalidKeyError(f"key {_show(key)} contains a backslash")
    for char in key:
        if ord(char) < 32 or ord(char) == 127:
            raise InvalidKeyError(f"key {_show(key)} contains control character {char!r}")
        if not char.isprintable():
            raise InvalidKeyError(f"key {_show(key)} contains non-printable character {char!r}")
    for segment in key.split("/"):
        _check_segment(segment, key)
        if not _SEGMENT_CHARS.fullmatch(segment):
            bad = next(c for c in segment if not _SEGMENT_CHARS.fullmatch(c))
            raise InvalidKeyError(
                f"key {_show(key)} contains {bad!r}; only A-Z a-z 0-9 . _ = + - and '/' are allowed"
            )
    return key


def validate_prefix(prefix: str) -> str:
    """Check a listing prefix (or start_after): "" or a key, optionally with one trailing '/'."""
    if prefix == "":
        return prefix
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def _collapse(value: str) -> str:
    value = re.sub(r"[-.]*\.[-.]*", ".", value)  # any run of '-' and '.' holding a dot becomes one dot
    value = re.sub(r"-{2,}", "-", value)
    return re.sub(r"_{2,}", "_", value)


def _tidy(value: str) -> str:
    """Collapse runs of separators and trim them from the ends so the result reads as a name."""
    return _collapse(value).lstrip(".-").rstrip(".-")


def safe_segment(value: str, *, max_len: int = 100) -> str:
    """Turn an untrusted name (file name, owner id) into one valid key segment; never raises for a str.

    Lossy on purpose: the original name belongs in the catalog, the key only has to be safe and readable.
    """
    if not 1 <= max_len <= MAX_SEGMENT_LEN:
        raise ValueError(f"max_len must be between 1 and {MAX_SEGMENT_LEN}, got {max_len}")
    normalised = unicodedata.normalize("NFKC", value)
    # Fold accents ("résumé" -> "resume") so Latin names stay readable instead of becoming dashes.
    decomposed = unicodedata.normalize("NFKD", normalised)
    normalised = "".join(char for char in decomposed if not unicodedata.combining(char))
    stem, dot, extension = normalised.rpartition(".")
    if dot and stem.strip(" .") and _RAW_EXTENSION.fullmatch(extension):
        # Clean the stem on its own so "日本語.png" keeps its extension as "unnamed.png".
        base = _tidy(_UNSAFE_SEGMENT_CHARS.sub("-", stem)) or _FALLBACK_SEGMENT
    else:
        base, extension = _tidy(_UNSAFE_SEGMENT_CHARS.sub("-", normalised)), ""
    if extension and len(extension) + 2 <= max_len:
        room = max_len - len(extension) - 1
        return f"{_tidy(base[:room]) or _FALLBACK_SEGMENT[:room]}.{extension}"
    whole = f"{base}.{extension}" if extension else base
    return _tidy(whole[:max_len]) or _FALLBACK_SEGMENT[:max_len]


def build_key(*parts: str) -> str:
    """Join already-safe parts with '/' and validate the result; a part holding '..' anywhere is refused."""
    if not parts:
        raise InvalidKeyError("build_key needs at least one part")
    for part in parts:
        if not isinstance(part, str):
            raise InvalidKeyError(f"key part must be a str, not {type(part).__name__}")
        if ".." in part:
            raise InvalidKeyError(f"key part {_show(part)} contains '..'")
        if part == "":
            raise InvalidKeyError("key part is empty")
    return validate_key("/".join(parts))


def _check_sha256(sha256: str, what: str = "sha256") -> None:
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise InvalidKeyError(f"{what} must be 64 lowercase hex characters, got {_show(str(sha256))}")


def _check_extension(extension: str) -> None:
    if not isinstance(extension, str) or not _EXTENSION.fullmatch(extension):
        raise InvalidKeyError(
            f"extension must be 1-8 lowercase letters or digits without a dot, got {_show(str(extension))}"
        )


def _fanout(sha256: str) -> tuple[str, str]:
    """Two levels of 256 directories keep any one local directory (or S3 listing page) small."""
    return sha256[:2], sha256[2:4]


def original_key(sha256: str, extension: str) -> str:
    """Content-addressed key of an original: `originals/ab/cd/<sha256>.<ext>`."""
    _check_sha256(sha256)
    _check_extension(extension)
    return build_key("originals", *_fanout(sha256), f"{sha256}.{extension}")


def variant_key(parent_sha256: str, variant_name: str, extension: str) -> str:
    """Key of a derived rendition, grouped under its original: `variants/ab/cd/<parent>/<name>.<ext>`."""
    _check_sha256(parent_sha256, "parent_sha256")
    _check_extension(extension)
    if not isinstance(variant_name, str) or "/" in variant_name:
        raise InvalidKeyError(f"variant name must be a single segment, got {_show(str(variant_name))}")
    return build_key("variants", *_fanout(parent_sha256), parent_sha256, f"{variant_name}.{extension}")


def upload_key(day: datetime.date, owner_id: str, upload_id: str, filename: str) -> str:
    """Staging key of a raw upload: `uploads/YYYY/MM/DD/<safe owner>/<upload_id>-<safe filename>`."""
    if not isinstance(upload_id, str) or not _UPLOAD_ID.fullmatch(upload_id):
        raise InvalidKeyError(
            f"upload_id must be 1-64 chars of A-Z a-z 0-9 _ - (not starting with _ or -), "
            f"got {_show(str(upload_id))}"
        )
    return build_key(
        "uploads",
        f"{day.year:04d}",
        f"{day.month:02d}",
        f"{day.day:02d}",
        safe_segment(owner_id),
        f"{upload_id}-{safe_segment(filename)}",
    )
