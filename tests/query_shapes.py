"""The query shapes the app issues, recorded on the embedded store, and the index that serves each.

mongomock has no query planner: every query reads its whole collection, so a query no index serves
goes unnoticed until a real server holds many tenants. The recorder wraps mongomock's collection and
cursor methods (pymongo's command events do not fire there) and notes every query the app sends, on
tenant collections (through the tenancy core's guard) and global ones alike, the ODM's and raw calls:
its collection, the fields of its filter and how each is matched, its sort, and the key of a
distinct. A find is noted when its cursor is first read, with the sort set on it by then, which is
when a driver sends it. Queries that the tests issue themselves, to look at what was stored, are left
out: a query counts when the nearest code of this repository that issued it is in app/ or scripts/.

A shape is served by an index (`serving_index`) when the index reads exactly what the query asks for
and returns it in the order asked (the ESR rule):

- the filter's equality fields, in any order, are the first fields of the index; then the sort keys,
  in order, each with the index's direction or each with the opposite one; then the range fields
  (`$gt`, `$lt`, `$exists`, `$ne`, `$nin`, regular expressions...), in any order. Sort keys that the
  filter fixes by equality need no place in the index.
- `$in` is an equality when the query has no sort; with a sort it is a range (a list of values
  merged in the sort's order is a plan the server may or may not choose), which is the safe side.
  An `$in` of one value is an equality.
- a filter that names its `_id` (a value or a list of them) is served by the `_id` index whatever
  else it holds, since it matches at most those documents; the rest of the filter and any sort apply
  to them alone.
- `$and` clauses are part of the filter; each branch of an `$or`, with the rest of the filter, is a
  query of its own that must be served (a server plans each branch apart).
- a filter that fixes every field of a unique index by equality is served by it (it matches at most
  one document).
- a distinct is served when its filter is, with its key as the first field after the equality fields
  (the server reads one index entry per value).

Tenant collections are held to this rule like global ones; their shapes start with `tenantId`,
as every index of theirs must. The shapes of a run are listed in docs/query-shapes.md.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bson.regex import Regex

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "query-shapes.md"
# Where the app's own code lives; the tenancy core (its collection guard and its query sets) and
# app.db pass queries on for others.
APP_DIRS = (str(ROOT / "app") + "/", str(ROOT / "scripts") + "/")
TEST_DIR = str(ROOT / "tests") + "/"
PASSING_ON = tuple(
    str(ROOT / name) for name in ("app/db.py", "app/tenancy/collection.py", "app/tenancy/documents.py")
)
# The migration of a single-tenant database runs once and reads every document by design: none of
# them has a tenantId yet for an index to narrow.
ONE_OFF = str(ROOT / "app/tenancy/migration.py")

RANGE_OPERATORS = frozenset({"$gt", "$gte", "$lt", "$lte"})
ID_INDEX = "_id_"


@dataclass(frozen=True)
class Shape:
    """What a query asks of its collection, without its values."""

    collection: str
    equality: tuple[str, ...] = ()
    # Fields matched otherwise, each with how ("range", "regex", "exists", "ne", "in"...).
    other: tuple[tuple[str, str], ...] = ()
    sort: tuple[tuple[str, int], ...] = ()
    distinct: str | None = None
    branches: tuple[Shape, ...] = ()

    def describe(self) -> str:
        """The shape as docs/query-shapes.md lists it."""
        text = " $or ".join(branch.fields() for branch in self.branches) if self.branches else self.fields()
        if self.sort:
            keys = [("-" if direction < 0 else "") + name for name, direction in self.sort]
            text += " sort " + ", ".join(keys)
        if self.distinct:
            text += f" distinct {self.distinct}"
        return text

    def fields(self) -> str:
        listed = [*self.equality, *(f"{name} ({how})" for name, how in self.other)]
        return "{" + ", ".join(listed) + "}"


def _is_operator_document(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(str(key).startswith("$") for key in value)


def _how(value: Any) -> str:
    """How a field is matched: "eq", "in" (more than one value), or the kind of range."""
    if isinstance(value, (re.Pattern, Regex)):
        return "regex"
    if not _is_operator_document(value):
        return "eq"
    operators = set(value) - {"$options"}
    if operators == {"$eq"}:
        return "eq"
    if operators == {"$in"}:
        return "eq" if len(value["$in"]) == 1 else "in"
    if operators <= RANGE_OPERATORS:
        return "range"
    return ",".join(sorted(op.lstrip("$") for op in operators))


def _flatten(filter_: Mapping[str, Any] | None) -> tuple[dict[str, str], list[list[Mapping[str, Any]]]]:
    """The filter's fields with how each is matched ($and clauses merged), and its $or lists."""
    fields: dict[str, str] = {}
    alternatives: list[list[Mapping[str, Any]]] = []
    for key, value in (filter_ or {}).items():
        if key == "$and":
            for clause in value:
                more, more_alternatives = _flatten(clause)
                fields.update(more)
                alternatives += more_alternatives
        elif key == "$or":
            alternatives.append(list(value))
        elif key.startswith("$"):
            fields[key] = key.lstrip("$")
        else:
            fields[key] = _how(value)
    return fields, alternatives


