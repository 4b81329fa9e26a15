"""The local store's signed URLs open over HTTP (the server `./dev ui` starts); nothing else does."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from core.media_server import MediaServer, address_from_base_url
from core.objectstore.base import sha256_hex
from core.objectstore.local import LocalObjectStore

SECRET = "test-secret"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[LocalObjectStore, MediaServer]]:
    root = tmp_path / "objects"
    server = MediaServer(root, SECRET, "127.0.0.1", 0, "/media")
    port = server.server_address[1]
    store = LocalObjectStore(root, signing_secret=SECRET, base_url=f"http://127.0.0.1:{port}/media")
    thread = server.serve_in_thread()
    yield store, server
    server.shutdown()
    server.server_close()
    thread.join(5)


def _get(server: MediaServer, path_and_query: str, method: str = "GET") -> tuple[int, bytes, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        conn.request(method, path_and_query)
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _put(store: LocalObjectStore, key: str, data: bytes, content_type: str = "text/html") -> None:
    store.put_bytes(key, data, sha256=sha256_hex(data), content_type=content_type)


def test_a_signed_url_of_the_local_store_opens_with_the_right_bytes(served) -> None:
    store, server = served
    page = b"<html><body>report</body></html>"
    _put(store, "reports/cost/day/2026-03-10/report.html", page)
    status, body, headers = _get(server, _path(store.signed_url("reports/cost/day/2026-03-10/report.html")))
    assert status == 200 and body == page
    assert headers["Content-Type"] == "text/html"
    archive = b"PK\x03\x04 zip bytes"
    _put(store, "exports/42/run-1.zip", archive, "application/zip")
    status, body, headers = _get(server, _path(store.signed_url("exports/42/run-1.zip")))
    assert status == 200 and body == archive
    assert "attachment" in headers["Content-Disposition"]


def test_a_tampered_or_expired_signed_url_is_refused(served) -> None:
    store, server = served
    _put(store, "reports/a.html", b"a")
    _put(store, "reports/b.html", b"secret b")
    good = _path(store.signed_url("reports/a.html"))
    # another key with a's signature, a changed signature, a later expiry, no signature at all
    assert _get(server, good.replace("reports/a.html", "reports/b.html"))[0] == 403
    flipped = good[:-1] + ("0" if good[-1] != "0" else "1")
    assert _get(server, flipped)[0] == 403
    path, query = good.split("?")
    expires = int(query.split("expires=")[1].split("&")[0])
    assert _get(server, good.replace(f"expires={expires}", f"expires={expires + 3600}"))[0] == 403
    assert _get(server, path)[0] == 403
    expired = LocalObjectStore(store.root, signing_secret=SECRET, base_url=store.base_url)
    from core.signing import sign_url

    old = sign_url(expired.base_url, "reports/a.html", SECRET, 60, now=1_000_000)
    status, body, _ = _get(server, _path(old))
    assert status == 403 and b"expired" in body
    other_secret = sign_url(store.base_url, "reports/a.html", "another-secret", 60)
    assert _get(server, _path(other_secret))[0] == 403
    assert _get(server, good, method="DELETE")[0] == 405
    assert store.get_bytes("reports/a.html") == b"a"


def test_nothing_outside_the_store_or_its_metadata_is_reachable(served, tmp_path: Path) -> None:
    store, server = served
    (tmp_path / "outside.txt").write_text("outside the store")
    _put(store, "reports/a.html", b"a")
    from core.signing import sign_url

    # even correctly signed, a traversal or a dot segment is not a key: refused before any file is read
    for key in ("../outside.txt", ".meta/reports/a.html.json", "reports/../../outside.txt"):
        with pytest.raises(ValueError):
            sign_url(store.base_url, key, SECRET, 60)
    for raw in (
        "/media/../outside.txt",
        "/media/%2e%2e/outside.txt",
        "/media/.meta/reports/a.html.json",
        "/outside.txt",
        "/",
    ):
        status, body, _ = _get(server, raw + "?expires=9999999999&signature=" + "0" * 64)
        assert status in (403, 404) and b"outside the store" not in body
    # a signed key under a different prefix than the base path is not served either
    signed = _path(store.signed_url("reports/a.html"))
    assert _get(server, signed.replace("/media/", "/elsewhere/media/", 1))[0] in (403, 404)
    # a symlink inside the store pointing outside it is refused even with a valid signature
    (store.root / "reports" / "link.html").symlink_to(tmp_path / "outside.txt")
    status, body, _ = _get(server, _path(store.signed_url("reports/link.html")))
    assert status == 404 and b"outside the store" not in body


def test_the_server_listens_where_the_public_base_url_says() -> None:
    address = address_from_base_url("http://localhost:8080/media/")
    assert (address.host, address.port, address.base_path) == ("localhost", 8080, "/media")
    with pytest.raises(ValueError):
        address_from_base_url("https://cdn.example.com/media")


def test_the_published_cost_report_links_its_tables_by_signed_urls_that_open(served) -> None:
    import datetime as dt
    import re

    from core.usage.costs import compute_cost_report
    from core.usage.pricing import load_price_table
    from core.usage.report import publish_report
    from tests.usage.test_report_presentation import demo_figures

    store, server = served
    prices = load_price_table()
    report = compute_cost_report(demo_figures(), prices, "day", dt.date(2026, 12, 1))
    published = publish_report(store, report, prices)
    status, page, _ = _get(server, _path(published.signed_url))
    assert status == 200
    links = dict(re.findall(r'<a href="([^"]+)">([^<]+)</a>', page.decode()))
    names = sorted(links.values())
    assert names == sorted(
        f"{t}.{ext}" for t in ("providers", "savings", "projections", "prices") for ext in ("csv", "parquet")
    )
    for url, name in links.items():
        status, body, _ = _get(server, _path(url.replace("&amp;", "&")))
        assert status == 200 and body == store.get_bytes(f"reports/cost/day/2026-12-01/{name}")


def test_the_quarantine_area_is_never_served_even_with_a_genuine_signature(served) -> None:
    """Rejected upload bytes (quarantine/...) have no URL: a link signed with the real secret gets 403."""
    import time

    from core.signing import _signature

    store, server = served
    key = "quarantine/uploads/2026/03/10/mia/u1-cat.svg"
    _put(store, key, b"<svg><script>alert(1)</script></svg>", "image/svg+xml")
    expires = int(time.time()) + 60
    status, body, _headers = _get(
        server, f"/media/{key}?expires={expires}&signature={_signature(SECRET.encode(), key, expires)}"
    )
    assert status == 403 and b"script" not in body
