"""Responses dumped from documents as the driver reads them, without building them.

Building a MongoEngine document and dumping it field by field through marshmallow costs most of a
list's time. For a response schema and a document class, `dumper()` compiles once a function from the
stored form (a dict with the documents' database field names, as `as_pymongo()` reads it) to what the
schema dumps from the built document: the same keys, the same values. The schema stays the one truth
of the wire format (and of the OpenAPI document): each field is dumped by its own `_serialize`, and
only the walk of the schema and the building of the document are skipped. The function is generated
code, one statement per field; for the common pairs of schema and model fields (a string, an id, an
integer, a boolean, an ISO date-time) the value the driver decodes is tested and dumped inline, as the
field would dump it, and any other value goes to the field.

A schema compiles when every field it dumps maps to fields of the document class: plain fields by
their `attribute` (dotted into embedded documents), nested schemas and lists of them into embedded
documents, `ReferenceId` to a reference's stored id, and `Computed` to the fields its value is computed
from. A schema with dump hooks, `Method` or `Function` fields, or a field the class does not have does
not compile, and its responses are dumped the usual way.

With the WIRE_CHECK setting (on in the tests), every compiled dump is compared with marshmallow's
dump of the document built from the same stored form, and a difference is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import cache, partial
from typing import Any

import mongoengine as me
from bson import DBRef, ObjectId
from flask import current_app, has_app_context
from marshmallow import Schema, fields, missing
from marshmallow.utils import get_value
from mongoengine.base import ComplexBaseField

Dumper = Callable[[dict[str, Any]], dict[str, Any]]
Convert = Callable[[Any], Any]


class NotCompilable(Exception):
    """A schema field that the compiled dump cannot reproduce."""


class WireMismatch(AssertionError):
    """A compiled dump differs from marshmallow's (raised only with WIRE_CHECK)."""


class ReferenceId(fields.Field):
    """The id a reference field of the document holds, as a string (null without one), read without
    loading the referenced document. `attribute` names the reference field."""

    def __init__(self, **kwargs: Any):
        super().__init__(
            metadata={"type": "string", "nullable": True, **kwargs.pop("metadata", {})}, **kwargs
        )

    def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = missing) -> Any:
        name = self.attribute or attr
        value = obj._data.get(name) if isinstance(obj, me.Document) else super().get_value(obj, name)
        return getattr(value, "id", value)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if isinstance(value, DBRef):
            value = value.id
        return str(value) if value else None


class Computed(fields.Field):
    """A value computed from fields of the document: `compute` is called with their values, in the
    order `uses` names them (by their names on the document class, dotted into embedded documents),
    as the built document holds them. Marshmallow reads them from the built document, the compiled
    dump from the stored form."""

    _CHECK_ATTRIBUTE = False

    def __init__(self, compute: Callable[..., Any], *uses: str, **kwargs: Any):
        super().__init__(dump_only=True, **kwargs)
        self.compute = compute
        self.uses = uses

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return self.compute(*(get_value(obj, name) for name in self.uses))


class Stored:
    """One document as the driver read it, for a response schema to dump."""

    __slots__ = ("document_class", "raw")

    def __init__(self, document_class: type[me.Document], raw: dict[str, Any]):
        self.document_class = document_class
        self.raw = raw

    def document(self) -> Any:
        """The document built from the stored form, as the query set would have returned it."""
        return self.document_class._from_son(self.raw)

    def value(self, name: str) -> Any:
        """The stored value of the field `name` (its default when the document does not hold it)."""
        model_field = self.document_class._fields[name]
        return self.raw[model_field.db_field] if model_field.db_field in self.raw else _default(model_field)


def stored(document_class: type[me.Document], raw: dict[str, Any] | None) -> Stored | None:
    """A document of `document_class` as the driver read it (None for none)."""
    return None if raw is None else Stored(document_class, raw)


def read(queryset: Any) -> list[Stored]:
    """The documents of a query set as stored, read now (within the caller's tenant scope)."""
    return [Stored(queryset._document, raw) for raw in queryset.as_pymongo()]


def _default(model_field: Any) -> Any:
    """The stored form of a field's default (an embedded document's as a dict)."""
    default = model_field.default
    value = default() if callable(default) else default
    if isinstance(value, me.EmbeddedDocument):
        return model_field.to_mongo(value)
    return value


def _fill(model_field: Any) -> Any:
    """What a document holds of a field absent or null in its stored form, as MongoEngine sets it
    (the field's default; a nullable field's null): a value, or a function that makes one (a default
    made anew for each document, such as a list)."""
    if model_field.null:
        return None
    default = model_field.default
    if callable(default) or isinstance(default, me.EmbeddedDocument):
        return partial(_default, model_field)
    return default


