"""Filesystem backend: objects are files under `root/<key>`, checksums live in `root/.meta/<key>.json`.

Keys can never have a segment starting with '.', so the `.meta` tree and the `.tmp-*` files used for
atomic writes can never collide with an object and are skipped by listings.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat as stat_module
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from core.keys import check_shareable, validate_key, validate_prefix
from core.objectstore.base import (
    ChecksumMismatch,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
)
from core.signing import sign_url

META_DIR = ".meta"
_TMP_PREFIX = ".tmp-"
_CHUNK = 1 << 20


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: the directory entry, not just the file data, has to reach the disk."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename itself is still atomic
    finally:
        os.close(fd)


class _AtomicFile:
    """A temp file next to `target`; `commit()` fsyncs and renames it over `target`, else it is removed."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.tmp = target.parent / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        self.handle = os.fdopen(fd, "wb")
        self.committed = False

    def commit(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.tmp, self.target)
        self.committed = True
        _fsync_dir(self.target.parent)

    def discard(self) -> None:
        if not self.handle.closed:
            self.handle.close()
        if not self.committed:
            with contextlib.suppress(FileNotFoundError):
                self.tmp.unlink()


class LocalObjectStore(ObjectStore):
    """Object storage on a local (or mounted) filesystem, for development and single-node deployments."""

    provider = "local"

    def __init__(
        self, root: Path, *, signing_secret: str, base_url: str = "http://localhost:8080/media"
    ) -> None:
        if not signing_secret:
            raise ValueError("LocalObjectStore needs a non-empty signing_secret for signed URLs")
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self.meta_root = self.root / META_DIR
        self._signing_secret = signing_secret
        self.base_url = base_url.rstrip("/")

    def __repr__(self) -> str:  # keeps the signing secret out of logs and tracebacks
        return f"LocalObjectStore(root={str(self.root)!r}, base_url={self.base_url!r})"

    # -- paths ------------------------------------------------------------------------------------------

    def _inside(self, path: Path, base: Path, key: str) -> Path:
        """Defence in depth: a valid key must still not reach outside the store (e.g. via a symlink)."""
        resolved = path.resolve()
        if resolved == base or not resolved.is_relative_to(base):
            raise ObjectStoreError(f"key {key!r} resolves outside the store root; refusing to touch it")
        return resolved

    def _inside_dir(self, directory: Path, base: Path, key: str) -> Path:
        """Like _inside, for a parent directory (which may be the root itself)."""
        resolved = directory.resolve()
        if not resolved.is_relative_to(base):
            raise ObjectStoreError(f"key {key!r} resolves outside the store root; refusing to touch it")
        return resolved

    def _object_path(self, key: str) -> Path:
        return self._inside(self.root / key, self.root, key)

    def _meta_path(self, key: str) -> Path:
        return self._inside(self.meta_root / f"{key}.json", self.meta_root, key)

    @staticmethod
    def _make_parent(path: Path, key: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            # S3 allows both "a" and "a/b"; a filesystem cannot hold a file and a directory of one name.
            raise ObjectStoreError(f"cannot store {key!r}: a parent of it is an existing object") from exc

    # -- metadata ---------------------------------------------------------------------------------------

    def _read_meta(self, key: str) -> dict[str, object]:
        try:
            with self._meta_path(key).open("rb") as handle:
                meta = json.load(handle)
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def _info(self, key: str, stat: os.stat_result) -> ObjectInfo:
        meta = self._read_meta(key)
        sha256 = meta.get("sha256")
        content_type = meta.get("content_type")
        return ObjectInfo(
            key=key,
            size=stat.st_size,
            sha256=sha256 if isinstance(sha256, str) else None,
            content_type=content_type if isinstance(content_type, str) else None,
            last_modified=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
        )

    def _stat_file(self, key: str) -> os.stat_result | None:
        try:
            stat = self._object_path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return stat if _is_regular(stat) else None

    # -- writes -----------------------------------------------------------------------------------------

    def _write(self, key: str, source: BinaryIO, *, sha256: str, content_type: str) -> ObjectInfo:
        """Copy `source` into a temp file while hashing it; only a matching digest is renamed into place."""
        expected = sha256.lower()
        target = self._object_path(key)
        meta_target = self._meta_path(key)
        if target.is_dir():
            raise ObjectStoreError(f"cannot store {key!r}: other objects already live under {key!r}/")
        self._make_parent(target, key)
        self._make_parent(meta_target, key)
        data_file = _AtomicFile(target)
        try:
            digest = hashlib.sha256()
            size = 0
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                data_file.handle.write(chunk)
                size += len(chunk)
            actual = digest.hexdigest()
            if actual != expected:
                raise ChecksumMismatch(f"refusing to store {key!r}: data hashes to {actual}, not {expected}")
            meta_file = _AtomicFile(meta_target)
            try:
                meta = {"sha256": actual, "size": size, "content_type": content_type}
                meta_file.handle.write(json.dumps(meta, sort_keys=True).encode("utf-8"))
                # Data first, then its sidecar: a crash in between leaves bytes that no longer match the
                # old sidecar, which verify() reports, rather than a sidecar vouching for missing bytes.
                data_file.commit()
                meta_file.commit()
            finally:
                meta_file.discard()
        finally:
            data_file.discard()
        stat = self._stat_file(key)
        if stat is None:  # pragma: no cover - only if someone deletes it between our rename and stat
            raise ObjectNotFound(f"{key!r} vanished right after being written")
        return ObjectInfo(
            key=key,
            size=stat.st_size,
            sha256=actual,
            content_type=content_type,
            last_modified=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
        )

    def put_bytes(self, key: str, data: bytes, *, sha256: str, content_type: str) -> ObjectInfo:
        validate_key(key)
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256.lower():  # cheap early refusal before touching the filesystem
            raise ChecksumMismatch(f"refusing to store {key!r}: data hashes to {actual}, not {sha256}")
        return self._write(key, io.BytesIO(data), sha256=sha256, content_type=content_type)

    def put_file(self, key: str, path: Path, *, sha256: str, content_type: str) -> ObjectInfo:
        validate_key(key)
        with Path(path).open("rb") as source:
            return self._write(key, source, sha256=sha256, content_type=content_type)

    # -- reads ------------------------------------------------------------------------------------------

    def open_stream(self, key: str) -> BinaryIO:
        validate_key(key)
        path = self._object_path(key)
        try:
            handle = path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"no object at {key!r}") from None
        if not _is_regular(os.fstat(handle.fileno())):
            handle.close()
            raise ObjectNotFound(f"no object at {key!r}")
        return handle

    def get_bytes(self, key: str) -> bytes:
        with self.open_stream(key) as handle:
            return handle.read()

    def head(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        stat = self._stat_file(key)
        return None if stat is None else self._info(key, stat)

    def list_objects(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Validated eagerly (so bad input fails at the call), then walked lazily one directory at a time."""
        validate_prefix(prefix)
        if start_after is not None:
            validate_prefix(start_after)
        return self._walk(self.root, "", prefix, start_after)

    def _walk(self, directory: Path, rel: str, prefix: str, start_after: str | None) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(directory) as scan:
                entries = [entry for entry in scan if not entry.name.startswith(".")]
        except (FileNotFoundError, NotADirectoryError):
            return
        # Sorting a directory "d" as "d/" reproduces S3's byte order of full keys: "a-b" < "a/x" < "a0".
        decorated = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                decorated.append((f"{rel}{entry.name}/", True, entry))
            elif entry.is_file(follow_symlinks=False):
                decorated.append((f"{rel}{entry.name}", False, entry))
        decorated.sort(key=lambda item: item[0])
        for name, is_dir, entry in decorated:
            if is_dir:
                if not (name.startswith(prefix) or prefix.startswith(name)):
                    continue
                if start_after is not None and name <= start_after and not start_after.startswith(name):
                    continue  # everything below this directory sorts before start_after
                yield from self._walk(Path(entry.path), name, prefix, start_after)
                continue
            if not name.startswith(prefix) or (start_after is not None and name <= start_after):
                continue
            try:
                validate_key(name)
                stat = entry.stat(follow_symlinks=False)
            except (ValueError, FileNotFoundError):
                continue  # a stray file that is not a valid key, or one deleted while we walk
            yield self._info(name, stat)

    # -- deletes ----------------------------------------------------------------------------------------

    def _delete_batch(self, batch: list[str]) -> list[tuple[str, str]]:
        for key in batch:  # refuse the whole batch before deleting any of it
            validate_key(key)
        errors: list[tuple[str, str]] = []
        # A sweep deletes ~100k keys spread over ~65k directories, so resolving every parent with
        # Path.resolve() (an lstat per component plus pathlib parsing) cost more than the unlinks. Instead
        # each directory on the way is lstat-ed once per batch: a real directory is safe to descend into,
        # and only a symlink needs resolving to prove it stays inside its tree. unlink() never follows a
        # symlink in the final component, so checking the parents is enough.
        directories: dict[str, bool] = {}
        root = str(self.root)
        meta_root = str(self.meta_root)
        for key in batch:
            try:
                for base, relative in ((root, key), (meta_root, f"{key}.json")):
                    parent, _, name = relative.rpartition("/")
                    directory = self._checked_directory(base, parent, key, directories)
                    if directory is not None:
                        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                            os.unlink(f"{directory}/{name}")
            except (OSError, ObjectStoreError) as exc:
                errors.append((key, f"{type(exc).__name__}: {exc}"))
        return errors

    @staticmethod
    def _checked_directory(base: str, relative: str, key: str, known: dict[str, bool]) -> str | None:
        """`base/relative` if it is a directory that stays inside `base`, None if it does not exist.

        `known` caches the verdict per directory (True: exists, False: absent) across a batch.
        """
        path = base
        if base not in known:
            known[base] = os.path.isdir(base)
        if not known[base]:
            return None
        for segment in relative.split("/") if relative else ():
            path = f"{path}/{segment}"
            state = known.get(path)
            if state is None:
                try:
                    mode = os.lstat(path).st_mode
                except (FileNotFoundError, NotADirectoryError):
                    mode = 0
                if stat_module.S_ISLNK(mode):
                    resolved = os.path.realpath(path)
                    if resolved != base and not resolved.startswith(base + "/"):
                        raise ObjectStoreError(
                            f"key {key!r} resolves outside the store root; refusing to touch it"
                        )
                    state = os.path.isdir(resolved)
                else:
                    state = stat_module.S_ISDIR(mode)
                known[path] = state
            if not state:
                return None
        return path

    # -- URLs -------------------------------------------------------------------------------------------

    def signed_url(self, key: str, expires_in_seconds: int = 3600) -> str:
        check_shareable(key)  # no signed URL for the quarantine area
        return sign_url(self.base_url, key, self._signing_secret, expires_in_seconds)


def _is_regular(stat: os.stat_result) -> bool:
    return stat_module.S_ISREG(stat.st_mode)
