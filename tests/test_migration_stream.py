"""Reading big rows in slices: the streaming JSON scanner agrees with the whole-document path walker,
keeps every byte around the blobs, and the spool hands the same bytes and checks as memory would."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.blobcodec import expand_json_path
from core.media_types import inspect_media, inspect_media_parts
from core.migration.stream import Skeleton, Spool, scan_json
from tests.support.migration import jpeg

PATTERNS = ("images[*].data", "cover", "pages[*].image.data")

_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(alphabet='QUJD+/=é"\\\n\t', max_size=12),
)
_value = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["data", "image", "caption", "x"]), inner, max_size=3),
    ),
    max_leaves=8,
)
_document = st.fixed_dictionaries(
    {},
    optional={
        "title": _leaf,
        "cover": _value,
        "images": st.lists(
            st.one_of(st.dictionaries(st.sampled_from(["data", "caption"]), _value, max_size=2), _leaf),
            max_size=4,
        ),
        "pages": st.lists(st.fixed_dictionaries({}, optional={"image": _value}), max_size=3),
    },
)


def _chunks(text: bytes, size: int) -> list[bytes]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [b""]


@settings(max_examples=300, deadline=None)
@given(doc=_document, size=st.integers(1, 40), indent=st.sampled_from([None, 2]))
def test_the_scanner_finds_what_the_path_walker_finds_and_keeps_every_other_byte(
    doc: dict[str, Any], size: int, indent: int | None
) -> None:
    text = json.dumps(doc, indent=indent, ensure_ascii=False).encode("utf-8")
    expected = {
        path: value
        for pattern in PATTERNS
        for path, value in expand_json_path(doc, pattern)
        if value is not None
    }
    skeleton = Skeleton()
    found = list(scan_json(iter(_chunks(text, size)), PATTERNS, skeleton))
    assert {f.path: f.value if f.type_name == "str" else f.type_name for f in found} == {
        path: value if isinstance(value, str) else type(value).__name__ for path, value in expected.items()
    }
    strings = [f for f in found if f.type_name == "str"]
    for f in strings:
        assert json.loads(text[f.start : f.end]) == f.value
    # Filling every hole with the original string gives back the exact document.
    assert skeleton.fill([text[f.start : f.end] for f in strings]) == text


def test_a_spooled_blob_is_inspected_like_one_in_memory() -> None:
    picture = jpeg(3, size=300)
    with Spool(memory_bytes=1024) as spool:
        for i in range(0, len(picture), 777):
            spool.write(picture[i : i + 777])
        assert spool.in_memory() is None and spool.size == len(picture)
        assert spool.file_path().read_bytes() == picture
        from_file = inspect_media_parts(spool.size, spool.head, spool.tail, spool.open)
    assert from_file == inspect_media(picture)