def _path(document_class: Any, path: str) -> tuple[Any, Callable[[dict[str, Any]], Any]]:
    """The model field a dotted path names (through embedded documents) and a function that reads
    what a document holds there from its stored form."""
    steps = []
    owner = document_class
    for name in path.split("."):
        model_field = getattr(owner, "_fields", {}).get(name)
        if model_field is None:
            raise NotCompilable(path)
        steps.append(model_field)
        owner = getattr(model_field, "document_type", None)
    if any(not isinstance(step, me.EmbeddedDocumentField) for step in steps[:-1]):
        raise NotCompilable(path)
    stored = [(step.db_field, _fill(step)) for step in steps]

    def read(raw: dict[str, Any]) -> Any:
        value: Any = raw
        for db_field, fill in stored:
            value = value.get(db_field)
            if value is None:
                value = fill() if callable(fill) else fill
                if value is None:
                    return None
        return value

    return steps[-1], read


def _leaf(field: fields.Field, model_field: Any, attr: str) -> Convert:
    if isinstance(model_field, (me.EmbeddedDocumentField, me.GenericEmbeddedDocumentField)):
        raise NotCompilable(attr)
    if isinstance(model_field, me.ReferenceField | me.GenericReferenceField) and not isinstance(
        field, ReferenceId
    ):
        raise NotCompilable(attr)
    if isinstance(field, ReferenceId):
        return lambda value: field._serialize(value, attr, None)
    if isinstance(model_field, (me.DictField, me.MapField)):
        inner = getattr(model_field, "field", None)
        if isinstance(inner, (me.EmbeddedDocumentField, me.ReferenceField, me.ListField, me.DictField)):
            raise NotCompilable(attr)
    serialize, to_python = field._serialize, model_field.to_python

    def dumped(value: Any) -> Any:
        return None if value is None else serialize(to_python(value), attr, None)

    passed = _passed(field, model_field)
    return dumped if passed is None else Passing(*passed, dumped)


class Passing:
    """The dump of a field whose stored values, as the driver decodes them, are of type `decoded`:
    such a value is dumped by `dump` (None: as it is), any other by `otherwise`; null stays null.
    The compiled dump writes this test inline (`inline`) instead of calling it."""

    __slots__ = ("decoded", "dump", "otherwise")

    def __init__(self, decoded: type, dump: Convert | None, otherwise: Convert):
        self.decoded, self.dump, self.otherwise = decoded, dump, otherwise

    def __call__(self, value: Any) -> Any:
        if value is None:
            return None
        if type(value) is self.decoded:
            return value if self.dump is None else self.dump(value)
        return self.otherwise(value)

    def inline(self, value: str, names: dict[str, Any], prefix: str) -> str:
        """The expression of this dump of the variable `value`, with the objects it names put in
        `names` under names that begin with `prefix`."""
        names[f"{prefix}t"], names[f"{prefix}o"] = self.decoded, self.otherwise
        if self.dump is None:
            return f"{value} if {value} is None or type({value}) is {prefix}t else {prefix}o({value})"
        names[f"{prefix}d"] = self.dump
        return (
            f"None if {value} is None else {prefix}d({value}) if type({value}) is {prefix}t "
            f"else {prefix}o({value})"
        )


ISO = (None, "iso", "iso8601")  # the formats in which marshmallow dumps a date-time with isoformat()


def _passed(field: fields.Field, model_field: Any) -> tuple[type, Convert | None] | None:
    """For the pairs of schema and model fields most responses are made of: the type the driver
    decodes their stored values as, and what the schema field dumps such a value as (None: the value
    itself), as the field's class would (its own, not a subclass's override). None for any other pair."""
    decoded, own = _held_as_decoded(model_field), type(field)._serialize
    if own is fields.String._serialize and decoded in (str, ObjectId):
        return decoded, None if decoded is str else str
    if own is fields.Number._serialize and isinstance(field, fields.Integer) and not field.as_string:
        return (int, None) if decoded is int else None
    if own is fields.Field._serialize and isinstance(field, fields.Boolean):
        return (bool, None) if decoded is bool else None
    if own is fields.DateTime._serialize and isinstance(field, fields.DateTime) and field.format in ISO:
        return (datetime, datetime.isoformat) if decoded is datetime else None
    return None


