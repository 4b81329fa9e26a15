"""A fault-injecting HTTP proxy to put in front of moto's S3 server: a store that fails like a real one.

For a configurable share of requests (`rate`, changeable while running) it injects, chosen by a seeded
RNG: a 503 SlowDown, a 500 InternalError, a reset mid-request (connection dropped after the request head),
a reset mid-response (part of the real response delivered, then dropped) or a stall (the response delayed
by `stall_seconds`, longer than the client's read timeout in the tests). `counts` says what was injected.
With `latency` (seconds, default 0) every request is also held that long before it is forwarded: a store
20-80 ms away (R2, B2, S3 in another region), as the benchmarks use it (`benchmarks/remote_small.py`).

It speaks just enough HTTP/1.1 for boto3: requests framed by Content-Length or chunked encoding, `Expect:
100-continue` answered by the proxy, and one upstream connection per request (closed by the server).
"""

from __future__ import annotations

import contextlib
import random
import socket
import socketserver
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

FAULTS = ("slowdown_503", "internal_500", "reset_request", "reset_response", "stall")
DEFAULT_MIX = {"slowdown_503": 3, "internal_500": 2, "reset_request": 2, "reset_response": 3, "stall": 1}

_SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
_INTERNAL = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)


class _Closed(Exception):
    pass


def _read_until(sock: socket.socket, buffer: bytearray, marker: bytes) -> int:
    while (index := buffer.find(marker)) < 0:
        chunk = sock.recv(65536)
        if not chunk:
            raise _Closed
        buffer.extend(chunk)
    return index


def _read_exactly(sock: socket.socket, buffer: bytearray, size: int) -> bytes:
    while len(buffer) < size:
        chunk = sock.recv(65536)
        if not chunk:
            raise _Closed
        buffer.extend(chunk)
    data = bytes(buffer[:size])
    del buffer[:size]
    return data


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), like a dropped connection, not a polite FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 0.3,
        seed: int = 17,
        latency: float = 0.0,
        stall_seconds: float = 1.5,
        mix: dict[str, int] | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", int(parts.port or 80))
        self.rate = rate
        self.latency = latency
        self.stall_seconds = stall_seconds
        self.mix = dict(mix or DEFAULT_MIX)
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 256  # many concurrent clients connect at once (benchmarks)

        self._server = Server(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- bookkeeping -------------------------------------------------------------------------------------

    def _choose(self) -> str | None:
        with self._lock:
            self.counts["requests"] += 1
            if self._rng.random() >= self.rate:
                return None
            kinds = list(self.mix)
            fault = self._rng.choices(kinds, weights=[self.mix[k] for k in kinds])[0]
            self.counts[fault] += 1
            return fault

    @property
    def injected(self) -> int:
        return sum(self.counts[k] for k in FAULTS)

    # -- one client connection ---------------------------------------------------------------------------

    def _serve(self, client: socket.socket) -> None:
        buffer = bytearray()
        try:
            while True:
                end = _read_until(client, buffer, b"\r\n\r\n")
                head = bytes(buffer[: end + 4])
                del buffer[: end + 4]
                fault = self._choose()
                if fault == "reset_request":
                    _reset(client)
                    return
                lines = head.split(b"\r\n")
                headers = {}
                kept = [lines[0]]
                for line in lines[1:]:
                    if not line:
                        continue
                    name, _, value = line.partition(b":")
                    lowered = name.strip().lower()
                    headers[lowered] = value.strip()
                    if lowered in (b"expect", b"connection"):
                        continue
                    kept.append(line)
                if headers.get(b"expect", b"").lower() == b"100-continue":
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = self._read_body(client, buffer, headers)
                if self.latency > 0:
                    time.sleep(self.latency)  # one round trip to a distant store, per request
                if fault in ("slowdown_503", "internal_500"):
                    status = b"503 Slow Down" if fault == "slowdown_503" else b"500 Internal Server Error"
                    payload = _SLOWDOWN if fault == "slowdown_503" else _INTERNAL
                    client.sendall(
                        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/xml\r\n"
                        b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
                    )
                    continue
                request = b"\r\n".join([*kept, b"Connection: close", b"", b""]) + body
                response = self._forward(request)
                if fault == "stall":
                    time.sleep(self.stall_seconds)
                if fault == "reset_response":
                    client.sendall(response[: max(1, len(response) // 2)])
                    _reset(client)
                    return
                client.sendall(response)
        except (_Closed, OSError):
            pass
        finally:
            with contextlib.suppress(OSError):
                client.close()

    @staticmethod
    def _read_body(client: socket.socket, buffer: bytearray, headers: dict[bytes, bytes]) -> bytes:
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            out = bytearray()
            while True:
                end = _read_until(client, buffer, b"\r\n")
                size_line = bytes(buffer[: end + 2])
                del buffer[: end + 2]
                out.extend(size_line)
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while len(buffer) < 2:
                        chunk = client.recv(65536)
                        if not chunk:
                            raise _Closed
                        buffer.extend(chunk)
                    if buffer.startswith(b"\r\n"):
                        trailer = b"\r\n"
                    else:
                        trailer = bytes(buffer[: _read_until(client, buffer, b"\r\n\r\n") + 4])
                    del buffer[: len(trailer)]
                    out.extend(trailer)
                    return bytes(out)
                out.extend(_read_exactly(client, buffer, size + 2))
        length = int(headers.get(b"content-length", b"0") or 0)
        return _read_exactly(client, buffer, length)

    def _forward(self, request: bytes) -> bytes:
        with socket.create_connection(self.upstream, timeout=60) as upstream:
            upstream.sendall(request)
            chunks = []
            while chunk := upstream.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def fault_proxy(upstream: str, **kwargs: object) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream, **kwargs).start()  # type: ignore[arg-type]
    try:
        yield proxy
    finally:
        proxy.stop()


#: Short backoff for tests (a real store uses RetryPolicy's defaults); enough attempts for a 30 % mix.
TEST_POLICY_KWARGS = {"attempts": 8, "base_delay": 0.01, "max_delay": 0.2, "max_seconds": 60.0}


def flaky_s3_store(endpoint: str, bucket: str, prefix: str = "", *, read_timeout: float = 1.0):
    """An S3ObjectStore reaching `endpoint` (a FaultProxy) with short timeouts and test backoff."""
    import boto3
    from botocore.config import Config

    from core.objectstore.retry import RetryPolicy
    from core.objectstore.s3 import S3ObjectStore
    from tests.support.services import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_REGION,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        config=Config(connect_timeout=read_timeout, read_timeout=read_timeout),
    )
    return S3ObjectStore(client, bucket, prefix=prefix, policy=RetryPolicy(**TEST_POLICY_KWARGS))
