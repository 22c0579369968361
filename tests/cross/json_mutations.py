"""Hypothesis strategies that damage JSON documents the way real files get damaged (used by test_properties).

A mutated document starts from a valid one (a real sample file or a generated one) and gets one to four
structural edits at positions Hypothesis chooses, then is serialised with Python's ``json`` (which writes
``NaN`` and ``Infinity`` literals that ``json.loads`` accepts again), and sometimes has its text cut short:

* delete a key of an object; add a key (a name the readers look for, or a stray one) with a junk value;
* replace any value with junk: null, booleans, huge or negative integers, NaN, +-infinity, 1e308, -0.0,
  strings (also numeric-looking ones), empty or nested lists and objects;
* truncate a list, drop one item, or repeat one item (duplicate ids, duplicate frames);
* turn a number into its string, a list into an object, an object into a list of its values;
* replace a number by another finite one (huge, tiny, negative, zero), which keeps the file readable;
* cut the serialised text at some byte (a half-written or half-downloaded file).

Everything is drawn from Hypothesis, so with ``derandomize=True`` the examples are the same on every run.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# Keys the readers look for: adding one with a junk value reaches the checks behind them.
READER_KEYS = (
    "id", "image_id", "images", "annotations", "categories", "keypoints", "bbox", "bbox_head", "scores", "score",
    "track_id", "file_name", "is_labeled", "ignore_regions_x", "ignore_regions_y", "width", "height", "vid_id",
    "category_id", "keypoints_occluded", "annolist", "image", "name", "annorect", "annopoints", "point", "x", "y",
    "is_visible", "x1", "y1", "x2", "y2", "ignore_regions", "skeleton", "state_dict",
)  # fmt: skip

_SCALAR_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, -1, 1, 2**31, -(2**63), 10**30, 10**400]),
    st.integers(-1000, 1000),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e308, -1e308, -0.0, 5e-324, 0.5]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "12", "1e3", "NaN", "null", "x", "images/a/b.jpg", "é", "\x00"]),
    st.text(max_size=6),
)
JUNK: st.SearchStrategy[Any] = st.recursive(
    _SCALAR_JUNK,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(READER_KEYS), inner,
                                                                           max_size=3)),
    max_leaves=6,
)
NUMBERS = st.one_of(st.integers(-(10**6), 10**6), st.floats(-1e308, 1e308),
                    st.sampled_from([0, -0.0, 1e-300, 2**53 + 1]))
# "renumber" twice: an edit that keeps the file readable reaches the code behind the readers (the evaluator).
OPERATIONS = ("delete_key", "add_key", "replace", "truncate_list", "drop_item", "repeat_item", "retype", "renumber",
              "renumber")


def _slots(doc: Any) -> list[tuple[Any, Any]]:
    """Every value of ``doc`` as ``(container, key)`` in pre-order; ``(None, None)`` is the document itself."""
    out: list[tuple[Any, Any]] = [(None, None)]
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            out.append((node, key))
            if isinstance(value, (dict, list)):
                stack.append(value)
    return out


def _retype(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, (int, float)):
        return json.dumps(value) if value == value else "NaN"
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    if isinstance(value, dict):
        return list(value.values())
    return [value]


def _mutate_once(draw: st.DrawFn, doc: Any) -> Any:
    slots = _slots(doc)
    container, key = slots[draw(st.integers(0, len(slots) - 1))]
    value = doc if container is None else container[key]
    op = draw(st.sampled_from(OPERATIONS))

    def put(new: Any) -> Any:
        if container is None:
            return new
        container[key] = new
        return doc

    if op == "delete_key" and isinstance(container, dict):
        del container[key]
        return doc
    if op == "add_key" and isinstance(value, dict):
        value[draw(st.sampled_from(READER_KEYS))] = draw(JUNK)
        return doc
    if op in ("truncate_list", "drop_item", "repeat_item") and isinstance(value, list) and value:
        i = draw(st.integers(0, len(value) - 1))
        if op == "truncate_list":
            del value[i:]
        elif op == "drop_item":
            del value[i]
        else:
            value.insert(i, json.loads(json.dumps(value[i])))
        return doc
    if op == "retype":
        return put(_retype(value))
    if op == "renumber" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return put(draw(NUMBERS))
    return put(draw(JUNK))


@st.composite
def damaged_json(draw: st.DrawFn, base_text: str) -> bytes:
    """The bytes of a damaged copy of the JSON document ``base_text``."""
    doc = json.loads(base_text)
    for _ in range(draw(st.integers(1, 4))):
        doc = _mutate_once(draw, doc)
    text = json.dumps(doc)  # NaN / Infinity literals included, as a careless writer would produce
    if draw(st.integers(0, 9)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text.encode("utf-8", errors="surrogatepass")