# The model fields whose `to_python` (their class's own) holds a stored value of a type as it is.
HELD_AS_DECODED = (
    (me.StringField.to_python, str),
    (me.IntField.to_python, int),
    (me.BooleanField.to_python, bool),
    (me.ObjectIdField.to_python, ObjectId),
    (me.DateTimeField.to_python, datetime),
)


def _held_as_decoded(model_field: Any) -> type | None:
    """The type of stored values, as the driver decodes them, that `model_field` holds as they are;
    None for a field that converts them."""
    to_python = type(model_field).to_python
    return next((decoded for own, decoded in HELD_AS_DECODED if to_python is own), None)


def _convert(field: fields.Field, model_field: Any, attr: str) -> Convert:
    if isinstance(field, fields.Nested):
        if field.many or not isinstance(model_field, me.EmbeddedDocumentField):
            raise NotCompilable(attr)
        nested = _compile(field.schema, model_field.document_type)
        return lambda value: None if value is None else nested(value)
    if isinstance(field, fields.List):
        if not isinstance(model_field, me.ListField) or model_field.field is None:
            raise NotCompilable(attr)
        each = _convert(field.inner, model_field.field, attr)
        return lambda value: None if value is None else [each(item) for item in value]
    if isinstance(field, fields.Dict) and isinstance(
        getattr(model_field, "field", None), me.EmbeddedDocumentField
    ):
        if field.key_field is None or not isinstance(field.value_field, fields.Nested):
            raise NotCompilable(attr)
        key, each = field.key_field._serialize, _convert(field.value_field, model_field.field, attr)
        return lambda value: (
            None if value is None else {key(k, None, None): each(v) for k, v in value.items()}
        )
    if isinstance(field, (fields.Method, fields.Function, fields.Pluck)):
        raise NotCompilable(attr)
    return _leaf(field, model_field, attr)


def _dotted(field: fields.Field, document_class: Any, path: str) -> Convert:
    """The compiled dump of a field whose attribute is a dotted path: from a stored document to its
    value."""
    model_field, read = _path(document_class, path)
    convert = _convert(field, model_field, path)

    def value(raw: dict[str, Any]) -> Any:
        return convert(read(raw))

    return value


def _computed(field: Computed, document_class: Any) -> Convert:
    """The compiled dump of a Computed field: from a stored document to its value."""
    readers = [_reader(document_class, name) for name in field.uses]
    compute = field.compute

    def value(raw: dict[str, Any]) -> Any:
        return compute(*[read(raw) for read in readers])

    return value


def _reader(document_class: Any, path: str) -> Convert:
    """A function from a stored document to what the built document holds at `path` (a value it
    holds as stored is not converted)."""
    model_field, read = _path(document_class, path)
    to_python, as_stored = model_field.to_python, _holds_as_stored(model_field)

    def held(raw: dict[str, Any]) -> Any:
        value = read(raw)
        return value if value is None or as_stored(value) else to_python(value)

    return held


# The types of the values a dict field without a field of its own holds as they are stored.
PLAIN_ITEMS = frozenset({str, int, bool, type(None)})


def _holds_as_stored(model_field: Any) -> Callable[[Any], bool]:
    """A test of a stored value: whether `model_field` holds it as it is (its `to_python` would
    make an equal value of it)."""
    decoded = _held_as_decoded(model_field)
    if decoded is not None:
        return lambda value: type(value) is decoded
    inner = getattr(model_field, "field", None)
    items = PLAIN_ITEMS if inner is None else {_held_as_decoded(inner)}
    if type(model_field).to_python is not ComplexBaseField.to_python or None in items:
        return lambda value: False
    if isinstance(model_field, me.ListField):
        return lambda value: type(value) is list and all(type(item) in items for item in value)
    if isinstance(model_field, me.DictField):
        return lambda value: type(value) is dict and all(type(item) in items for item in value.values())
    return lambda value: False