def shape_of(
    collection: str,
    filter_: Mapping[str, Any] | None,
    sort: Iterable[tuple[str, int]] | None = None,
    distinct: str | None = None,
) -> Shape:
    """The shape of a query: its filter, sort and distinct key."""
    fields, alternatives = _flatten(filter_)
    # Each branch of an $or with the rest of the filter (the $or lists after the first are folded
    # into their branches' fields: none of the app's queries has two).
    branches = tuple(
        _shape(collection, {**fields, **_flatten(option)[0]}, sort, distinct)
        for options in alternatives[:1]
        for option in options
    )
    return _shape(collection, fields, sort, distinct, branches)


def _shape(
    collection: str,
    fields: Mapping[str, str],
    sort: Iterable[tuple[str, int]] | None,
    distinct: str | None,
    branches: tuple[Shape, ...] = (),
) -> Shape:
    return Shape(
        collection=collection,
        equality=tuple(sorted(name for name, how in fields.items() if how == "eq")),
        other=tuple(sorted((name, how) for name, how in fields.items() if how != "eq")),
        sort=tuple((name, int(direction)) for name, direction in sort or ()),
        distinct=distinct,
        branches=branches,
    )


@dataclass(frozen=True)
class Index:
    name: str
    keys: tuple[tuple[str, int], ...]
    unique: bool = False


def _match_steps(shape: Shape, index: Index) -> tuple[int, bool]:
    """How many of the shape's fields the index serves in ESR order, and whether it serves them all."""
    sort = [(name, direction) for name, direction in shape.sort if name not in shape.equality]
    if shape.distinct:
        sort = [(shape.distinct, 1)]
    in_is_equality = not sort
    equality = set(shape.equality) | {n for n, how in shape.other if how == "in" and in_is_equality}
    ranges = {n for n, how in shape.other if n not in equality} - {name for name, _ in sort}
    keys = list(index.keys)
    served = 0
    prefix = {name for name, _ in keys[: len(equality)]}
    if prefix != equality:
        return len(prefix & equality), False
    served += len(equality)
    position = len(equality)
    if sort:
        window = keys[position : position + len(sort)]
        names = [name for name, _ in window]
        if names != [name for name, _ in sort]:
            matching = next((i for i, (a, b) in enumerate(zip(names, sort, strict=False)) if a != b[0]), 0)
            return served + matching, False
        signs = {direction * wanted for (_, direction), (_, wanted) in zip(window, sort, strict=True)}
        if len(signs) != 1 and not shape.distinct:
            return served, False
        served += len(sort)
        position += len(sort)
    window = {name for name, _ in keys[position : position + len(ranges)]}
    if window != ranges:
        return served + len(window & ranges), False
    return served + len(ranges), True


def serving_index(shape: Shape, indexes: Iterable[Index]) -> tuple[str | None, str | None]:
    """The index that serves the shape (None when none does), and the closest one otherwise."""
    indexes = list(indexes)
    if shape.branches:
        served = [serving_index(branch, indexes) for branch in shape.branches]
        if all(name for name, _ in served):
            return " | ".join(dict.fromkeys(name for name, _ in served)), None
        closest = next(name or near for name, near in served if name is None)
        return None, closest
    if "_id" in shape.equality or any(name == "_id" and how == "in" for name, how in shape.other):
        return ID_INDEX, None
    if not shape.equality and not shape.other and not shape.sort and not shape.distinct:
        return None, None
    best, best_steps = None, -1
    for index in indexes:
        if index.unique and {name for name, _ in index.keys} <= set(shape.equality):
            return index.name, None  # at most one document matches
        steps, serves = _match_steps(shape, index)
        if serves:
            return index.name, None
        if steps > best_steps:
            best, best_steps = index.name, steps
    return None, best


# -- the indexes the models declare ----------------------------------------------------------------


