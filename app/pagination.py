"""Lists: one page of a query set, by number or by cursor, with a capped total.

A request says `?perPage=20` (at most 100) and either `?page=N` or `?cursor=`. A page by number skips
the (N - 1) x perPage documents before it, which costs more the further it is. A cursor, the
`nextCursor` of the page before, starts the page after that page's last document through the index
that sorts the list, at the same cost however far the page is, and a document inserted meanwhile
neither repeats nor hides one. Every page answers {items, page, perPage, total, totalIsLowerBound,
nextCursor}: the total is counted up to TOTAL_CAP documents (beyond it `totalIsLowerBound` is true),
and `nextCursor` is null on the last page.

A cursor holds the sort key of the page's last document (its values of the list's order, which ends
with a unique field), the list's order and the next page's number, as JSON signed with the app's
SECRET_KEY (itsdangerous, base64url): one altered, or issued by a list of another order, is 422. It
names no tenant: a list reads the tenant in context's documents only, so another tenant's cursor is a
position in this tenant's list, and nothing of the other tenant is read.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping, Sequence
from typing import Any

from bson import json_util
from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from marshmallow import Schema, ValidationError, fields, validate
from mongoengine.queryset.visitor import Q

from app import wire
from app.errors import ValidationFailed

MAX_PER_PAGE = 100
# The total is counted up to this many documents: a count reads every document it counts.
TOTAL_CAP = 10_000
CURSOR_SALT = "app.pagination.cursor"
MAX_CURSOR = 1000
NOT_A_CURSOR = "Not a cursor of this list: pass the nextCursor of its page before"


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=CURSOR_SALT, serializer=json_util)


class Cursor(fields.Field):
    """A `nextCursor`, loaded as {"order", "after", "page"}; 422 when it is not one the app signed."""

    json_schema = {"type": "string", "maxLength": MAX_CURSOR}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        if not isinstance(value, str) or len(value) > MAX_CURSOR:
            raise ValidationError(NOT_A_CURSOR)
        try:
            return _serializer().loads(value)
        except BadSignature:
            raise ValidationError(NOT_A_CURSOR) from None


class PageArgs(Schema):
    page = fields.Integer(
        load_default=1,
        validate=validate.Range(min=1, max=100_000),
        metadata={"description": "The page's number (ignored with a cursor)."},
    )
    per_page = fields.Integer(
        data_key="perPage", load_default=20, validate=validate.Range(min=1, max=MAX_PER_PAGE)
    )
    cursor = Cursor(
        metadata={
            "description": "The nextCursor of the page before: the page after it, at the same cost "
            "however far into the list (a page number skips the documents before it)."
        },
    )


_page_schemas: dict[type[Schema], type[Schema]] = {}


def page_schema(item_schema: type[Schema]) -> type[Schema]:
    """Return the schema of a page of `item_schema` items (one class per item schema, for OpenAPI)."""
    if item_schema not in _page_schemas:
        name = item_schema.__name__.removesuffix("Schema") + "PageSchema"
        _page_schemas[item_schema] = type(
            name,
            (Schema,),
            {
                "items": fields.List(fields.Nested(item_schema), required=True),
                "page": fields.Integer(
                    required=True, metadata={"description": "The page's number, counted from the first page"}
                ),
                "per_page": fields.Integer(data_key="perPage", required=True),
                "total": fields.Integer(
                    required=True,
                    metadata={"description": f"The documents of the list, counted up to {TOTAL_CAP:,}"},
                ),
                "total_is_lower_bound": fields.Boolean(
                    data_key="totalIsLowerBound",
                    required=True,
                    metadata={"description": "True when the list holds more documents than total"},
                ),
                "next_cursor": fields.String(
                    data_key="nextCursor",
                    required=True,
                    allow_none=True,
                    metadata={"description": "Pass as ?cursor= for the next page; null on the last page"},
                ),
            },
        )
    return _page_schemas[item_schema]


def paginate(queryset: Any, order: Sequence[str], args: Mapping[str, Any]) -> dict[str, Any]:
    """Return the page of a query set, sorted by `order`, that `args` (PageArgs) asks for. The order
    must end with a field unique in the list (the id), or pages may repeat or skip documents that
    sort equal; an index must serve it, the list's filter and the cursor's ranges
    (tests/query_shapes.py). The page's items are read as stored (app.wire), for the response schema
    to dump without building documents."""
    per_page, cursor = args["per_page"], args.get("cursor")
    # A filter counts up to the cap; no filter at all, from the collection's metadata.
    if queryset._query:
        counted = queryset.limit(TOTAL_CAP + 1).count(with_limit_and_skip=True)
    else:
        counted = queryset.count()
    ordered = queryset.order_by(*order)
    if cursor is None:
        page = args["page"]
        ordered = ordered.skip((page - 1) * per_page)
    elif cursor["order"] != list(order):
        raise ValidationFailed(details={"cursor": [NOT_A_CURSOR]})
    else:
        page = cursor["page"]
        ordered = ordered.filter(_after(order, cursor["after"]))
    found = wire.read(ordered.limit(per_page + 1))
    items = found[:per_page]
    next_cursor = None
    if len(found) > per_page:
        after = [items[-1].value(key.lstrip("-")) for key in order]
        next_cursor = _serializer().dumps({"order": list(order), "after": after, "page": page + 1})
    return {
        "items": items,
        "page": page,
        "per_page": per_page,
        "total": min(counted, TOTAL_CAP),
        "total_is_lower_bound": counted > TOTAL_CAP,
        "next_cursor": next_cursor,
    }


def _after(order: Sequence[str], values: Sequence[Any]) -> Q:
    """The documents that sort after the sort key `values`: for each field of the order, those equal
    to it on the fields before and past it on this one."""
    branches = []
    for position, key in enumerate(order):
        name = key.lstrip("-")
        past = "lt" if key.startswith("-") else "gt"
        equal = {earlier.lstrip("-"): value for earlier, value in zip(order[:position], values, strict=False)}
        branches.append(Q(**equal, **{f"{name}__{past}": values[position]}))
    return functools.reduce(operator.or_, branches)
