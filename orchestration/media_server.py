"""`python -m orchestration.media_server`: serve the local store's signed URLs at MEDIA_PUBLIC_BASE_URL.

`./dev ui` starts it beside `dagster dev` (and stops it with it) on the embedded default, so the
`report_url` of a cost report and the signed URL of a GDPR export open in a browser. With
OBJECT_STORE_BACKEND=s3 signed URLs are the provider's presigned URLs and this exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from core.media_server import MediaServer, address_from_base_url
from resources.settings import object_store_resource


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="media-server: %(message)s")
    resource = object_store_resource()
    if resource.backend != "local":
        print("media-server: the object store is not local; signed URLs are the provider's presigned URLs")
        return 0
    # MEDIA_SIGNING_SECRET reaches the resource as an EnvVar (resolved in runs): read it directly here
    secret = os.environ.get("MEDIA_SIGNING_SECRET") or str(resource.signing_secret)
    address = address_from_base_url(resource.public_base_url)
    server = MediaServer(Path(resource.local_root), secret, address.host, address.port, address.base_path)
    print(
        f"media-server: signed URLs of {resource.local_root} at {resource.public_base_url}"
        f" (pid {os.getpid()})",
        flush=True,
    )
    # `./dev ui` starts this in the background, where bash ignores SIGINT: stop on Ctrl-C and on SIGTERM
    # like the dagster dev beside it
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
