"""The rule that tells whether an index serves a query shape (tests/query_shapes.py)."""

from __future__ import annotations

import re

from . import query_shapes
from .query_shapes import Index, Verdict, judge, problems, render, serving_index, shape_of


def _index(*keys: str, unique: bool = False) -> Index:
    pairs = tuple((key.lstrip("-"), -1 if key.startswith("-") else 1) for key in keys)
    return Index("_".join(keys), pairs, unique)


def _served(filter_, sort=None, indexes=(), distinct=None):
    return serving_index(shape_of("c", filter_, sort, distinct), indexes)


def test_equality_fields_in_any_order_then_the_sort_then_the_ranges():
    index = _index("tenantId", "status", "-createdAt", "n")
    sort = [("createdAt", -1)]
    assert _served({"status": "a", "tenantId": 1, "n": {"$gt": 2}}, sort, [index])[0] == index.name
    assert _served({"tenantId": 1}, [("createdAt", -1)], [_index("tenantId", "-createdAt")])[0]
    # The range before the sort, or an equality field missing from the prefix: not served.
    assert _served({"tenantId": 1, "n": {"$gt": 2}}, sort, [_index("tenantId", "n", "-createdAt")]) == (
        None,
        "tenantId_n_-createdAt",
    )
    assert _served({"tenantId": 1, "other": 3}, None, [index])[0] is None


def test_a_sort_is_served_in_the_index_direction_or_all_reversed_not_mixed():
    index = _index("tenantId", "-createdAt", "-_id")
    assert _served({"tenantId": 1}, [("createdAt", -1), ("_id", -1)], [index])[0]
    assert _served({"tenantId": 1}, [("createdAt", 1), ("_id", 1)], [index])[0]
    assert _served({"tenantId": 1}, [("createdAt", -1), ("_id", 1)], [index])[0] is None
    # A sort on a field the filter fixes needs no place in the index.
    assert _served({"tenantId": 1, "status": "a"}, [("status", 1)], [_index("tenantId", "status")])[0]


def test_in_is_an_equality_without_a_sort_and_a_range_with_one():
    index = _index("tenantId", "status", "position")
    in_two = {"tenantId": 1, "status": {"$in": ["a", "b"]}}
    assert _served(in_two, None, [index])[0]
    assert _served(in_two, [("position", 1)], [index])[0] is None
    assert _served(in_two, [("position", 1)], [_index("tenantId", "position", "status")])[0]
    assert _served({"tenantId": 1, "status": {"$in": ["a"]}}, [("position", 1)], [index])[0]


def test_an_id_in_the_filter_is_served_by_the_id_index():
    assert _served({"tenantId": 1, "_id": 5, "x": {"$gt": 1}}, None, [])[0] == "_id_"
    assert _served({"_id": {"$in": [1, 2]}}, [("x", 1)], [])[0] == "_id_"
    assert _served({"_id": re.compile("^bot:")}, None, [])[0] is None


def test_every_branch_of_an_or_is_served_with_the_rest_of_the_filter():
    filter_ = {"$and": [{"tenantId": 1}, {"$or": [{"a": 1}, {"b": 2}]}]}
    both = [_index("tenantId", "a"), _index("tenantId", "b")]
    assert _served(filter_, None, both)[0] == "tenantId_a | tenantId_b"
    assert _served(filter_, None, both[:1]) == (None, "tenantId_a")


def test_a_unique_index_fixed_by_equality_serves_whatever_else_the_filter_holds():
    unique = _index("tenantId", "resource", "period", unique=True)
    filter_ = {"tenantId": 1, "resource": "r", "period": "p", "used": {"$lte": 3}}
    assert _served(filter_, None, [unique])[0] == unique.name
    assert _served(filter_, None, [_index("tenantId", "resource", "period")])[0] is None


def test_a_distinct_reads_its_key_after_the_equality_fields():
    assert _served({"tenantId": 1}, None, [_index("tenantId", "status")], distinct="status")[0]
    assert _served({}, None, [_index("tenantId", "status")], distinct="status")[0] is None


def test_an_empty_filter_is_served_by_no_index_and_the_message_names_the_closest():
    assert _served({}, None, [_index("tenantId")]) == (None, None)
    shape = shape_of("messages", {"tenantId": 1, "chat": "x"})
    verdict = Verdict(shape, "app/x.py:1", *serving_index(shape, [_index("tenantId", "status")]))
    assert verdict.problem() == (
        "messages: no index serves {chat, tenantId} (issued at app/x.py:1); closest index: tenantId_status"
    )


def test_a_run_fails_on_an_unserved_shape_even_when_the_list_shows_it(tmp_path, monkeypatch):
    served = shape_of("messages", {"tenantId": 1, "status": "queued"})
    unserved = shape_of("messages", {"tenantId": 1, "chat": "x"})
    indexes = {"messages": [_index("tenantId", "status")]}
    verdicts = judge({served: "app/x.py:1", unserved: "app/x.py:2"}, indexes)
    document = tmp_path / "query-shapes.md"
    monkeypatch.setattr(query_shapes, "DOCUMENT", document)
    monkeypatch.setattr(query_shapes, "ROOT", tmp_path)

    document.write_text(render(verdicts))
    assert problems(verdicts) == [verdicts[0].problem()]
    assert "{chat, tenantId}" in verdicts[0].problem()

    document.write_text(render(verdicts[1:]))
    assert problems(verdicts) == [
        verdicts[0].problem(),
        "query-shapes.md does not list 1 shapes of this run as they are (run make query-shapes):\n  "
        + verdicts[0].row(),
    ]
    assert problems(verdicts[1:]) == []