def declared_indexes() -> dict[str, list[Index]]:
    """Every collection of the app's document classes, with the indexes their meta declares."""
    from mongoengine.base.common import _document_registry

    found: dict[str, list[Index]] = {}
    for cls in _document_registry.values():
        if cls._meta.get("abstract") or not cls.__module__.startswith("app."):
            continue
        # Every collection has its _id index, which serves ranges of _id and an order by it too.
        indexes = found.setdefault(cls._get_collection_name(), [Index(ID_INDEX, (("_id", 1),), True)])
        for spec in cls._meta.get("index_specs") or []:
            keys = tuple((name, int(direction)) for name, direction in spec["fields"])
            name = "_".join(f"{name}_{direction}" for name, direction in keys)
            indexes.append(Index(name, keys, bool(spec.get("unique"))))
    return found


# -- recording on the embedded store ---------------------------------------------------------------


@dataclass
class Recorder:
    """The shapes of a run, each with where the app first issued it."""

    shapes: dict[Shape, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    local: threading.local = field(default_factory=threading.local)

    def note(self, shape: Shape) -> None:
        where = _issuer()
        if where is None:
            return
        with self.lock:
            self.shapes.setdefault(shape, where)


def _issuer() -> str | None:
    """Where the app issued the query being noted (file:line), or None when a test issued it."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename == ONE_OFF:
            return None
        if filename.startswith(APP_DIRS) and not filename.startswith(PASSING_ON):
            return f"{filename[len(str(ROOT)) + 1 :]}:{frame.f_lineno}"
        if filename.startswith(TEST_DIR):
            return None
        frame = frame.f_back
    return None


def _aggregate_shape(collection: str, pipeline: list[Mapping[str, Any]]) -> Shape:
    """An aggregation reads through an index only in its first stages: $match, then $sort."""
    stages = list(pipeline)
    match = stages.pop(0)["$match"] if stages and "$match" in stages[0] else None
    sort = stages[0]["$sort"].items() if stages and "$sort" in stages[0] else None
    return shape_of(collection, match, sort)


def _request_filter(request: Any) -> Mapping[str, Any] | None:
    return getattr(request, "_filter", None)


def install(recorder: Recorder) -> None:
    """Wrap mongomock's query methods so that `recorder` notes the shape of every query (once)."""
    import mongomock.collection

    from app import db

    db._embedded_indexes()  # what the embedded store changes in mongomock, wrapped below
    collection_class = mongomock.collection.Collection
    cursor_class = mongomock.collection.Cursor
    if getattr(cursor_class._compute_results, "shapes_recorded", False):
        return

    def outermost(method: Any, shapes: Any) -> Any:
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            depth = getattr(recorder.local, "depth", 0)
            if depth == 0:
                for shape in shapes(self, *args, **kwargs):
                    recorder.note(shape)
            recorder.local.depth = depth + 1
            try:
                return method(self, *args, **kwargs)
            finally:
                recorder.local.depth = depth

        run.shapes_recorded = True
        return run

    def filtered(self: Any, filter: Any = None, *args: Any, sort: Any = None, **kwargs: Any) -> list[Shape]:
        if filter is not None and not isinstance(filter, Mapping):
            filter = {"_id": filter}
        return [shape_of(self.name, filter, sort)]

    def distinct(self: Any, key: str, filter: Any = None, **kwargs: Any) -> list[Shape]:
        return [shape_of(self.name, filter, distinct=key)]

    def aggregate(self: Any, pipeline: Any, *args: Any, **kwargs: Any) -> list[Shape]:
        return [_aggregate_shape(self.name, pipeline)]

    def bulk(self: Any, requests: Any, *args: Any, **kwargs: Any) -> list[Shape]:
        filters = [_request_filter(request) for request in requests]
        return [shape_of(self.name, f) for f in filters if f is not None]

    for name in (
        "find_one",
        "find_one_and_delete",
        "find_one_and_replace",
        "find_one_and_update",
        "update_one",
        "update_many",
        "replace_one",
        "delete_one",
        "delete_many",
        "count_documents",
    ):
        setattr(collection_class, name, outermost(getattr(collection_class, name), filtered))
    collection_class.distinct = outermost(collection_class.distinct, distinct)
    # A server answers it from the collection's metadata, reading no document (mongomock counts them).
    collection_class.estimated_document_count = outermost(
        collection_class.estimated_document_count, lambda *args, **kwargs: []
    )
    collection_class.aggregate = outermost(collection_class.aggregate, aggregate)
    collection_class.bulk_write = outermost(collection_class.bulk_write, bulk)

    def cursor_shapes(self: Any, *args: Any, **kwargs: Any) -> list[Shape]:
        sent = not self._results or self._factory_last_generated_results != self._factory
        return [shape_of(self.collection.name, self._spec, self._sort)] if sent else []

    def cursor_distinct(self: Any, key: str, *args: Any, **kwargs: Any) -> list[Shape]:
        return [shape_of(self.collection.name, self._spec, distinct=key)]

    def window_shapes(self: Any, *args: Any, **kwargs: Any) -> list[Shape]:
        sent = getattr(self, "_window_key", None) != (self._factory, self._skip, self._limit)
        return [shape_of(self.collection.name, self._spec, self._sort)] if sent else []

    cursor_class._compute_results = outermost(cursor_class._compute_results, cursor_shapes)
    # A cursor read one document after another hands them out of its window (app.db), not through
    # _compute_results.
    cursor_class._results_in_window = outermost(cursor_class._results_in_window, window_shapes)
    cursor_class.distinct = outermost(cursor_class.distinct, cursor_distinct)


# -- the check of a run, and docs/query-shapes.md ----------------------------------------------------


def dumps(shapes: Mapping[Shape, str]) -> list[list[Any]]:
    """The shapes of a run as plain lists (what an xdist worker hands to the controller)."""
    return [[_plain(shape), where] for shape, where in shapes.items()]


def loads(rows: Iterable[list[Any]]) -> dict[Shape, str]:
    return {_from_plain(plain): where for plain, where in rows}


def _plain(shape: Shape) -> list[Any]:
    return [
        shape.collection,
        list(shape.equality),
        [list(item) for item in shape.other],
        [list(item) for item in shape.sort],
        shape.distinct,
        [_plain(branch) for branch in shape.branches],
    ]


def _from_plain(plain: list[Any]) -> Shape:
    collection, equality, other, sort, distinct, branches = plain
    return Shape(
        collection,
        tuple(equality),
        tuple(tuple(item) for item in other),
        tuple((name, direction) for name, direction in sort),
        distinct,
        tuple(_from_plain(branch) for branch in branches),
    )


@dataclass(frozen=True)
class Verdict:
    shape: Shape
    where: str
    index: str | None
    closest: str | None

    def row(self) -> str:
        return f"| `{self.shape.collection}` | `{self.shape.describe()}` | `{self.index}` |"

    def problem(self) -> str:
        return (
            f"{self.shape.collection}: no index serves {self.shape.describe()} (issued at {self.where}); "
            f"closest index: {self.closest or 'none'}"
        )


def judge(shapes: Mapping[Shape, str], indexes: Mapping[str, list[Index]] | None = None) -> list[Verdict]:
    """Each shape of the app's collections with the index that serves it, in the order of the list."""
    indexes = declared_indexes() if indexes is None else indexes
    verdicts = [
        Verdict(shape, where, *serving_index(shape, indexes[shape.collection]))
        for shape, where in shapes.items()
        if shape.collection in indexes
    ]
    return sorted(verdicts, key=lambda verdict: (verdict.shape.collection, verdict.shape.describe()))


HEADER = """# Query shapes

Every query shape the app issues while the test suite runs (`make test`), on tenant and global
collections alike, with the index that serves it. The suite records them on the embedded store and
fails when no index serves a shape of its run, naming it, or when a shape is not listed here as it
is now (`make query-shapes` runs the suite and writes the list again). How a shape is recorded, and
when an index serves it
(equality fields first, then the sort, then the ranges; `$in` is a range when the query sorts; an `_id`
in the filter is served by the `_id` index), is said in `tests/query_shapes.py`.

A shape lists the fields of the filter (a field matched otherwise than by equality says how), then the
sort (`-` descending) or the key of a distinct. `$or` shapes list each branch with the rest of the
filter; every branch is served on its own.
"""


def render(verdicts: list[Verdict]) -> str:
    unserved = sum(verdict.index is None for verdict in verdicts)
    lines = [
        HEADER,
        f"{len(verdicts)} shapes, {unserved} unserved.",
        "",
        "| collection | shape | served by |",
        "|---|---|---|",
        *(verdict.row() for verdict in verdicts),
    ]
    return "\n".join(lines) + "\n"


def problems(verdicts: list[Verdict]) -> list[str]:
    """What is wrong with a run's shapes: the shapes no index serves, and the shapes that
    docs/query-shapes.md does not list as the run found them (new ones, or ones whose index changed)."""
    rows = set(DOCUMENT.read_text().splitlines()) if DOCUMENT.exists() else set()
    found = [verdict.problem() for verdict in verdicts if verdict.index is None]
    new = [verdict for verdict in verdicts if verdict.row() not in rows]
    if new:
        listed = "".join(f"\n  {verdict.row()}" for verdict in new)
        found.append(
            f"{DOCUMENT.relative_to(ROOT)} does not list {len(new)} shapes of this run as they are "
            f"(run make query-shapes):{listed}"
        )
    return found
