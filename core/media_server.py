"""A tiny HTTP server for the local object store's signed URLs (the embedded default's `./dev ui`).

On S3 a signed URL is a presigned request the provider serves; on the local store nothing would answer
`MEDIA_PUBLIC_BASE_URL/<key>?expires=..&signature=..`, so cost reports and GDPR exports had dead links.
This server answers exactly those URLs: GET/HEAD of a path under the base path whose HMAC signature and
expiry check out (core/signing.py). Anything else is refused (403 for a bad or expired signature, 404
for a path outside the base path or a missing object), and every read goes through LocalObjectStore,
which validates the key (no `..`, no dot segments such as `.meta`) and refuses paths resolving outside
its root, so nothing but signed objects is reachable.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlsplit

from core.keys import InvalidKeyError, validate_key
from core.objectstore.base import ObjectNotFound, ObjectStoreError
from core.objectstore.local import LocalObjectStore
from core.signing import SignatureExpired, SignedUrlError, verify_signed_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerAddress:
    host: str
    port: int
    base_path: str


def address_from_base_url(base_url: str) -> ServerAddress:
    """Where to listen for a `MEDIA_PUBLIC_BASE_URL` like `http://localhost:8080/media`."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"the local media server serves plain http://host:port/path URLs, got {base_url!r}")
    return ServerAddress(parts.hostname, parts.port or 80, parts.path.rstrip("/"))


class _Handler(BaseHTTPRequestHandler):
    server: MediaServer
    server_version = "media-signed-urls"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """The path and status only: the query holds the signature, which must not end up in a log."""
        status = getattr(code, "value", code)
        log.info("%s %s %s %s", self.address_string(), self.command, urlsplit(self.path).path, status)

    def _refuse(self, status: HTTPStatus, reason: str) -> None:
        body = f"{status.value} {status.phrase}: {reason}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _serve(self) -> None:
        base = self.server.base_path
        path = urlsplit(self.path).path
        if not path.startswith(base + "/"):
            self._refuse(HTTPStatus.NOT_FOUND, "not a media URL")
            return
        try:
            key = verify_signed_url(self.path, self.server.secret)
        except SignatureExpired:
            self._refuse(HTTPStatus.FORBIDDEN, "the link has expired")
            return
        except SignedUrlError:
            self._refuse(HTTPStatus.FORBIDDEN, "invalid signature")
            return
        # The signature names one key; the path must be exactly that key under the base path (no other
        # prefix that happens to end in a signed key).
        if path != f"{base}/{quote(key, safe='/')}":
            self._refuse(HTTPStatus.FORBIDDEN, "invalid signature")
            return
        try:
            validate_key(key)
            info = self.server.store.head(key)
            if info is None:
                raise ObjectNotFound(key)
            stream = self.server.store.open_stream(key)
            size = os.fstat(stream.fileno()).st_size
        except (InvalidKeyError, ObjectNotFound, ObjectStoreError):
            self._refuse(HTTPStatus.NOT_FOUND, "no such object")
            return
        with stream:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", info.content_type or "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.send_header("Cache-Control", "private, no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            name = key.rsplit("/", 1)[-1]
            if not (info.content_type or "").startswith(("text/html", "image/")):
                self.send_header("Content-Disposition", f'attachment; filename="{name}"')
            self.end_headers()
            if self.command != "HEAD":
                shutil.copyfileobj(stream, self.wfile, 1 << 20)

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _not_allowed(self) -> None:
        self._refuse(HTTPStatus.METHOD_NOT_ALLOWED, "read-only")

    do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed


class MediaServer(ThreadingHTTPServer):
    """Serves one local store's signed URLs; `serve_in_thread` for tests, `serve_forever` for `./dev ui`."""

    daemon_threads = True

    def __init__(self, root: Path, secret: str, host: str, port: int, base_path: str = "/media") -> None:
        if not secret:
            raise ValueError("the media server needs the signing secret the store signs with")
        self.store = LocalObjectStore(root, signing_secret=secret)
        self.secret = secret
        self.base_path = base_path.rstrip("/")
        super().__init__((host, port), _Handler)

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="media-server", daemon=True)
        thread.start()
        return thread
