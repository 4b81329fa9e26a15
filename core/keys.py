"""Server-side object keys: the only place keys are built, and the gate every key passes before storage.

Keys end up as S3 object names and as local file paths, so anything that could walk out of the store
(`..`, absolute paths, backslashes), hide a file (leading dot; reserved for sidecars and temp files) or
confuse tools (control characters, odd unicode) is refused instead of being "cleaned up" silently.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import unicodedata
import uuid

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


class InvalidOwnerId(InvalidKeyError):
    """An owner id that cannot be kept exactly (wrong type, empty, NUL, too long): refused, never cleaned."""


class InvalidFileName(InvalidKeyError):
    """A file name that is not text."""


class PrivateKeyError(InvalidKeyError):
    """The key is in a private area (quarantine): no public or signed access, ever."""


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


def upload_key(day: datetime.date, owner_id: object, upload_id: str, filename: object) -> str:
    """Staging key of a raw upload: `uploads/YYYY/MM/DD/<owner segment>/<upload_id>-<name segment>`.

    Owner and name segments are injective (`encoded_segment`): distinct owners never share a folder.
    """
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
        owner_segment(owner_id),
        f"{upload_id}-{name_segment(filename)}",
    )


# -- owners, names and the private area ---------------------------------------------------------------------

#: Longest owner id accepted, in characters. Longer ids are refused, never cut: two ids sharing their first
#: 255 characters would otherwise become one owner (quotas, GDPR export and erasure are per owner).
MAX_OWNER_ID_CHARS = 255
#: Marks an encoded segment (readable slug + hash); never part of a plain one, so both kinds never meet.
HASH_MARK = "+"
_HASH_CHARS = 16  # 64 bits of SHA-256: a collision needs ~4 billion distinct ids in one bucket
#: A segment kept as it is: ASCII letters, digits, '_', '-' and inner dots; no '=' or '+'.
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
#: Keys under this prefix hold rejected bytes: never served, never signed.
QUARANTINE_PREFIX = "quarantine"


def validate_owner_id(value: object) -> str:
    """The owner id exactly as it will be stored and compared, or InvalidOwnerId saying why.

    Accepted: a str (kept byte for byte: no trimming, case folding or unicode normalisation), an int or a
    UUID (converted with `str()`, which is also what Postgres' `::text` gives, so ids read from a source
    column compare equal). Refused: other types (None, bool, float, bytes), "", NUL (Postgres TEXT cannot
    hold it), lone surrogates (not UTF-8) and more than MAX_OWNER_ID_CHARS characters.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | uuid.UUID):
        raise InvalidOwnerId(f"owner id must be a str, an int or a UUID, not {type(value).__name__}")
    owner = value if isinstance(value, str) else str(value)
    if owner == "":
        raise InvalidOwnerId("owner id is empty")
    if "\x00" in owner:
        raise InvalidOwnerId(f"owner id {_show(owner)} contains a NUL character")
    if len(owner) > MAX_OWNER_ID_CHARS:
        raise InvalidOwnerId(f"owner id {_show(owner)} is over {MAX_OWNER_ID_CHARS} characters")
    try:
        owner.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidOwnerId(f"owner id {_show(owner)} is not valid unicode (lone surrogate)") from None
    return owner


def encoded_segment(value: str, *, max_len: int = 100, keep_extension: bool = True) -> str:
    """An injective, safe, readable key segment for untrusted text (owner ids, file names).

    A plain value (ASCII letters, digits, `_`, `-`, inner dots; at most `max_len`) is its own segment.
    Anything else becomes a readable slug plus `+` and 16 hex characters of the SHA-256 of the exact value
    (before the extension, if the slug has one): `ålice` -> `alice+…`, `../alice` -> `alice+…`. Plain
    segments never contain `+`, so a value and a different value's slug cannot meet.
    """
    if not isinstance(value, str):
        raise InvalidKeyError(f"segment value must be a str, not {type(value).__name__}")
    if not 2 * _HASH_CHARS <= max_len <= MAX_SEGMENT_LEN:
        raise ValueError(f"max_len must be between {2 * _HASH_CHARS} and {MAX_SEGMENT_LEN}, got {max_len}")
    if len(value) <= max_len and _PLAIN_SEGMENT.fullmatch(value) and ".." not in value:
        return value
    digest = hashlib.sha256(value.encode("utf-8", errors="surrogatepass")).hexdigest()[:_HASH_CHARS]
    slug = safe_segment(value, max_len=max_len - _HASH_CHARS - 1)
    stem, dot, extension = slug.rpartition(".")
    if keep_extension and dot and stem:
        return f"{stem}{HASH_MARK}{digest}.{extension}"
    return f"{slug}{HASH_MARK}{digest}"


def owner_segment(owner_id: object) -> str:
    """The one key segment of an owner (upload keys, GDPR export keys): validated, then encoded."""
    return encoded_segment(validate_owner_id(owner_id), keep_extension=False)


def owner_from_segment(segment: str) -> str | None:
    """The owner id a segment names when it can be read back (a plain id), else None (an encoded one)."""
    try:
        return segment if owner_segment(segment) == segment else None
    except InvalidOwnerId:
        return None


def name_segment(filename: object) -> str:
    """The key segment of an uploaded file name (any str, even empty); None or other types are refused."""
    if not isinstance(filename, str):
        raise InvalidFileName(f"file name must be a str, not {type(filename).__name__}")
    return encoded_segment(filename)


def is_private_key(key: str) -> bool:
    """Keys of the quarantine area: readable by the platform only, never through a URL."""
    return key == QUARANTINE_PREFIX or key.startswith(QUARANTINE_PREFIX + "/")


def check_shareable(key: str) -> str:
    """Return `key` if a URL may grant it; PrivateKeyError for the quarantine area."""
    validate_key(key)
    if is_private_key(key):
        raise PrivateKeyError(f"key {_show(key)} is in the quarantine area: no public or signed access")
    return key


def quarantine_key(key: str) -> str:
    """Where rejected bytes from `key` are kept: `quarantine/<key>` (one place per source key)."""
    validate_key(key)
    if is_private_key(key):
        raise InvalidKeyError(f"key {_show(key)} is already in the quarantine area")
    return build_key(QUARANTINE_PREFIX, key)
