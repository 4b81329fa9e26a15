"""moto's S3 server in its own process, with a bucket pre-filled straight through moto's backend.

    python benchmarks/s3_seeded_server.py --port 5123 --bucket NAME --keys-file KEYS

Benchmarks that delete 100k objects need them to exist first, and 100k PUTs over HTTP to moto take
longer than the benchmark itself. So only the setup bypasses HTTP: the objects are created in the
server process's own moto backend before it starts serving. Everything the benchmark measures then goes
over HTTP through boto3, as against any S3-compatible store. Prints "ready" once it serves.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--keys-file", required=True, help="one key per line; each becomes a 1-byte object")
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args(argv)

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.create_bucket(args.bucket, args.region)
    with open(args.keys_file, encoding="utf-8") as keys:
        for line in keys:
            key = line.rstrip("\n")
            if key:
                backend.put_object(args.bucket, key, b"x", disable_notification=True)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