def _compile(schema: Schema, document_class: Any) -> Dumper:
    if schema._hooks.get("pre_dump") or schema._hooks.get("post_dump"):
        raise NotCompilable(type(schema).__name__)
    names: dict[str, Any] = {}
    lines, keys = [], []
    for number, (name, field) in enumerate(schema.dump_fields.items()):
        key, attr, value = field.data_key or name, field.attribute or name, f"v{number}"
        keys.append(f"{key!r}: {value}")
        if isinstance(field, Computed) or "." in attr:
            names[f"c{number}"] = (
                _computed(field, document_class)
                if isinstance(field, Computed)
                else _dotted(field, document_class, attr)
            )
            lines.append(f"{value} = c{number}(raw)")
            continue
        model_field = document_class._fields.get(attr)
        if model_field is None:
            raise NotCompilable(attr)
        lines.append(f"{value} = get({model_field.db_field!r})")
        # Absent or null, the field holds what _fill says.
        fill = names[f"f{number}"] = _fill(model_field)
        if fill is not None:
            lines.append(f"if {value} is None: {value} = f{number}{'()' if callable(fill) else ''}")
        convert = _convert(field, model_field, attr)
        if isinstance(convert, Passing):
            lines.append(f"{value} = {convert.inline(value, names, f'p{number}')}")
        else:
            names[f"c{number}"] = convert
            lines.append(f"{value} = c{number}({value})")
    body = "".join(f"    {line}\n" for line in lines)
    source = f"def dump(raw):\n    get = raw.get\n{body}    return {{{', '.join(keys)}}}\n"
    exec(compile(source, f"<wire dump of {type(schema).__name__}>", "exec"), names)
    dump: Dumper = names["dump"]
    return dump


@cache
def _compiled(schema_class: type[Schema], document_class: type[me.Document]) -> Dumper | None:
    try:
        return _compile(schema_class(), document_class)
    except NotCompilable:
        return None


def dumper(schema: Schema, document_class: Any) -> Dumper | None:
    """The compiled dump of `schema` (an instance without `only`, `exclude` or context of its own)
    for documents of `document_class`; None when the schema does not compile."""
    if schema.only or schema.exclude or schema.load_only or schema.dump_only:
        return None
    return _compiled(type(schema), document_class)


def _checked(schema: Schema, dump: Dumper, raw: dict[str, Any], document_class: Any) -> dict[str, Any]:
    dumped = dump(raw)
    if current_app.config.get("WIRE_CHECK"):
        expected = schema.dump(document_class._from_son(raw))
        if expected != dumped:
            raise WireMismatch(f"{type(schema).__name__}: {dumped!r} != {expected!r}")
    return dumped


def dump_stored(schema: Schema, stored: Stored) -> dict[str, Any]:
    """Dump one stored document with `schema`: compiled where it compiles."""
    dump = dumper(schema, stored.document_class)
    if dump is None:
        return schema.dump(stored.document())
    return _checked(schema, dump, stored.raw, stored.document_class)


def dump_many(schema: Schema, documents: list[Stored]) -> list[dict[str, Any]]:
    """Dump stored documents (of one class) with `schema`: compiled where it compiles."""
    if not documents:
        return []
    document_class = documents[0].document_class
    dump = dumper(schema, document_class)
    if dump is None:
        return [schema.dump(stored.document()) for stored in documents]
    return [_checked(schema, dump, stored.raw, document_class) for stored in documents]


def mapping_dumper(
    schema: Schema, leave: frozenset[str] = frozenset()
) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """The dump of `schema` (no hooks, no computed fields) for mappings: each value dumped by its
    field's own `_serialize`, a nested schema's the same way (null stays null), without marshmallow's
    walk of the schema; an attribute the mapping does not hold is left out, as marshmallow leaves it,
    and so are the fields `leave` names (the caller dumps them). With WIRE_CHECK, each dump is
    compared with marshmallow's."""
    if schema._hooks.get("pre_dump") or schema._hooks.get("post_dump"):
        raise NotCompilable(type(schema).__name__)
    plan = []
    for name, field in schema.dump_fields.items():
        if name in leave:
            continue
        serialize: Callable[..., Any] = field._serialize
        if type(field) is fields.Nested and not field.many and isinstance(field.schema, Schema):
            serialize = _nested_mapping(mapping_dumper(field.schema))
        elif isinstance(field, (fields.Nested, fields.Method, fields.Function, Computed)):
            raise NotCompilable(name)
        if field.dump_default is not missing:
            raise NotCompilable(name)
        plan.append((field.data_key or name, field.attribute or name, serialize))
    unleft = type(schema)(exclude=leave) if leave else schema

    def dump(mapping: Mapping[str, Any]) -> dict[str, Any]:
        dumped = {}
        for key, attr, serialize in plan:
            value = mapping.get(attr, missing)
            if value is not missing:
                dumped[key] = serialize(value, attr, mapping)
        if has_app_context() and current_app.config.get("WIRE_CHECK") and dumped != unleft.dump(mapping):
            raise WireMismatch(f"{type(schema).__name__}: {dumped!r} != {unleft.dump(mapping)!r}")
        return dumped

    return dump


def _nested_mapping(inner: Callable[[Mapping[str, Any]], dict[str, Any]]) -> Callable[..., Any]:
    def serialize(value: Any, attr: Any, obj: Any) -> Any:
        return None if value is None else inner(value)

    return serialize
